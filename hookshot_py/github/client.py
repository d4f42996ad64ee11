"""A small GitHub REST client for what the bridge does with a user's token, on the forge HTTP base.

Repo hooks (seed 003 in its current form), repository/permission look-ups, issue commands and
the listings behind the "which repos can I connect" flows (the OAuth exchange is in oauth.py). Every
failure, including network errors and answers that do not fit their model, surfaces as
`GitHubError`, whose `describe()` is a sentence fit for a room reply.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp

from hookshot_py.forges.http import NO_RESPONSE, ForgeHttp, ForgeHttpError, RateLimits, Response, parse_next_link
from hookshot_py.forges.models import Model, ModelError, convert
from hookshot_py.github.models import Hook, Installation, Issue, Org, Page, Repo, User

__all__ = ["API_VERSION", "GitHubClient", "GitHubError", "NO_RESPONSE"]

API_VERSION = "2022-11-28"
DEFAULT_TIMEOUT_S = 30.0
MAX_LIST_PAGES = 20

M = TypeVar("M", bound=Model)


class GitHubError(ForgeHttpError):
    """GitHub refused a request, or could not be reached (`status` 0).

    `repo` is the `owner/repo` the call was about, when there is one, so `describe()` can say
    which repository the user lacks access to; `needs_admin` marks calls that need admin
    rights (repo hooks), where GitHub answers 404 rather than 403 to non-admins. `errors` holds
    the `errors` list of a 422.
    """

    def __init__(
        self,
        status: int,
        message: str,
        docs_url: str | None = None,
        *,
        repo: str | None = None,
        needs_admin: bool = False,
        errors: list[dict[str, Any]] | None = None,
        details: list[str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.docs_url = docs_url
        self.repo = repo
        self.needs_admin = needs_admin
        self.errors = errors or []
        super().__init__(status, message, details=details, retry_after=retry_after)

    def summary(self) -> str:
        return f"GitHub error {self.status}: {self.message}"

    def describe(self) -> str:
        """A reply for the room: what went wrong and what the user can do about it."""
        if self.status == NO_RESPONSE:
            return f"Could not reach GitHub: {self.message}"
        if self.status == 401:
            return "GitHub rejected your token (it is invalid, expired or revoked). Log in to GitHub again."
        if self.rate_limited or (self.status == 403 and self.retry_after is not None):
            wait = f" for about {int(self.retry_after) + 1} s" if self.retry_after else ""
            return f"GitHub is rate limiting the bridge{wait}; try again later."
        if self.status in (403, 404) and self.repo is not None:
            if self.needs_admin:
                return (
                    f"No admin access to {self.repo}: check that the repository exists and "
                    "that your GitHub account can administer it."
                )
            return f"Cannot access {self.repo}: it does not exist or your GitHub account may not use it this way."
        if self.status == 403:
            return f"GitHub refused the request: {self.message}"
        if self.status == 404:
            return f"Not found on GitHub: {self.message}"
        if self.status == 422:
            details = f" ({'; '.join(self.details)})" if self.details else ""
            return f"GitHub could not accept the request: {self.message}{details}"
        return f"GitHub answered {self.status}: {self.message}"


def _seg(value: str | int) -> str:
    """One URL path segment: user input such as `../x` must not escape its place."""
    return quote(str(value), safe="")


def _read(data: Any, model: type[M]) -> M:
    try:
        return convert(data, model)
    except ModelError as e:
        if not e.path:
            raise GitHubError(NO_RESPONSE, f"unexpected {model.what} in GitHub's answer") from None
        raise GitHubError(NO_RESPONSE, f"GitHub's {model.what} has no valid '{e.path}'") from None


def _read_list(data: Any, model: type[M], what: str) -> list[M]:
    if not isinstance(data, list):
        raise GitHubError(NO_RESPONSE, f"GitHub's {what} is not a list")
    return [_read(item, model) for item in data]


class GitHubClient:
    """GitHub REST calls made with one token (`Authorization: Bearer`).

    `api_url` is `https://api.github.com` or a GitHub Enterprise `https://host/api/v3`.
    """

    def __init__(
        self,
        api_url: str,
        token: str,
        session: aiohttp.ClientSession,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        limits: RateLimits | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.http = ForgeHttp(
            self.api_url,
            session,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
            },
            timeout=timeout,
            limits=limits,
        )

    # --- transport ----------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str | int] | None = None,
        expect: Container[int] = (200,),
        repo: str | None = None,
        needs_admin: bool = False,
    ) -> tuple[Response, Any]:
        """One call: the answer and its parsed body (None when empty)."""
        try:
            resp = await self.http.request(method, path, json=json_body, params=params, expect=expect)
        except ForgeHttpError as e:
            raise self._error(e, method, path, repo, needs_admin) from e
        try:
            return resp, resp.json()
        except (ValueError, UnicodeDecodeError) as e:
            raise GitHubError(NO_RESPONSE, f"{method} {path}: GitHub's answer is not JSON", repo=repo) from e

    @staticmethod
    def _error(e: ForgeHttpError, method: str, path: str, repo: str | None, needs_admin: bool) -> GitHubError:
        if e.status == NO_RESPONSE and e.kind != "rate_limited":
            message = f"{method} {path} failed: {e.message}"
        else:
            message = e.message if e.from_forge or e.kind != "status" else f"{method} {path} returned {e.status}"
        body = e.body if isinstance(e.body, dict) else {}
        docs, errors = body.get("documentation_url"), body.get("errors")
        return GitHubError(
            e.status,
            message,
            docs if isinstance(docs, str) else None,
            repo=repo,
            needs_admin=needs_admin,
            errors=[x for x in errors if isinstance(x, dict)] if isinstance(errors, list) else None,
            details=e.details,
            retry_after=e.retry_after,
        )

    @staticmethod
    def _repo_path(owner: str, repo: str) -> str:
        return f"/repos/{_seg(owner)}/{_seg(repo)}"

    # --- users and repositories ---------------------------------------------------------------

    async def get_user(self) -> User:
        """The token's owner. A 401 here means the stored token is no longer valid."""
        return _read((await self._request("GET", "/user"))[1], User)

    async def get_repo(self, owner: str, repo: str) -> Repo:
        _, data = await self._request("GET", self._repo_path(owner, repo), repo=f"{owner}/{repo}")
        return _read(data, Repo)

    async def get_collaborator_permission(self, owner: str, repo: str, username: str) -> str:
        """`admin`, `write`, `read` or `none`: the user's permission on the repository."""
        _, data = await self._request(
            "GET",
            f"{self._repo_path(owner, repo)}/collaborators/{_seg(username)}/permission",
            repo=f"{owner}/{repo}",
        )
        permission = data.get("permission") if isinstance(data, dict) else None
        if not isinstance(permission, str):
            raise GitHubError(NO_RESPONSE, "GitHub's permission has no valid 'permission'")
        return permission

    # --- repository hooks ---------------------------------------------------------------------

    def _hook_config(self, url: str, secret: str) -> dict[str, str]:
        return {"url": url, "content_type": "json", "secret": secret, "insecure_ssl": "0"}

    async def list_hooks(self, owner: str, repo: str) -> list[Hook]:
        hooks: list[Hook] = []
        path = f"{self._repo_path(owner, repo)}/hooks"
        try:
            async for page in self.http.pages(path, params={"per_page": 100}, max_pages=MAX_LIST_PAGES):
                try:
                    data = page.json()
                except (ValueError, UnicodeDecodeError) as e:
                    raise GitHubError(NO_RESPONSE, f"GET {path}: GitHub's answer is not JSON") from e
                hooks.extend(_read_list(data, Hook, "hook list"))
        except ForgeHttpError as e:
            if isinstance(e, GitHubError):
                raise
            raise self._error(e, "GET", path, f"{owner}/{repo}", True) from e
        return hooks

    async def create_hook(self, owner: str, repo: str, url: str, secret: str, events: Iterable[str]) -> Hook:
        """Create an active JSON web hook; GitHub pings it straight away."""
        _, data = await self._request(
            "POST",
            f"{self._repo_path(owner, repo)}/hooks",
            json_body={"name": "web", "active": True, "events": list(events), "config": self._hook_config(url, secret)},
            expect=(201,),
            repo=f"{owner}/{repo}",
            needs_admin=True,
        )
        return _read(data, Hook)

    async def edit_hook(
        self,
        owner: str,
        repo: str,
        hook_id: int,
        *,
        secret: str,
        url: str,
        add_events: Iterable[str] = (),
        remove_events: Iterable[str] = (),
        events: Iterable[str] | None = None,
        active: bool | None = None,
    ) -> Hook:
        """Update a hook. The whole config (secret included) is re-sent: GitHub replaces the
        config object on PATCH, so leaving the secret out would silently drop it."""
        body: dict[str, Any] = {"config": self._hook_config(url, secret)}
        if events is not None:
            body["events"] = list(events)
        if add := list(add_events):
            body["add_events"] = add
        if remove := list(remove_events):
            body["remove_events"] = remove
        if active is not None:
            body["active"] = active
        _, data = await self._request(
            "PATCH",
            f"{self._repo_path(owner, repo)}/hooks/{_seg(hook_id)}",
            json_body=body,
            repo=f"{owner}/{repo}",
            needs_admin=True,
        )
        return _read(data, Hook)

    async def test_hook(self, owner: str, repo: str, hook_id: int) -> None:
        """Ask GitHub to re-deliver the latest push (only if the hook subscribes to push).

        Uses `/tests`, falling back to the original API's `/test` on a 404.
        """
        try:
            await self._hook_call("POST", owner, repo, hook_id, "/tests")
        except GitHubError as exc:
            if exc.status != 404:
                raise
            await self._hook_call("POST", owner, repo, hook_id, "/test")

    async def ping_hook(self, owner: str, repo: str, hook_id: int) -> None:
        await self._hook_call("POST", owner, repo, hook_id, "/pings")

    async def delete_hook(self, owner: str, repo: str, hook_id: int) -> None:
        await self._hook_call("DELETE", owner, repo, hook_id)

    async def _hook_call(self, method: str, owner: str, repo: str, hook_id: int, suffix: str = "") -> None:
        """A call on one hook that GitHub answers with 204."""
        path = f"{self._repo_path(owner, repo)}/hooks/{_seg(hook_id)}{suffix}"
        await self._request(method, path, expect=(204,), repo=f"{owner}/{repo}", needs_admin=True)

    # --- issues -------------------------------------------------------------------------------

    async def create_issue(
        self, owner: str, repo: str, title: str, body: str = "", labels: Iterable[str] = ()
    ) -> Issue:
        payload: dict[str, Any] = {"title": title, "body": body}
        if label_list := list(labels):
            payload["labels"] = label_list
        _, data = await self._request(
            "POST", f"{self._repo_path(owner, repo)}/issues", json_body=payload, expect=(201,), repo=f"{owner}/{repo}"
        )
        return _read(data, Issue)

    async def newest_open_issue(self, owner: str, repo: str) -> Issue | None:
        """The most recently created open issue (or pull request), if there is one."""
        _, data = await self._request(
            "GET",
            f"{self._repo_path(owner, repo)}/issues",
            params={"state": "open", "sort": "created", "direction": "desc", "per_page": 1},
            repo=f"{owner}/{repo}",
        )
        issues = _read_list(data, Issue, "issue list")
        return issues[0] if issues else None

    async def add_assignees(self, owner: str, repo: str, number: int, assignees: Iterable[str]) -> Issue:
        _, data = await self._request(
            "POST",
            f"{self._repo_path(owner, repo)}/issues/{_seg(number)}/assignees",
            json_body={"assignees": list(assignees)},
            expect=(201,),
            repo=f"{owner}/{repo}",
        )
        return _read(data, Issue)

    async def close_issue(self, owner: str, repo: str, number: int, comment: str | None = None) -> Issue:
        """Close an issue, first posting `comment` on it when given."""
        issue_path = f"{self._repo_path(owner, repo)}/issues/{_seg(number)}"
        if comment:
            await self._request(
                "POST", f"{issue_path}/comments", json_body={"body": comment}, expect=(201,), repo=f"{owner}/{repo}"
            )
        _, data = await self._request("PATCH", issue_path, json_body={"state": "closed"}, repo=f"{owner}/{repo}")
        return _read(data, Issue)

    # --- listings -----------------------------------------------------------------------------

    async def _page(
        self, path: str, model: type[M], page: int, per_page: int, *, key: str | None = None
    ) -> Page[M]:
        resp, data = await self._request("GET", path, params={"page": page, "per_page": per_page})
        total: int | None = None
        if key is not None:
            body = data if isinstance(data, dict) else {}
            count = body.get("total_count")
            total = count if isinstance(count, int) and not isinstance(count, bool) else None
            data = body.get(key)
        items = _read_list(data, model, f"listing of {path}")
        return Page(items, page, per_page, parse_next_link(resp.headers.get("Link")) is not None, total)

    async def list_user_orgs(self, page: int = 1, per_page: int = 30) -> Page[Org]:
        return await self._page("/user/orgs", Org, page, per_page)

    async def list_user_repos(self, page: int = 1, per_page: int = 30) -> Page[Repo]:
        return await self._page("/user/repos", Repo, page, per_page)

    async def list_org_repos(self, org: str, page: int = 1, per_page: int = 30) -> Page[Repo]:
        return await self._page(f"/orgs/{_seg(org)}/repos", Repo, page, per_page)

    async def list_installations(self) -> list[Installation]:
        """Every installation of the GitHub App the user can access (all pages)."""
        found: list[Installation] = []
        for number in range(1, MAX_LIST_PAGES + 1):
            page = await self._page("/user/installations", Installation, number, 100, key="installations")
            found.extend(page.items)
            if not page.has_next:
                break
        return found

    async def list_installation_repos(self, installation_id: int, page: int = 1, per_page: int = 30) -> Page[Repo]:
        return await self._page(
            f"/user/installations/{_seg(installation_id)}/repositories", Repo, page, per_page, key="repositories"
        )
