"""A fake JIRA: Atlassian's OAuth 2.0 (3LO) server and API gateway, JIRA Cloud's REST API v3
behind the gateway, an on-premise JIRA's REST API v2, and webhook deliveries signed like JIRA's.

Build a `FakeJiraState`, serve `make_app(state)` and point the bridge at it: `jira.oauthUrl`
and `jira.apiUrl` are the server's base URL (cloud), or `jira.url` is (on-premise: the API is
at `/rest/api/2`, and the fake's own address is the instance's web address).

Behaves like the real services where it matters (CONTRACTS.md, JIRA sections):
- `GET /authorize` checks `audience=api.atlassian.com`, the client, `response_type=code`, a
  registered `redirect_uri` and the scopes, then redirects at once to `redirect_uri?code&state`
  as if the account (`account=` parameter, else `state.approve_as`) had consented to its sites.
- `POST /oauth/token` (JSON): `authorization_code` (a code works once, for the client and
  redirect it was issued to) and `refresh_token`, which **rotates**: each refresh answers a new
  pair and the refresh token sent stops working (403 `invalid_grant`, as Atlassian answers).
  Access tokens live `state.expires_in` seconds.
- The gateway: `GET /oauth/token/accessible-resources`, `GET /me`, and each site's REST API v3 at
  `/ex/jira/{cloudId}/rest/api/3/...` (401 for a token that is unknown, expired, or not granted
  that site).
- REST (v3 and v2 alike): `myself`, `project` (every visible project), `project/search`
  (`startAt`, `maxResults` capped at 50, `isLast`, `values`), `project/{key}` with `issueTypes`
  (404 "No project could be found with key 'X'." for a project the user cannot browse, never
  403), `issue` (201 `{id, key, self}`; 400 `{errorMessages, errors: {field: msg}}` for a
  missing summary or type, a v3 description that is not an ADF document, a label with spaces),
  `issue/{key}`, `user/assignable/search` (`query` on v3, `username` on v2) and
  `issue/{key}/assignee` (`accountId` on v3, `name` on v2; 204). Errors in JIRA's shape.
- On-premise: personal access tokens as `Authorization: Bearer` (401 otherwise).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
from aiohttp import web

AUDIENCE = "api.atlassian.com"
MAX_RESULTS = 50
USER_AGENT = "Atlassian Webhook HTTP Client"
ON_PREM = "on-prem"
DEFAULT_ISSUE_TYPES = (
    {"id": "10001", "name": "Task", "subtask": False},
    {"id": "10002", "name": "Bug", "subtask": False},
    {"id": "10003", "name": "Sub-task", "subtask": True},
)


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeAccount:
    account_id: str
    display_name: str
    email: str
    username: str  # the on-premise `name`


@dataclass
class FakeIssue:
    id: str
    key: str
    summary: str
    issue_type: str
    description: Any = None
    labels: list[str] = field(default_factory=list)
    assignee: str | None = None  # account id


@dataclass
class FakeProject:
    id: str
    key: str
    name: str
    #: Account ids who may browse the project (JIRA answers 404 to the others).
    members: set[str]
    issue_types: list[dict[str, Any]] = field(default_factory=lambda: [dict(t) for t in DEFAULT_ISSUE_TYPES])
    issues: dict[str, FakeIssue] = field(default_factory=dict)
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


@dataclass
class FakeSite:
    id: str  # the cloudId, or "on-prem"
    name: str
    url: str  # web address
    projects: dict[str, FakeProject] = field(default_factory=dict)

    def issue_self(self, issue_id: str, version: int = 2) -> str:
        return f"{self.url}/rest/api/{version}/issue/{issue_id}"


@dataclass
class _Grant:
    account_id: str
    client_id: str
    sites: tuple[str, ...]
    scopes: tuple[str, ...]
    redirect_uri: str = ""
    expires_at: float = 0.0


class FakeJiraState:
    """Everything the fake knows, and everything it was asked."""

    def __init__(self) -> None:
        self._ids = itertools.count(10100)
        self.base_url = ""  # set by `make_app` users once the server runs (the on-prem web address)
        self.clients: dict[str, tuple[str, set[str]]] = {}  # client id → (secret, redirect URIs)
        self.accounts: dict[str, FakeAccount] = {}
        self.sites: dict[str, FakeSite] = {}
        self.on_prem = FakeSite(ON_PREM, "Fake JIRA Server", "")
        self.pats: dict[str, str] = {}  # personal access token → account id
        self.codes: dict[str, _Grant] = {}
        self.access_tokens: dict[str, _Grant] = {}
        self.refresh_tokens: dict[str, _Grant] = {}
        self.spent_refresh_tokens: set[str] = set()
        self.approve_as: str | None = None
        self.expires_in = 3600
        self.requests: list[RecordedRequest] = []
        #: Set to make the token endpoint fail with this status (an outage).
        self.token_outage: int | None = None

    def next_id(self) -> str:
        return str(next(self._ids))

    # -- set-up -----------------------------------------------------------------------------------

    def add_client(self, client_id: str, secret: str, redirect_uri: str) -> None:
        self.clients.setdefault(client_id, (secret, set()))[1].add(redirect_uri)

    def add_account(self, username: str, display_name: str | None = None) -> FakeAccount:
        account = FakeAccount(f"5b10ac8d82e05b22cc7d4e{len(self.accounts):02d}", display_name or username.title(),
                              f"{username}@example.org", username)
        self.accounts[account.account_id] = account
        self.approve_as = self.approve_as or account.account_id
        return account

    def add_site(self, name: str, url: str | None = None) -> FakeSite:
        site = FakeSite(str(uuid.uuid4()), name, url or f"https://{name}.atlassian.net")
        self.sites[site.id] = site
        return site

    def add_project(self, site: FakeSite, key: str, name: str, members: list[FakeAccount]) -> FakeProject:
        project = FakeProject(self.next_id(), key, name, {m.account_id for m in members})
        site.projects[key] = project
        return project

    def add_pat(self, account: FakeAccount) -> str:
        token = secrets.token_urlsafe(16)
        self.pats[token] = account.account_id
        return token

    def grant(self, account: FakeAccount, client_id: str, sites: list[FakeSite]) -> tuple[str, str]:
        """An access and refresh token as if `account` had logged in (without the browser)."""
        grant = _Grant(account.account_id, client_id, tuple(s.id for s in sites), ("offline_access",))
        return self._issue(grant)

    def _issue(self, grant: _Grant) -> tuple[str, str]:
        access, refresh = "at-" + secrets.token_urlsafe(12), "rt-" + secrets.token_urlsafe(12)
        self.access_tokens[access] = _Grant(**{**grant.__dict__, "expires_at": time.time() + self.expires_in})
        self.refresh_tokens[refresh] = grant
        return access, refresh

    def requests_to(self, method: str, path_end: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and r.path.endswith(path_end)]


# -- helpers ----------------------------------------------------------------------------------------


def _errors(status: int, messages: list[str] | None = None, errors: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"errorMessages": messages or [], "errors": errors or {}}, status=status)


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _user_json(account: FakeAccount, cloud: bool) -> dict[str, Any]:
    if cloud:
        return {"accountId": account.account_id, "displayName": account.display_name,
                "emailAddress": account.email, "active": True, "accountType": "atlassian"}
    return {"name": account.username, "key": f"JIRAUSER{account.account_id[-4:]}",
            "displayName": account.display_name, "emailAddress": account.email, "active": True}


def _project_json(site: FakeSite, project: FakeProject, version: int, *, types: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "self": f"{site.url}/rest/api/{version}/project/{project.id}",
        "id": project.id,
        "key": project.key,
        "name": project.name,
        "projectTypeKey": "software",
    }
    if types:
        out["issueTypes"] = [
            {"self": f"{site.url}/rest/api/{version}/issuetype/{t['id']}", "description": "", **t}
            for t in project.issue_types
        ]
    return out


def make_app(state: FakeJiraState) -> web.Application:
    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        state.requests.append(RecordedRequest(request.method, request.path, dict(request.query),
                                              dict(request.headers), body))
        return await handler(request)

    app = web.Application(middlewares=[record])
    r = app.router

    # -- the OAuth server ---------------------------------------------------------------------------

    async def authorize(request: web.Request) -> web.StreamResponse:
        q = request.query
        client = state.clients.get(q.get("client_id", ""))
        redirect = q.get("redirect_uri", "")
        if q.get("audience") != AUDIENCE or client is None or redirect not in client[1]:
            return web.Response(status=400, text="Invalid authorization request")
        if q.get("response_type") != "code":
            return web.Response(status=400, text="unsupported_response_type")
        scopes = tuple(q.get("scope", "").split())
        account_id = q.get("account") or state.approve_as
        if account_id not in state.accounts:
            raise web.HTTPFound(f"{redirect}?{urlencode({'error': 'access_denied', 'state': q.get('state', '')})}")
        sites = tuple(s.id for s in state.sites.values()
                      if any(account_id in p.members for p in s.projects.values()))
        code = secrets.token_urlsafe(12)
        state.codes[code] = _Grant(account_id, q["client_id"], sites, scopes, redirect)
        raise web.HTTPFound(f"{redirect}?{urlencode({'code': code, 'state': q.get('state', '')})}")

    async def token(request: web.Request) -> web.Response:
        if state.token_outage is not None:
            return web.json_response({"error": "server_error"}, status=state.token_outage)
        try:
            body = await request.json()
        except ValueError:
            return _oauth_error(400, "invalid_request", "The body must be JSON.")
        client = state.clients.get(str(body.get("client_id")))
        if client is None or not hmac.compare_digest(client[0], str(body.get("client_secret", ""))):
            return _oauth_error(401, "access_denied", "Unauthorized")
        kind = body.get("grant_type")
        if kind == "authorization_code":
            grant = state.codes.pop(str(body.get("code")), None)
            if grant is None or grant.client_id != body["client_id"] or grant.redirect_uri != body.get("redirect_uri"):
                return _oauth_error(403, "invalid_grant", "Invalid authorization code")
        elif kind == "refresh_token":
            sent = str(body.get("refresh_token"))
            grant = state.refresh_tokens.pop(sent, None)
            if grant is None or grant.client_id != body["client_id"]:
                return _oauth_error(403, "invalid_grant", "Unknown or invalid refresh token.")
            state.spent_refresh_tokens.add(sent)
        else:
            return _oauth_error(400, "unsupported_grant_type", "Unsupported grant type")
        access, refresh = state._issue(grant)
        answer: dict[str, Any] = {"access_token": access, "expires_in": state.expires_in, "token_type": "Bearer",
                                  "scope": " ".join(grant.scopes)}
        if "offline_access" in grant.scopes:
            answer["refresh_token"] = refresh
        else:
            state.refresh_tokens.pop(refresh, None)
        return web.json_response(answer)

    def gateway_grant(request: web.Request) -> _Grant | None:
        token_ = _bearer(request)
        grant = state.access_tokens.get(token_ or "")
        if grant is None or grant.expires_at < time.time():
            return None
        return grant

    def unauthorized() -> web.Response:
        return web.json_response({"code": 401, "message": "Unauthorized"}, status=401)

    async def resources(request: web.Request) -> web.Response:
        grant = gateway_grant(request)
        if grant is None:
            return unauthorized()
        return web.json_response([
            {"id": s.id, "url": s.url, "name": s.name, "scopes": ["read:jira-work", "write:jira-work"],
             "avatarUrl": f"https://site-admin-avatar-cdn.prod.public.atl-paas.net/avatars/240/{s.name}.png"}
            for s in (state.sites[i] for i in grant.sites if i in state.sites)
        ])

    async def me(request: web.Request) -> web.Response:
        grant = gateway_grant(request)
        if grant is None:
            return unauthorized()
        account = state.accounts[grant.account_id]
        return web.json_response({"account_id": account.account_id, "name": account.display_name,
                                  "email": account.email, "nickname": account.username})

    r.add_get("/authorize", authorize)
    r.add_post("/oauth/token", token)
    r.add_get("/oauth/token/accessible-resources", resources)
    r.add_get("/me", me)

    # -- the REST API (v3 behind the gateway, v2 on-premise) ------------------------------------------

    def caller(request: web.Request) -> tuple[FakeSite, FakeAccount, bool] | web.Response:
        cloud_id = request.match_info.get("cloud_id")
        if cloud_id is None:
            account_id = state.pats.get(_bearer(request) or "")
            if account_id is None:
                return _errors(401, ["You are not authenticated. Authentication required to perform this operation."])
            return state.on_prem, state.accounts[account_id], False
        grant = gateway_grant(request)
        site = state.sites.get(cloud_id)
        if grant is None or site is None or cloud_id not in grant.sites:
            return unauthorized()
        return site, state.accounts[grant.account_id], True

    def visible(site: FakeSite, account: FakeAccount, key: str) -> FakeProject | None:
        project = site.projects.get(key.upper()) or next((p for p in site.projects.values() if p.id == key), None)
        return project if project is not None and account.account_id in project.members else None

    def find_issue(site: FakeSite, account: FakeAccount, key: str) -> tuple[FakeProject, FakeIssue] | None:
        project = visible(site, account, key.rsplit("-", 1)[0])
        issue = project.issues.get(key.upper()) if project is not None else None
        return (project, issue) if project is not None and issue is not None else None

    async def rest(request: web.Request) -> web.StreamResponse:
        who = caller(request)
        if isinstance(who, web.Response):
            return who
        site, account, cloud = who
        version = 3 if cloud else 2
        path = request.match_info["path"]
        q = request.query
        parts = path.split("/")
        if request.method == "GET" and path == "myself":
            return web.json_response(_user_json(account, cloud))
        if request.method == "GET" and path == "project":
            return web.json_response([_project_json(site, p, version) for p in site.projects.values()
                                      if account.account_id in p.members])
        if request.method == "GET" and path == "project/search":
            try:
                start, size = int(q.get("startAt", "0")), min(int(q.get("maxResults", "50")), MAX_RESULTS)
            except ValueError:
                return _errors(400, ["startAt and maxResults must be numbers."])
            needle = q.get("query", "").lower()
            found = sorted((p for p in site.projects.values() if account.account_id in p.members
                            and (needle in p.key.lower() or needle in p.name.lower())), key=lambda p: p.key)
            chunk = found[start:start + size]
            return web.json_response({
                "self": str(request.url), "maxResults": size, "startAt": start, "total": len(found),
                "isLast": start + size >= len(found), "values": [_project_json(site, p, version) for p in chunk],
            })
        if request.method == "GET" and len(parts) == 2 and parts[0] == "project":
            project = visible(site, account, parts[1])
            if project is None:
                return _errors(404, [f"No project could be found with key '{parts[1]}'."])
            return web.json_response(_project_json(site, project, version, types=True))
        if request.method == "POST" and path == "issue":
            return await create_issue(request, site, account, cloud)
        if len(parts) >= 2 and parts[0] == "issue":
            found_issue = find_issue(site, account, parts[1])
            if found_issue is None:
                return _errors(404, ["Issue does not exist or you do not have permission to see it."])
            project, issue = found_issue
            if request.method == "GET" and len(parts) == 2:
                return web.json_response({"id": issue.id, "key": issue.key, "self": site.issue_self(issue.id, version),
                                          "fields": {"summary": issue.summary}})
            if request.method == "PUT" and parts[2:] == ["assignee"]:
                body = await request.json()
                wanted = body.get("accountId") if cloud else body.get("name")
                target = next((a for a in state.accounts.values()
                               if (a.account_id if cloud else a.username) == wanted), None)
                if target is None or target.account_id not in project.members:
                    return _errors(400, [], {"assignee": f"User '{wanted}' cannot be assigned issues."})
                issue.assignee = target.account_id
                return web.Response(status=204)
        if request.method == "GET" and path == "user/assignable/search":
            found_issue = find_issue(site, account, q.get("issueKey", ""))
            if found_issue is None:
                return _errors(404, ["Issue does not exist or you do not have permission to see it."])
            text = (q.get("query") if cloud else q.get("username")) or ""
            if not text:
                return _errors(400, ["The username query parameter was not provided"])
            project = found_issue[0]
            matches = [a for a in state.accounts.values() if a.account_id in project.members and any(
                text.lower() in v.lower() for v in (a.display_name, a.email, a.username))]
            return web.json_response([_user_json(a, cloud) for a in matches[: int(q.get("maxResults", "50"))]])
        return _errors(404, [f"No route for {request.method} {path}"])

    async def create_issue(request: web.Request, site: FakeSite, account: FakeAccount, cloud: bool) -> web.Response:
        body = await request.json()
        fields = body.get("fields") if isinstance(body, dict) else None
        if not isinstance(fields, dict):
            return _errors(400, ["Can not deserialize the request: no fields."])
        key = (fields.get("project") or {}).get("key", "")
        project = visible(site, account, key)
        if project is None:
            return _errors(400, [], {"project": "Specify a valid project ID or key"})
        problems: dict[str, str] = {}
        type_id = (fields.get("issuetype") or {}).get("id")
        issue_type = next((t for t in project.issue_types if t["id"] == type_id), None)
        if issue_type is None:
            problems["issuetype"] = "Specify an issue type"
        elif issue_type["subtask"]:
            problems["parent"] = "Given parent work item does not belong to appropriate hierarchy."
        if not str(fields.get("summary") or "").strip():
            problems["summary"] = "You must specify a summary of the issue."
        description = fields.get("description")
        if description is not None and cloud and not (isinstance(description, dict) and description.get("type") == "doc"):
            problems["description"] = "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
        if description is not None and not cloud and not isinstance(description, str):
            problems["description"] = "Operation value must be a string"
        for label in fields.get("labels") or []:
            if not isinstance(label, str) or " " in label:
                problems["labels"] = f"The label '{label}' contains spaces which is invalid."
        if problems:
            return _errors(400, [], problems)
        issue_key = f"{project.key}-{next(project.counter)}"
        issue = FakeIssue(state.next_id(), issue_key, fields["summary"], type_id, description, list(fields.get("labels") or []))
        project.issues[issue_key] = issue
        return web.json_response({"id": issue.id, "key": issue.key, "self": site.issue_self(issue.id, 3 if cloud else 2)},
                                 status=201)

    r.add_route("*", "/ex/jira/{cloud_id}/rest/api/3/{path:.+}", rest)
    r.add_route("*", "/rest/api/2/{path:.+}", rest)
    return app


# -- webhook deliveries, as JIRA's admin webhooks send them ---------------------------------------------


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _person(account: FakeAccount) -> dict[str, Any]:
    return {"self": f"https://api.atlassian.com/user?accountId={account.account_id}",
            "accountId": account.account_id, "displayName": account.display_name, "active": True,
            "timeZone": "Europe/London", "accountType": "atlassian"}


def issue_json(site: FakeSite, project: FakeProject, issue: FakeIssue, creator: FakeAccount) -> dict[str, Any]:
    return {
        "id": issue.id,
        "self": site.issue_self(issue.id),
        "key": issue.key,
        "fields": {
            "summary": issue.summary,
            "issuetype": {"id": issue.issue_type, "name": "Task"},
            "project": {"self": f"{site.url}/rest/api/2/project/{project.id}", "id": project.id,
                        "key": project.key, "name": project.name, "projectTypeKey": "software"},
            "creator": _person(creator),
            "reporter": _person(creator),
            "assignee": None,
            "status": {"name": "To Do", "id": "10000"},
            "labels": list(issue.labels),
            "description": issue.description,
            "created": "2026-03-01T10:15:00.123+0000",
        },
    }


def issue_event(kind: str, site: FakeSite, project: FakeProject, issue: FakeIssue, actor: FakeAccount,
                **extra: Any) -> dict[str, Any]:
    """`jira:issue_created` / `jira:issue_updated` (pass `changelog=`) as JIRA sends them."""
    return {
        "timestamp": int(time.time() * 1000),
        "webhookEvent": f"jira:{kind}",
        "issue_event_type_name": "issue_generic" if kind == "issue_updated" else kind,
        "user": _person(actor),
        "issue": issue_json(site, project, issue, actor),
        **extra,
    }


def changelog(*items: tuple[str, str | None, str | None]) -> dict[str, Any]:
    return {"id": "10500", "items": [
        {"field": f, "fieldtype": "jira", "fieldId": f.lower(), "from": None, "fromString": a, "to": None, "toString": b}
        for f, a, b in items
    ]}


def comment_event(site: FakeSite, project: FakeProject, issue: FakeIssue, author: FakeAccount, body: Any) -> dict[str, Any]:
    comment_id = "10042"
    return {
        "timestamp": int(time.time() * 1000),
        "webhookEvent": "comment_created",
        "comment": {"self": f"{site.issue_self(issue.id)}/comment/{comment_id}", "id": comment_id,
                    "author": _person(author), "body": body, "updateAuthor": _person(author),
                    "created": "2026-03-01T10:20:00.000+0000", "updated": "2026-03-01T10:20:00.000+0000",
                    "jsdPublic": True},
        "issue": issue_json(site, project, issue, author),
    }


def version_event(kind: str, site: FakeSite, project: FakeProject, name: str, description: str = "") -> dict[str, Any]:
    version_id = "10200"
    return {
        "timestamp": int(time.time() * 1000),
        "webhookEvent": f"jira:version_{kind}",
        "version": {"self": f"{site.url}/rest/api/2/version/{version_id}", "id": version_id,
                    "description": description, "name": name, "archived": False, "released": kind == "released",
                    "releaseDate": "2026-03-31", "overdue": False, "userReleaseDate": "31/Mar/26",
                    "projectId": int(project.id)},
    }


async def deliver(
    url: str,
    payload: dict[str, Any] | bytes,
    *,
    secret: str | None = None,
    identifier: str | None = None,
    query_secret: str | None = None,
    signature: str | None = None,
) -> tuple[int, Any]:
    """POST a delivery as JIRA does (signed with `secret` unless `signature` is given); returns
    (status, parsed JSON or text)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               "X-Atlassian-Webhook-Identifier": identifier or str(uuid.uuid4())}
    if signature is not None:
        headers["X-Hub-Signature"] = signature
    elif secret is not None:
        headers["X-Hub-Signature"] = sign(secret, body)
    if query_secret is not None:
        url = f"{url}?{urlencode({'secret': query_secret})}"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=body, headers=headers) as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text)
            except ValueError:
                return resp.status, text


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(url.split("?", 1)[1])) if "?" in url else {}
