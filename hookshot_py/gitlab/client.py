"""GitLab's REST API v4, the part the bridge calls, on `forges.http.ForgeHttp`.

Authenticated with `Authorization: Bearer <token>` (personal, project and OAuth tokens alike).
A project is addressed by its URL-encoded path (`group%2Fsub%2Fproject`), as GitLab requires.
Every failure, HTTP or network or a malformed answer, is a `GitLabError` whose `describe()` is a
sentence fit for a room reply.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import aiohttp

from hookshot_py.forges.http import NO_RESPONSE, SUCCESS, ForgeHttp, ForgeHttpError, RateLimits, Response
from hookshot_py.forges.models import ModelError, convert
from hookshot_py.gitlab.models import HOOK_FLAGS, OFF_FLAGS, Hook, Issue, Member, Project, User

__all__ = ["GitLabClient", "GitLabError", "Page", "api_base"]

T = TypeVar("T")

REQUEST_TIMEOUT_S = 20.0
MAX_HOOK_PAGES = 10


def api_base(instance_url: str) -> str:
    return instance_url.rstrip("/") + "/api/v4"


def project_id(path: str) -> str:
    """A project path as GitLab takes it in a URL: `group%2Fproject`."""
    return quote(path.strip("/"), safe="")


class GitLabError(ForgeHttpError):
    """A GitLab API call failed. `what` names what it was about ("project group/app")."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        what: str = "",
        instance: str = "",
        project: str = "",
        details: list[str] | None = None,
        retry_after: float | None = None,
        kind: str = "status",
    ) -> None:
        self.what = what
        self.instance = instance
        self.project = project  # the project path the call was about, if any
        super().__init__(status, message, details=details, retry_after=retry_after, kind=kind)

    def describe(self) -> str:
        """A room reply saying what went wrong and, where possible, what to do about it."""
        where = f"GitLab at {self.instance}" if self.instance else "GitLab"
        what = self.what or "the request"
        if self.rate_limited:
            return f"{where} is rate limiting the bridge; try again later."
        if self.status == NO_RESPONSE:
            return f"Could not reach {where}: {self.message}."
        if self.status == 401:
            return f"{where} refused the token (invalid, expired or revoked)."
        if self.status == 403:
            return f"{where} refused {what}: your access to the project is not enough ({self.message})."
        if self.status == 404:
            if self.project and "project" in self.message.lower():
                return f"{where} has no project {self.project} (or the token cannot see it)."
            return f"{where} has no {what} (or the token cannot see it)."
        if self.status in (400, 422):
            details = "; ".join(self.details) if self.details else self.message
            return f"{where} refused {what}: {details}."
        return f"{where} answered {self.status} for {what}: {self.message}."


@dataclass(frozen=True)
class Page:
    """One page of a listing; `next_page` from GitLab's `X-Next-Page` (None on the last page)."""

    projects: list[Project]
    next_page: int | None


def _next_page(response: Response) -> int | None:
    value = (response.headers.get("X-Next-Page") or "").strip()
    return int(value) if value.isdigit() else None


