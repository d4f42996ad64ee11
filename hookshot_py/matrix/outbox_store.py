"""The outbox's SQL: every query the outbox makes, each one round trip for a whole batch.

Rows are inserted with their causal barrier (see `causal.py`) computed in the same statement, and
`NOTIFY hookshot_outbox` wakes every process on commit. Delivery state is written in batches.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from hookshot_py.db.cluster import LOCK_CLASS_ROOM
from hookshot_py.db.database import Database

CHANNEL = "hookshot_outbox"  # payload: "<origin process id>\t<room id>"
SENT_RETENTION = "7 days"

_PENDING = "sent_at IS NULL AND failed_at IS NULL"

# One statement per batch of concurrent enqueues (group commit). Ids are drawn in input order;
# each row's barrier is the highest pending row of its room that it must follow: one of this
# process's rows up to the caller's mark, any other process's row, or the previous row of the
# same room in the same call. `foreign` says whether another process's row is pending in the
# room (the sender must then read the room from the database rather than trust what it was
# handed). Each is an index probe per room and mark (`outbox_pending`, `outbox_pending_origin`),
# whatever the backlog.
_INSERT = f"""
WITH input AS MATERIALIZED (
    SELECT nextval('outbox_id_seq') AS id, x.*
      FROM (SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[])
                     WITH ORDINALITY AS u(g, room_id, sender, event_type, content, dedupe_key, mark, ord)
             ORDER BY ord) x
), marks AS MATERIALIZED (
    SELECT m.room_id, m.mark,
           COALESCE((SELECT max(o.id) FROM outbox o WHERE o.room_id = m.room_id AND o.{_PENDING}
                        AND (o.origin <> $8 OR o.id <= m.mark)), 0) AS after,
           EXISTS (SELECT 1 FROM outbox o WHERE o.room_id = m.room_id AND o.{_PENDING} AND o.origin < $8)
           OR EXISTS (SELECT 1 FROM outbox o WHERE o.room_id = m.room_id AND o.{_PENDING} AND o.origin > $8)
             AS foreign
      FROM (SELECT DISTINCT room_id, mark FROM input) m
), placed AS MATERIALIZED (
    SELECT i.*, m.foreign,
           GREATEST(COALESCE(lag(i.id) OVER (PARTITION BY i.g, i.room_id ORDER BY i.ord), 0), m.after) AS barrier
      FROM input i JOIN marks m USING (room_id, mark)
), ins AS (
    INSERT INTO outbox (id, room_id, sender, event_type, content, dedupe_key, barrier, origin)
    SELECT id, room_id, sender, event_type, content::jsonb, dedupe_key, barrier, $8 FROM placed
    ON CONFLICT (room_id, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING
    RETURNING id
), woken AS (
    SELECT pg_notify('{CHANNEL}', $8 || chr(9) || room_id)
      FROM (SELECT DISTINCT p.room_id FROM placed p JOIN ins USING (id)) r
)
SELECT p.g, p.ord, p.id, p.room_id, p.barrier, p.foreign, (SELECT count(*) FROM woken) AS _woken
  FROM placed p JOIN ins USING (id)
 ORDER BY p.id
"""


@dataclass
class Row:
    """A pending row as the sender sees it. The content is kept as the JSON text stored (sent as
    it is, with the marker added); it is decoded only when something needs it (encryption)."""

    id: int
    room_id: str
    sender: str
    event_type: str
    raw: str
    barrier: int
    content: dict[str, Any] | None = None
    attempts: int = 0
    uncertain: bool = False  # an earlier attempt may have reached the homeserver
    created_at: float = field(default_factory=time.time)  # epoch seconds
    due: float = 0.0  # loop time before which it must not be sent (retry backoff)

    def decoded(self) -> dict[str, Any]:
        if self.content is None:
            self.content = json.loads(self.raw)
        return self.content


@dataclass(frozen=True)
class Inserted:
    group: int  # which caller of the batch
    index: int  # which of its events
    id: int
    room_id: str
    barrier: int
    foreign: bool

    def __getitem__(self, key: str) -> Any:
        """`row["id"]`, `row["room_id"]`: as the records callers of `enqueue_in` used to get."""
        return getattr(self, key)


class OutboxStore:
    def __init__(self, db: Database, origin: str) -> None:
        self.db = db
        self.origin = origin

    async def insert(
        self,
        conn: Database | asyncpg.Connection,
        groups: Sequence[tuple[int, Sequence[tuple[str, str, str, str, str | None]]]],
    ) -> list[Inserted]:
        """Insert every group's rows `(room, sender, type, content JSON, dedupe key)` in one
        statement; a group is one caller with its causal mark. Deduplicated rows are left out."""
        g: list[int] = []
        rooms: list[str] = []
        senders: list[str] = []
        types: list[str] = []
        contents: list[str] = []
        keys: list[str | None] = []
        marks: list[int] = []
        offsets: list[int] = []
        for index, (mark, rows) in enumerate(groups):
            offsets.append(len(g))
            for room, sender, etype, content, key in rows:
                g.append(index)
                rooms.append(room)
                senders.append(sender)
                types.append(etype)
                contents.append(content)
                keys.append(key)
                marks.append(mark)
        records = await conn.fetch(_INSERT, g, rooms, senders, types, contents, keys, marks, self.origin)
        return [
            Inserted(r["g"], r["ord"] - 1 - offsets[r["g"]], r["id"], r["room_id"], r["barrier"], r["foreign"])
            for r in records
        ]

    async def head(self, room_id: str, limit: int) -> list[Row]:
        """The room's first pending rows, in id order: every pending row below the last one
        returned is among them."""
        records = await self.db.fetch(
            f"""
            SELECT id, sender, event_type, content::text AS raw, barrier, attempts, uncertain,
                   EXTRACT(EPOCH FROM created_at)::float8 AS created,
                   GREATEST(0, EXTRACT(EPOCH FROM (next_attempt_at - now())))::float8 AS wait_s
              FROM outbox WHERE room_id = $1 AND {_PENDING} ORDER BY id LIMIT $2
            """,
            room_id, limit,
        )
        now = time.monotonic()
        return [
            Row(r["id"], room_id, r["sender"], r["event_type"], r["raw"], r["barrier"], None, r["attempts"],
                r["uncertain"], r["created"], now + r["wait_s"] if r["wait_s"] else 0.0)
            for r in records
        ]

    async def mark_sent(self, sent: Sequence[tuple[int, str, int]]) -> None:
        """`(id, event id, attempts)` of rows the homeserver took. Committed without waiting for
        the disk: if Postgres crashes before it gets there, the rows look pending again, but the
        room's holder row (written durably) is still there, so whoever delivers the room next
        looks for their markers before sending anything again."""
        await self.db.execute(
            "WITH lazy AS (SELECT set_config('synchronous_commit', 'off', true)) "
            "UPDATE outbox AS o SET sent_at = now(), event_id = u.e, attempts = u.a, uncertain = false "
            "FROM unnest($1::bigint[], $2::text[], $3::int[]) AS u(id, e, a), lazy WHERE o.id = u.id",
            [s[0] for s in sent], [s[1] for s in sent], [s[2] for s in sent],
        )

    async def retry_later(self, row_id: int, attempts: int, error: str, delay: float, uncertain: bool) -> None:
        await self.db.execute(
            "UPDATE outbox SET attempts = $2, last_error = $3, uncertain = uncertain OR $5, "
            "next_attempt_at = now() + make_interval(secs => $4) WHERE id = $1",
            row_id, attempts, error, delay, uncertain,
        )

    async def mark_uncertain(self, ids: Sequence[int]) -> None:
        await self.db.execute("UPDATE outbox SET uncertain = true WHERE id = ANY($1::bigint[])", list(ids))

    async def fail(self, row_id: int, attempts: int, error: str) -> None:
        await self.db.execute(
            "UPDATE outbox SET failed_at = now(), attempts = $2, last_error = $3 WHERE id = $1",
            row_id, attempts, error,
        )

    async def claim_room(self, room_id: str) -> str | None:
        """Record that this process delivers the room now; returns the previous holder, which is
        set only if that process stopped without releasing it (it died mid-delivery)."""
        return await self.db.fetchval(
            """
            WITH old AS (SELECT holder FROM outbox_rooms WHERE room_id = $1)
            INSERT INTO outbox_rooms (room_id, holder) VALUES ($1, $2)
            ON CONFLICT (room_id) DO UPDATE SET holder = EXCLUDED.holder, held_since = now()
            RETURNING (SELECT holder FROM old)
            """,
            room_id, self.origin,
        )

    async def release_room(self, room_id: str) -> None:
        await self.db.execute("DELETE FROM outbox_rooms WHERE room_id = $1 AND holder = $2", room_id, self.origin)

    async def orphaned_rooms(self) -> list[str]:
        """Rooms another process was delivering and whose lock nobody holds: that process died."""
        return [r["room_id"] for r in await self.db.fetch(
            """
            SELECT r.room_id FROM outbox_rooms r
             WHERE r.holder <> $1 AND NOT EXISTS (
                   SELECT 1 FROM pg_locks l
                    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
                      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                      AND l.classid = $2::bigint::oid
                      AND l.objid = (hashtext(r.room_id)::bigint & 4294967295)::oid)
            """,
            self.origin, LOCK_CLASS_ROOM,
        )]

    async def pending_rooms(self) -> list[str]:
        return [r["room_id"] for r in await self.db.fetch(
            f"SELECT DISTINCT room_id FROM outbox WHERE {_PENDING}"
        )]

    async def depth(self) -> int:
        return int(await self.db.fetchval(f"SELECT count(*) FROM outbox WHERE {_PENDING}"))

    async def finished(self, ids: Sequence[int]) -> list[tuple[int, str | None]]:
        """`(id, event id or None for a failed row)` of the given rows that are done."""
        records = await self.db.fetch(
            "SELECT id, event_id FROM outbox WHERE id = ANY($1::bigint[]) "
            "AND (sent_at IS NOT NULL OR failed_at IS NOT NULL)",
            list(ids),
        )
        return [(r["id"], r["event_id"]) for r in records]

    async def forget_old(self) -> None:
        """Delivered rows, handled transactions and finished commands are forgotten after a while
        (dedupe keys are remembered as long)."""
        await self.db.execute(f"DELETE FROM outbox WHERE sent_at < now() - interval '{SENT_RETENTION}'")
        await self.db.execute(
            "DELETE FROM appservice_txns "
            f"WHERE COALESCE(processed_at, claimed_until) < now() - interval '{SENT_RETENTION}'"
        )
        await self.db.execute(f"DELETE FROM command_runs WHERE created_at < now() - interval '{SENT_RETENTION}'")
