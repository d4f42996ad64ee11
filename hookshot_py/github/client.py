"""A small GitHub REST client for what the bridge does with a user's token.

Repo hooks (seed 003 in its current form), repository/permission look-ups, issue commands and
the listings behind the "which repos can I connect" flows. Every failure, including network
errors and unparsable bodies, surfaces as `GitHubError`; nothing from aiohttp or json escapes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import aiohttp

from hookshot_py.github.errors import NO_RESPONSE, GitHubError

__all__ = [
    "API_VERSION",
    "GitHubClient",
    "GitHubError",
    "Hook",
    "Installation",
    "Issue",
    "Org",
    "Page",
    "Repo",
    "User",
    "parse_next_link",
]

API_VERSION = "2022-11-28"
DEFAULT_TIMEOUT_S = 30.0
MAX_LIST_PAGES = 20

T = TypeVar("T")


def _seg(value: str | int) -> str:
    """One URL path segment: user input such as `../x` must not escape its place."""
    return quote(str(value), safe="")


def _as_dict(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise GitHubError(NO_RESPONSE, f"unexpected {what} in GitHub's answer")
    return data


def _field(data: Mapping[str, Any], key: str, kind: type, what: str) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise GitHubError(NO_RESPONSE, f"GitHub's {what} has no valid '{key}'")
    return value


@dataclass(frozen=True)
class User:
    login: str
    id: int
    name: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> User:
        d = _as_dict(data, "user")
        name = d.get("name")
        return cls(
            login=_field(d, "login", str, "user"),
            id=_field(d, "id", int, "user"),
            name=name if isinstance(name, str) else None,
        )


@dataclass(frozen=True)
class Org:
    login: str
    id: int
    avatar_url: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> Org:
        d = _as_dict(data, "organisation")
        avatar = d.get("avatar_url")
        return cls(
            login=_field(d, "login", str, "organisation"),
            id=_field(d, "id", int, "organisation"),
            avatar_url=avatar if isinstance(avatar, str) else None,
        )


@dataclass(frozen=True)
class Repo:
    id: int
    owner: str
    name: str
    full_name: str
    html_url: str
    private: bool
    default_branch: str | None = None
    description: str | None = None
    #: The caller's rights (`admin`, `push`, `pull`...), when GitHub includes them.
    permissions: dict[str, bool] = field(default_factory=dict)
    owner_avatar_url: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> Repo:
        d = _as_dict(data, "repository")
        owner = _as_dict(d.get("owner"), "repository owner")
        perms = d.get("permissions")
        branch, description = d.get("default_branch"), d.get("description")
        avatar = owner.get("avatar_url")
        return cls(
            id=_field(d, "id", int, "repository"),
            owner=_field(owner, "login", str, "repository owner"),
            name=_field(d, "name", str, "repository"),
            full_name=_field(d, "full_name", str, "repository"),
            html_url=_field(d, "html_url", str, "repository"),
            private=bool(d.get("private")),
            default_branch=branch if isinstance(branch, str) else None,
            description=description if isinstance(description, str) else None,
            permissions=(
                {k: v for k, v in perms.items() if isinstance(v, bool)}
                if isinstance(perms, dict)
                else {}
            ),
            owner_avatar_url=avatar if isinstance(avatar, str) else None,
        )


@dataclass(frozen=True)
class Hook:
    id: int
    url: str
    events: tuple[str, ...]
    active: bool
    content_type: str | None
    insecure_ssl: str | None
    #: GitHub never returns the secret; it shows `********` when one is set.
    has_secret: bool

    @classmethod
    def from_json(cls, data: Any) -> Hook:
        d = _as_dict(data, "hook")
        config = d.get("config") if isinstance(d.get("config"), dict) else {}
        events = d.get("events") if isinstance(d.get("events"), list) else []
        url, content_type, insecure = (
            config.get("url"),
            config.get("content_type"),
            config.get("insecure_ssl"),
        )
        return cls(
            id=_field(d, "id", int, "hook"),
            url=url if isinstance(url, str) else "",
            events=tuple(e for e in events if isinstance(e, str)),
            active=bool(d.get("active")),
            content_type=content_type if isinstance(content_type, str) else None,
            insecure_ssl=None if insecure is None else str(insecure),
            has_secret=bool(config.get("secret")),
        )


@dataclass(frozen=True)
class Issue:
    id: int
    number: int
    title: str
    html_url: str
    state: str

    @classmethod
    def from_json(cls, data: Any) -> Issue:
        d = _as_dict(data, "issue")
        state = d.get("state")
        return cls(
            id=_field(d, "id", int, "issue"),
            number=_field(d, "number", int, "issue"),
            title=_field(d, "title", str, "issue"),
            html_url=_field(d, "html_url", str, "issue"),
            state=state if isinstance(state, str) else "open",
        )


@dataclass(frozen=True)
class Installation:
    id: int
    account_login: str
    account_type: str
    repository_selection: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> Installation:
        d = _as_dict(data, "installation")
        account = _as_dict(d.get("account"), "installation account")
        selection = d.get("repository_selection")
        kind = account.get("type")
        return cls(
            id=_field(d, "id", int, "installation"),
            account_login=_field(account, "login", str, "installation account"),
            account_type=kind if isinstance(kind, str) else "User",
            repository_selection=selection if isinstance(selection, str) else None,
        )


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing. `total_count` is set where GitHub reports it."""

    items: list[T]
    page: int
    per_page: int
    has_next: bool
    total_count: int | None = None