class GitLabClient:
    """One instance, one token."""

    def __init__(
        self, instance_url: str, token: str, session: aiohttp.ClientSession, *, limits: RateLimits | None = None
    ) -> None:
        self.instance_url = instance_url.rstrip("/")
        self.host = urlsplit(self.instance_url).netloc or self.instance_url
        self.http = ForgeHttp(
            api_base(self.instance_url),
            session,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=REQUEST_TIMEOUT_S,
            limits=limits,
        )

    # -- users and projects -------------------------------------------------------------------------

    async def current_user(self) -> User:
        return await self._model(User, "GET", "/user", "your user account")

    async def project(self, path: str) -> Project:
        return await self._model(Project, "GET", f"/projects/{project_id(path)}", f"project {path}", project=path)

    async def access_level(self, path: str, user_id: int) -> int:
        """The user's access level on the project, inherited from groups included; 0 when they
        are no member (GitLab answers 404)."""
        try:
            member = await self._model(
                Member, "GET", f"/projects/{project_id(path)}/members/all/{user_id}", f"project {path}",
                project=path,
            )
        except GitLabError as e:
            if e.status == 404:
                return 0
            raise
        return member.access_level

    async def list_projects(self, *, min_access_level: int, search: str | None, page: int, per_page: int) -> Page:
        """The projects the token's user may access at `min_access_level` or more, newest activity
        first."""
        params: dict[str, str | int] = {
            "min_access_level": min_access_level,
            "archived": "false",
            "simple": "true",
            "order_by": "last_activity_at",
            "page": page,
            "per_page": per_page,
        }
        if search:
            params["search"] = search
        response = await self._request("GET", "/projects", "the list of your projects", params=params)
        data = self._json(response, "the list of your projects")
        if not isinstance(data, list):
            raise self._error(200, "GitLab returned an unexpected project list", "the list of your projects")
        return Page([self._convert(item, Project, "the list of your projects") for item in data], _next_page(response))

    # -- project hooks --------------------------------------------------------------------------------

    async def list_hooks(self, path: str) -> list[Hook]:
        what = f"the webhooks of {path}"
        hooks: list[Hook] = []
        try:
            async for response in self.http.pages(
                f"/projects/{project_id(path)}/hooks", params={"per_page": 100}, max_pages=MAX_HOOK_PAGES
            ):
                data = self._json(response, what)
                if not isinstance(data, list):
                    raise self._error(200, "GitLab returned an unexpected webhook list", what)
                hooks.extend(self._convert(item, Hook, what) for item in data)
        except GitLabError:
            raise
        except ForgeHttpError as e:
            raise self._wrap(e, what, path) from e
        return hooks

    async def create_hook(self, path: str, url: str, token: str, flags: Iterable[str]) -> Hook:
        body = _hook_body(url, token, flags)
        return await self._model(Hook, "POST", f"/projects/{project_id(path)}/hooks", f"a webhook on {path}", json=body,
                                 project=path)

    async def edit_hook(self, path: str, hook_id: int, url: str, token: str, flags: Iterable[str]) -> Hook:
        """Every managed flag is sent, so the ones not in `flags` go off."""
        body = _hook_body(url, token, flags)
        return await self._model(
            Hook, "PUT", f"/projects/{project_id(path)}/hooks/{hook_id}", f"the webhook of {path}", json=body,
            project=path,
        )

    async def delete_hook(self, path: str, hook_id: int) -> None:
        await self._request("DELETE", f"/projects/{project_id(path)}/hooks/{hook_id}", f"the webhook of {path}",
                            project=path)

    # -- issues -----------------------------------------------------------------------------------------

    async def create_issue(
        self, path: str, title: str, description: str | None, labels: list[str], *, confidential: bool = False
    ) -> Issue:
        body: dict[str, Any] = {"title": title, "confidential": confidential}
        if description:
            body["description"] = description
        if labels:
            body["labels"] = ",".join(labels)
        return await self._model(Issue, "POST", f"/projects/{project_id(path)}/issues", f"a new issue in {path}",
                                 json=body, project=path)

    async def comment_issue(self, path: str, iid: int, body: str) -> None:
        await self._request(
            "POST", f"/projects/{project_id(path)}/issues/{iid}/notes", f"issue {path}#{iid}", json={"body": body},
            project=path,
        )

    async def close_issue(self, path: str, iid: int) -> Issue:
        return await self._model(
            Issue, "PUT", f"/projects/{project_id(path)}/issues/{iid}", f"issue {path}#{iid}",
            json={"state_event": "close"}, project=path,
        )

    # -- plumbing --------------------------------------------------------------------------------------

    def _error(self, status: int, message: str, what: str) -> GitLabError:
        return GitLabError(status, message, what=what, instance=self.host)

    def _wrap(self, e: ForgeHttpError, what: str, project: str = "") -> GitLabError:
        error = GitLabError(
            e.status, e.message, what=what, instance=self.host, project=project, details=e.details,
            retry_after=e.retry_after, kind=e.kind,
        )
        error.from_forge, error.body = e.from_forge, e.body
        return error

    async def _request(
        self,
        method: str,
        path: str,
        what: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        project: str = "",
    ) -> Response:
        try:
            return await self.http.request(method, path, params=params, json=json, expect=SUCCESS)
        except ForgeHttpError as e:
            raise self._wrap(e, what, project) from e

    def _json(self, response: Response, what: str) -> Any:
        try:
            return response.json()
        except (ValueError, UnicodeDecodeError) as e:
            raise self._error(response.status, "GitLab returned a body that is not JSON", what) from e

    def _convert(self, data: Any, model: type[T], what: str) -> T:
        try:
            return convert(data, model)
        except ModelError as e:
            raise self._error(200, f"GitLab returned an unexpected {getattr(model, 'what', 'answer')}: {e}",
                              what) from e

    async def _model(
        self, model: type[T], method: str, path: str, what: str, *, json: Any = None, project: str = ""
    ) -> T:
        response = await self._request(method, path, what, json=json, project=project)
        return self._convert(self._json(response, what), model, what)


def _hook_body(url: str, token: str, flags: Iterable[str]) -> dict[str, Any]:
    wanted = set(flags)
    return {
        "url": url,
        "token": token,
        "enable_ssl_verification": url.startswith("https:"),
        **{flag: flag in wanted for flag in HOOK_FLAGS},
        **{flag: False for flag in OFF_FLAGS},
    }
