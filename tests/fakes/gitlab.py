"""A fake GitLab: the REST API v4 routes the bridge calls, and deliveries like GitLab's.

Build a `FakeGitLabState`, serve `make_app(state)` and configure the instance URL as the
server's base URL (the API is under `/api/v4`). Behaves like GitLab where it matters
(CONTRACTS.md, GitLab section; GitLab's API documentation):

- Auth: `PRIVATE-TOKEN: <token>` or `Authorization: Bearer <token>`; anything else is 401
  `{"message": "401 Unauthorized"}`.
- A project is addressed by its numeric id or its URL-encoded path (`group%2Fproject`); a raw
  `/` in the path is another route (404 `{"error": "404 Not Found"}`). A private project the
  user is no member of is 404 `{"message": "404 Project Not Found"}`, as is an unknown one.
- Access levels per member (10 Guest ... 50 Owner); `members/all/:user_id` answers the member or
  404 `{"message": "404 Not found"}`. Project hooks need Maintainer (403 `{"message": "403
  Forbidden"}`); an unknown hook is 404 `{"message": "404 Not found"}`. Hooks never show their
  token. A hook URL on a host in `refused_hosts` is 422 `{"message": {"url": ["is blocked: ..."]}}`.
- Listings page with `page`/`per_page` (default 20, max 100) and GitLab's headers: `X-Page`,
  `X-Per-Page`, `X-Total`, `X-Total-Pages`, `X-Next-Page`, `X-Prev-Page` and a `Link` header.
- `emit(path, payload)` delivers an event to every hook of the project subscribed to it, with
  GitLab's headers (`X-Gitlab-Event`, `X-Gitlab-Token`, `X-Gitlab-Instance`,
  `X-Gitlab-Webhook-UUID` new per request, `X-Gitlab-Event-UUID`, `Idempotency-Key` kept by
  `redeliver`); every request and delivery is recorded.
"""

from __future__ import annotations

import itertools
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

import aiohttp
from aiohttp import web

GITLAB_VERSION = "17.5.0"
DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100
HOOK_FLAGS = (
    "push_events",
    "tag_push_events",
    "issues_events",
    "confidential_issues_events",
    "merge_requests_events",
    "note_events",
    "confidential_note_events",
    "job_events",
    "pipeline_events",
    "wiki_page_events",
    "deployment_events",
    "releases_events",
)
# Which flag a delivery needs, by `object_kind` (confidential issues and notes have their own).
KIND_FLAGS = {
    "push": "push_events",
    "tag_push": "tag_push_events",
    "issue": "issues_events",
    "merge_request": "merge_requests_events",
    "note": "note_events",
    "build": "job_events",
    "pipeline": "pipeline_events",
    "wiki_page": "wiki_page_events",
    "deployment": "deployment_events",
    "release": "releases_events",
}
EVENT_HEADERS = {
    "push": "Push Hook",
    "tag_push": "Tag Push Hook",
    "issue": "Issue Hook",
    "merge_request": "Merge Request Hook",
    "note": "Note Hook",
    "build": "Job Hook",
    "pipeline": "Pipeline Hook",
    "wiki_page": "Wiki Page Hook",
    "deployment": "Deployment Hook",
    "release": "Release Hook",
}
GUEST, REPORTER, DEVELOPER, MAINTAINER, OWNER = 10, 20, 30, 40, 50


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _message(status: int, message: Any) -> web.Response:
    return web.json_response({"message": message}, status=status)


@dataclass
class RecordedRequest:
    method: str
    path: str  # raw, still encoded
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeUser:
    id: int
    username: str
    name: str


@dataclass
class FakeHook:
    id: int
    url: str
    token: str
    flags: dict[str, bool]
    enable_ssl_verification: bool = True
    created_at: str = field(default_factory=_now)

    def to_json(self, project_id: int) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "project_id": project_id,
            **self.flags,
            "enable_ssl_verification": self.enable_ssl_verification,
            "push_events_branch_filter": "",
            "alert_status": "executable",
            "created_at": self.created_at,
        }


