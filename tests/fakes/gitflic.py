"""A fake GitFlic REST server: the project webhook API of seed 002, and deliveries like GitFlic's.

Served exactly as the seed writes it: `GET|POST /project/{owner}/{project}/setting/webhook`,
`GET|POST .../webhook/{id}` (POST updates), `POST .../webhook/{id}/delete`, with
`Authorization: token <accessToken>`. Checks, in this order: 401 without a known token, 404
for an unknown project (or one the token cannot see), 403 when the token's user is not a
project admin, 404 for an unknown webhook, 422 for an invalid body.

GitFlic does not document its error bodies; the fake answers in Spring Boot's default shape
(`timestamp`, `status`, `error`, `message`, `path`, and for 422 an `errors` list of
`{field, rejectedValue, defaultMessage}`) — an assumption, suggested by the Spring HATEOAS
shape of GitFlic's lists. Lists are Spring HATEOAS pages:
`_embedded.webhookList` (left out when the page is empty) and `page{size, totalElements,
totalPages, number}`, paged with `page` (from 0) and `size` (default 10).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

# The 16 flags of seed 002, spelled out here so the fake does not trust the code it tests.
EVENT_FLAGS = (
    "COLLABORATOR_ADD",
    "COLLABORATOR_DELETE",
    "COLLABORATOR_UPDATE",
    "ISSUE_UPDATE",
    "ISSUE_CREATE",
    "TAG_DELETE",
    "TAG_CREATE",
    "BRANCH_UPDATE",
    "BRANCH_DELETE",
    "BRANCH_CREATE",
    "MERGE_REQUEST_CREATE",
    "MERGE_REQUEST_UPDATE",
    "DISCUSSION_CREATE",
    "DISCUSSION_COMMENT_CREATE",
    "PUSH",
    "WEBHOOK_SEND",
)
DEFAULT_PAGE_SIZE = 10


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any  # parsed JSON, the raw text when it is not JSON, None when empty


@dataclass
class FakeWebhook:
    id: str
    url: str
    secret: str
    events: dict[str, bool]
    project_id: str
    created_at: str
    updated_at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "secret": self.secret,
            "events": dict(self.events),
            "projectId": self.project_id,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }


@dataclass
class FakeProject:
    owner: str
    alias: str
    id: str
    admins: set[str]  # user aliases with admin rights
    members: set[str]  # can see the project, cannot manage it
    private: bool = False
    webhooks: dict[str, FakeWebhook] = field(default_factory=dict)


@dataclass
class FakeGitFlicState:
    tokens: dict[str, str] = field(default_factory=dict)  # token → user alias
    projects: dict[tuple[str, str], FakeProject] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    # Set to a status (e.g. 500) to make every API call fail that way.
    fail_with: int | None = None
    # Hosts GitFlic refuses to deliver to (as a public instance refuses private addresses): a
    # create or update with such a `url` gets a 422 naming the field.
    refused_hosts: set[str] = field(default_factory=set)

    def add_token(self, token: str, user: str) -> None:
        self.tokens[token] = user

    def add_project(
        self,
        owner: str,
        alias: str,
        *,
        admins: tuple[str, ...] = (),
        members: tuple[str, ...] = (),
        private: bool = False,
    ) -> FakeProject:
        project = FakeProject(owner, alias, str(uuid.uuid4()), set(admins), set(members), private)
        self.projects[(owner.lower(), alias.lower())] = project
        return project

    def project(self, owner: str, alias: str) -> FakeProject:
        return self.projects[(owner.lower(), alias.lower())]

    def add_webhook(
        self, owner: str, alias: str, url: str, secret: str = "", events: tuple[str, ...] = ()
    ) -> FakeWebhook:
        """Create a hook directly, as a user would in GitFlic's settings page."""
        project = self.project(owner, alias)
        now = _now()
        hook = FakeWebhook(
            str(uuid.uuid4()), url, secret, {f: f in events for f in EVENT_FLAGS}, project.id, now, now
        )
        project.webhooks[hook.id] = hook
        return hook

    def api_requests(self, method: str | None = None) -> list[RecordedRequest]:
        return [r for r in self.requests if method is None or r.method == method]


def _error(status: int, message: str, path: str, errors: list[dict[str, Any]] | None = None) -> web.Response:
    body: dict[str, Any] = {
        "timestamp": _now(),
        "status": status,
        "error": {401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 422: "Unprocessable Entity"}.get(
            status, "Error"
        ),
        "message": message,
        "path": path,
    }
    if errors is not None:
        body["errors"] = errors
    return web.json_response(body, status=status)


def _field_error(name: str, value: Any, message: str) -> dict[str, Any]:
    return {"field": name, "rejectedValue": value, "defaultMessage": message}


def _validate(body: Any, refused_hosts: Iterable[str] = ()) -> list[dict[str, Any]]:
    if not isinstance(body, dict):
        return [_field_error("body", body, "must be a JSON object")]
    errors: list[dict[str, Any]] = []
    url = body.get("url")
    if url is None:
        errors.append(_field_error("url", None, "must not be null"))
    elif not isinstance(url, str):
        errors.append(_field_error("url", url, "must be a string"))
    else:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            errors.append(_field_error("url", url, "must be a valid URL"))
        elif (parts.hostname or "") in refused_hosts:
            errors.append(_field_error("url", url, "must not point to a private or local address"))
    secret = body.get("secret")
    if secret is not None and not isinstance(secret, str):
        errors.append(_field_error("secret", secret, "must be a string"))
    events = body.get("events")
    if events is None:
        errors.append(_field_error("events", None, "must not be null"))
    elif not isinstance(events, dict):
        errors.append(_field_error("events", events, "must be an object"))
    else:
        for name, value in events.items():
            if name not in EVENT_FLAGS:
                errors.append(_field_error(f"events.{name}", value, "unknown event"))
            elif not isinstance(value, bool):
                errors.append(_field_error(f"events.{name}", value, "must be a boolean"))
    return errors


