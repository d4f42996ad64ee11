"""The outbox's sender: delivers each room's pending rows, several at a time, in causal order.

A room is delivered by one process at a time: the one holding its session lock (`Cluster`), also
recorded in `outbox_rooms`. While it holds the room, the sender keeps the room's pending rows in
memory (read from the database, or handed over by this process's own commits) and sends every row
whose barrier is met — no pending row of the room has an id up to the row's barrier — up to
`window` rows in flight. Overlapping requests' rows therefore go out together; a row queued after
another was answered waits for it, across a backlog, an outage, a crash and other processes.

Exactly once: transaction ids are derived from the row, and every event carries the id as a
marker (`MARKER`). A row whose earlier attempt may have reached the homeserver — its answer was
lost, or the process delivering it died — is looked up among the room's recent events before it
is sent again, since a restarted homeserver has forgotten the transaction ids it saw.

Delivery is recorded in batches (one UPDATE for many rows), always before the room is released.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from hookshot_py.aio import wait_event
from hookshot_py.db.cluster import Cluster
from hookshot_py.matrix.gateway import MatrixGateway, SendError
from hookshot_py.matrix.outbox_store import CHANNEL, OutboxStore, Row
from hookshot_py.matrix.profiles import Profiles
from hookshot_py.metrics import Metrics

log = logging.getLogger(__name__)

MARKER = "uk.half-shot.hookshot_py.txn_id"
MAX_BACKOFF_S = 300.0
LOAD_LIMIT = 256  # rows of a room read at once
SWEEP_S = 2.0  # how often rooms left by a dead process are looked for
DEPTH_REFRESH_S = 5.0
SEND_TIMEOUT_S = 60.0
RELEASE_WAIT_S = 10.0
# Delivered rows are recorded this long after the first of a batch, or as soon as the batch has
# STATUS_BATCH rows: one UPDATE for several sends even when they go out one after the other (~35 ms
# apart through Synapse), and at thousands per second few enough unrecorded rows that a read of the
# room's queue (LOAD_LIMIT rows) is never all delivered ones. A crash loses at most this much of
# the record; those rows are looked up by their markers, never sent twice.
STATUS_DELAY_S = 0.25
STATUS_BATCH = 64
# A marker is looked for among events up to this much older than its row (clocks differ).
CLOCK_MARGIN_S = 300.0


class HandOver(Exception):
    """This process may not deliver the room (it is encrypted and another process holds the
    encryption device): the room is released for that process."""


class Sealer(Protocol):
    """Turns an event into what is sent: `(m.room.encrypted, ciphertext)` in an encrypted room."""

    async def seal(self, room_id: str, event_type: str, content: dict[str, Any]) -> tuple[str, dict[str, Any]]: ...

    async def may_deliver(self, room_id: str) -> bool: ...


@dataclass(frozen=True)
class SenderSettings:
    window: int = 32  # rows of one room in flight at once
    max_sending: int = 128  # sends in flight, all rooms together
    max_rooms: int = 256  # rooms this process delivers at once (each holds an advisory lock)


def with_marker(raw: str, txn_id: str) -> bytes:
    """The stored JSON object with the marker added last (so it wins over a key of that name)."""
    inner = raw.strip()[1:-1].strip()
    return ("{" + (inner + ", " if inner else "") + f'"{MARKER}": "{txn_id}"' + "}").encode()


def backoff_seconds(attempts: int) -> float:
    """0.5 s, 1 s, 2 s ... capped at 5 minutes, with ±20% jitter so rooms don't retry in lockstep."""
    base = min(MAX_BACKOFF_S, 0.5 * 2 ** max(0, attempts - 1))
    return base * random.uniform(0.8, 1.2)


