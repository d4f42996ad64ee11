"""Inbound GitLab deliveries: `POST /gitlab/webhook`.

GitLab does not sign its deliveries: the hook's secret token arrives verbatim in
`X-Gitlab-Token`. It is compared first, from the headers alone and in constant time, with every
project hook's token the bridge registered (each project has its own) and with hookshot's
`gitlab.webhook.secret` (for hooks entered by hand). A request with none of them gets 401 before
its body is read; unlike hookshot, which answered "OK" first and compared with `!==`. Only then
is the body (10 MiB at most) parsed, depth limited, and a project's token must be that of the
project the body names (`project.path_with_namespace`); the config-wide token may name any.

A verified delivery is routed once (the connection type's index by project), classified per
room (`format.classify`), and answered once its messages are committed outbox rows and its review
items committed rows of the review debouncer. Deliveries are deduplicated on GitLab's
`Idempotency-Key` (the same across GitLab's retries), else `X-Gitlab-Webhook-UUID`: a redelivery
is answered again but posted once. Kinds the bridge does not post (jobs, deployments, emoji...)
are acknowledged and logged.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from hookshot_py.config import GitLabConfig
from hookshot_py.connections.base import Connection
from hookshot_py.errors import ApiError, ErrCode
from hookshot_py.forges.inbound import read_body, read_payload, token_matches
from hookshot_py.forges.webhooks import HookKey, HookRow
from hookshot_py.gitlab.connection import GitLabRepoType
from hookshot_py.gitlab.format import KINDS, Message, PayloadError, ReviewItem, classify, project_path
from hookshot_py.gitlab.hooks import WEBHOOK_PATH, GitLabProjectHooks, project_key
from hookshot_py.gitlab.render import Renderer
from hookshot_py.gitlab.review import ReviewDebouncer
from hookshot_py.matrix.outbox import Outbox, OutgoingEvent
from hookshot_py.services import PushListener

__all__ = ["MAX_BODY_BYTES", "GitLabWebhookRoute", "delivery_id"]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 10 * 1024 * 1024
TOKEN_HEADER = "X-Gitlab-Token"
REFUSED = "Unknown project or wrong webhook token (X-Gitlab-Token)."


def delivery_id(headers: Mapping[str, str]) -> str | None:
    """What identifies the delivery across GitLab's retries: `Idempotency-Key` (GitLab 17.4+),
    else `X-Gitlab-Webhook-UUID`. Bounded: it becomes part of a database key."""
    for name in ("Idempotency-Key", "X-Gitlab-Webhook-UUID"):
        value = (headers.get(name) or "").strip()
        if value and len(value) <= 200:
            return value
    return None


@dataclass
class GitLabWebhookRoute:
    config: GitLabConfig
    hooks: GitLabProjectHooks
    projects: GitLabRepoType
    outbox: Outbox
    renderer: Renderer
    reviews: ReviewDebouncer
    on_push: PushListener | None = None

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(WEBHOOK_PATH, self.handle)
        app.router.add_post(WEBHOOK_PATH + "/", self.handle)

    # -- who sent it ----------------------------------------------------------------------------------

    def _token_holders(self, token: str) -> tuple[list[HookRow], bool]:
        """The project rows whose token this is, and whether it is the config-wide one. Every
        token is compared, so the time taken does not tell which one matched."""
        rows = [row for row in self.hooks.store.rows() if token_matches(token, row.secret)]
        secret = self.config.webhook.secret
        return rows, bool(secret) and token_matches(token, secret or "")

    def _instance(self, request: web.Request, payload: dict[str, Any]) -> str | None:
        """The configured instance the delivery comes from: by the project's address, else by
        GitLab's `X-Gitlab-Instance` header, else the only one configured."""
        project = payload.get("project")
        if isinstance(project, dict):
            for field in ("web_url", "homepage"):
                url = project.get(field)
                if isinstance(url, str) and (name := self.config.instance_for_url(url)) is not None:
                    return name
        header = request.headers.get("X-Gitlab-Instance")
        if header and (name := self.config.instance_for_url(header.rstrip("/"))) is not None:
            return name
        return next(iter(self.config.instances)) if len(self.config.instances) == 1 else None

    def _projects(
        self, request: web.Request, payload: dict[str, Any], path: str, holders: list[HookRow], by_config: bool
    ) -> list[HookKey]:
        """The project the verified delivery is for; 401 when a project's token is used for
        another project. With the config-wide token and an instance that cannot be told (GitLab
        knows itself by another address than the config's), the path on every instance, as
        hookshot matched it."""
        wanted = project_key(path)
        row = next((r for r in holders if r.project == wanted), None)
        if row is not None:
            return [row.key]
        if not by_config:
            log.warning("Refusing a GitLab delivery for %s: it carries another project's webhook token", path)
            raise ApiError(ErrCode.BAD_TOKEN, "The delivery carries another project's webhook token.")
        instance = self._instance(request, payload)
        names = [instance] if instance is not None else list(self.config.instances)
        return [HookKey(name, wanted) for name in names]

    # -- the route --------------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        token = request.headers.get(TOKEN_HEADER)
        if not token:
            raise ApiError(ErrCode.BAD_TOKEN, REFUSED)
        holders, by_config = self._token_holders(token)
        if not holders and not by_config:
            log.info("Refused a GitLab delivery: no project has the token it carries")
            raise ApiError(ErrCode.BAD_TOKEN, REFUSED)
        raw = await read_body(request, MAX_BODY_BYTES)
        payload = await read_payload(self.renderer.cpu, raw)
        kind = payload.get("object_kind")
        if not isinstance(kind, str) or not kind:
            raise ApiError(ErrCode.BAD_VALUE, "The delivery has no `object_kind`: this is not a GitLab webhook.")
        event = request.headers.get("X-Gitlab-Event", kind)
        # GitLab before 15.x sends neither id header: the body identifies a retry (a new event
        # always differs: ids, shas, timestamps).
        delivery = delivery_id(request.headers) or "sha256:" + hashlib.sha256(raw).hexdigest()[:40]
        path = project_path(payload)
        if kind not in KINDS or path is None:
            log.info("Acknowledged a GitLab %s delivery (%s) we do not post", event, kind)
            return web.json_response({"ok": True, "handled": False})
        conns = [
            conn for key in self._projects(request, payload, path, holders, by_config)
            for conn in self.projects.project_connections(key)
        ]
        if not conns:
            log.info("GitLab %s for %s: no room is connected to it", kind, path)
            return web.json_response({"ok": True, "handled": True, "posted": 0})
        if kind == "push" and self.on_push is not None:
            for conn in conns:
                await self.on_push(conn.room_id, path, payload)
        messages: list[tuple[Connection, Message]] = []
        reviews: list[tuple[Connection, ReviewItem]] = []
        for conn in conns:
            try:
                result = classify(kind, payload, self.projects.config_of(conn), delivery=delivery)
            except PayloadError as e:
                raise ApiError(ErrCode.BAD_VALUE, f"Malformed {kind} payload: {e}") from e
            if isinstance(result, Message):
                messages.append((conn, result))
            elif isinstance(result, ReviewItem):
                reviews.append((conn, result))
        ids = await self._post(messages, delivery)
        queued = 0
        for conn, item in reviews:
            queued += await self.reviews.add(conn, item)
        duplicate = (bool(messages) and not ids) or (bool(reviews) and not queued)
        if duplicate:
            log.info("GitLab delivery %s was already handled; not posting it again", delivery)
        log.info("GitLab %s for %s: %d message(s), %d review item(s)", kind, path, len(ids), queued)
        return web.json_response(
            {"ok": True, "handled": True, "posted": len(ids), "queued": queued, "duplicate": duplicate}
        )

    async def _post(self, messages: list[tuple[Connection, Message]], delivery: str | None) -> list[int]:
        """Render each distinct message once (rooms often get the same one) and queue them."""
        distinct = list(dict.fromkeys(m.markdown for _, m in messages))
        by_text: dict[str, Message] = {m.markdown: m for _, m in messages}
        contents = dict(zip(distinct, await self.renderer.contents([by_text[t] for t in distinct]), strict=True))
        rooms: dict[str, int] = defaultdict(int)
        events = []
        for conn, message in messages:
            rooms[conn.room_id] += 1
            # Several connections of one room to the project: one key each, or all but one would be dropped.
            suffix = "" if rooms[conn.room_id] == 1 else f":{conn.id}"
            events.append(OutgoingEvent(
                conn.room_id, dict(contents[message.markdown]),
                dedupe_key=f"gitlab:{delivery}{suffix}",
            ))
        return await self.outbox.enqueue(events)
