"""Inbound GitFlic deliveries: `POST /gitflic/webhook`, checked against the project's secret
and posted to its rooms.

GitFlic does not sign its deliveries: the webhook's secret arrives verbatim in the
`Gitflic-Webhook-Secret` header (newer documentation also mentions a token in
`Authorization`). So the secret is checked first, from the headers alone, against every
project's (in constant time): a request carrying none, or none the bridge knows, gets 401
before its body is parsed. The body (5 MiB at most) is then parsed with a depth limit, in a
CPU-pool worker (`digest.py`: the event loop never holds the payload); it names its project
(`project{owner_alias, alias}`, or only `project_id` for a TEST_WEBHOOK), which must be the
project whose secret came with it. The event name is the body's `action`; there is no
event header. Messages are rendered off the event loop (plain text past the CPU pool's deadline).
A delivery is answered only once its messages are committed outbox rows, so a 200 means they
will reach the rooms.
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from hookshot_py.config import GitFlicConfig
from hookshot_py.cpu_pool import CpuPool
from hookshot_py.errors import ApiError, ErrCode
from hookshot_py.forges.inbound import read_body, read_in_worker
from hookshot_py.forges.webhooks import HookRow
from hookshot_py.gitflic.connection import GitFlicProjectType
from hookshot_py.gitflic.digest import Target, digest_delivery
from hookshot_py.gitflic.hooks import WEBHOOK_PATH, GitFlicProjectHooks
from hookshot_py.gitflic.models import Delivery, is_wanted
from hookshot_py.markdown import render_off_loop
from hookshot_py.matrix.outbox import Outbox, OutgoingEvent
from hookshot_py.services import PushListener

log = logging.getLogger(__name__)

SECRET_HEADER = "Gitflic-Webhook-Secret"
_AUTH_SCHEME = re.compile(r"^(?:token|bearer)\s+", re.IGNORECASE)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # a plain dict is case-sensitive; aiohttp's headers are not
        lower = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lower), None)
    return value if isinstance(value, str) else None


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def verify_secret(headers: Mapping[str, str], expected_secret: str) -> bool:
    """Whether the delivery carries our secret, compared in constant time.

    Accepted: `Gitflic-Webhook-Secret: <secret>`, or `Authorization: <secret>` with or without
    a `token `/`Bearer ` scheme. An empty expected secret matches nothing.
    """
    if not expected_secret:
        return False
    candidates: list[str] = []
    if (secret := _header(headers, SECRET_HEADER)) is not None:
        candidates.append(secret.strip())
    if (auth := _header(headers, "Authorization")) is not None:
        auth = auth.strip()
        candidates.append(auth)
        bare = _AUTH_SCHEME.sub("", auth)
        if bare != auth:
            candidates.append(bare)
    # Compare every candidate so the time taken does not depend on which header matched.
    results = [_same(c, expected_secret) for c in candidates]
    return any(results)


MAX_BODY_BYTES = 5 * 1024 * 1024  # a push of many commits is the largest delivery
def notice(body: str, html: str | None) -> dict[str, Any]:
    """An `m.notice`; without `html` (the plain-text fallback) it has no formatted body."""
    if html is None:
        return {"msgtype": "m.notice", "body": body}
    return {
        "msgtype": "m.notice",
        "body": body,
        "format": "org.matrix.custom.html",
        "formatted_body": html,
    }


# Deliveries that carry pushed commits.
PUSH_ACTIONS = frozenset({"PUSH", "BRANCH_UPDATE", "BRANCH_CREATE"})


def _project_id(row: HookRow) -> str | None:
    value = row.data.get("projectId")
    return value if isinstance(value, str) else None


@dataclass
class GitFlicWebhookRoute:
    config: GitFlicConfig
    hooks: GitFlicProjectHooks
    projects: GitFlicProjectType
    outbox: Outbox
    cpu: CpuPool  # renders the messages' markdown off the event loop
    on_push: PushListener | None = None

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(WEBHOOK_PATH, self.handle)
        # `publicUrl` is stored with a trailing slash (see the config loader); accept it.
        app.router.add_post(WEBHOOK_PATH + "/", self.handle)

    def _secret_holders(self, headers: Mapping[str, str]) -> list[HookRow]:
        """The rows whose secret the request carries. Every row is checked, so the time taken
        does not reveal which one matched."""
        rows = self.hooks.store.rows()
        matches = [row for row in rows if verify_secret(headers, row.secret)]
        return matches

    def _owner(self, delivery: Delivery, holders: list[HookRow]) -> HookRow | None:
        """The verified row that the delivery belongs to: the project it names, by alias or by
        GitFlic's id. A delivery naming a project the bridge has no row for (a hook entered by
        hand whose first delivery is a TEST_WEBHOOK naming only an id) belongs to the row whose
        secret it carries, as long as that row's project id is still unknown."""
        for row in holders:
            if delivery.project_key and row.project == delivery.project_key:
                return row
            if delivery.project_id and _project_id(row) == delivery.project_id:
                return row
        known = any(
            (delivery.project_key and row.project == delivery.project_key)
            or (delivery.project_id and _project_id(row) == delivery.project_id)
            for row in self.hooks.store.rows()
        )
        if not known:
            return next((row for row in holders if _project_id(row) is None), None)
        return None

    async def handle(self, request: web.Request) -> web.Response:
        if SECRET_HEADER not in request.headers and "Authorization" not in request.headers:
            raise ApiError(ErrCode.BAD_TOKEN, "Unknown project or wrong webhook secret.")
        holders = self._secret_holders(request.headers)
        if not holders:
            log.info("Refused a GitFlic delivery: no project has the secret it carries")
            raise ApiError(ErrCode.BAD_TOKEN, "Unknown project or wrong webhook secret.")
        raw = await read_body(request, MAX_BODY_BYTES)
        targets = [(row, conn) for row in holders for conn in self.projects.project_connections(row.key)]
        digest = await read_in_worker(
            self.cpu, len(raw), digest_delivery, raw,
            [Target(self._instance_url(row), conn.state_key) for row, conn in targets],
        )
        if digest.error is not None:
            raise ApiError(ErrCode.BAD_VALUE, digest.error)
        delivery = Delivery(digest.action, digest.project_key, digest.project_id, raw={})
        row = self._owner(delivery, holders)
        if row is None:
            log.info("Refused a GitFlic %s delivery for %s: it carries another project's secret",
                     delivery.action, delivery.project_key or delivery.project_id)
            raise ApiError(ErrCode.BAD_TOKEN, "Unknown project or wrong webhook secret.")
        if delivery.project_id and _project_id(row) != delivery.project_id:
            row = await self.hooks.learn_project_id(row, delivery.project_id)
        mine = [(i, conn) for i, (holder, conn) in enumerate(targets) if holder.key == row.key]
        if delivery.action in PUSH_ACTIONS and self.on_push is not None:
            for _, conn in mine:
                await self.on_push(conn.room_id, row.project, digest.push or {})
        wanted = [
            (conn, digest.jobs[i]) for i, conn in mine if is_wanted(delivery.action, self.projects.hook_events(conn))
        ]
        html = await render_off_loop(
            self.cpu, [job for _, job in wanted], what=f"GitFlic {delivery.action} delivery for {row.project}"
        )
        key = digest.dedupe_key
        events = [
            OutgoingEvent(conn.room_id, notice(job.text, None if html is None else html[i]), dedupe_key=key)
            for i, (conn, job) in enumerate(wanted)
        ]
        await self.outbox.enqueue(events)
        log.info("GitFlic %s for %s: posted to %d room(s)", delivery.action, row.project, len(events))
        return web.json_response({"ok": True, "rooms": len(events)})

    def _instance_url(self, row: HookRow) -> str:
        instance = self.config.instances.get(row.instance)
        return instance.url if instance else ""