class _Room:
    """A room this process is delivering: its known pending rows, sorted by id."""

    def __init__(self, room_id: str) -> None:
        self.id = room_id
        self.rows: dict[int, Row] = {}
        self.ids: list[int] = []
        self.inflight: set[int] = set()
        self.sends: set[asyncio.Task[None]] = set()
        self.complete = False  # `rows` holds every pending row of the room
        self.stale = True  # read the room from the database before trusting `rows`
        self.suspect_next_load = False  # the previous holder died: what it sent is unknown
        # Rows delivered (or given up) in this session: a read that began before their record was
        # written still shows them pending, and must not bring them back.
        self.delivered: set[int] = set()
        self.again = False  # woken while finishing: run once more
        self.handover = False  # another process must deliver it (`HandOver`)
        self.event = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def add(self, row: Row) -> None:
        if row.id not in self.rows:
            self.rows[row.id] = row
            bisect.insort(self.ids, row.id)

    def remove(self, row_id: int) -> None:
        self.delivered.add(row_id)
        if self.rows.pop(row_id, None) is not None:
            del self.ids[bisect.bisect_left(self.ids, row_id)]

    def scanned(self, window: int) -> list[int]:
        """The rows worth looking at for sending: the head of the queue. Further rows wait for
        rows before them or, if they overlapped those, get their turn as the head advances."""
        return self.ids[: max(4 * window, 64)]

    def wake(self) -> None:
        self.again = True
        self.event.set()


class _StatusWriter:
    """Writes delivered rows in batches; `flush()` waits until everything given is written."""

    def __init__(self, store: OutboxStore) -> None:
        self.store = store
        self.unwritten: set[int] = set()
        self._buffer: list[tuple[int, str, int]] = []
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def add(self, row_id: int, event_id: str, attempts: int) -> None:
        self.unwritten.add(row_id)
        self._buffer.append((row_id, event_id, attempts))
        if len(self._buffer) >= STATUS_BATCH:
            self._full.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="outbox-status")

    async def _run(self) -> None:
        await wait_event(self._full, STATUS_DELAY_S)  # let more deliveries join the write
        self._full.clear()
        while self._buffer:
            batch, self._buffer = self._buffer, []
            try:
                await self.store.mark_sent(batch)
            except Exception as e:
                log.warning("Outbox: recording %d delivered row(s) failed (%s); retrying", len(batch), e)
                self._buffer[:0] = batch
                await asyncio.sleep(1.0)
                continue
            for row_id, _, _ in batch:
                self.unwritten.discard(row_id)

    async def flush(self) -> None:
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)


