"""A fake GitHub: the REST routes the bridge calls, OAuth, and deliveries signed like GitHub's.

Build a `FakeGitHubState`, serve `make_app(state)` (REST API and OAuth pages on one origin, so
both `api_url` and `oauth_url` are the server's base URL) and point the code under test at it.

Behaves like github.com where it matters (CONTRACTS.md, GitHub section):
- 401 `Bad credentials` for an unknown token, `Requires authentication` for none.
- A repository the token's user cannot see is 404; repo hooks need *admin*, and non-admins get
  404 as on GitHub. Collaborator permission look-ups need at least read access.
- Hook PATCH: `config` replaces the whole config, so a PATCH whose config lacks the secret drops
  it (recorded in `state.secret_drops`); `events` replaces, `add_events`/`remove_events` edit.
- Hook creation, `/pings` and `/tests` (`/test`) deliver in the background: a `ping` on
  creation and on `/pings`; the repository's latest push on `/tests`, and only when the hook
  subscribes to `push` (or `*`), else nothing but still 204.
- Listings page with `page`/`per_page` (default 30, max 100) and a `Link` header.
- OAuth: `GET /login/oauth/authorize` redirects at once to `redirect_uri?code&state` as if the
  user (`login=` parameter, else `state.oauth_login`) had approved; `POST
  /login/oauth/access_token` answers 200 with `error` for a bad code/client, like GitHub.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
from aiohttp import web

DOCS = "https://docs.github.com/rest"
DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 100
LEVELS = ("none", "read", "write", "admin")
USER_AGENT = "GitHub-Hookshot/f1e2d3c"
ZEN = "Keep it logically awesome."
BODY: web.RequestKey[Any] = web.RequestKey("body")


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Delivery:
    """One webhook POST made by the fake (or by `deliver`)."""

    url: str
    event: str
    delivery_id: str
    hook_id: int | None
    payload: dict[str, Any]
    headers: dict[str, str]
    status: int | None = None
    error: str | None = None


@dataclass
class FakeUser:
    login: str
    id: int
    name: str


@dataclass
class FakeRepo:
    owner: str
    name: str
    id: int
    private: bool = False
    default_branch: str = "main"
    #: login → none|read|write|admin; the owner (if a user) is admin implicitly.
    permissions: dict[str, str] = field(default_factory=dict)
    latest_push: dict[str, Any] | None = None

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass
class FakeHook:
    id: int
    repo: FakeRepo
    events: list[str]
    active: bool
    config: dict[str, Any]
    created_at: str
    updated_at: str

    @property
    def secret(self) -> str | None:
        secret = self.config.get("secret")
        return secret if isinstance(secret, str) and secret else None


@dataclass
class FakeIssue:
    id: int
    number: int
    title: str
    body: str
    labels: list[str]
    assignees: list[str]
    state: str = "open"
    comments: list[str] = field(default_factory=list)


@dataclass
class FakeInstallation:
    id: int
    account: str
    account_type: str
    repos: list[FakeRepo]


class FakeGitHubState:
    """Everything the fake knows, and everything it was asked."""

    def __init__(self) -> None:
        self._ids = itertools.count(1001)
        self.users: dict[str, FakeUser] = {}
        self.tokens: dict[str, str] = {}  # token → login
        self.orgs: dict[str, list[str]] = {}  # org login → member logins
        self.repos: dict[tuple[str, str], FakeRepo] = {}
        self.hooks: dict[int, FakeHook] = {}
        self.issues: dict[tuple[str, str], list[FakeIssue]] = {}
        self.installations: dict[int, FakeInstallation] = {}
        self.oauth_apps: dict[str, str] = {}  # client_id → client_secret
        self.oauth_codes: dict[str, tuple[str, str, str]] = {}  # code → (client, redirect, login)
        self.oauth_login: str | None = None
        self.requests: list[RecordedRequest] = []
        self.deliveries: list[Delivery] = []
        #: Hook ids whose secret a PATCH dropped (config sent without `secret`).
        self.secret_drops: list[int] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.session: aiohttp.ClientSession | None = None

    def next_id(self) -> int:
        return next(self._ids)

    # --- setup ------------------------------------------------------------------------------

    def add_user(self, login: str, token: str | None = None, name: str | None = None) -> FakeUser:
        user = self.users.get(login) or FakeUser(login, self.next_id(), name or login.title())
        self.users[login] = user
        if token is not None:
            self.tokens[token] = login
        return user

    def add_org(self, login: str, members: list[str]) -> None:
        self.orgs[login] = list(members)

    def add_repo(
        self,
        owner: str,
        name: str,
        *,
        private: bool = False,
        permissions: dict[str, str] | None = None,
        default_branch: str = "main",
    ) -> FakeRepo:
        repo = FakeRepo(
            owner, name, self.next_id(), private, default_branch, dict(permissions or {})
        )
        self.repos[(owner.lower(), name.lower())] = repo
        return repo

    def add_installation(
        self, account: str, repos: list[FakeRepo], account_type: str = "Organization"
    ) -> FakeInstallation:
        inst = FakeInstallation(self.next_id(), account, account_type, list(repos))
        self.installations[inst.id] = inst
        return inst

    def add_oauth_app(self, client_id: str, client_secret: str) -> None:
        self.oauth_apps[client_id] = client_secret

    # --- queries ----------------------------------------------------------------------------

    def permission(self, repo: FakeRepo, login: str) -> str:
        if repo.owner.lower() == login.lower():
            return "admin"
        level = repo.permissions.get(login, "none")
        if level == "none" and not repo.private:
            return "read"
        return level

    def hooks_for(self, owner: str, name: str) -> list[FakeHook]:
        key = (owner.lower(), name.lower())
        return [
            h for h in self.hooks.values() if (h.repo.owner.lower(), h.repo.name.lower()) == key
        ]

    def requests_to(self, method: str, path_suffix: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and r.path.endswith(path_suffix)]

    # --- background deliveries --------------------------------------------------------------

    def schedule(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait until every background delivery has been attempted."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


# --- payload builders ---------------------------------------------------------------------------


def stable_id(name: str) -> int:
    """A deterministic id for accounts the fake only knows by name."""
    return zlib.crc32(name.encode()) & 0xFFFFFF


def user_json(user: FakeUser, base: str) -> dict[str, Any]:
    return {
        "login": user.login,
        "id": user.id,
        "node_id": f"U_{user.id}",
        "type": "User",
        "name": user.name,
        "html_url": f"{base}/{user.login}",
        "avatar_url": f"{base}/avatars/{user.login}",
    }


def repo_json(
    state: FakeGitHubState, repo: FakeRepo, base: str, login: str | None
) -> dict[str, Any]:
    owner_type = "Organization" if repo.owner in state.orgs else "User"
    data: dict[str, Any] = {
        "id": repo.id,
        "node_id": f"R_{repo.id}",
        "name": repo.name,
        "full_name": repo.full_name,
        "private": repo.private,
        "owner": {
            "login": repo.owner,
            "id": stable_id(repo.owner),
            "type": owner_type,
            "avatar_url": f"{base}/avatars/{repo.owner}",
        },
        "html_url": f"{base}/{repo.full_name}",
        "description": f"The {repo.name} repository",
        "default_branch": repo.default_branch,
        "created_at": "2020-01-01T00:00:00Z",
        "pushed_at": "2024-05-01T12:00:00Z",
    }
    if login is not None:
        level = LEVELS.index(state.permission(repo, login))
        data["permissions"] = {
            "admin": level >= 3,
            "maintain": level >= 3,
            "push": level >= 2,
            "triage": level >= 2,
            "pull": level >= 1,
        }
    return data


def hook_json(hook: FakeHook, base: str) -> dict[str, Any]:
    config = {k: v for k, v in hook.config.items() if k != "secret"}
    if hook.secret:
        config["secret"] = "********"
    path = f"/repos/{hook.repo.full_name}/hooks/{hook.id}"
    return {
        "type": "Repository",
        "id": hook.id,
        "name": "web",
        "active": hook.active,
        "events": hook.events,
        "config": config,
        "updated_at": hook.updated_at,
        "created_at": hook.created_at,
        "url": f"{base}{path}",
        "test_url": f"{base}{path}/test",
        "ping_url": f"{base}{path}/pings",
        "deliveries_url": f"{base}{path}/deliveries",
        "last_response": {"code": None, "status": "unused", "message": None},
    }


def default_push(state: FakeGitHubState, repo: FakeRepo, base: str) -> dict[str, Any]:
    """A plausible latest push for `/tests`, with GitHub's push quirks (integer timestamps)."""
    pusher = state.users.get(repo.owner) or FakeUser(repo.owner, 1, repo.owner)
    sha = hashlib.sha1(repo.full_name.encode()).hexdigest()
    who = {"name": pusher.name, "email": f"{pusher.login}@example.com", "username": pusher.login}
    commit = {
        "id": sha,
        "tree_id": hashlib.sha1(sha.encode()).hexdigest(),
        "distinct": True,
        "message": "Update README.md",
        "timestamp": "2024-05-01T12:00:00Z",
        "url": f"{base}/{repo.full_name}/commit/{sha}",
        "author": who,
        "committer": who,
        "added": [],
        "removed": [],
        "modified": ["README.md"],
    }
    repository = repo_json(state, repo, base, None)
    repository["created_at"] = 1577836800
    repository["pushed_at"] = 1714564800
    return {
        "ref": f"refs/heads/{repo.default_branch}",
        "before": "0" * 39 + "1",
        "after": sha,
        "created": False,
        "deleted": False,
        "forced": False,
        "base_ref": None,
        "compare": f"{base}/{repo.full_name}/compare/{'0' * 11}1...{sha[:12]}",
        "commits": [commit],
        "head_commit": commit,
        "repository": repository,
        "pusher": {"name": pusher.login, "email": f"{pusher.login}@example.com"},
        "sender": user_json(pusher, base),
    }