@dataclass
class FakeIssue:
    iid: int
    title: str
    description: str
    labels: list[str]
    confidential: bool
    author: int
    state: str = "opened"
    notes: list[str] = field(default_factory=list)


@dataclass
class FakeProject:
    id: int
    path: str  # path_with_namespace
    name: str
    description: str
    private: bool
    members: dict[int, int] = field(default_factory=dict)  # user id → access level
    hooks: dict[int, FakeHook] = field(default_factory=dict)
    issues: dict[int, FakeIssue] = field(default_factory=dict)


@dataclass
class Delivery:
    url: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int | None = None
    response: str = ""


@dataclass
class FakeGitLabState:
    base_url: str = "http://gitlab.invalid"  # set once served: project URLs are made from it
    users: dict[int, FakeUser] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)  # token → user id
    projects: dict[int, FakeProject] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    refused_hosts: set[str] = field(default_factory=set)
    # Set to a status (e.g. 500) to make every API call fail that way (those whose path contains
    # `fail_match`, when set).
    fail_with: int | None = None
    fail_match: str = ""
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    # -- set-up --------------------------------------------------------------------------------------

    def add_user(self, username: str, token: str, name: str | None = None) -> FakeUser:
        user = FakeUser(next(self._ids), username, name or username.title())
        self.users[user.id] = user
        self.tokens[token] = user.id
        return user

    def user(self, username: str) -> FakeUser:
        return next(u for u in self.users.values() if u.username == username)

    def add_project(
        self, path: str, members: dict[str, int] | None = None, *, private: bool = True, description: str = ""
    ) -> FakeProject:
        project = FakeProject(next(self._ids), path, path.rsplit("/", 1)[-1], description, private)
        for username, level in (members or {}).items():
            project.members[self.user(username).id] = level
        self.projects[project.id] = project
        return project

    def project(self, path: str) -> FakeProject:
        return next(p for p in self.projects.values() if p.path.lower() == path.lower())

    def add_hook(self, path: str, url: str, token: str = "", flags: tuple[str, ...] = ()) -> FakeHook:
        """A hook made by hand in the project's settings."""
        project = self.project(path)
        hook = FakeHook(next(self._ids), url, token, {f: f in flags for f in HOOK_FLAGS})
        project.hooks[hook.id] = hook
        return hook

    def web_url(self, project: FakeProject) -> str:
        return f"{self.base_url}/{project.path}"

    def project_json(self, project: FakeProject) -> dict[str, Any]:
        return {
            "id": project.id,
            "name": project.name,
            "path": project.name,
            "path_with_namespace": project.path,
            "name_with_namespace": project.path.replace("/", " / "),
            "description": project.description,
            "web_url": self.web_url(project),
            "avatar_url": None,
            "visibility": "private" if project.private else "public",
            "default_branch": "main",
        }

    # -- deliveries -------------------------------------------------------------------------------------

    async def emit(self, path: str, payload: dict[str, Any], *, session: aiohttp.ClientSession | None = None
                   ) -> list[Delivery]:
        """Deliver `payload` to every hook of the project subscribed to its kind."""
        project = self.project(path)
        kind = payload.get("object_kind", "")
        flag = KIND_FLAGS.get(kind)
        if kind == "issue" and payload.get("object_attributes", {}).get("confidential"):
            flag = "confidential_issues_events"
        if kind == "note" and payload.get("event_type") == "confidential_note":
            flag = "confidential_note_events"
        sent = []
        for hook in list(project.hooks.values()):
            if flag is not None and hook.flags.get(flag):
                headers = {
                    "Content-Type": "application/json",
                    "User-Agent": f"GitLab/{GITLAB_VERSION}",
                    "X-Gitlab-Event": EVENT_HEADERS.get(kind, "System Hook"),
                    "X-Gitlab-Instance": self.base_url,
                    "X-Gitlab-Event-UUID": str(uuid.uuid4()),
                    "Idempotency-Key": str(uuid.uuid4()),
                }
                if hook.token:
                    headers["X-Gitlab-Token"] = hook.token
                sent.append(await self._post(Delivery(hook.url, headers, payload), session))
        return sent

    async def redeliver(self, delivery: Delivery, *, session: aiohttp.ClientSession | None = None) -> Delivery:
        """GitLab's "Resend request": the same body and `Idempotency-Key`, a new webhook UUID."""
        return await self._post(Delivery(delivery.url, dict(delivery.headers), delivery.body), session)

    async def _post(self, delivery: Delivery, session: aiohttp.ClientSession | None) -> Delivery:
        delivery.headers["X-Gitlab-Webhook-UUID"] = str(uuid.uuid4())
        own = session is None
        client = session or aiohttp.ClientSession()
        try:
            async with client.post(delivery.url, data=json.dumps(delivery.body).encode(),
                                   headers=delivery.headers) as resp:
                delivery.status, delivery.response = resp.status, await resp.text()
        finally:
            if own:
                await client.close()
        self.deliveries.append(delivery)
        return delivery


