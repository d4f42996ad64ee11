"""GitFlic's project webhook API (seed 002), the part the bridge uses to manage its own hook.

Endpoints, all under `/project/{ownerAlias}/{projectAlias}/setting/webhook` and all needing
project admin rights: GET (paged list), POST (create), POST `/{id}` (update — not PUT),
POST `/{id}/delete` (delete — not DELETE). Auth is `Authorization: token <accessToken>`.

Every failure, HTTP or network or a malformed answer, surfaces as `GitFlicError`, whose
`describe()` is a sentence fit for a room reply.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp

from hookshot_py.forges.http import NO_RESPONSE, ForgeHttp, ForgeHttpError, RateLimits
from hookshot_py.forges.models import ModelError
from hookshot_py.forges.policy import same_url
from hookshot_py.gitflic.models import Webhook, events_body

__all__ = ["PUBLIC_API_URL", "PUBLIC_WEB_URL", "GitFlicClient", "GitFlicError", "Webhook", "default_api_url"]

PUBLIC_WEB_URL = "https://gitflic.ru"
PUBLIC_API_URL = "https://api.gitflic.ru"
DEFAULT_PAGE_SIZE = 50
# A project with more hooks than this is pathological; stop rather than loop forever on a
# server whose `page` object never says "last".
MAX_PAGES = 100
REQUEST_TIMEOUT_S = 30.0


def default_api_url(instance_url: str) -> str:
    """The REST base of an instance: `api.gitflic.ru` for the public one, `{host}/rest-api` else."""
    web = instance_url.rstrip("/")
    if urlsplit(web).netloc.lower() in ("gitflic.ru", "www.gitflic.ru"):
        return PUBLIC_API_URL
    return f"{web}/rest-api"


class GitFlicError(ForgeHttpError):
    """A GitFlic API call failed. `status` is the HTTP status, 0 when no answer arrived."""

    def __init__(
        self,
        status: int,
        message: str,
        project: str = "",
        instance: str = "",
        errors: list[str] | None = None,
        *,
        retry_after: float | None = None,
    ) -> None:
        self.project = project  # "owner/project" the call was about
        self.instance = instance  # host name shown to users
        super().__init__(status, message, details=errors, retry_after=retry_after)

    @property
    def errors(self) -> list[str]:
        """Validation problems of a 422."""
        return self.details

    def describe(self) -> str:
        """A room reply saying what went wrong and, where possible, what to do about it."""
        project = self.project or "the project"
        instance = self.instance or "GitFlic"
        if self.status == 0 and not self.rate_limited:
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
        if self.rate_limited:
            return f"GitFlic at {instance} is rate limiting the bridge; try again later."
        return f"GitFlic at {instance} answered {self.status} for {project}: {self.message}."


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
        limits: RateLimits | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        # 422 bodies are not documented; `forges.http.error_text` reads the shapes seen (Spring's
        # `errors[]` with `field` + `defaultMessage`/`message`, RFC 7807 `detail`, a `message`).
        self.http = ForgeHttp(
            self.api_url,
            session,
            headers={"Authorization": f"token {token}", "Accept": "application/json"},
            timeout=REQUEST_TIMEOUT_S,
            limits=limits,
        )
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
            if not same_url(hook.url, url):
                continue
            if hook.known_events() == wanted and hook.secret == secret and hook.url == url:
                return hook
            return await self.update_webhook(owner, project, hook.hook_id, url, secret, wanted)
        return await self.create_webhook(owner, project, url, secret, wanted)

    # -- plumbing ----------------------------------------------------------------------------------

    def _error(
        self, status: int, message: str, owner: str, project: str, errors: list[str] | None = None
    ) -> GitFlicError:
        return GitFlicError(status, message, f"{owner}/{project}", self.instance, errors or [])

    def _webhook(self, data: Any, owner: str, project: str) -> Webhook:
        try:
            return Webhook.from_json(data)
        except ModelError as e:
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
        try:
            resp = await self.http.request(method, path, params=params, json=body)
        except ForgeHttpError as e:
            status = NO_RESPONSE if e.kind in ("timeout", "network") else e.status
            error = self._error(status, e.message, owner, project, e.details)
            error.retry_after, error.kind = e.retry_after, e.kind
            raise error from e
        if not expect_body:
            return None
        try:
            return resp.json()
        except (ValueError, UnicodeDecodeError) as e:
            raise self._error(resp.status, "GitFlic returned a body that is not JSON", owner, project) from e