_LINK_RE = re.compile(r'<([^>]*)>\s*;\s*rel="([^"]*)"')


def parse_next_link(header: str | None) -> str | None:
    """The `rel="next"` URL of a `Link` header, if any."""
    if not header:
        return None
    for url, rels in _LINK_RE.findall(header):
        if "next" in rels.split():
            return url
    return None


@dataclass(frozen=True)
class _Response:
    status: int
    data: Any
    headers: Mapping[str, str]


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
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._token = token
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    # --- transport ----------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str | int] | None = None,
        expect: Iterable[int] = (200,),
        repo: str | None = None,
        needs_admin: bool = False,
    ) -> _Response:
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
        }
        url = f"{self.api_url}{path}"
        query = {k: str(v) for k, v in (params or {}).items()}
        try:
            async with self._session.request(
                method, url, json=json_body, params=query, headers=headers, timeout=self._timeout
            ) as resp:
                raw = await resp.read()
                status = resp.status
                response_headers = {k: v for k, v in resp.headers.items()}
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise GitHubError(NO_RESPONSE, f"{method} {path} failed: {exc!r}", repo=repo) from exc
        data: Any = None
        if raw:
            try:
                data = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as exc:
                if status in expect:
                    raise GitHubError(
                        NO_RESPONSE, f"{method} {path}: GitHub's answer is not JSON", repo=repo
                    ) from exc
        if status not in expect:
            body = data if isinstance(data, dict) else {}
            message = body.get("message")
            docs = body.get("documentation_url")
            errors = body.get("errors")
            error_list = (
                [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else None
            )
            raise GitHubError(
                status,
                message if isinstance(message, str) else f"{method} {path} returned {status}",
                docs if isinstance(docs, str) else None,
                repo=repo,
                needs_admin=needs_admin,
                errors=error_list,
            )
        return _Response(status, data, response_headers)

    @staticmethod
    def _repo_path(owner: str, repo: str) -> str:
        return f"/repos/{_seg(owner)}/{_seg(repo)}"

    # --- users and repositories ---------------------------------------------------------------

    async def get_user(self) -> User:
        """The token's owner. A 401 here means the stored token is no longer valid."""
        return User.from_json((await self._request("GET", "/user")).data)

    async def get_repo(self, owner: str, repo: str) -> Repo:
        resp = await self._request("GET", self._repo_path(owner, repo), repo=f"{owner}/{repo}")
        return Repo.from_json(resp.data)

    async def get_collaborator_permission(self, owner: str, repo: str, username: str) -> str:
        """`admin`, `write`, `read` or `none`: the user's permission on the repository."""
        resp = await self._request(
            "GET",
            f"{self._repo_path(owner, repo)}/collaborators/{_seg(username)}/permission",
            repo=f"{owner}/{repo}",
        )
        return _field(_as_dict(resp.data, "permission"), "permission", str, "permission")

    # --- repository hooks ---------------------------------------------------------------------

    def _hook_config(self, url: str, secret: str) -> dict[str, str]:
        return {"url": url, "content_type": "json", "secret": secret, "insecure_ssl": "0"}

    async def list_hooks(self, owner: str, repo: str) -> list[Hook]:
        hooks: list[Hook] = []
        for page in range(1, MAX_LIST_PAGES + 1):
            resp = await self._request(
                "GET",
                f"{self._repo_path(owner, repo)}/hooks",
                params={"per_page": 100, "page": page},
                repo=f"{owner}/{repo}",
                needs_admin=True,
            )
            if not isinstance(resp.data, list):
                raise GitHubError(NO_RESPONSE, "GitHub's hook list is not a list")
            hooks.extend(Hook.from_json(h) for h in resp.data)
            if parse_next_link(resp.headers.get("Link")) is None:
                break
        return hooks

    async def create_hook(
        self, owner: str, repo: str, url: str, secret: str, events: Iterable[str]
    ) -> Hook:
        """Create an active JSON web hook; GitHub pings it straight away."""
        resp = await self._request(
            "POST",
            f"{self._repo_path(owner, repo)}/hooks",
            json_body={
                "name": "web",
                "active": True,
                "events": list(events),
                "config": self._hook_config(url, secret),
            },
            expect=(201,),
            repo=f"{owner}/{repo}",
            needs_admin=True,
        )
        return Hook.from_json(resp.data)

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
        resp = await self._request(
            "PATCH",
            f"{self._repo_path(owner, repo)}/hooks/{_seg(hook_id)}",
            json_body=body,
            repo=f"{owner}/{repo}",
            needs_admin=True,
        )
        return Hook.from_json(resp.data)

    async def test_hook(self, owner: str, repo: str, hook_id: int) -> None:
        """Ask GitHub to re-deliver the latest push (only if the hook subscribes to push).

        Uses `/tests`, falling back to the original API's `/test` on a 404.
        """
        base = f"{self._repo_path(owner, repo)}/hooks/{_seg(hook_id)}"
        try:
            await self._request(
                "POST", f"{base}/tests", expect=(204,), repo=f"{owner}/{repo}", needs_admin=True
            )
        except GitHubError as exc:
            if exc.status != 404:
                raise
            await self._request(
                "POST", f"{base}/test", expect=(204,), repo=f"{owner}/{repo}", needs_admin=True
            )

    async def ping_hook(self, owner: str, repo: str, hook_id: int) -> None:
        await self._request(
            "POST",
            f"{self._repo_path(owner, repo)}/hooks/{_seg(hook_id)}/pings",
            expect=(204,),
            repo=f"{owner}/{repo}",
            needs_admin=True,
        )

    async def delete_hook(self, owner: str, repo: str, hook_id: int) -> None:
        await self._request(
            "DELETE",
            f"{self._repo_path(owner, repo)}/hooks/{_seg(hook_id)}",
            expect=(204,),
            repo=f"{owner}/{repo}",
            needs_admin=True,
        )

    # --- issues -------------------------------------------------------------------------------

    async def create_issue(
        self, owner: str, repo: str, title: str, body: str = "", labels: Iterable[str] = ()
    ) -> Issue:
        payload: dict[str, Any] = {"title": title, "body": body}
        if label_list := list(labels):
            payload["labels"] = label_list
        resp = await self._request(
            "POST",
            f"{self._repo_path(owner, repo)}/issues",
            json_body=payload,
            expect=(201,),
            repo=f"{owner}/{repo}",
        )
        return Issue.from_json(resp.data)

    async def newest_open_issue(self, owner: str, repo: str) -> Issue | None:
        """The most recently created open issue (or pull request), if there is one."""
        resp = await self._request(
            "GET",
            f"{self._repo_path(owner, repo)}/issues",
            params={"state": "open", "sort": "created", "direction": "desc", "per_page": 1},
            repo=f"{owner}/{repo}",
        )
        if not isinstance(resp.data, list):
            raise GitHubError(NO_RESPONSE, "GitHub's issue list is not a list")
        return Issue.from_json(resp.data[0]) if resp.data else None

    async def add_assignees(
        self, owner: str, repo: str, number: int, assignees: Iterable[str]
    ) -> Issue:
        resp = await self._request(
            "POST",
            f"{self._repo_path(owner, repo)}/issues/{_seg(number)}/assignees",
            json_body={"assignees": list(assignees)},
            expect=(201,),
            repo=f"{owner}/{repo}",
        )
        return Issue.from_json(resp.data)

    async def close_issue(
        self, owner: str, repo: str, number: int, comment: str | None = None
    ) -> Issue:
        """Close an issue, first posting `comment` on it when given."""
        issue_path = f"{self._repo_path(owner, repo)}/issues/{_seg(number)}"
        if comment:
            await self._request(
                "POST",
                f"{issue_path}/comments",
                json_body={"body": comment},
                expect=(201,),
                repo=f"{owner}/{repo}",
            )
        resp = await self._request(
            "PATCH", issue_path, json_body={"state": "closed"}, repo=f"{owner}/{repo}"
        )
        return Issue.from_json(resp.data)

    # --- listings -----------------------------------------------------------------------------

    async def _page(
        self, path: str, page: int, per_page: int, *, key: str | None = None
    ) -> tuple[list[Any], bool, int | None]:
        resp = await self._request("GET", path, params={"page": page, "per_page": per_page})
        total: int | None = None
        data = resp.data
        if key is not None:
            body = _as_dict(data, "listing")
            count = body.get("total_count")
            total = count if isinstance(count, int) and not isinstance(count, bool) else None
            data = body.get(key)
        if not isinstance(data, list):
            raise GitHubError(NO_RESPONSE, f"GitHub's listing of {path} is not a list")
        return data, parse_next_link(resp.headers.get("Link")) is not None, total

    async def list_user_orgs(self, page: int = 1, per_page: int = 30) -> Page[Org]:
        items, has_next, _ = await self._page("/user/orgs", page, per_page)
        return Page([Org.from_json(o) for o in items], page, per_page, has_next)

    async def list_user_repos(self, page: int = 1, per_page: int = 30) -> Page[Repo]:
        items, has_next, _ = await self._page("/user/repos", page, per_page)
        return Page([Repo.from_json(r) for r in items], page, per_page, has_next)

    async def list_org_repos(self, org: str, page: int = 1, per_page: int = 30) -> Page[Repo]:
        items, has_next, _ = await self._page(f"/orgs/{_seg(org)}/repos", page, per_page)
        return Page([Repo.from_json(r) for r in items], page, per_page, has_next)

    async def list_installations(self) -> list[Installation]:
        """Every installation of the GitHub App the user can access (all pages)."""
        found: list[Installation] = []
        for page in range(1, MAX_LIST_PAGES + 1):
            items, has_next, _ = await self._page(
                "/user/installations", page, 100, key="installations"
            )
            found.extend(Installation.from_json(i) for i in items)
            if not has_next:
                break
        return found

    async def list_installation_repos(
        self, installation_id: int, page: int = 1, per_page: int = 30
    ) -> Page[Repo]:
        items, has_next, total = await self._page(
            f"/user/installations/{_seg(installation_id)}/repositories",
            page,
            per_page,
            key="repositories",
        )
        return Page([Repo.from_json(r) for r in items], page, per_page, has_next, total)
