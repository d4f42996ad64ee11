"""The durable outbox: the only door from the bridge to Matrix messages.

Every message is a Postgres row before anyone is told it was accepted. Rooms are delivered
independently, each strictly in row order; a row is retried with backoff (honouring 429's
`retry_after_ms`) until the homeserver takes it. The transaction id is derived from the row, so
a resend after a crash is deduplicated by the homeserver instead of posted twice.

Rows are plaintext at rest. In an encrypted room a row is encrypted by the `Sealer` just before
each send attempt (never when queued), so a row queued before a crash or before the room turned
encryption on is still sent once, encrypted, with the same transaction id.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg

from hookshot_py import jsonsafe
from hookshot_py.db.database import Database
from hookshot_py.matrix.gateway import MatrixGateway, SendError
from hookshot_py.matrix.mentions import with_mentions
from hookshot_py.matrix.profiles import Profiles
from hookshot_py.metrics import Metrics

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 300.0
SENT_RETENTION = "7 days"


@dataclass(frozen=True)
class OutgoingEvent:
    room_id: str
    content: dict[str, Any]
    sender: str | None = None  # None: the bridge bot
    event_type: str = "m.room.message"
    # Rows with the same (room, dedupe_key) are only ever queued once (e.g. a GitHub delivery id).
    dedupe_key: str | None = None


def _final_content(event: OutgoingEvent) -> dict[str, Any]:
    return with_mentions(event.content) if event.event_type == "m.room.message" else event.content


class Sealer(Protocol):
    """Turns an event into what is sent: `(m.room.encrypted, ciphertext)` in an encrypted room."""

    async def seal(self, room_id: str, event_type: str, content: dict[str, Any]) -> tuple[str, dict[str, Any]]: ...


def backoff_seconds(attempts: int) -> float:
    """0.5 s, 1 s, 2 s ... capped at 5 minutes, with ±20% jitter so rooms don't retry in lockstep."""
    base = min(MAX_BACKOFF_S, 0.5 * 2 ** max(0, attempts - 1))
    return base * random.uniform(0.8, 1.2)


