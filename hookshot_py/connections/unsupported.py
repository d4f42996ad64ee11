"""Connections this bridge keeps but does not serve: no silent rooms.

A room may hold the state of a connection whose service is disabled in the config (a GitLab
project while `gitlab` is off) or that hookshot_py does not implement (Figma, OpenProject,
GitHub issue rooms...), or state of a served type that start-up had to refuse (a webhook with a
transformation function on a bridge that does not run them, a field this bridge rejects, state
set by someone without the permission). Its state is kept untouched; the room is told once,
durably (table `unsupported_connections`: not again after a restart), the provisioning API lists
it with the reason, and start-up logs them with a count. The ConnectionManager feeds this from
room state. A later valid edit of the same state makes it a served connection again.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hookshot_py import jsonsafe
from hookshot_py.connections.base import connection_id, is_disabled
from hookshot_py.connections.known import KnownType, known_type, unsupported_reason
from hookshot_py.db.database import Database
from hookshot_py.markdown import render_markdown
from hookshot_py.matrix.outbox import Outbox, OutgoingEvent

log = logging.getLogger(__name__)

MAX_LOGGED = 50  # connections listed one by one in the start-up log; the rest are counted


@dataclass(frozen=True)
class UnsupportedConnection:
    room_id: str
    kind: KnownType
    state_key: str
    content: dict[str, Any]
    refused: str | None = None  # why start-up refused the state of a served type

    @property
    def id(self) -> str:
        return connection_id(self.room_id, self.kind.event_type, self.state_key)

    @property
    def reason(self) -> str:
        if self.refused is not None:
            return f"Its settings were refused: {self.refused}"
        return unsupported_reason(self.kind)

    def details(self, bot_user_id: str) -> dict[str, Any]:
        """The provisioning API's item: the seed's shape, plus `unsupported` with the reason."""
        return {
            "type": self.kind.type_name,
            "eventType": self.kind.event_type,
            "id": self.id,
            "service": self.kind.service,
            "botUserId": bot_user_id,
            "config": self.content,
            "unsupported": {"reason": self.reason},
        }


class UnsupportedConnections:
    def __init__(self, db: Database, outbox: Outbox) -> None:
        self.db = db
        self.outbox = outbox
        self._rooms: dict[str, dict[str, UnsupportedConnection]] = {}

    # -- reading ------------------------------------------------------------------------------------

    def in_room(self, room_id: str) -> list[UnsupportedConnection]:
        return list(self._rooms.get(room_id, {}).values())

    def get(self, room_id: str, conn_id: str) -> UnsupportedConnection | None:
        return self._rooms.get(room_id, {}).get(conn_id)

    def all(self) -> list[UnsupportedConnection]:
        return [c for room in self._rooms.values() for c in room.values()]

    # -- start-up -----------------------------------------------------------------------------------

    async def load(self, served: set[str], mirrored: list[tuple[str, str, str, dict[str, Any]]]) -> None:
        """The ones recorded earlier, plus `mirrored` rows (room, type, key, content) of types
        no longer served; `served` are the event types this bridge serves now."""
        rows = await self.db.fetch("SELECT room_id, event_type, state_key, content FROM unsupported_connections")
        for r in [(r["room_id"], r["event_type"], r["state_key"], r["content"]) for r in rows] + mirrored:
            room_id, event_type, state_key, content = r
            kind = known_type(event_type)
            if kind is not None and kind.event_type not in served and isinstance(content, dict):
                self._index(UnsupportedConnection(room_id, kind, state_key, content))

    def summary(self, when: str, *, each: bool = True) -> None:
        """Log how many connections are not served (and, with `each`, which)."""
        conns = sorted(self.all(), key=lambda c: (c.room_id, c.kind.event_type, c.state_key))
        if not conns:
            log.info("Unsupported connections %s: none", when)
            return
        counts = Counter(f"{c.kind.label} ({c.kind.service})" for c in conns)
        log.warning(
            "Unsupported connections %s: %d in %d room(s), kept untouched but not served: %s",
            when, len(conns), len({c.room_id for c in conns}),
            ", ".join(f"{n} {what}" for what, n in counts.most_common()),
        )
        if not each:
            return
        for c in conns[:MAX_LOGGED]:
            log.warning("  %s %s %r: %s", c.room_id, c.kind.event_type, c.state_key, c.reason)
        if len(conns) > MAX_LOGGED:
            log.warning("  ... and %d more", len(conns) - MAX_LOGGED)

    # -- room state ---------------------------------------------------------------------------------

    async def sync_room(
        self, room_id: str, events: list[dict[str, Any]], served: set[str],
        refused: Sequence[tuple[dict[str, Any], str]] = (),
    ) -> None:
        """`events`: the room's whole state; `refused`: the state events of served types that
        were refused, with why. Record (and report, once) the unserved connections in it;
        forget the ones gone from it."""
        found: dict[str, UnsupportedConnection] = {}
        for ev in events:
            conn = self._from_event(room_id, ev, served)
            if conn is not None:
                found[conn.id] = conn
        for ev, why in refused:
            kind, key, content = known_type(str(ev.get("type", ""))), ev.get("state_key"), ev.get("content")
            if kind is not None and isinstance(key, str) and isinstance(content, dict):
                conn = UnsupportedConnection(room_id, kind, key, content, refused=why)
                found[conn.id] = conn
        for gone in [c for c in self.in_room(room_id) if c.id not in found]:
            await self._forget(gone)
        await self._record(room_id, list(found.values()))

    async def apply(self, event: dict[str, Any], served: set[str]) -> None:
        """One state event of a known, unserved type arriving from the homeserver."""
        room_id = event.get("room_id")
        if not isinstance(room_id, str):
            return
        conn = self._from_event(room_id, event, served)
        if conn is not None:
            await self._record(room_id, [conn])
            return
        kind, key = known_type(str(event.get("type", ""))), event.get("state_key")
        if kind is not None and isinstance(key, str):
            gone = self.get(room_id, connection_id(room_id, kind.event_type, key))
            if gone is not None:
                await self._forget(gone)

    async def discard(self, room_id: str, conn_id: str) -> None:
        """A refused connection's state became valid, or was removed: no longer listed."""
        conn = self.get(room_id, conn_id)
        if conn is not None:
            await self._forget(conn)

    def forget_room(self, room_id: str) -> None:
        """The bot left: nothing to list there any more (the rows stay: reported is reported)."""
        self._rooms.pop(room_id, None)

    @staticmethod
    def _from_event(room_id: str, ev: dict[str, Any], served: set[str]) -> UnsupportedConnection | None:
        kind = known_type(str(ev.get("type", "")))
        key, content = ev.get("state_key"), ev.get("content")
        if kind is None or kind.event_type in served or not isinstance(key, str):
            return None
        if not isinstance(content, dict) or is_disabled(content):
            return None
        return UnsupportedConnection(room_id, kind, key, content)

    def _index(self, conn: UnsupportedConnection) -> None:
        self._rooms.setdefault(conn.room_id, {})[conn.id] = conn

    async def _forget(self, conn: UnsupportedConnection) -> None:
        await self.db.execute(
            "DELETE FROM unsupported_connections WHERE room_id = $1 AND event_type = $2 AND state_key = $3",
            conn.room_id, conn.kind.event_type, conn.state_key,
        )
        self._rooms.get(conn.room_id, {}).pop(conn.id, None)

    async def _record(self, room_id: str, conns: list[UnsupportedConnection]) -> None:
        """Store `conns`; tell the room about those never reported, in one notice, in the same
        transaction that marks them reported (so a crash can neither lose nor repeat it)."""
        if not conns:
            return
        async with self.db.acquire() as db, db.transaction():
            new = await db.fetch(
                """
                INSERT INTO unsupported_connections (room_id, event_type, state_key, content)
                SELECT $1, t, k, c::jsonb FROM unnest($2::text[], $3::text[], $4::text[]) AS u(t, k, c)
                ON CONFLICT (room_id, event_type, state_key) DO UPDATE SET content = EXCLUDED.content
                RETURNING event_type, state_key, reported_at
                """,
                room_id,
                [c.kind.event_type for c in conns],
                [c.state_key for c in conns],
                [jsonsafe.dumps_storable(c.content) for c in conns],
            )
            unreported = {(r["event_type"], r["state_key"]) for r in new if r["reported_at"] is None}
            to_report = [c for c in conns if (c.kind.event_type, c.state_key) in unreported]
            rows: list[Any] = []
            if to_report:
                rows = await self.outbox.enqueue_in(db, [_notice(room_id, to_report)])
                await db.execute(
                    "UPDATE unsupported_connections SET reported_at = now() WHERE room_id = $1 "
                    "AND (event_type, state_key) IN (SELECT * FROM unnest($2::text[], $3::text[]))",
                    room_id, [c.kind.event_type for c in to_report], [c.state_key for c in to_report],
                )
        self.outbox.queued(rows)
        for conn in conns:
            self._index(conn)
        for conn in to_report:
            log.warning("Told %s that its %s connection %r is not served: %s",
                        room_id, conn.kind.label, conn.state_key, conn.reason)


def _notice(room_id: str, conns: list[UnsupportedConnection]) -> OutgoingEvent:
    lines = [f"- {c.kind.label} `{c.state_key}`: {c.reason}" for c in conns]
    text = (
        "⚠️ This room has connection settings this bridge does not serve, so nothing will be posted "
        "for them. Their settings are kept as they are.\n\n" + "\n".join(lines)
    )
    content = {"msgtype": "m.notice", "body": text, "format": "org.matrix.custom.html",
               "formatted_body": render_markdown(text)}
    return OutgoingEvent(room_id, content)
