"""`/gitflic/webhook`: GitFlic deliveries, checked against the project's secret and posted to its rooms.

The body names the project (`project{owner_alias, alias}`, or only `project_id` for a
TEST_WEBHOOK); the bridge's record of that project's hook holds the secret the delivery must
carry. A delivery is answered only once its messages are committed outbox rows, so a 200 means
they will reach the rooms.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from hookshot_py.config import GitFlicConfig
from hookshot_py.connections.base import Connection
from hookshot_py.connections.manager import ConnectionManager
from hookshot_py.errors import ApiError, ErrCode
from hookshot_py.gitflic.format import format_delivery
from hookshot_py.gitflic.models import is_wanted
from hookshot_py.gitflic.project import EVENT_TYPE, WEBHOOK_PATH, events_of, project_key, ref_of
from hookshot_py.gitflic.store import HookRecord, HookStore
from hookshot_py.gitflic.webhook import Delivery, DeliveryError, parse_delivery, verify_secret
from hookshot_py.listeners.http import read_body
from hookshot_py.matrix.outbox import Outbox, OutgoingEvent
from hookshot_py.services import PushListener

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 5 * 1024 * 1024  # a push of many commits is the largest delivery
_TIME_KEYS = ("updated_at", "updatedAt", "created_at", "createdAt", "timestamp")
_NOT_EVENT_OBJECTS = ("project", "sender", "user", "initiator", "author")


def dedupe_key(delivery: Delivery) -> str | None:
    """A key naming this occurrence, so that GitFlic retrying it posts it once; None when the
    body cannot tell two occurrences apart.

    GitFlic sends no delivery id. A body whose event object carries a timestamp (or a push its
    `before`/`after` commits) describes one occurrence, and a retry repeats it byte for byte in
    meaning: its canonical JSON, hashed, is the key. A TEST_WEBHOOK or a tag deletion carries
    nothing of the kind and is never deduplicated: pressing "test" twice must show twice.
    """
    objects = [v for k, v in delivery.raw.items() if isinstance(v, dict) and k not in _NOT_EVENT_OBJECTS]
    pinned = any(
        any(isinstance(obj.get(t), str | int) and obj.get(t) for t in _TIME_KEYS)
        or (isinstance(obj.get("before"), str) and isinstance(obj.get("after"), str))
        for obj in objects
    )
    if not pinned:
        return None
    canonical = json.dumps(delivery.raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "gitflic:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:40]


def notice(body: str, html: str) -> dict[str, Any]:
    return {
        "msgtype": "m.notice",
        "body": body,
        "format": "org.matrix.custom.html",
        "formatted_body": html,
    }


# Deliveries that carry pushed commits.
PUSH_ACTIONS = frozenset({"PUSH", "BRANCH_UPDATE", "BRANCH_CREATE"})


class GitFlicWebhookRoute:
    def __init__(
        self,
        config: GitFlicConfig,
        store: HookStore,
        manager: ConnectionManager,
        outbox: Outbox,
        on_push: PushListener | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.manager = manager
        self.outbox = outbox
        self.on_push = on_push

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(WEBHOOK_PATH, self.handle)
        # `publicUrl` is stored with a trailing slash (see the config loader); accept it.
        app.router.add_post(WEBHOOK_PATH + "/", self.handle)

    def _candidates(self, delivery: Delivery) -> list[HookRecord]:
        """Records the delivery may belong to; its secret decides which one it does."""
        found: list[HookRecord] = []
        if delivery.project_key:
            found += self.store.by_project(delivery.project_key)
        if delivery.project_id:
            found += [r for r in self.store.by_project_id(delivery.project_id) if r not in found]
        if not found:
            # A hook entered by hand whose project id we have not seen yet (its first delivery
            # may well be a TEST_WEBHOOK naming nothing else): the secret alone identifies it.
            found = self.store.without_project_id()
        return found

    def _verified(self, delivery: Delivery, headers: Mapping[str, str]) -> HookRecord | None:
        # Check every candidate so the time taken does not reveal which one matched.
        matches = [r for r in self._candidates(delivery) if verify_secret(headers, r.secret)]
        return matches[0] if matches else None

    def _connections(self, record: HookRecord) -> list[Connection]:
        out = []
        for conn in self.manager.all(EVENT_TYPE):
            ref = ref_of(conn)
            if ref.instance == record.instance and project_key(ref.owner, ref.project) == record.project:
                out.append(conn)
        return out

    async def handle(self, request: web.Request) -> web.Response:
        raw = await read_body(request, MAX_BODY_BYTES)
        try:
            delivery = parse_delivery(raw)
        except DeliveryError as e:
            raise ApiError(ErrCode.BAD_VALUE, str(e)) from e
        record = self._verified(delivery, request.headers)
        if record is None:
            log.info("Refused a GitFlic %s delivery for %s: unknown project or wrong secret",
                     delivery.action, delivery.project_key or delivery.project_id)
            raise ApiError(ErrCode.BAD_TOKEN, "Unknown project or wrong webhook secret.")
        if delivery.project_id and record.project_id != delivery.project_id:
            record = await self.store.learn_project_id(record, delivery.project_id)
        instance = self.config.instances.get(record.instance)
        instance_url = instance.url if instance else ""
        key = dedupe_key(delivery)
        events: list[OutgoingEvent] = []
        conns = self._connections(record)
        if delivery.action in PUSH_ACTIONS and self.on_push is not None and isinstance(delivery.raw, dict):
            for conn in conns:
                await self.on_push(conn.room_id, record.project, delivery.raw)
        for conn in conns:
            if not is_wanted(delivery.action, events_of(conn)):
                continue
            body, html = format_delivery(delivery, instance_url=instance_url, project=conn.state_key)
            events.append(OutgoingEvent(conn.room_id, notice(body, html), dedupe_key=key))
        await self.outbox.enqueue(events)
        log.info("GitFlic %s for %s: posted to %d room(s)", delivery.action, record.project, len(events))
        return web.json_response({"ok": True, "rooms": len(events)})