class Outbox:
    def __init__(
        self,
        db: Database,
        gateway: MatrixGateway,
        profiles: Profiles,
        metrics: Metrics,
        *,
        parallel_rooms: int = 8,
        sealer: Sealer | None = None,
    ) -> None:
        self.db = db
        self.sealer = sealer
        self.gateway = gateway
        self.profiles = profiles
        self.metrics = metrics
        self._install_id = ""
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._rewake: set[str] = set()
        self._slots = asyncio.Semaphore(parallel_rooms)
        self._waiters: dict[int, asyncio.Future[str | None]] = {}
        self._depth = 0
        self._running = False
        self._janitor: asyncio.Task[None] | None = None
        self.joined_cache: set[tuple[str, str]] = set()

    # -- the public side ---------------------------------------------------------------------

    async def enqueue(self, events: Sequence[OutgoingEvent]) -> list[int]:
        """Durably queue `events` (one transaction). Returns the new row ids; deduplicated
        events are left out. When this returns, the events survive a crash.

        Every `m.room.message` gets an explicit `m.mentions` (empty unless it has its own), so
        no text the bridge relays pings anyone by accident."""
        if not events:
            return []
        rows = await self._insert(self.db, events)
        self.queued(rows)
        return [r["id"] for r in rows]

    async def enqueue_in(self, conn: asyncpg.Connection, events: Sequence[OutgoingEvent]) -> list[Any]:
        """Queue `events` inside the caller's transaction on `conn`, so they are stored if and only
        if the caller's own writes are (a feed's items marked seen, say). Call `queued(rows)` once
        the transaction has committed: only then may the sender see the rows."""
        if not events:
            return []
        return await self._insert(conn, events)

    def queued(self, rows: Sequence[Any]) -> None:
        """Rows returned by `enqueue_in` are committed: count them and wake their rooms."""
        self._depth += len(rows)
        self.metrics.outbox_depth.set(self._depth)
        for room_id in {r["room_id"] for r in rows}:
            self.wake(room_id)

    async def _insert(self, conn: Database | asyncpg.Connection, events: Sequence[OutgoingEvent]) -> list[Any]:
        bot = self.gateway.bot_mxid
        return await conn.fetch(
            """
            INSERT INTO outbox (room_id, sender, event_type, content, dedupe_key)
            SELECT r, s, t, c::jsonb, d
              FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS u(r, s, t, c, d)
            ON CONFLICT (room_id, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING
            RETURNING id, room_id
            """,
            [e.room_id for e in events],
            [e.sender or bot for e in events],
            [e.event_type for e in events],
            [jsonsafe.dumps_storable(_final_content(e)) for e in events],
            [e.dedupe_key for e in events],
        )

    async def wait_sent(self, ids: Sequence[int], timeout: float) -> list[str | None]:
        """Wait until the rows are delivered; returns event ids (None for a row that failed
        for good). Raises TimeoutError. Only for callers that promised to answer after sending."""
        loop = asyncio.get_running_loop()
        futures = []
        for row_id in ids:
            fut = self._waiters.get(row_id)
            if fut is None:
                fut = self._waiters[row_id] = loop.create_future()
            futures.append(fut)
        # A row may have been delivered before we started waiting.
        done = await self.db.fetch(
            "SELECT id, event_id, failed_at FROM outbox WHERE id = ANY($1::bigint[]) "
            "AND (sent_at IS NOT NULL OR failed_at IS NOT NULL)",
            list(ids),
        )
        for row in done:
            self._resolve(row["id"], row["event_id"])
        try:
            # asyncio.wait leaves the futures alone when we time out or are cancelled (a stop):
            # they are shared with other waiters of the same rows.
            _, pending = await asyncio.wait(futures, timeout=timeout)
            if pending:
                raise TimeoutError
            return [f.result() for f in futures]
        finally:
            for row_id in ids:
                fut = self._waiters.get(row_id)
                if fut is not None and fut.done():
                    self._waiters.pop(row_id, None)

    @property
    def depth(self) -> int:
        return self._depth

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._install_id = str(
            await self.db.fetchval("SELECT value FROM bridge_meta WHERE key = 'install_id'")
        )
        rows = await self.db.fetch(
            "SELECT room_id, count(*) AS n FROM outbox "
            "WHERE sent_at IS NULL AND failed_at IS NULL GROUP BY room_id"
        )
        self._depth = sum(r["n"] for r in rows)
        self.metrics.outbox_depth.set(self._depth)
        self._running = True
        if self._depth:
            log.info("Outbox: resuming %d undelivered message(s) in %d room(s)", self._depth, len(rows))
        for r in rows:
            self.wake(r["room_id"])
        self._janitor = asyncio.create_task(self._janitor_loop(), name="outbox-janitor")

    async def stop(self) -> None:
        self._running = False
        tasks = list(self._workers.values())
        if self._janitor:
            tasks.append(self._janitor)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._workers.clear()

    def wake(self, room_id: str) -> None:
        if not self._running:
            return
        task = self._workers.get(room_id)
        if task is not None and not task.done():
            self._rewake.add(room_id)
            return
        self._workers[room_id] = asyncio.create_task(self._room_worker(room_id), name=f"outbox:{room_id}")

    # -- delivery ---------------------------------------------------------------------------------

    def _txn_id(self, row_id: int) -> str:
        return f"hookshot_py.{self._install_id}.{row_id}"

    def _resolve(self, row_id: int, event_id: str | None) -> None:
        fut = self._waiters.pop(row_id, None)
        if fut is not None and not fut.done():
            fut.set_result(event_id)

    async def _room_worker(self, room_id: str) -> None:
        try:
            async with self._slots:
                while self._running:
                    self._rewake.discard(room_id)
                    rows = await self.db.fetch(
                        "SELECT id, sender, event_type, content, attempts, next_attempt_at, "
                        "GREATEST(0, EXTRACT(EPOCH FROM (next_attempt_at - now())))::float AS wait_s "
                        "FROM outbox WHERE room_id = $1 AND sent_at IS NULL AND failed_at IS NULL "
                        "ORDER BY id LIMIT 100",
                        room_id,
                    )
                    if not rows:
                        if room_id in self._rewake:
                            continue
                        return
                    for row in rows:
                        if not self._running:
                            return
                        if row["wait_s"]:
                            await asyncio.sleep(row["wait_s"])
                        await self._deliver(room_id, row)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("Outbox worker for %s crashed; retrying in 5 s", room_id)
            await asyncio.sleep(5)
            self._workers.pop(room_id, None)
            self.wake(room_id)
            return
        finally:
            if self._workers.get(room_id) is asyncio.current_task():
                del self._workers[room_id]
        if room_id in self._rewake:
            self.wake(room_id)

    async def _deliver(self, room_id: str, row: Any) -> None:
        """Send one row, retrying transient failures until it is sent or fails for good."""
        attempts = row["attempts"]
        sender = row["sender"]
        recheck = False
        while self._running:
            attempts += 1
            try:
                if (room_id, sender) not in self.joined_cache:
                    await self.profiles.ensure_applied(sender)
                    await self.gateway.ensure_joined(room_id, sender, recheck=recheck)
                    self.joined_cache.add((room_id, sender))
                event_type, content = row["event_type"], row["content"]
                if self.sealer is not None:
                    event_type, content = await self.sealer.seal(room_id, event_type, content)
                event_id = await self.gateway.send_event(room_id, sender, event_type, content, self._txn_id(row["id"]))
            except SendError as e:
                if e.errcode == "M_FORBIDDEN":
                    # Maybe we were kicked or never joined: forget what we knew and join again.
                    self.joined_cache.discard((room_id, sender))
                    recheck = True
                if e.permanent or (e.errcode == "M_FORBIDDEN" and attempts >= 5):
                    await self._fail(row["id"], attempts, str(e))
                    return
                delay = e.retry_after_ms / 1000 if e.retry_after_ms is not None else backoff_seconds(attempts)
                await self._retry_later(row["id"], attempts, str(e), delay)
                await asyncio.sleep(delay)
                continue
            except Exception as e:  # joining or encrypting failed (homeserver down, no invite...)
                delay = backoff_seconds(attempts)
                await self._retry_later(row["id"], attempts, f"{type(e).__name__}: {e}", delay)
                await asyncio.sleep(delay)
                continue
            await self.db.execute(
                "UPDATE outbox SET sent_at = now(), event_id = $2, attempts = $3 WHERE id = $1",
                row["id"], event_id, attempts,
            )
            self._done(row["id"], event_id, ok=True)
            return

    async def _retry_later(self, row_id: int, attempts: int, error: str, delay: float) -> None:
        self.metrics.outbox_send_failures.labels(kind="transient").inc()
        log.warning("Outbox: send of #%d failed (attempt %d), retrying in %.1fs: %s", row_id, attempts, delay, error)
        await self.db.execute(
            "UPDATE outbox SET attempts = $2, last_error = $3, "
            "next_attempt_at = now() + make_interval(secs => $4) WHERE id = $1",
            row_id, attempts, error, delay,
        )

    async def _fail(self, row_id: int, attempts: int, error: str) -> None:
        self.metrics.outbox_send_failures.labels(kind="permanent").inc()
        log.error("Outbox: giving up on #%d after %d attempt(s): %s", row_id, attempts, error)
        await self.db.execute(
            "UPDATE outbox SET failed_at = now(), attempts = $2, last_error = $3 WHERE id = $1",
            row_id, attempts, error,
        )
        self._done(row_id, None, ok=False)

    def _done(self, row_id: int, event_id: str | None, *, ok: bool) -> None:
        self._depth = max(0, self._depth - 1)
        self.metrics.outbox_depth.set(self._depth)
        if ok:
            self.metrics.outbox_sent.inc()
        self._resolve(row_id, event_id)

    async def _janitor_loop(self) -> None:
        """Forget delivered rows after a while (dedupe keys are remembered as long)."""
        while True:
            try:
                deleted = await self.db.execute(
                    f"DELETE FROM outbox WHERE sent_at < now() - interval '{SENT_RETENTION}'"
                )
                await self.db.execute(
                    f"DELETE FROM appservice_txns WHERE processed_at < now() - interval '{SENT_RETENTION}'"
                )
                log.debug("Outbox janitor: %s", deleted)
            except Exception:
                log.exception("Outbox janitor failed")
            await asyncio.sleep(3600)
