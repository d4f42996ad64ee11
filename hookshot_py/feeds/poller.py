"""The feed poller: fetch due feeds, post what is new, back off what fails.

Each process runs one poller with `pollConcurrency` slots. A free slot claims the most overdue
feed (store.claim_due: a lease in Postgres, so several processes share the work and each feed is
polled once per interval). A poll fetches conditionally; a 304 or a body identical to the last one
is not parsed again; otherwise the document is parsed in a worker thread. The outcome is committed
by the store in one transaction with the outbox rows.

Scheduling: the next poll comes after the feed's interval (the smallest its rooms ask for, never
below the admin's minimum) with ±10% jitter, later if the server's `Cache-Control: max-age` asks
(up to 6 h). A failing feed backs off exponentially from its interval up to 6 h, or as long as
`Retry-After` says (up to 24 h). Rooms with `notifyOnFailure` are told once when a feed starts
failing (at once for a definite failure, on the second failure in a row for a transient one) and
once when it works again.

The first successful poll of a feed records its items without posting them. Later, new items are
posted oldest first (by date when every new item has one, else in reverse document order); past
`maxItemsPerPoll`, the newest are posted followed by "… and N more".
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from hookshot_py.config import FeedsConfig
from hookshot_py.feeds.fetch import FeedFetcher, FetchError, FetchResult
from hookshot_py.feeds.format import FeedInfo, failure_message, item_message, more_message, recovery_message
from hookshot_py.feeds.parse import FeedItem, FeedParseError, ParsedFeed, parse_feed
from hookshot_py.feeds.store import FeedRow, FeedStore, Fetched, LostLease, Overview, Plan, Subscription
from hookshot_py.matrix.outbox import OutgoingEvent
from hookshot_py.metrics import Metrics

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 6 * 3600.0
MAX_CACHE_WAIT_S = 6 * 3600.0
MAX_RETRY_AFTER_S = 24 * 3600.0
JITTER = 0.1
TRANSIENT_FAILURES_BEFORE_NOTICE = 2
MAX_IDLE_S = 5.0  # how long an idle poller waits before looking again (other processes add feeds)


def jittered(seconds: float) -> float:
    return seconds * random.uniform(1 - JITTER, 1 + JITTER)


def publication_order(items: list[FeedItem]) -> list[FeedItem]:
    """Oldest first: by date when every item has one, else the reverse of the document's order
    (feeds list the newest first)."""
    if items and all(i.published is not None for i in items):
        indexed = list(enumerate(items))
        # Same date: the one later in the document is older.
        indexed.sort(key=lambda p: (p[1].published, -p[0]))
        return [item for _, item in indexed]
    return list(reversed(items))


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def dedupe_key(url: str, item: FeedItem) -> str:
    """The same item in the same room is queued once, even via two spellings of the feed URL."""
    return f"feed:{hashlib.sha256(url.encode()).hexdigest()[:16]}:{item.id}"


@dataclass
class PollStats:
    polled: int = 0
    failed: int = 0
    posted: int = 0  # messages queued


class FeedPoller:
    def __init__(
        self,
        store: FeedStore,
        fetcher: FeedFetcher,
        config: FeedsConfig,
        executor: ThreadPoolExecutor,
        metrics: Metrics | None = None,
    ) -> None:
        self.metrics = metrics
        self.store = store
        self.fetcher = fetcher
        self.config = config
        self.executor = executor
        self.owner = f"{uuid.uuid4().hex[:12]}"
        self.stats = PollStats()
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def lease_s(self) -> float:
        return self.config.poll_timeout_seconds + 60.0

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="feed-poller")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        inflight = list(self._inflight.values())
        for t in inflight:
            t.cancel()
        await asyncio.gather(*inflight, return_exceptions=True)
        if self._inflight:
            await self.store.release(self.owner, list(self._inflight))
            self._inflight.clear()

    def wake(self) -> None:
        """Look for due feeds now (one was added)."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                free = self.config.poll_concurrency - len(self._inflight)
                if free > 0:
                    rows = await self.store.claim_due(self.owner, free, self.lease_s)
                    for row in rows:
                        self._spawn(row)
                    if rows and len(rows) == free:
                        await self._wait(MAX_IDLE_S)  # a slot frees up, or more may be due
                        continue
                overview = await self.store.overview()
                self._gauges(overview)
                due_in = overview.due_in
                await self._wait(MAX_IDLE_S if due_in is None else min(MAX_IDLE_S, max(0.05, due_in)))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("The feed poller's loop failed; retrying in 5 s")
                await asyncio.sleep(5)

    async def _wait(self, seconds: float) -> None:
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel racing the wake-up.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        self._wake.clear()

    def _gauges(self, overview: Overview) -> None:
        if self.metrics is not None:
            self.metrics.feeds_count.set(overview.feeds)
            self.metrics.feeds_failing.labels(reason="http").set(overview.failing_http)
            self.metrics.feeds_failing.labels(reason="parsing").set(overview.failing_parsing)

    def _spawn(self, row: FeedRow) -> None:
        task = asyncio.create_task(self.poll(row), name=f"feed:{row.url[:80]}")
        self._inflight[row.url] = task

        def done(_: asyncio.Task[None]) -> None:
            if self._inflight.get(row.url) is task:
                del self._inflight[row.url]
            self._wake.set()

        task.add_done_callback(done)

    async def poll_due(self) -> PollStats:
        """Poll every feed due now and wait for the outcome (tests, and a manual nudge)."""
        before = PollStats(self.stats.polled, self.stats.failed, self.stats.posted)
        while rows := await self.store.claim_due(self.owner, self.config.poll_concurrency, self.lease_s):
            await asyncio.gather(*(self.poll(row) for row in rows))
        return PollStats(
            self.stats.polled - before.polled, self.stats.failed - before.failed, self.stats.posted - before.posted
        )

    # -- one feed -----------------------------------------------------------------------------------

    async def poll(self, row: FeedRow) -> None:
        """Poll one claimed feed and commit the outcome. Never raises (but for cancellation)."""
        started = time.monotonic()
        try:
            try:
                fetched = await self.fetch(row)
            except FetchError as e:
                await self._failed(row, str(e), transient=e.transient, retry_after=e.retry_after)
                return
            except FeedParseError as e:
                await self._failed(row, f"not a feed: {e}", transient=False, retry_after=None)
                return
            await self._succeeded(row, fetched)
        except LostLease:
            log.info("Feed %s was taken over by another process; this poll's outcome is dropped", row.url)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("Polling feed %s failed", row.url)
        finally:
            if self.metrics is not None:
                self.metrics.feeds_fetch_ms.set((time.monotonic() - started) * 1000)

    async def fetch(self, row: FeedRow) -> Fetched:
        result = await self.fetcher.fetch(
            row.url, etag=row.etag, last_modified=row.last_modified, time_limit=self.config.poll_timeout_seconds
        )
        if result.status == 304 or result.body is None:
            return Fetched(None, result.etag, result.last_modified, None, None, result.max_age)
        digest = body_digest(result.body)
        if row.initialized and digest == row.body_hash:
            return Fetched(None, result.etag, result.last_modified, digest, None, result.max_age)
        parsed = await self.parse(result)
        if parsed.skipped:
            log.warning("Feed %s: %d broken item(s) skipped", row.url, parsed.skipped)
        return Fetched(parsed.title, result.etag, result.last_modified, digest, parsed.items, result.max_age)

    async def parse(self, result: FetchResult) -> ParsedFeed:
        assert result.body is not None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, parse_feed, result.body, result.final_url)

    def interval(self, subs: list[Subscription]) -> float:
        cfg = self.config
        return float(min(s.state.interval(cfg.poll_interval_seconds, cfg.min_interval) for s in subs))

    async def _succeeded(self, row: FeedRow, fetched: Fetched) -> None:
        max_age = fetched.max_age
        fetch_key = uuid.uuid4().hex

        def planner(current: FeedRow, subs: list[Subscription], new: list[FeedItem]) -> Plan:
            next_in = jittered(self.interval(subs))
            if max_age is not None:
                next_in = max(next_in, min(max_age, MAX_CACHE_WAIT_S))
            events: list[OutgoingEvent] = []
            if current.initialized and new:
                info = FeedInfo(current.url, fetched.title or current.title)
                ordered = publication_order(new)
                shown = ordered[-self.config.max_items_per_poll :]
                hidden = len(ordered) - len(shown)
                for sub in subs:
                    for it in shown:
                        content = item_message(sub.state, info, it, fetch_key)
                        events.append(OutgoingEvent(sub.room_id, content, dedupe_key=dedupe_key(current.url, it)))
                    if hidden:
                        events.append(OutgoingEvent(sub.room_id, more_message(sub.state, info, hidden)))
            elif not current.initialized:
                log.info("Feed %s: first poll, %d current item(s) recorded without posting", current.url, len(new))
            if current.failure_notified:
                events += [
                    OutgoingEvent(s.room_id, recovery_message(s.state_key)) for s in subs if s.state.notify_on_failure
                ]
            if current.failures:
                log.info("Feed %s works again after %d failure(s)", current.url, current.failures)
            return Plan(events, next_in)

        plan = await self.store.commit_success(self.owner, row.url, fetched, planner)
        self.stats.polled += 1
        if plan is None:
            log.info("Feed %s has no subscriber any more: forgotten", row.url)
            return
        self.stats.posted += len(plan.events)

    async def _failed(self, row: FeedRow, error: str, *, transient: bool, retry_after: float | None) -> None:
        def planner(current: FeedRow, subs: list[Subscription]) -> Plan:
            backoff = min(self.interval(subs) * 2 ** (current.failures - 1), MAX_BACKOFF_S)
            next_in = jittered(backoff)
            if retry_after is not None:
                next_in = max(next_in, min(retry_after, MAX_RETRY_AFTER_S))
            events: list[OutgoingEvent] = []
            due = not transient or current.failures >= TRANSIENT_FAILURES_BEFORE_NOTICE
            if due and not current.failure_notified:
                events = [
                    OutgoingEvent(s.room_id, failure_message(s.state_key, error))
                    for s in subs
                    if s.state.notify_on_failure
                ]
            return Plan(events, next_in)

        if row.failures == 0:
            log.warning("Feed %s failed: %s", row.url, error)
        else:
            log.info("Feed %s failed again (%d in a row): %s", row.url, row.failures + 1, error)
        plan = await self.store.commit_failure(self.owner, row.url, error, planner)
        self.stats.failed += 1
        if plan is not None:
            self.stats.posted += len(plan.events)