class FakeGitFlic:
    """The aiohttp app around a `FakeGitFlicState`: `FakeGitFlic(state).app`."""

    def __init__(self, state: FakeGitFlicState) -> None:
        self.state = state
        self.app = web.Application(middlewares=[self._record])
        base = "/project/{owner}/{project}/setting/webhook"
        self.app.router.add_get(base, self.list_hooks)
        self.app.router.add_post(base, self.create_hook)
        self.app.router.add_get(base + "/{id}", self.get_hook)
        self.app.router.add_post(base + "/{id}", self.update_hook)
        self.app.router.add_post(base + "/{id}/delete", self.delete_hook)

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        self.state.requests.append(
            RecordedRequest(request.method, request.path, dict(request.query), dict(request.headers), body)
        )
        if self.state.fail_with is not None:
            return _error(self.state.fail_with, "Injected failure", request.path)
        return await handler(request)

    def _authorize(self, request: web.Request) -> FakeProject | web.Response:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        user = self.state.tokens.get(token.strip()) if scheme.lower() == "token" else None
        if user is None:
            return _error(401, "Full authentication is required to access this resource", request.path)
        key = (request.match_info["owner"].lower(), request.match_info["project"].lower())
        project = self.state.projects.get(key)
        visible = project is not None and (
            not project.private or user in project.admins or user in project.members
        )
        if project is None or not visible:
            return _error(404, "Project not found", request.path)
        if user not in project.admins:
            return _error(403, "Access is denied", request.path)
        return project

    async def _body(self, request: web.Request) -> tuple[Any, bool]:
        try:
            return await request.json(), True
        except ValueError:
            return None, False

    async def list_hooks(self, request: web.Request) -> web.Response:
        project = self._authorize(request)
        if isinstance(project, web.Response):
            return project
        try:
            number = int(request.query.get("page", "0"))
            size = int(request.query.get("size", str(DEFAULT_PAGE_SIZE)))
        except ValueError:
            return _error(400, "page and size must be integers", request.path)
        if number < 0 or size < 1:
            return _error(400, "page must be >= 0 and size >= 1", request.path)
        hooks = sorted(project.webhooks.values(), key=lambda h: (h.created_at, h.id))
        chunk = hooks[number * size : (number + 1) * size]
        body: dict[str, Any] = {
            "page": {
                "size": size,
                "totalElements": len(hooks),
                "totalPages": (len(hooks) + size - 1) // size,
                "number": number,
            }
        }
        if chunk:
            body = {"_embedded": {"webhookList": [h.to_json() for h in chunk]}, **body}
        return web.json_response(body)

    async def get_hook(self, request: web.Request) -> web.Response:
        project = self._authorize(request)
        if isinstance(project, web.Response):
            return project
        hook = project.webhooks.get(request.match_info["id"])
        if hook is None:
            return _error(404, "Webhook not found", request.path)
        return web.json_response(hook.to_json())

    async def create_hook(self, request: web.Request) -> web.Response:
        project = self._authorize(request)
        if isinstance(project, web.Response):
            return project
        body, ok = await self._body(request)
        errors = _validate(body, self.state.refused_hosts) if ok else [_field_error("body", None, "is not valid JSON")]
        if errors:
            return _error(422, "Validation failed", request.path, errors)
        now = _now()
        events = {flag: bool(body["events"].get(flag, False)) for flag in EVENT_FLAGS}
        hook = FakeWebhook(
            str(uuid.uuid4()), body["url"], body.get("secret") or "", events, project.id, now, now
        )
        project.webhooks[hook.id] = hook
        return web.json_response(hook.to_json())

    async def update_hook(self, request: web.Request) -> web.Response:
        project = self._authorize(request)
        if isinstance(project, web.Response):
            return project
        hook = project.webhooks.get(request.match_info["id"])
        if hook is None:
            return _error(404, "Webhook not found", request.path)
        body, ok = await self._body(request)
        errors = _validate(body, self.state.refused_hosts) if ok else [_field_error("body", None, "is not valid JSON")]
        if errors:
            return _error(422, "Validation failed", request.path, errors)
        hook.url = body["url"]
        if body.get("secret") is not None:
            hook.secret = body["secret"]
        # Flags left out of the request keep their value (the seed lets a request omit events).
        hook.events.update({flag: value for flag, value in body["events"].items()})
        hook.updated_at = _now()
        return web.json_response(hook.to_json())

    async def delete_hook(self, request: web.Request) -> web.Response:
        project = self._authorize(request)
        if isinstance(project, web.Response):
            return project
        if project.webhooks.pop(request.match_info["id"], None) is None:
            return _error(404, "Webhook not found", request.path)
        return web.Response(status=200)


def make_app(state: FakeGitFlicState) -> web.Application:
    return FakeGitFlic(state).app


async def deliver(
    bridge_url: str,
    action: str,
    payload: dict[str, Any],
    secret: str | None,
    *,
    session: aiohttp.ClientSession | None = None,
) -> tuple[int, str]:
    """POST a delivery the way GitFlic does: JSON body with `action`, secret in a header.

    Returns (status, response text). `secret=None` sends no secret header.
    """
    body = {"action": action, **{k: v for k, v in payload.items() if k != "action"}}
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["Gitflic-Webhook-Secret"] = secret
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    own = session is None
    client = session or aiohttp.ClientSession()
    try:
        async with client.post(bridge_url, data=data, headers=headers) as resp:
            return resp.status, await resp.text()
    finally:
        if own:
            await client.close()