class FakeGitLab:
    """The aiohttp app around a `FakeGitLabState`: `FakeGitLab(state).app`."""

    def __init__(self, state: FakeGitLabState) -> None:
        self.state = state
        self.app = web.Application(middlewares=[self._record])
        self.app.router.add_route("*", "/api/v4/{tail:.*}", self.dispatch)

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        self.state.requests.append(
            RecordedRequest(request.method, request.raw_path.split("?", 1)[0], dict(request.query),
                            dict(request.headers), body)
        )
        if self.state.fail_with is not None and self.state.fail_match in request.raw_path:
            return _message(self.state.fail_with, f"{self.state.fail_with} Injected failure")
        return await handler(request)

    # -- request plumbing ----------------------------------------------------------------------------------

    def _user(self, request: web.Request) -> FakeUser | None:
        token = request.headers.get("PRIVATE-TOKEN")
        if token is None:
            scheme, _, value = request.headers.get("Authorization", "").partition(" ")
            token = value.strip() if scheme.lower() == "bearer" else None
        user_id = self.state.tokens.get(token or "")
        return None if user_id is None else self.state.users.get(user_id)

    def _project(self, raw_id: str, user: FakeUser) -> FakeProject | None:
        ident = unquote(raw_id)
        if ident.isdigit():
            project = self.state.projects.get(int(ident))
        else:
            project = next((p for p in self.state.projects.values() if p.path.lower() == ident.lower()), None)
        if project is None or (project.private and user.id not in project.members):
            return None
        return project

    @staticmethod
    async def _json(request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            try:
                data = await request.json()
            except ValueError:
                data = None
            return data if isinstance(data, dict) else {}
        return {k: v for k, v in (await request.post()).items() if isinstance(v, str)}

    def _page(self, request: web.Request, items: list[Any]) -> web.Response:
        try:
            page = max(1, int(request.query.get("page", "1")))
            per_page = min(MAX_PER_PAGE, max(1, int(request.query.get("per_page", str(DEFAULT_PER_PAGE)))))
        except ValueError:
            return web.json_response({"error": "page is invalid"}, status=400)
        total_pages = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page: page * per_page]
        headers = {
            "X-Page": str(page),
            "X-Per-Page": str(per_page),
            "X-Total": str(len(items)),
            "X-Total-Pages": str(total_pages),
            "X-Next-Page": str(page + 1) if page < total_pages else "",
            "X-Prev-Page": str(page - 1) if page > 1 else "",
        }
        base = f"{self.state.base_url}{request.path}"
        query = {k: v for k, v in request.query.items() if k not in ("page", "per_page")}

        def link(number: int, rel: str) -> str:
            return f'<{base}?{urlencode({**query, "page": number, "per_page": per_page})}>; rel="{rel}"'

        links = []
        if page < total_pages:
            links.append(link(page + 1, "next"))
        if page > 1:
            links.append(link(page - 1, "prev"))
        links += [link(1, "first"), link(total_pages, "last")]
        headers["Link"] = ", ".join(links)
        return web.json_response(chunk, headers=headers)

    # -- routing ----------------------------------------------------------------------------------------------

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        user = self._user(request)
        if user is None:
            return _message(401, "401 Unauthorized")
        # The raw path: `group%2Fproject` must stay one segment.
        parts = request.raw_path.split("?", 1)[0].split("/")[3:]  # after "", "api", "v4"
        method = request.method
        if parts == ["user"] and method == "GET":
            return web.json_response({"id": user.id, "username": user.username, "name": user.name,
                                      "state": "active", "web_url": f"{self.state.base_url}/{user.username}"})
        if parts == ["projects"] and method == "GET":
            return self.list_projects(request, user)
        if len(parts) < 2 or parts[0] != "projects":
            return web.json_response({"error": "404 Not Found"}, status=404)
        project = self._project(parts[1], user)
        if project is None:
            return _message(404, "404 Project Not Found")
        rest = parts[2:]
        level = project.members.get(user.id, 0)
        if not rest and method == "GET":
            return web.json_response({
                **self.state.project_json(project),
                "permissions": {"project_access": {"access_level": level} if level else None, "group_access": None},
            })
        if rest[:2] == ["members", "all"] and len(rest) == 3 and method == "GET":
            member_id = int(rest[2]) if rest[2].isdigit() else -1
            if member_id not in project.members:
                return _message(404, "404 Not found")
            member = self.state.users[member_id]
            return web.json_response({"id": member.id, "username": member.username, "name": member.name,
                                      "state": "active", "access_level": project.members[member_id]})
        if rest[:1] == ["hooks"]:
            if level < MAINTAINER:
                return _message(403, "403 Forbidden")
            return await self.hooks(request, project, rest[1:])
        if rest[:1] == ["issues"]:
            return await self.issues(request, project, user, level, rest[1:])
        return web.json_response({"error": "404 Not Found"}, status=404)

    def list_projects(self, request: web.Request, user: FakeUser) -> web.Response:
        try:
            min_level = int(request.query.get("min_access_level", "0"))
        except ValueError:
            return web.json_response({"error": "min_access_level is invalid"}, status=400)
        search = (request.query.get("search") or "").lower()
        found = [
            p for p in sorted(self.state.projects.values(), key=lambda p: -p.id)
            if (p.members.get(user.id, 0) >= min_level if min_level else not p.private or user.id in p.members)
            and (not search or search in p.path.lower() or search in p.name.lower())
        ]
        return self._page(request, [self.state.project_json(p) for p in found])

    # -- hooks ----------------------------------------------------------------------------------------------

    def _hook_problem(self, body: dict[str, Any], *, creating: bool) -> web.Response | None:
        url = body.get("url")
        if url is None:
            return web.json_response({"error": "url is missing"}, status=400) if creating else None
        parts = urlsplit(str(url))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return _message(422, {"url": ["is blocked: Only allowed schemes are http, https"]})
        if parts.hostname in self.state.refused_hosts:
            return _message(422, {"url": ["is blocked: Requests to the local network are not allowed"]})
        return None

    @staticmethod
    def _apply(hook: FakeHook, body: dict[str, Any]) -> None:
        for flag in HOOK_FLAGS:
            if flag in body:
                value = body[flag]
                hook.flags[flag] = value is True or value in ("true", "1")
        if "token" in body:
            hook.token = str(body["token"] or "")
        if "url" in body:
            hook.url = str(body["url"])
        if "enable_ssl_verification" in body:
            hook.enable_ssl_verification = bool(body["enable_ssl_verification"])

    async def hooks(self, request: web.Request, project: FakeProject, rest: list[str]) -> web.StreamResponse:
        method = request.method
        if not rest:
            if method == "GET":
                return self._page(request, [h.to_json(project.id) for h in project.hooks.values()])
            if method == "POST":
                body = await self._json(request)
                if (problem := self._hook_problem(body, creating=True)) is not None:
                    return problem
                # GitLab's defaults: push events on, everything else off.
                hook = FakeHook(next(self.state._ids), "", "", {f: f == "push_events" for f in HOOK_FLAGS})
                self._apply(hook, body)
                project.hooks[hook.id] = hook
                return web.json_response(hook.to_json(project.id), status=201)
            return web.json_response({"error": "405 Method Not Allowed"}, status=405)
        hook = project.hooks.get(int(rest[0])) if rest[0].isdigit() and len(rest) == 1 else None
        if hook is None:
            return _message(404, "404 Not found")
        if method == "GET":
            return web.json_response(hook.to_json(project.id))
        if method == "PUT":
            body = await self._json(request)
            if (problem := self._hook_problem(body, creating=False)) is not None:
                return problem
            self._apply(hook, body)
            return web.json_response(hook.to_json(project.id))
        if method == "DELETE":
            del project.hooks[hook.id]
            return web.Response(status=204)
        return web.json_response({"error": "405 Method Not Allowed"}, status=405)

    # -- issues -----------------------------------------------------------------------------------------------

    def _issue_json(self, project: FakeProject, issue: FakeIssue) -> dict[str, Any]:
        return {
            "id": project.id * 1000 + issue.iid,
            "iid": issue.iid,
            "project_id": project.id,
            "title": issue.title,
            "description": issue.description,
            "state": issue.state,
            "labels": issue.labels,
            "confidential": issue.confidential,
            "author": {"id": issue.author, "username": self.state.users[issue.author].username},
            "web_url": f"{self.state.web_url(project)}/-/issues/{issue.iid}",
        }

    async def issues(
        self, request: web.Request, project: FakeProject, user: FakeUser, level: int, rest: list[str]
    ) -> web.StreamResponse:
        method = request.method
        if not rest and method == "POST":
            if project.private and level < GUEST:
                return _message(403, "403 Forbidden")
            body = await self._json(request)
            title = body.get("title")
            if not isinstance(title, str) or not title.strip():
                return web.json_response({"error": "title is missing"}, status=400)
            labels = body.get("labels") or ""
            labels_list = labels if isinstance(labels, list) else [x for x in str(labels).split(",") if x]
            iid = max(project.issues, default=0) + 1
            issue = FakeIssue(iid, title, str(body.get("description") or ""), labels_list,
                              body.get("confidential") in (True, "true"), user.id)
            project.issues[iid] = issue
            return web.json_response(self._issue_json(project, issue), status=201)
        issue = project.issues.get(int(rest[0])) if rest and rest[0].isdigit() else None
        if issue is None:
            return _message(404, "404 Issue Not Found")
        if len(rest) == 1 and method == "PUT":
            if level < REPORTER and issue.author != user.id:
                return _message(403, "403 Forbidden")
            body = await self._json(request)
            if body.get("state_event") == "close":
                issue.state = "closed"
            elif body.get("state_event") == "reopen":
                issue.state = "opened"
            return web.json_response(self._issue_json(project, issue))
        if rest[1:] == ["notes"] and method == "POST":
            if project.private and level < GUEST:
                return _message(403, "403 Forbidden")
            body = await self._json(request)
            if not body.get("body"):
                return web.json_response({"error": "body is missing"}, status=400)
            issue.notes.append(str(body["body"]))
            return web.json_response({"id": len(issue.notes), "body": body["body"], "noteable_iid": issue.iid},
                                     status=201)
        return web.json_response({"error": "404 Not Found"}, status=404)


def make_app(state: FakeGitLabState) -> web.Application:
    return FakeGitLab(state).app


async def deliver(
    url: str,
    payload: dict[str, Any],
    token: str | None,
    *,
    uuid_header: str | None = None,
    idempotency_key: str | None = None,
    event: str | None = None,
) -> tuple[int, Any]:
    """POST one delivery the way GitLab does; returns (status, parsed JSON or text)."""
    headers = {"Content-Type": "application/json", "User-Agent": f"GitLab/{GITLAB_VERSION}",
               "X-Gitlab-Event": event or EVENT_HEADERS.get(str(payload.get("object_kind")), "System Hook"),
               "X-Gitlab-Webhook-UUID": uuid_header or str(uuid.uuid4())}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    if token is not None:
        headers["X-Gitlab-Token"] = token
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=json.dumps(payload).encode(), headers=headers) as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text)
            except ValueError:
                return resp.status, text
