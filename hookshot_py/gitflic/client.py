"""GitFlic's project webhook API (seed 002), the part the bridge uses to manage its own hook.

Endpoints, all under `/project/{ownerAlias}/{projectAlias}/setting/webhook` and all needing
project admin rights: GET (paged list), POST (create), POST `/{id}` (update — not PUT),
POST `/{id}/delete` (delete — not DELETE). Auth is `Authorization: token <accessToken>`.

Every failure, HTTP or network or a malformed answer, surfaces as `GitFlicError`, whose
`describe()` is a sentence fit for a room reply.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp

from hookshot_py.gitflic.events import SUBSCRIPTION_FLAGS, events_body

PUBLIC_WEB_URL = "https://gitflic.ru"
PUBLIC_API_URL = "https://api.gitflic.ru"
DEFAULT_PAGE_SIZE = 50
# A project with more hooks than this is pathological; stop rather than loop forever on a
# server whose `page` object never says "last".
MAX_PAGES = 100
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30)
# 422 bodies are not documented; these are the shapes we understand (Spring's `errors[]` with
# `field` + `defaultMessage`/`message`, RFC 7807 `detail`, a plain `message`).
_ERROR_TEXT_KEYS = ("defaultMessage", "message", "detail", "error", "title")


def default_api_url(instance_url: str) -> str:
    """The REST base of an instance: `api.gitflic.ru` for the public one, `{host}/rest-api` else."""
    web = instance_url.rstrip("/")
    if urlsplit(web).netloc.lower() in ("gitflic.ru", "www.gitflic.ru"):
        return PUBLIC_API_URL
    return f"{web}/rest-api"


@dataclass
class GitFlicError(Exception):
    """A GitFlic API call failed. `status` is the HTTP status, 0 when no answer arrived."""

    status: int
    message: str
    project: str = ""  # "owner/project" the call was about
    instance: str = ""  # host name shown to users
    errors: list[str] = field(default_factory=list)  # validation problems of a 422

    def __post_init__(self) -> None:
        super().__init__(f"{self.status}: {self.message}")

    def describe(self) -> str:
        """A room reply saying what went wrong and, where possible, what to do about it."""
        project = self.project or "the project"
        instance = self.instance or "GitFlic"
        if self.status == 0:
            return f"Could not reach GitFlic at {instance}: {self.message}."
        if self.status == 401:
            return (
                f"GitFlic at {instance} refused the token (invalid or expired), so it has no "
                f"admin rights on {project}. Set a valid token with admin rights on the project."
            )
        if self.status == 403:
            return (
                f"The GitFlic token has no admin rights on {project}: only project administrators "
                f"can manage its webhooks."
            )
        if self.status == 404:
            return f"Project {project} not found on {instance} (or the token cannot see it)."
        if self.status == 422:
            details = "; ".join(self.errors) if self.errors else self.message
            return f"GitFlic rejected the webhook for {project}: {details}."
        if self.status == 429:
            return f"GitFlic at {instance} is rate limiting the bridge; try again later."
        return f"GitFlic at {instance} answered {self.status} for {project}: {self.message}."


@dataclass(frozen=True)
class Webhook:
    id: str
    url: str
    secret: str | None
    events: frozenset[str]  # the flags that are on
    project_id: str | None = None
    created_at: str | None = None
    updated_at: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> Webhook:
        """Read a webhook object; raises ValueError when it lacks an id or url."""
        if not isinstance(data, dict):
            raise ValueError("a webhook must be a JSON object")
        hook_id, url = data.get("id"), data.get("url")
        if not isinstance(hook_id, str | int) or isinstance(hook_id, bool) or not str(hook_id):
            raise ValueError("the webhook has no id")
        if not isinstance(url, str):
            raise ValueError("the webhook has no url")
        raw_events = data.get("events")
        events = (
            frozenset(k for k, v in raw_events.items() if v is True and isinstance(k, str))
            if isinstance(raw_events, dict)
            else frozenset()
        )
        secret = data.get("secret")
        return cls(
            id=str(hook_id),
            url=url,
            secret=secret if isinstance(secret, str) else None,
            events=events,
            project_id=_opt_str(data.get("projectId")),
            created_at=_opt_str(data.get("createdAt")),
            updated_at=_opt_str(data.get("updatedAt")),
        )

    def known_events(self) -> frozenset[str]:
        """The enabled flags among the 16 of the seed (an instance may send more)."""
        return self.events & frozenset(SUBSCRIPTION_FLAGS)


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _same_url(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


class GitFlicClient:
    """Webhook management for one GitFlic instance with one access token."""

    def __init__(
        self,
        api_url: str,
        token: str,
        session: aiohttp.ClientSession,
        *,
        instance: str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.session = session
        # Shown in error texts: the configured instance name, else the API host.
        self.instance = instance or urlsplit(self.api_url).netloc or self.api_url
        self.page_size = page_size

    # -- endpoints ---------------------------------------------------------------------------------

    async def list_webhooks(self, owner: str, project: str) -> list[Webhook]:
        """Every webhook of the project, following the `page` object across all pages."""
        hooks: list[Webhook] = []
        page = 0
        while page < MAX_PAGES:
            data = await self._call(
                "GET", owner, project, "", params={"page": str(page), "size": str(self.page_size)}
            )
            if not isinstance(data, dict):
                raise self._error(200, "GitFlic returned an unexpected webhook list", owner, project)
            embedded = data.get("_embedded")
            # Spring HATEOAS leaves `_embedded` out entirely when the page is empty.
            items = embedded.get("webhookList", []) if isinstance(embedded, dict) else []
            if not isinstance(items, list):
                raise self._error(200, "GitFlic returned an unexpected webhook list", owner, project)
            hooks.extend(self._webhook(item, owner, project) for item in items)
            page_info = data.get("page")
            total_pages = page_info.get("totalPages") if isinstance(page_info, dict) else None
            if not items or not isinstance(total_pages, int) or page + 1 >= total_pages:
                break
            page += 1
        return hooks

    async def create_webhook(
        self, owner: str, project: str, url: str, secret: str, events: Iterable[str]
    ) -> Webhook:
        """Create the hook. `events` must be subscription flags (ValueError otherwise: validate
        them with `validate_events` first)."""
        body = {"url": url, "secret": secret, "events": events_body(events)}
        data = await self._call("POST", owner, project, "", body=body)
        return self._webhook(data, owner, project)

    async def update_webhook(
        self,
        owner: str,
        project: str,
        webhook_id: str,
        url: str,
        secret: str,
        events: Iterable[str],
    ) -> Webhook:
        """Replace the hook's url, secret and events; every flag is sent, so omitted ones go off."""
        body = {"url": url, "secret": secret, "events": events_body(events)}
        data = await self._call("POST", owner, project, f"/{quote(webhook_id, safe='')}", body=body)
        return self._webhook(data, owner, project)

    async def delete_webhook(self, owner: str, project: str, webhook_id: str) -> None:
        await self._call("POST", owner, project, f"/{quote(webhook_id, safe='')}/delete", expect_body=False)

    async def ensure_webhook(
        self, owner: str, project: str, url: str, secret: str, events: Iterable[str]
    ) -> Webhook:
        """The project's webhook pointing at `url`, with exactly this secret and these events.

        An existing hook with our URL is reused (updated only when it differs) so that
        re-creating a connection does not pile up duplicate hooks on the project.
        """
        wanted = frozenset(events)
        for hook in await self.list_webhooks(owner, project):
            if not _same_url(hook.url, url):
                continue
            if hook.known_events() == wanted and hook.secret == secret and hook.url == url:
                return hook
            return await self.update_webhook(owner, project, hook.id, url, secret, wanted)
        return await self.create_webhook(owner, project, url, secret, wanted)

    # -- plumbing ----------------------------------------------------------------------------------

    def _error(
        self, status: int, message: str, owner: str, project: str, errors: list[str] | None = None
    ) -> GitFlicError:
        return GitFlicError(status, message, f"{owner}/{project}", self.instance, errors or [])

    def _webhook(self, data: Any, owner: str, project: str) -> Webhook:
        try:
            return Webhook.from_json(data)
        except ValueError as e:
            raise self._error(200, f"GitFlic returned an unexpected webhook: {e}", owner, project) from e

    async def _call(
        self,
        method: str,
        owner: str,
        project: str,
        suffix: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        expect_body: bool = True,
    ) -> Any:
        path = f"/project/{quote(owner, safe='')}/{quote(project, safe='')}/setting/webhook{suffix}"
        headers = {"Authorization": f"token {self.token}", "Accept": "application/json"}
        try:
            async with self.session.request(
                method,
                self.api_url + path,
                params=params,
                json=body,
                headers=headers,
                timeout=REQUEST_TIMEOUT,
            ) as resp:
                status = resp.status
                raw = await resp.read()
        except TimeoutError as e:
            raise self._error(0, "the request timed out", owner, project) from e
        except aiohttp.ClientError as e:
            raise self._error(0, str(e) or type(e).__name__, owner, project) from e
        if status >= 400:
            message, errors = _parse_error_body(raw, status)
            raise self._error(status, message, owner, project, errors)
        if not expect_body:
            return None
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise self._error(status, "GitFlic returned a body that is not JSON", owner, project) from e