# --- delivery -----------------------------------------------------------------------------------


def signature_headers(secret: str | None, body: bytes) -> dict[str, str]:
    if not secret:
        return {}
    key = secret.encode()
    return {
        "X-Hub-Signature": "sha1=" + hmac.new(key, body, hashlib.sha1).hexdigest(),
        "X-Hub-Signature-256": "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest(),
    }


async def deliver(
    url: str,
    event: str,
    payload: dict[str, Any],
    secret: str | None,
    delivery_id: str | None = None,
    *,
    hook_id: int | None = None,
    session: aiohttp.ClientSession | None = None,
    extra_headers: dict[str, str] | None = None,
) -> Delivery:
    """POST `payload` to `url` as GitHub delivers a webhook; never raises for HTTP failures."""
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery_id or str(uuid.uuid4()),
        **signature_headers(secret, body),
    }
    if hook_id is not None:
        headers["X-GitHub-Hook-ID"] = str(hook_id)
        headers["X-GitHub-Hook-Installation-Target-Type"] = "repository"
        repo = payload.get("repository")
        if isinstance(repo, dict) and "id" in repo:
            headers["X-GitHub-Hook-Installation-Target-ID"] = str(repo["id"])
    headers.update(extra_headers or {})
    record = Delivery(url, event, headers["X-GitHub-Delivery"], hook_id, payload, headers)
    own = session is None
    client = session or aiohttp.ClientSession()
    try:
        async with client.post(url, data=body, headers=headers) as resp:
            record.status = resp.status
            await resp.read()
    except aiohttp.ClientError as exc:
        record.error = repr(exc)
    finally:
        if own:
            await client.close()
    return record


