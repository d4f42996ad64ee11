"""The durable outbox: the only door from the bridge to Matrix messages.

Every message is a Postgres row before anyone is told it was accepted. Concurrent callers share
one INSERT (group commit): each is answered once the statement holding its row has committed, and
a failed statement answers every caller in it with the error. Rows are delivered in causal order
(`causal.py`): a row queued by a request that started after another was answered is posted after
it; rows of overlapping requests are sent together, up to `outbox.roomWindow` per room
(`outbox_sender.py`). A row is retried with backoff (honouring 429's `retry_after_ms`) until the
homeserver takes it; its transaction id and content marker are derived from the row, so it is
posted once across crashes, homeserver restarts and several bridge processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from hookshot_py import jsonsafe
from hookshot_py.db.cluster import Cluster
from hookshot_py.db.database import Database
from hookshot_py.db.leases import LeasedJob, Leases
from hookshot_py.matrix import causal
from hookshot_py.matrix.gateway import MatrixGateway
from hookshot_py.matrix.mentions import with_mentions
from hookshot_py.matrix.outbox_sender import (
    MARKER,
    Sealer,
    Sender,
    SenderSettings,
    backoff_seconds,
)
from hookshot_py.matrix.outbox_store import Inserted, OutboxStore, Row
from hookshot_py.matrix.profiles import Profiles
from hookshot_py.metrics import Metrics

__all__ = ["MARKER", "Outbox", "OutgoingEvent", "Sealer", "SenderSettings", "backoff_seconds"]

log = logging.getLogger(__name__)

MAX_ROWS_PER_COMMIT = 500
# INSERTs in flight at once: while one waits for its commit to reach the disk, the next batch is
# written, and Postgres flushes both with one fsync.
CONCURRENT_COMMITS = 4
JANITOR_INTERVAL_S = 3600.0
WAIT_POLL_S = 0.5  # waiting for rows another process delivers
RECENTLY_FINISHED = 10_000


@dataclass(frozen=True)
class OutgoingEvent:
    room_id: str
    content: dict[str, Any]
    sender: str | None = None  # None: the bridge bot
    event_type: str = "m.room.message"
    # Rows with the same (room, dedupe_key) are only ever queued once (e.g. a GitHub delivery id).
    dedupe_key: str | None = None


def _final_content(event: OutgoingEvent) -> dict[str, Any]:
    """Every `m.room.message` gets an explicit `m.mentions` (empty unless it has its own), so no
    text the bridge relays pings anyone by accident."""
    return with_mentions(event.content) if event.event_type == "m.room.message" else event.content


@dataclass
class _Waiting:
    """One caller of `enqueue`, waiting for the commit that holds its rows."""

    mark: int
    request: causal.Mark | None  # the request queuing them, if any
    events: Sequence[OutgoingEvent]
    encoded: list[tuple[str, str, str, str, str | None]]
    future: asyncio.Future[list[int]]


class Outbox:
    def __init__(
        self,
        db: Database,
        gateway: MatrixGateway,
        profiles: Profiles,
        metrics: Metrics,
        *,
        cluster: Cluster | None = None,
        leases: Leases | None = None,
        settings: SenderSettings | None = None,
        sealer: Sealer | None = None,
    ) -> None:
        self.db = db
        self.gateway = gateway
        self.metrics = metrics
        self._own_cluster = cluster is None
        self.cluster = cluster or Cluster(db.dsn)
        self.leases = leases or Leases(db, self.cluster, metrics)
        self.store = OutboxStore(db, self.cluster.process_id)
        self.sender = Sender(
            self.store, self.cluster, gateway, profiles, metrics, settings or SenderSettings(),
            self._txn_id, self._finished, sealer,
        )
        self.sender.depth_from_db = self._set_depth
        self._install_id = ""
        self._committed = 0  # the highest outbox id this process has committed
        # The mark a new request takes: the same, leaving out rows of requests still unanswered.
        self._answered = 0
        self._queue: list[_Waiting] = []
        self._flushers: set[asyncio.Task[None]] = set()
        # Flushers still inside their loop. Counted by the flusher itself as it leaves, not by a done
        # callback: a request queued in the same loop step as the last flusher left must start one.
        self._flushing = 0
        self._waiters: dict[int, asyncio.Future[str | None]] = {}
        self._recent: OrderedDict[int, str | None] = OrderedDict()
        self._depth = 0
        self._janitor = LeasedJob(self.leases, "outbox-janitor", JANITOR_INTERVAL_S, self.store.forget_old)

    # -- queuing ------------------------------------------------------------------------------------

    def begin_request(self, *, until_answered: bool = False) -> causal.Mark:
        """A request starts in this context: what it queues follows what this process had
        committed by now, rows of unanswered requests aside (see `causal.py`). Listeners call it
        for every request. With `until_answered`, the rows this request queues count for later
        requests only from `answered(mark)`, which the caller must call before answering."""
        return causal.begin(self._answered, open=until_answered)

    def answered(self, mark: causal.Mark) -> None:
        """The request of `mark` is about to be answered: requests starting from now follow its
        rows. Rows it queues later (a task it spawned) count from their commit."""
        mark.open = False
        self._answered = max(self._answered, mark.value)

    async def enqueue(self, events: Sequence[OutgoingEvent]) -> list[int]:
        """Durably queue `events`. Returns the new row ids (deduplicated events are left out); when
        this returns, the events survive a crash. Events of one call are posted in their order."""
        if not events:
            return []
        encoded = self._encoded(events)
        mark = causal.current()
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._queue.append(_Waiting(mark.value if mark is not None else self._committed, mark, events, encoded, future))
        if self._flushing < CONCURRENT_COMMITS and (len(self._queue) == 1 or not self._flushing):
            self._flushing += 1
            task = asyncio.create_task(self._flush(), name="outbox-commit")
            self._flushers.add(task)
            task.add_done_callback(self._flushers.discard)
        ids = await future
        if mark is not None and ids:
            mark.raise_to(max(ids))
        return ids

    async def _flush(self) -> None:
        """Group commit: everything queued while the previous INSERT ran goes in the next one."""
        try:
            await self._flush_queue()
        finally:
            self._flushing -= 1

    async def _flush_queue(self) -> None:
        while self._queue:
            batch: list[_Waiting] = []
            rows = 0
            while self._queue and (not batch or rows + len(self._queue[0].encoded) <= MAX_ROWS_PER_COMMIT):
                waiting = self._queue.pop(0)
                batch.append(waiting)
                rows += len(waiting.encoded)
            started = time.perf_counter()
            try:
                inserted = await self.store.insert(self.db, [(w.mark, w.encoded) for w in batch])
            except BaseException as e:
                for w in batch:
                    if not w.future.done():
                        w.future.set_exception(e)
                if isinstance(e, asyncio.CancelledError):
                    raise
                continue
            self.metrics.outbox_commits.inc()
            self.metrics.outbox_commit_seconds.inc(time.perf_counter() - started)
            self.metrics.outbox_queued.inc(len(inserted))
            self._committed_rows(batch, inserted)

    def _committed_rows(self, batch: list[_Waiting], inserted: list[Inserted]) -> None:
        """The rows are durable: count them, hand them to the sender, answer the callers."""
        ids: list[list[int]] = [[] for _ in batch]
        handed: list[Row] = []
        foreign: set[str] = set()
        for row in inserted:
            waiting = batch[row.group]
            event = waiting.events[row.index]
            ids[row.group].append(row.id)
            encoded = waiting.encoded[row.index]
            handed.append(Row(row.id, row.room_id, encoded[1], event.event_type, encoded[3], row.barrier))
            if row.foreign:
                foreign.add(row.room_id)
        for w, row_ids in zip(batch, ids, strict=True):
            if row_ids and (w.request is None or not w.request.open):
                self._answered = max(self._answered, max(row_ids))
        if inserted:
            self._committed = max(self._committed, inserted[-1].id)
            self._set_depth(self._depth + len(inserted))
            self.sender.accept(handed, foreign)
        for w, row_ids in zip(batch, ids, strict=True):
            if not w.future.done():
                w.future.set_result(row_ids)

    async def enqueue_in(
        self, conn: Database | asyncpg.Connection, events: Sequence[OutgoingEvent]
    ) -> list[Inserted]:
        """Queue `events` inside the caller's transaction on `conn`, so they are stored if and only
        if the caller's own writes are (a feed's items marked seen, say). Call `queued(rows)` once
        the transaction has committed: only then may the sender see the rows. Rows give their id
        and room as `row["id"]`, `row["room_id"]`."""
        if not events:
            return []
        mark = causal.current()
        encoded = self._encoded(events)
        return await self.store.insert(conn, [(mark.value if mark is not None else self._committed, encoded)])

    def _encoded(self, events: Sequence[OutgoingEvent]) -> list[tuple[str, str, str, str, str | None]]:
        bot = self.gateway.bot_mxid
        return [
            (e.room_id, e.sender or bot, e.event_type, jsonsafe.dumps_storable(_final_content(e)), e.dedupe_key)
            for e in events
        ]

    def queued(self, rows: Sequence[Inserted]) -> None:
        """Rows returned by `enqueue_in` are committed: count them and wake their rooms."""
        if not rows:
            return
        top = max(r.id for r in rows)
        self._committed = max(self._committed, top)
        mark = causal.current()
        if mark is not None:
            mark.raise_to(top)
        if mark is None or not mark.open:
            self._answered = max(self._answered, top)
        self._set_depth(self._depth + len(rows))
        for room_id in {r.room_id for r in rows}:
            self.sender.wake(room_id, stale=True)

    # -- waiting for delivery -----------------------------------------------------------------------

    async def wait_sent(self, ids: Sequence[int], timeout: float) -> list[str | None]:
        """Wait until the rows are delivered; returns event ids (None for a row that failed
        for good). Raises TimeoutError. Only for callers that promised to answer after sending."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[str | None]] = []
        for row_id in ids:
            fut = self._waiters.get(row_id)
            if fut is None:
                fut = self._waiters[row_id] = loop.create_future()
                if row_id in self._recent:
                    fut.set_result(self._recent[row_id])
            futures.append(fut)
        try:
            async with asyncio.timeout(timeout):
                while not all(f.done() for f in futures):
                    # Rows delivered by another process are seen in the database.
                    pending = [i for i, f in zip(ids, futures, strict=True) if not f.done()]
                    for row_id, event_id in await self.store.finished(pending):
                        self._resolve(row_id, event_id)
                    if waiting := [f for f in futures if not f.done()]:
                        await asyncio.wait(waiting, timeout=WAIT_POLL_S)
            return [f.result() for f in futures]
        finally:
            for row_id in ids:
                fut = self._waiters.get(row_id)
                if fut is not None and fut.done():
                    self._waiters.pop(row_id, None)

    def _finished(self, row_id: int, event_id: str | None) -> None:
        self._set_depth(max(0, self._depth - 1))
        self._recent[row_id] = event_id
        if len(self._recent) > RECENTLY_FINISHED:
            self._recent.popitem(last=False)
        self._resolve(row_id, event_id)

    def _resolve(self, row_id: int, event_id: str | None) -> None:
        fut = self._waiters.get(row_id)
        if fut is not None and not fut.done():
            fut.set_result(event_id)

    # -- state --------------------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Rows accepted and not delivered yet (by any process; refreshed from the database)."""
        return self._depth

    def _set_depth(self, depth: int) -> None:
        self._depth = depth
        self.metrics.outbox_depth.set(depth)

    @property
    def joined_cache(self) -> set[tuple[str, str]]:
        """(room, sender) pairs known to be joined: forget one when it is not anymore."""
        return self.sender.joined

    def _txn_id(self, row_id: int) -> str:
        return f"hookshot_py.{self._install_id}.{row_id}"

    # -- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        self._install_id = str(await self.db.fetchval("SELECT value FROM bridge_meta WHERE key = 'install_id'"))
        if self._own_cluster:
            await self.cluster.start()
        depth = await self.store.depth()
        self._set_depth(depth)
        if depth:
            log.info("Outbox: resuming %d undelivered message(s)", depth)
        await self.sender.start()
        self._janitor.start()

    async def resync(self) -> None:
        """Look at every room with pending rows again (this process may deliver more rooms now)."""
        await self.sender.resync()

    async def stop(self) -> None:
        await self._janitor.stop()
        if self._flushers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(*self._flushers, return_exceptions=True), 5)
        await self.sender.stop()
        if self._own_cluster:
            await self.cluster.stop()