def _parse_error_body(raw: bytes, status: int) -> tuple[str, list[str]]:
    """(summary, validation problems) from an error body of any shape, or none at all."""
    default = f"HTTP {status}"
    try:
        data = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        text = raw[:200].decode("utf-8", "replace").strip()
        return (text or default), []
    if not isinstance(data, dict):
        return default, []
    message = next(
        (data[k] for k in ("message", "detail", "error", "title") if isinstance(data.get(k), str) and data[k]),
        default,
    )
    errors: list[str] = []
    for key in ("errors", "violations", "fieldErrors"):
        items = data.get(key)
        if isinstance(items, list):
            errors.extend(text for item in items if (text := _error_item(item)))
        elif isinstance(items, dict):  # {"field": "problem"} or {"field": ["problem", ...]}
            for name, problem in items.items():
                problems = problem if isinstance(problem, list) else [problem]
                errors.extend(f"{name}: {p}" for p in problems if isinstance(p, str))
    return message, errors


def _error_item(item: Any) -> str | None:
    if isinstance(item, str):
        return item
    if not isinstance(item, dict):
        return None
    text = next((item[k] for k in _ERROR_TEXT_KEYS if isinstance(item.get(k), str) and item[k]), None)
    name = next(
        (item[k] for k in ("field", "propertyPath", "name") if isinstance(item.get(k), str) and item[k]), None
    )
    if text is None:
        return None
    return f"{name}: {text}" if name else text