class Sender:
    def __init__(
        self,
        store: OutboxStore,
        cluster: Cluster,
        gateway: MatrixGateway,
        profiles: Profiles,
        metrics: Metrics,
        settings: SenderSettings,
        txn_id: Callable[[int], str],
        finished: Callable[[int, str | None], None],
        sealer: Sealer | None = None,
    ) -> None:
        self.store = store
        self.cluster = cluster
        self.gateway = gateway
        self.profiles = profiles
        self.metrics = metrics
        self.settings = settings
        self.txn_id = txn_id
        self.finished = finished
        self.sealer = sealer
        self.rooms: dict[str, _Room] = {}
        self.joined: set[tuple[str, str]] = set()
        self._joining: dict[tuple[str, str], asyncio.Lock] = {}
        self._sending = asyncio.Semaphore(settings.max_sending)
        self._room_slots = asyncio.Semaphore(settings.max_rooms)
        self._status = _StatusWriter(store)
        self._running = False
        self._sweeper: asyncio.Task[None] | None = None
        self._releasing: set[asyncio.Task[None]] = set()
        self.depth_from_db: Callable[[int], None] = lambda n: None
        cluster.subscribe(CHANNEL, self._notified)
        cluster.on_lost(self._lost)
        cluster.on_reconnect(self.resync)

    # -- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        self._running = True
        await self.resync()
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="outbox-sweep")

    async def stop(self) -> None:
        self._running = False
        tasks = [r.task for r in self.rooms.values() if r.task is not None]
        if self._sweeper is not None:
            tasks.append(self._sweeper)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*self._releasing, return_exceptions=True)
        self.rooms.clear()
        try:
            await asyncio.wait_for(self._status.flush(), 5)
        except TimeoutError:
            log.warning("Outbox: delivered rows not recorded at stop; they are checked before any resend")

    async def resync(self) -> None:
        """Wake every room with pending rows (at start, and after notifications may have been lost)."""
        for room_id in await self.store.pending_rooms():
            self.wake(room_id, stale=True)

    # -- being told about rows ----------------------------------------------------------------------

    def accept(self, rows: list[Row], foreign: set[str]) -> None:
        """Rows this process just committed. A room being delivered takes them at once, unless
        they must follow rows of other processes it may not have read yet (`foreign` rooms)."""
        by_room: dict[str, list[Row]] = {}
        for row in rows:
            by_room.setdefault(row.room_id, []).append(row)
        for room_id, room_rows in by_room.items():
            room = self.rooms.get(room_id)
            if room is None or room.stale or room_id in foreign:
                self.wake(room_id, stale=True)
            elif room.complete:
                for row in room_rows:
                    room.add(row)
                room.wake()
            else:  # a backlog: read the room again (a read under way may predate these rows)
                self.wake(room_id, stale=True)

    def wake(self, room_id: str, *, stale: bool = False) -> None:
        if not self._running:
            return
        room = self.rooms.get(room_id)
        if room is None:
            room = self.rooms[room_id] = _Room(room_id)
        if stale:
            room.stale = True
        room.wake()
        if room.task is None:
            room.task = asyncio.create_task(self._room_worker(room), name=f"outbox:{room_id}")

    def _notified(self, payload: str) -> None:
        origin, _, room_id = payload.partition("\t")
        if origin != self.store.origin and room_id:
            self.wake(room_id, stale=True)

    def _lost(self) -> None:
        """The coordination connection is gone, and with it every room lock: stop at once."""
        for room in list(self.rooms.values()):
            for row_id in room.inflight:
                if row_id in room.rows:
                    room.rows[row_id].uncertain = True
            if room.task is not None:
                room.task.cancel()

    # -- one room -----------------------------------------------------------------------------------

    async def _room_worker(self, room: _Room) -> None:
        try:
            while self._running:
                room.again = False
                async with self._room_slots:
                    if self.sealer is not None and not await self.sealer.may_deliver(room.id):
                        room.again = False
                        return  # encrypted, and the encryption device is another process's
                    if not await self._try_lock(room.id):
                        room.again = False
                        return  # another process delivers it; that process was woken too
                    try:
                        previous = await self.store.claim_room(room.id)
                        room.rows.clear()
                        room.ids.clear()
                        room.delivered.clear()
                        room.complete = False
                        room.stale = True
                        room.suspect_next_load = previous is not None
                        if previous is not None:
                            log.info("Outbox: %s was left by %s mid-delivery; checking what reached the "
                                     "homeserver before resending", room.id, previous)
                        await self._deliver(room)
                    finally:
                        # Finished even when this worker is cancelled (stopping): `stop()` waits.
                        release = asyncio.create_task(self._release(room), name=f"outbox-release:{room.id}")
                        self._releasing.add(release)
                        release.add_done_callback(self._releasing.discard)
                        await asyncio.shield(release)
                if room.handover:
                    # Wake the others: the one holding the encryption device takes the room.
                    await self.cluster.notify(CHANNEL, f"{self.store.origin}\t{room.id}")
                    return
                if not room.again:
                    return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("Outbox worker for %s crashed; retrying in 5 s", room.id)
            await asyncio.sleep(5)
            room.again = True
        finally:
            room.task = None
            if self.rooms.get(room.id) is room:
                del self.rooms[room.id]
            if room.again and self._running:
                self.wake(room.id, stale=True)

    async def _try_lock(self, room_id: str) -> bool:
        try:
            return await self.cluster.try_lock(room_id)
        except ConnectionError:
            return False  # the coordination connection is down: resync after it is back

    async def _release(self, room: _Room) -> None:
        """Record what was delivered, then let another process have the room."""
        cut = [i for i in room.inflight if i in room.rows]
        for task in list(room.sends):
            task.cancel()
        await asyncio.gather(*room.sends, return_exceptions=True)
        try:
            await asyncio.wait_for(self._status.flush(), RELEASE_WAIT_S)
            if cut:  # sends interrupted by a stop may have reached the homeserver: check them first
                await self.store.mark_uncertain(cut)
            await self.store.release_room(room.id)
        except Exception as e:
            # Left as held: the next holder checks what reached the homeserver before resending.
            log.warning("Outbox: could not record the state of %s (%s); the next holder will check it",
                        room.id, e or type(e).__name__)
        await self.cluster.unlock(room.id)

    async def _deliver(self, room: _Room) -> None:
        loop = asyncio.get_running_loop()
        while self._running and not room.handover:
            room.event.clear()
            if room.stale or (not room.complete and len(room.ids) < LOAD_LIMIT // 2):
                await self._load(room)
            now = loop.time()
            if any((r := room.rows[i]).uncertain and i not in room.inflight and r.due <= now
                   for i in room.scanned(self.settings.window)):
                await self._verify(room)
                continue
            next_due = self._start_sends(room, now)
            if not room.ids and not room.inflight:
                if room.complete and not room.stale:
                    return
                room.stale = True
                continue
            await wait_event(room.event, None if next_due is None else max(0.0, next_due - now))

    async def _load(self, room: _Room) -> None:
        # Cleared before reading: rows handed over while the read is under way mark it again.
        room.stale = False
        rows = await self.store.head(room.id, LOAD_LIMIT)
        room.complete = len(rows) < LOAD_LIMIT
        if rows:  # nothing below the first pending row can come back
            room.delivered = {i for i in room.delivered if i >= rows[0].id}
        for row in rows:
            if row.id in room.delivered or row.id in self._status.unwritten or row.id in room.rows:
                continue
            if room.suspect_next_load:
                row.uncertain = True
            room.add(row)
        room.suspect_next_load = False
        if not room.complete and len(room.ids) > 4 * LOAD_LIMIT:
            # Handed-over rows piled up behind a backlog: keep the head, read the rest later.
            for row_id in room.ids[2 * LOAD_LIMIT:]:
                if row_id not in room.inflight:
                    room.rows.pop(row_id)
            room.ids = [i for i in room.ids if i in room.rows]

    def _start_sends(self, room: _Room, now: float) -> float | None:
        """Start sending every row whose barrier is met, up to the window. Returns when the next
        row in backoff is due, if one is waiting."""
        free = self.settings.window - len(room.inflight)
        if free <= 0 or not room.ids:
            return None
        head = room.ids[0]
        next_due: float | None = None
        for row_id in room.scanned(self.settings.window):
            if row_id in room.inflight:
                continue
            row = room.rows[row_id]
            if row.barrier >= head:
                continue  # a row it must follow is still pending
            if row.due > now or row.uncertain:
                next_due = row.due if next_due is None else min(next_due, row.due)
                continue
            room.inflight.add(row_id)
            task = asyncio.create_task(self._send(room, row), name=f"outbox-send:{room.id}")
            room.sends.add(task)
            task.add_done_callback(room.sends.discard)
            free -= 1
            if free == 0:
                break
        return next_due

    # -- one row ------------------------------------------------------------------------------------

    async def _send(self, room: _Room, row: Row) -> None:
        try:
            async with self._sending:
                await self._attempt(room, row)
        except asyncio.CancelledError:
            row.uncertain = True
            raise
        except Exception:
            log.exception("Outbox: sending #%d crashed; retrying later", row.id)
            row.due = asyncio.get_running_loop().time() + backoff_seconds(row.attempts)
        finally:
            room.inflight.discard(row.id)
            room.event.set()

    async def _attempt(self, room: _Room, row: Row) -> None:
        row.attempts += 1
        txn_id = self.txn_id(row.id)
        try:
            await self._ensure_joined(room.id, row.sender, recheck=row.attempts > 1)
            event_type = row.event_type
            body: dict[str, Any] | bytes
            if self.sealer is None:
                body = with_marker(row.raw, txn_id)
            else:  # encrypted at send time: the marker goes on the envelope
                event_type, sealed = await self.sealer.seal(room.id, event_type, row.decoded())
                body = {**sealed, MARKER: txn_id}
            event_id = await self.gateway.send_event(room.id, row.sender, event_type, body, txn_id,
                                                     timeout=SEND_TIMEOUT_S)
        except SendError as e:
            await self._failed(room, row, e)
            return
        except HandOver as e:
            log.info("Outbox: handing %s over: %s", room.id, e)
            row.attempts -= 1  # nothing was sent
            room.handover = True
            room.event.set()
            return
        except Exception as e:  # joining or sealing failed (homeserver down, no invite...)
            await self._retry(row, f"{type(e).__name__}: {e}", backoff_seconds(row.attempts), uncertain=False)
            return
        self._sent(room, row, event_id)

    async def _failed(self, room: _Room, row: Row, e: SendError) -> None:
        if e.errcode == "M_FORBIDDEN":
            self.joined.discard((room.id, row.sender))  # kicked, or never joined: join again
        if e.permanent or (e.errcode == "M_FORBIDDEN" and row.attempts >= 5):
            room.remove(row.id)
            self.metrics.outbox_send_failures.labels(kind="permanent").inc()
            log.error("Outbox: giving up on #%d after %d attempt(s): %s", row.id, row.attempts, e)
            try:
                await self.store.fail(row.id, row.attempts, str(e))
            finally:
                self.finished(row.id, None)
            return
        delay = e.retry_after_ms / 1000 if e.retry_after_ms is not None else backoff_seconds(row.attempts)
        # No answer, or a server error: the homeserver may have stored the event all the same.
        await self._retry(row, str(e), delay, uncertain=e.maybe_stored)

    async def _retry(self, row: Row, error: str, delay: float, *, uncertain: bool) -> None:
        self.metrics.outbox_send_failures.labels(kind="transient").inc()
        log.warning("Outbox: send of #%d failed (attempt %d), retrying in %.1fs: %s",
                    row.id, row.attempts, delay, error)
        row.due = asyncio.get_running_loop().time() + delay
        row.uncertain = row.uncertain or uncertain
        try:
            await self.store.retry_later(row.id, row.attempts, error, delay, row.uncertain)
        except Exception as e:
            log.warning("Outbox: could not record the failure of #%d: %s", row.id, e)

    def _sent(self, room: _Room, row: Row, event_id: str) -> None:
        room.remove(row.id)
        self._status.add(row.id, event_id, row.attempts)
        self.metrics.outbox_sent.inc()
        self.finished(row.id, event_id)

    async def _ensure_joined(self, room_id: str, sender: str, *, recheck: bool) -> None:
        key = (room_id, sender)
        if key in self.joined:
            return
        lock = self._joining.setdefault(key, asyncio.Lock())
        async with lock:
            if key not in self.joined:
                await self.profiles.ensure_applied(sender)
                await self.gateway.ensure_joined(room_id, sender, recheck=recheck)
                self.joined.add(key)
        self._joining.pop(key, None)

    # -- exactly once across homeserver restarts ----------------------------------------------------

    async def _verify(self, room: _Room) -> None:
        """Rows that may already be in the room: look for their markers among its recent events;
        those found are delivered, the others are sent again."""
        loop = asyncio.get_running_loop()
        suspects = [r for r in room.rows.values() if r.uncertain and r.id not in room.inflight and r.due <= loop.time()]
        wanted = {self.txn_id(r.id): r for r in suspects}
        oldest = min(r.created_at for r in suspects) - CLOCK_MARGIN_S
        try:
            found = await self.gateway.find_markers(room.id, MARKER, set(wanted), oldest)
        except Exception as e:
            delay = backoff_seconds(max(r.attempts for r in suspects) + 1)
            log.warning("Outbox: cannot check what reached %s yet (%s); retrying in %.1fs", room.id, e, delay)
            for r in suspects:
                r.due = loop.time() + delay
            return
        for txn_id, row in wanted.items():
            event_id = found.get(txn_id)
            if event_id is not None:
                log.info("Outbox: #%d had reached the homeserver (%s); not sending it again", row.id, event_id)
                self._sent(room, row, event_id)
            else:
                row.uncertain = False

    # -- rooms left by dead processes ---------------------------------------------------------------

    async def _sweep_loop(self) -> None:
        loop = asyncio.get_running_loop()
        last_depth = 0.0
        while True:
            await asyncio.sleep(SWEEP_S)
            try:
                for room_id in await self.store.orphaned_rooms():
                    if room_id not in self.rooms:
                        log.info("Outbox: taking over %s from a process that stopped", room_id)
                        self.wake(room_id, stale=True)
                self.metrics.outbox_rooms.set(sum(1 for r in self.rooms.values() if self.cluster.holds(r.id)))
                self.metrics.outbox_in_flight.set(sum(len(r.inflight) for r in self.rooms.values()))
                if loop.time() - last_depth > DEPTH_REFRESH_S:
                    last_depth = loop.time()
                    self.depth_from_db(await self.store.depth())
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.debug("Outbox sweep failed: %s", e)
