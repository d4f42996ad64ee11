"""The outbound queue in Postgres (tables `outbound_hooks`, `outbound_deliveries`, migration 0009).

Each event for a hook is a row, queued in the homeserver transaction that brought the event
(so an acknowledged event is never lost) and delivered in the background, in row order per hook.
A hook's queue is delivered by one process at a time: the process that holds the hook's lease.
Claiming, renewing and releasing leases happen here and nowhere else (`claim`, `renew`,
`release`): a due, unleased hook is taken with `FOR UPDATE SKIP LOCKED`, so several bridge
processes on one database never take the same hook; a process that dies loses its leases when
they run out, and another carries on. Every write about a delivery checks the lease is still
held, so a process that lost it stops instead of racing the new owner.

Delivery is at least once: a process that dies between the receiver's answer and the commit
sends that event again. Receivers tell repeats by `X-Matrix-Hookshot-EventId` (unique per hook).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from hookshot_py import jsonsafe
from hookshot_py.db.database import Database
from hookshot_py.tokens import SecretBox

log = logging.getLogger(__name__)

STATUSES = ("pending", "delivered", "failed")
MAX_PENDING = 10_000  # events waiting per hook; later ones are dropped (and logged) until it drains
MAX_ERROR_CHARS = 500


class LostLease(Exception):
    """Another process holds this hook now (ours ran out): stop delivering it."""


@dataclass(frozen=True)
class HookTarget:
    """Where and how a claimed hook delivers, read fresh from the database."""

    connection_id: str
    room_id: str
    name: str
    url: str
    method: str
    token: str
    failure_notified: bool


@dataclass(frozen=True)
class Delivery:
    id: int
    connection_id: str
    event_id: str
    event: dict[str, Any]
    attempts: int
    age_s: float  # since it was queued


def _cut(text: str | None) -> str | None:
    return None if text is None else text[:MAX_ERROR_CHARS]


class OutboundQueue:
    def __init__(self, db: Database, box: SecretBox, owner: str) -> None:
        self.db = db
        self.box = box
        self.owner = owner  # this process, in lease columns

    # -- hooks --------------------------------------------------------------------------------------

    async def save_hook(
        self, connection_id: str, room_id: str, state_key: str, url: str, method: str, token: str | None,
        *, replace: bool = True,
    ) -> str | None:
        """Create or update a hook's row and return its token. `token` None keeps the stored one
        (the row must exist); with `replace` False a stored token wins over `token` (another
        process made the row first)."""
        if token is None:
            await self.db.execute(
                "UPDATE outbound_hooks SET url = $2, method = $3 WHERE connection_id = $1", connection_id, url, method
            )
            return None
        blob = await self.db.fetchval(
            """
            INSERT INTO outbound_hooks (connection_id, room_id, state_key, url, method, token)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (connection_id) DO UPDATE SET url = EXCLUDED.url, method = EXCLUDED.method,
                token = CASE WHEN $7 THEN EXCLUDED.token ELSE outbound_hooks.token END
            RETURNING token
            """,
            connection_id, room_id, state_key, url, method, self.box.encrypt(token.encode()), replace,
        )
        return self._decrypt(connection_id, blob) or token

    async def tokens(self, connection_ids: list[str]) -> dict[str, str]:
        """The stored tokens of these hooks (those that have one and decrypt)."""
        rows = await self.db.fetch(
            "SELECT connection_id, token FROM outbound_hooks WHERE connection_id = ANY($1::text[])", connection_ids
        )
        out = {}
        for r in rows:
            token = self._decrypt(r["connection_id"], r["token"])
            if token is not None:
                out[r["connection_id"]] = token
        return out

    async def remove_hook(self, connection_id: str) -> None:
        """Forget the hook, its queue and its log."""
        await self.db.execute("DELETE FROM outbound_hooks WHERE connection_id = $1", connection_id)

    def _decrypt(self, connection_id: str, blob: bytes) -> str | None:
        try:
            return self.box.decrypt(bytes(blob)).decode()
        except Exception:
            log.error("The token of outbound hook %s cannot be decrypted (was passFile changed?)", connection_id)
            return None

    # -- queueing -----------------------------------------------------------------------------------

    async def enqueue(self, connection_id: str, event: dict[str, Any]) -> bool:
        """Queue `event` for the hook; False if it was queued before (a repeated transaction) or
        the hook already has `MAX_PENDING` events waiting (a receiver down while the room floods)."""
        status = await self.db.execute(
            """
            INSERT INTO outbound_deliveries (connection_id, event_id, event_type, sender, event)
            SELECT $1, $2, $3, $4, $5::text::jsonb
            WHERE (SELECT count(*) FROM (SELECT 1 FROM outbound_deliveries
                                          WHERE connection_id = $1 AND status = 'pending' LIMIT $6) AS p) < $6
            ON CONFLICT (connection_id, event_id) DO NOTHING
            """,
            connection_id, str(event.get("event_id", "")), str(event.get("type", "")),
            str(event.get("sender", "")), jsonsafe.dumps_storable(event), MAX_PENDING,
        )
        return status != "INSERT 0 0"

    # -- claiming: the only place leases are taken, renewed and given back -----------------------------

    async def claim(self, limit: int, lease_s: float) -> list[str]:
        """Take up to `limit` hooks that have due events and no live lease."""
        if limit <= 0:
            return []
        rows = await self.db.fetch(
            """
            UPDATE outbound_hooks SET lease_owner = $1, lease_until = now() + make_interval(secs => $2)
            WHERE connection_id IN (
                SELECT h.connection_id FROM outbound_hooks h
                WHERE h.retry_at <= now() AND (h.lease_until IS NULL OR h.lease_until < now())
                  AND EXISTS (SELECT 1 FROM outbound_deliveries d
                              WHERE d.connection_id = h.connection_id AND d.status = 'pending')
                ORDER BY h.retry_at LIMIT $3
                FOR UPDATE SKIP LOCKED)
            RETURNING connection_id
            """,
            self.owner, lease_s, limit,
        )
        return [r["connection_id"] for r in rows]

    async def renew(self, connection_id: str, lease_s: float) -> HookTarget:
        """Extend our lease and read the hook's current target; LostLease if it is not ours."""
        row = await self.db.fetchrow(
            """
            UPDATE outbound_hooks SET lease_until = now() + make_interval(secs => $3)
            WHERE connection_id = $1 AND lease_owner = $2 AND lease_until > now()
            RETURNING connection_id, room_id, state_key, url, method, token, failure_notified
            """,
            connection_id, self.owner, lease_s,
        )
        if row is None:
            raise LostLease(connection_id)
        token = self._decrypt(connection_id, row["token"]) or ""
        return HookTarget(
            row["connection_id"], row["room_id"], row["state_key"], row["url"], row["method"], token,
            row["failure_notified"],
        )

    async def release(self, connection_id: str, retry_in: float | None = None) -> None:
        """Give the lease back; with `retry_in`, the head of the queue waits that many seconds."""
        await self.db.execute(
            """
            UPDATE outbound_hooks SET lease_owner = NULL, lease_until = NULL,
                retry_at = CASE WHEN $3::float8 IS NULL THEN retry_at ELSE now() + make_interval(secs => $3) END
            WHERE connection_id = $1 AND lease_owner = $2
            """,
            connection_id, self.owner, retry_in,
        )

    async def release_all(self) -> None:
        """Give back every lease this process holds (a clean stop)."""
        await self.db.execute(
            "UPDATE outbound_hooks SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1", self.owner
        )

    # -- delivering ---------------------------------------------------------------------------------

    async def head(self, connection_id: str) -> Delivery | None:
        """The oldest pending event of the hook."""
        row = await self.db.fetchrow(
            """
            SELECT id, connection_id, event_id, event, attempts,
                   EXTRACT(EPOCH FROM (now() - created_at))::float8 AS age_s
            FROM outbound_deliveries WHERE connection_id = $1 AND status = 'pending' ORDER BY id LIMIT 1
            """,
            connection_id,
        )
        if row is None:
            return None
        return Delivery(row["id"], row["connection_id"], row["event_id"], row["event"], row["attempts"], row["age_s"])

    async def record(
        self,
        delivery: Delivery,
        *,
        status: str,
        attempts: int,
        response_status: int | None,
        error: str | None,
    ) -> bool:
        """Record an attempt: `status` 'delivered', 'failed' (given up) or 'pending' (to retry).

        Checks the lease in the same transaction (LostLease). A success without a note keeps
        the last error of the attempts before it. A success clears the hook's failure
        notice flag; for a failure, returns True when the room is to be told (first failure since
        the last success)."""
        async with self.db.acquire() as conn, conn.transaction():
            owned = await conn.fetchval(
                "SELECT 1 FROM outbound_hooks WHERE connection_id = $1 AND lease_owner = $2 "
                "AND lease_until > now() FOR UPDATE",
                delivery.connection_id, self.owner,
            )
            if owned is None:
                raise LostLease(delivery.connection_id)
            await conn.execute(
                """
                UPDATE outbound_deliveries SET status = $2, attempts = $3, response_status = $4,
                    last_error = COALESCE($5, last_error), last_attempt_at = now(),
                    finished_at = CASE WHEN $2 = 'pending' THEN NULL ELSE now() END
                WHERE id = $1
                """,
                delivery.id, status, attempts, response_status, _cut(error),
            )
            return await self._failure_flag(conn, delivery.connection_id, status)

    @staticmethod
    async def _failure_flag(conn: asyncpg.Connection, connection_id: str, status: str) -> bool:
        if status == "delivered":
            await conn.execute(
                "UPDATE outbound_hooks SET failure_notified = false WHERE connection_id = $1 AND failure_notified",
                connection_id,
            )
            return False
        if status == "failed":
            flipped = await conn.fetchval(
                "UPDATE outbound_hooks SET failure_notified = true WHERE connection_id = $1 "
                "AND NOT failure_notified RETURNING 1",
                connection_id,
            )
            return flipped is not None
        return False

    # -- the log ------------------------------------------------------------------------------------

    async def log(
        self, connection_id: str, *, limit: int, before: int | None, status: str | None
    ) -> list[dict[str, Any]]:
        """Deliveries of a hook, newest first (ids below `before`, of `status` if given)."""
        rows = await self.db.fetch(
            """
            SELECT d.id, d.event_id, d.event_type, d.sender, d.status, d.attempts, d.created_at,
                   d.last_attempt_at, d.finished_at, d.response_status, d.last_error,
                   CASE WHEN d.status = 'pending' THEN GREATEST(h.retry_at, d.created_at) END AS next_attempt_at
            FROM outbound_deliveries d JOIN outbound_hooks h USING (connection_id)
            WHERE d.connection_id = $1 AND ($2::bigint IS NULL OR d.id < $2) AND ($3::text IS NULL OR d.status = $3)
            ORDER BY d.id DESC LIMIT $4
            """,
            connection_id, before, status, limit,
        )
        return [
            {
                "id": r["id"],
                "eventId": r["event_id"],
                "eventType": r["event_type"],
                "sender": r["sender"],
                "status": r["status"],
                "attempts": r["attempts"],
                "createdAt": _iso(r["created_at"]),
                "lastAttemptAt": _iso(r["last_attempt_at"]),
                "nextAttemptAt": _iso(r["next_attempt_at"]),
                "finishedAt": _iso(r["finished_at"]),
                "responseStatus": r["response_status"],
                "error": r["last_error"],
            }
            for r in rows
        ]

    async def pending(self, connection_id: str) -> int:
        return int(await self.db.fetchval(
            "SELECT count(*) FROM outbound_deliveries WHERE connection_id = $1 AND status = 'pending'", connection_id
        ))

    async def counts(self, connection_id: str) -> dict[str, int]:
        rows = await self.db.fetch(
            "SELECT status, count(*) AS n FROM outbound_deliveries WHERE connection_id = $1 GROUP BY status",
            connection_id,
        )
        found = {r["status"]: r["n"] for r in rows}
        return {s: int(found.get(s, 0)) for s in STATUSES}

    async def prune(self, keep_days: int) -> str:
        """Forget finished deliveries older than `keep_days`."""
        return await self.db.execute(
            "DELETE FROM outbound_deliveries WHERE status <> 'pending' "
            "AND finished_at < now() - make_interval(days => $1)",
            keep_days,
        )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