async def _deliver_for_hook(
    state: FakeGitHubState, hook: FakeHook, event: str, payload: dict[str, Any]
) -> None:
    record = await deliver(
        str(hook.config.get("url", "")),
        event,
        payload,
        hook.secret,
        hook_id=hook.id,
        session=state.session,
    )
    state.deliveries.append(record)


def _ping_payload(state: FakeGitHubState, hook: FakeHook, base: str) -> dict[str, Any]:
    sender = state.users.get(hook.repo.owner) or FakeUser(hook.repo.owner, 1, hook.repo.owner)
    return {
        "zen": ZEN,
        "hook_id": hook.id,
        "hook": hook_json(hook, base),
        "repository": repo_json(state, hook.repo, base, None),
        "sender": user_json(sender, base),
    }


# --- app ----------------------------------------------------------------------------------------


def _error(status: int, message: str, **extra: Any) -> web.Response:
    body = {"message": message, "documentation_url": DOCS, **extra}
    return web.json_response(body, status=status)


def _base(request: web.Request) -> str:
    return str(request.url.origin())


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def make_app(state: FakeGitHubState) -> web.Application:
    """The fake's aiohttp application (REST API + OAuth pages)."""

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        raw = await request.read()
        body: Any = None
        if raw:
            if request.content_type == "application/json":
                try:
                    body = json.loads(raw)
                except ValueError:
                    return _error(400, "Problems parsing JSON")
            else:
                body = raw.decode("utf-8", "replace")
        request[BODY] = body
        state.requests.append(
            RecordedRequest(
                request.method, request.path, dict(request.query), dict(request.headers), body
            )
        )
        return await handler(request)

    def user_or_error(request: web.Request) -> FakeUser:
        header = request.headers.get("Authorization", "")
        if not header:
            raise _Unauthorized("Requires authentication")
        scheme, _, token = header.partition(" ")
        if scheme.lower() not in ("bearer", "token") or token not in state.tokens:
            raise _Unauthorized("Bad credentials")
        return state.users[state.tokens[token]]

    def visible_repo(request: web.Request, user: FakeUser) -> FakeRepo:
        repo = state.repos.get(
            (request.match_info["owner"].lower(), request.match_info["repo"].lower())
        )
        if repo is None or state.permission(repo, user.login) == "none":
            raise _NotFound()
        return repo

    def admin_repo(request: web.Request, user: FakeUser) -> FakeRepo:
        repo = visible_repo(request, user)
        if state.permission(repo, user.login) != "admin":
            raise _NotFound()
        return repo

    def find_hook(request: web.Request, repo: FakeRepo) -> FakeHook:
        try:
            hook_id = int(request.match_info["hook_id"])
        except ValueError:
            raise _NotFound() from None
        hook = state.hooks.get(hook_id)
        if hook is None or hook.repo is not repo:
            raise _NotFound()
        return hook

    def paging(request: web.Request) -> tuple[int, int]:
        try:
            page = max(1, int(request.query.get("page", "1")))
            per_page = int(request.query.get("per_page", DEFAULT_PER_PAGE))
            per_page = min(MAX_PER_PAGE, max(1, per_page))
        except ValueError:
            raise _Invalid("Invalid pagination parameters") from None
        return page, per_page

    def paged(request: web.Request, items: list[Any], wrap: str | None = None) -> web.Response:
        page, per_page = paging(request)
        chunk = items[(page - 1) * per_page : page * per_page]
        last = max(1, -(-len(items) // per_page))
        links = []

        def link(p: int, rel: str) -> str:
            query = {**request.query, "page": str(p), "per_page": str(per_page)}
            return f'<{_base(request)}{request.path}?{urlencode(query)}>; rel="{rel}"'

        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            links += [link(1, "first"), link(page - 1, "prev")]
        body: Any = {"total_count": len(items), wrap: chunk} if wrap else chunk
        headers = {"Link": ", ".join(links)} if links else {}
        return web.json_response(body, headers=headers)

    # --- users, orgs, repos -----------------------------------------------------------------

    async def get_user(request: web.Request) -> web.Response:
        return web.json_response(user_json(user_or_error(request), _base(request)))

    async def get_repo(request: web.Request) -> web.Response:
        user = user_or_error(request)
        repo = visible_repo(request, user)
        return web.json_response(repo_json(state, repo, _base(request), user.login))

    async def get_permission(request: web.Request) -> web.Response:
        user = user_or_error(request)
        repo = visible_repo(request, user)
        target = state.users.get(request.match_info["username"])
        if target is None:
            return _error(404, "Not Found")
        level = state.permission(repo, target.login)
        return web.json_response(
            {"permission": level, "role_name": level, "user": user_json(target, _base(request))}
        )

    async def user_orgs(request: web.Request) -> web.Response:
        user = user_or_error(request)
        orgs = [
            {"login": org, "id": stable_id(org), "avatar_url": f"{_base(request)}/avatars/{org}"}
            for org, members in sorted(state.orgs.items())
            if user.login in members
        ]
        return paged(request, orgs)

    async def user_repos(request: web.Request) -> web.Response:
        user = user_or_error(request)
        repos = [
            repo_json(state, r, _base(request), user.login)
            for r in state.repos.values()
            if r.owner == user.login or r.permissions.get(user.login, "none") != "none"
        ]
        return paged(request, sorted(repos, key=lambda r: r["full_name"]))

    async def org_repos(request: web.Request) -> web.Response:
        user = user_or_error(request)
        org = request.match_info["org"]
        if org not in state.orgs:
            return _error(404, "Not Found")
        repos = [
            repo_json(state, r, _base(request), user.login)
            for r in state.repos.values()
            if r.owner == org and state.permission(r, user.login) != "none"
        ]
        return paged(request, sorted(repos, key=lambda r: r["full_name"]))

    def user_installations_of(user: FakeUser) -> list[FakeInstallation]:
        return [
            inst
            for inst in state.installations.values()
            if inst.account == user.login or user.login in state.orgs.get(inst.account, [])
        ]

    async def installations(request: web.Request) -> web.Response:
        user = user_or_error(request)
        items = [
            {
                "id": inst.id,
                "account": {"login": inst.account, "type": inst.account_type},
                "repository_selection": "selected",
                "app_slug": "hookshot",
            }
            for inst in user_installations_of(user)
        ]
        return paged(request, items, wrap="installations")

    async def installation_repos(request: web.Request) -> web.Response:
        user = user_or_error(request)
        try:
            inst_id = int(request.match_info["inst_id"])
        except ValueError:
            return _error(404, "Not Found")
        inst = next((i for i in user_installations_of(user) if i.id == inst_id), None)
        if inst is None:
            return _error(404, "Not Found")
        repos = [
            repo_json(state, r, _base(request), user.login)
            for r in inst.repos
            if state.permission(r, user.login) != "none"
        ]
        return paged(request, repos, wrap="repositories")

    # --- hooks ------------------------------------------------------------------------------

    def hook_config(body: dict[str, Any]) -> dict[str, Any]:
        config = body.get("config")
        if not isinstance(config, dict):
            raise _invalid("Hook", "missing_field", field="config")
        url = config.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise _invalid("Hook", "custom", message="Config must have a valid 'url' field")
        return {
            "url": url,
            "content_type": config.get("content_type", "form"),
            "insecure_ssl": str(config.get("insecure_ssl", "0")),
            **({"secret": config["secret"]} if config.get("secret") else {}),
        }

    def event_list(value: Any, name: str) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(e, str) for e in value):
            raise _invalid("Hook", "invalid", field=name)
        return value

    async def list_hooks(request: web.Request) -> web.Response:
        repo = admin_repo(request, user_or_error(request))
        hooks = state.hooks_for(repo.owner, repo.name)
        return paged(request, [hook_json(h, _base(request)) for h in hooks])

    async def get_hook(request: web.Request) -> web.Response:
        repo = admin_repo(request, user_or_error(request))
        return web.json_response(hook_json(find_hook(request, repo), _base(request)))

    async def create_hook(request: web.Request) -> web.Response:
        repo = admin_repo(request, user_or_error(request))
        body = request[BODY]
        if not isinstance(body, dict):
            raise _invalid("Hook", "missing_field", field="config")
        if body.get("name", "web") != "web":
            raise _invalid("Hook", "invalid", field="name")
        config = hook_config(body)
        events = event_list(body.get("events", ["push"]), "events")
        existing = state.hooks_for(repo.owner, repo.name)
        if any(h.config.get("url") == config["url"] for h in existing):
            raise _invalid("Hook", "custom", message="Hook already exists on this repository")
        now = _now()
        active = bool(body.get("active", True))
        hook = FakeHook(state.next_id(), repo, sorted(set(events)), active, config, now, now)
        state.hooks[hook.id] = hook
        if hook.active:
            ping = _ping_payload(state, hook, _base(request))
            state.schedule(_deliver_for_hook(state, hook, "ping", ping))
        location = f"{_base(request)}/repos/{repo.full_name}/hooks/{hook.id}"
        return web.json_response(
            hook_json(hook, _base(request)), status=201, headers={"Location": location}
        )

    async def edit_hook(request: web.Request) -> web.Response:
        repo = admin_repo(request, user_or_error(request))
        hook = find_hook(request, repo)
        body = request[BODY]
        if not isinstance(body, dict):
            raise _Invalid("Validation Failed", [])
        if "config" in body:
            config = hook_config(body)
            if hook.secret and "secret" not in config:
                state.secret_drops.append(hook.id)
            hook.config = config
        events = set(hook.events)
        if "events" in body:
            events = set(event_list(body["events"], "events"))
        if "add_events" in body:
            events |= set(event_list(body["add_events"], "add_events"))
        if "remove_events" in body:
            events -= set(event_list(body["remove_events"], "remove_events"))
        hook.events = sorted(events)
        if "active" in body:
            if not isinstance(body["active"], bool):
                raise _invalid("Hook", "invalid", field="active")
            hook.active = body["active"]
        hook.updated_at = _now()
        return web.json_response(hook_json(hook, _base(request)))

    async def delete_hook(request: web.Request) -> web.Response:
        repo = admin_repo(request, user_or_error(request))
        hook = find_hook(request, repo)
        del state.hooks[hook.id]
        return web.Response(status=204)

    async def test_hook(request: web.Request) -> web.Response:
        repo = admin_repo(request, user_or_error(request))
        hook = find_hook(request, repo)
        if hook.active and ("push" in hook.events or "*" in hook.events):
            payload = repo.latest_push or default_push(state, repo, _base(request))
            state.schedule(_deliver_for_hook(state, hook, "push", payload))
        return web.Response(status=204)

    async def ping_hook(request: web.Request) -> web.Response:
        repo = admin_repo(request, user_or_error(request))
        hook = find_hook(request, repo)
        ping = _ping_payload(state, hook, _base(request))
        state.schedule(_deliver_for_hook(state, hook, "ping", ping))
        return web.Response(status=204)

    # --- issues -----------------------------------------------------------------------------

    def issue_json(request: web.Request, repo: FakeRepo, issue: FakeIssue) -> dict[str, Any]:
        return {
            "id": issue.id,
            "number": issue.number,
            "title": issue.title,
            "body": issue.body,
            "state": issue.state,
            "labels": [
                {"name": name, "color": "ededed", "description": None} for name in issue.labels
            ],
            "assignees": [{"login": a} for a in issue.assignees],
            "html_url": f"{_base(request)}/{repo.full_name}/issues/{issue.number}",
        }

    def find_issue(request: web.Request, repo: FakeRepo) -> FakeIssue:
        issues = state.issues.get((repo.owner.lower(), repo.name.lower()), [])
        number = request.match_info["number"]
        issue = next((i for i in issues if str(i.number) == number), None)
        if issue is None:
            raise _NotFound()
        return issue

    def issue_repo(request: web.Request, user: FakeUser) -> FakeRepo:
        # Anyone who can see a repository may open issues and comment on it.
        return visible_repo(request, user)

    async def create_issue(request: web.Request) -> web.Response:
        repo = issue_repo(request, user_or_error(request))
        body = request[BODY]
        title = body.get("title") if isinstance(body, dict) else None
        if not isinstance(title, str) or not title:
            raise _invalid("Issue", "missing_field", field="title")
        issues = state.issues.setdefault((repo.owner.lower(), repo.name.lower()), [])
        issue = FakeIssue(
            state.next_id(),
            len(issues) + 1,
            body["title"],
            str(body.get("body") or ""),
            [str(x) for x in body.get("labels") or []],
            [],
        )
        issues.append(issue)
        return web.json_response(issue_json(request, repo, issue), status=201)

    async def list_issues(request: web.Request) -> web.Response:
        repo = issue_repo(request, user_or_error(request))
        wanted = request.query.get("state", "open")
        issues = [
            issue_json(request, repo, i)
            for i in reversed(state.issues.get((repo.owner.lower(), repo.name.lower()), []))
            if wanted == "all" or i.state == wanted
        ]
        return paged(request, issues)

    async def add_assignees(request: web.Request) -> web.Response:
        repo = issue_repo(request, user_or_error(request))
        issue = find_issue(request, repo)
        body = request[BODY]
        names = body.get("assignees") if isinstance(body, dict) else None
        if not isinstance(names, list):
            raise _invalid("Issue", "invalid", field="assignees")
        issue.assignees += [n for n in names if n in state.users and n not in issue.assignees]
        return web.json_response(issue_json(request, repo, issue), status=201)

    async def comment_issue(request: web.Request) -> web.Response:
        repo = issue_repo(request, user_or_error(request))
        issue = find_issue(request, repo)
        body = request[BODY]
        if not isinstance(body, dict) or not isinstance(body.get("body"), str):
            raise _invalid("IssueComment", "missing_field", field="body")
        issue.comments.append(body["body"])
        return web.json_response({"id": state.next_id(), "body": body["body"]}, status=201)

    async def update_issue(request: web.Request) -> web.Response:
        user = user_or_error(request)
        repo = issue_repo(request, user)
        issue = find_issue(request, repo)
        body = request[BODY]
        if isinstance(body, dict) and body.get("state") in ("open", "closed"):
            if LEVELS.index(state.permission(repo, user.login)) < LEVELS.index("write"):
                return _error(403, "Must have admin rights to Repository.")
            issue.state = body["state"]
        return web.json_response(issue_json(request, repo, issue))

    # --- OAuth ------------------------------------------------------------------------------

    async def authorize(request: web.Request) -> web.Response:
        client_id = request.query.get("client_id", "")
        redirect_uri = request.query.get("redirect_uri", "")
        if client_id not in state.oauth_apps or not redirect_uri:
            return web.Response(status=404, text="Not Found")
        login = request.query.get("login") or state.oauth_login
        if login not in state.users:
            return web.Response(status=400, text="No signed-in user")
        code = uuid.uuid4().hex[:20]
        state.oauth_codes[code] = (client_id, redirect_uri, login)
        sep = "&" if "?" in redirect_uri else "?"
        query = urlencode({"code": code, "state": request.query.get("state", "")})
        raise web.HTTPFound(f"{redirect_uri}{sep}{query}")

    async def access_token(request: web.Request) -> web.Response:
        raw = request[BODY]
        if isinstance(raw, dict):
            form = {k: str(v) for k, v in raw.items()}
        elif isinstance(raw, str):
            form = dict(parse_qsl(raw, keep_blank_values=True))
        else:
            form = {}
        client_id = form.get("client_id", "")
        if state.oauth_apps.get(client_id) != form.get("client_secret") or not client_id:
            return _oauth_error(
                request,
                "incorrect_client_credentials",
                "The client_id and/or client_secret passed are incorrect.",
            )
        grant = state.oauth_codes.pop(form.get("code", ""), None)
        if grant is None or grant[0] != client_id:
            return _oauth_error(
                request, "bad_verification_code", "The code passed is incorrect or expired."
            )
        if form.get("redirect_uri") and form["redirect_uri"] != grant[1]:
            return _oauth_error(
                request,
                "redirect_uri_mismatch",
                "The redirect_uri MUST match the registered callback URL for this application.",
            )
        token = "gho_" + uuid.uuid4().hex
        state.tokens[token] = grant[2]
        result = {"access_token": token, "token_type": "bearer", "scope": ""}
        if "application/json" in request.headers.get("Accept", ""):
            return web.json_response(result)
        return web.Response(
            text=urlencode(result), content_type="application/x-www-form-urlencoded"
        )

    async def on_startup(app: web.Application) -> None:
        state.session = aiohttp.ClientSession()

    async def on_cleanup(app: web.Application) -> None:
        await state.drain()
        if state.session is not None:
            await state.session.close()

    app = web.Application(middlewares=[_errors_middleware, record])
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    r = app.router
    repo_path = "/repos/{owner}/{repo}"
    r.add_get("/user", get_user)
    r.add_get("/user/orgs", user_orgs)
    r.add_get("/user/repos", user_repos)
    r.add_get("/orgs/{org}/repos", org_repos)
    r.add_get("/user/installations", installations)
    r.add_get("/user/installations/{inst_id}/repositories", installation_repos)
    r.add_get(repo_path, get_repo)
    r.add_get(repo_path + "/collaborators/{username}/permission", get_permission)
    r.add_get(repo_path + "/hooks", list_hooks)
    r.add_post(repo_path + "/hooks", create_hook)
    r.add_get(repo_path + "/hooks/{hook_id}", get_hook)
    r.add_patch(repo_path + "/hooks/{hook_id}", edit_hook)
    r.add_delete(repo_path + "/hooks/{hook_id}", delete_hook)
    r.add_post(repo_path + "/hooks/{hook_id}/tests", test_hook)
    r.add_post(repo_path + "/hooks/{hook_id}/test", test_hook)
    r.add_post(repo_path + "/hooks/{hook_id}/pings", ping_hook)
    r.add_get(repo_path + "/issues", list_issues)
    r.add_post(repo_path + "/issues", create_issue)
    r.add_patch(repo_path + "/issues/{number}", update_issue)
    r.add_post(repo_path + "/issues/{number}/assignees", add_assignees)
    r.add_post(repo_path + "/issues/{number}/comments", comment_issue)
    r.add_get("/login/oauth/authorize", authorize)
    r.add_post("/login/oauth/access_token", access_token)
    return app


def _oauth_error(request: web.Request, error: str, description: str) -> web.Response:
    body = {
        "error": error,
        "error_description": description,
        "error_uri": f"https://docs.github.com/apps/troubleshooting#{error}",
    }
    if "application/json" in request.headers.get("Accept", ""):
        return web.json_response(body)
    return web.Response(text=urlencode(body), content_type="application/x-www-form-urlencoded")


class _Unauthorized(Exception):
    def __init__(self, message: str) -> None:
        self.message = message


class _NotFound(Exception):
    pass


class _Invalid(Exception):
    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        self.message = message
        self.errors = errors or []


def _invalid(
    resource: str, code: str, *, field: str | None = None, message: str | None = None
) -> _Invalid:
    """GitHub's 422: `Validation Failed` with one `{resource, code, field|message}` error."""
    error: dict[str, Any] = {"resource": resource, "code": code}
    if field is not None:
        error["field"] = field
    if message is not None:
        error["message"] = message
    return _Invalid("Validation Failed", [error])


@web.middleware
async def _errors_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except _Unauthorized as exc:
        return _error(401, exc.message)
    except _NotFound:
        return _error(404, "Not Found")
    except _Invalid as exc:
        return _error(422, exc.message, errors=exc.errors)
