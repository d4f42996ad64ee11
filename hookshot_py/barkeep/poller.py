"""The background loop that brings Barkeep's review news into rooms.

Barkeep sends no webhooks. Every `barkeep.pollIntervalSeconds` the poller asks, for each
repository some room is connected to, the state of its watched commits in batches
(`POST /api/commits/{repo}`), diffs it with the snapshots kept in Postgres, queues the
announcements in the outbox and then stores the new snapshots.

With several bridge processes, one polls at a time: the poller runs under the `barkeep-poll`
lease (`db/leases.py`), and a process that dies passes it on within seconds.

Each announcement is queued with a dedupe key made of the commit, its kind and the state it
announces (`approved_at`, the comment count): if the bridge dies after queuing and before
storing the snapshots, the next poll computes the same announcements and the outbox drops them,
so nothing is posted twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hookshot_py.aio import wait_event
from hookshot_py.barkeep.accounts import BarkeepAccounts, UnknownInstance
from hookshot_py.barkeep.errors import BarkeepError
from hookshot_py.barkeep.format import Announcement
from hookshot_py.barkeep.models import Commit, CommitSnapshot
from hookshot_py.barkeep.poll import PollResult, poll_repo
from hookshot_py.barkeep.repo import EVENT_TYPE, events_of, instance_of, repo_of
from hookshot_py.barkeep.store import WatchStore
from hookshot_py.connections.base import Connection
from hookshot_py.connections.manager import ConnectionManager
from hookshot_py.db.leases import LeasedJob, Leases
from hookshot_py.matrix.outbox import Outbox, OutgoingEvent

log = logging.getLogger(__name__)

# Shas per batch request: keeps the form body and Barkeep's work per request small.
BATCH_SIZE = 100
PRUNE_EVERY_S = 3600.0
# Which connection `events` entry each announcement kind belongs to.
EVENT_OF_KIND = {"approved": "approvals", "withdrawn": "approvals", "comments": "comments"}


@dataclass
class PollStats:
    repos: int = 0
    commits: int = 0
    queued: int = 0  # announcements newly queued (not counting those the outbox already had)
    errors: int = 0


def dedupe_key(instance: str, repo: str, ann: Announcement, commit: Commit, previous: CommitSnapshot | None) -> str:
    """The same key for the same news, however often it is computed."""
    base = f"barkeep:{instance}:{repo}:{ann.sha}"
    if ann.kind == "approved":
        return f"{base}:approved:{commit.approved_at}"
    if ann.kind == "withdrawn":
        return f"{base}:withdrawn:{previous.approved_at if previous else None}"
    return f"{base}:comments:{commit.comment_count}"


def notice(ann: Announcement) -> dict[str, Any]:
    return {"msgtype": "m.notice", "body": ann.plain, "format": "org.matrix.custom.html", "formatted_body": ann.html}


class BarkeepPoller:
    def __init__(
        self,
        accounts: BarkeepAccounts,
        store: WatchStore,
        manager: ConnectionManager,
        outbox: Outbox,
        interval: float,
        leases: Leases | None = None,
    ) -> None:
        self.leases = leases
        self._job: LeasedJob | None = None
        self.accounts = accounts
        self.store = store
        self.manager = manager
        self.outbox = outbox
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._failing: dict[tuple[str, str], str] = {}  # the error last logged per repository
        self._last_prune: float | None = None  # monotonic time of the last prune

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        if self.leases is not None:
            if self._job is None:
                self._job = LeasedJob(self.leases, "barkeep-poll", self.interval, self._round)
                self._job.start()
        elif self._task is None:
            self._task = asyncio.create_task(self._run(), name="barkeep-poller")

    async def stop(self) -> None:
        job, self._job = self._job, None
        if job is not None:
            await job.stop()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def wake(self) -> None:
        """Poll now rather than at the end of the interval (on whichever process polls)."""
        if self._job is not None:
            self._job.wake()
        self._wake.set()

    async def _round(self) -> None:
        await self.poll_once()
        if self._last_prune is None or time.monotonic() - self._last_prune > PRUNE_EVERY_S:
            self._last_prune = time.monotonic()
            if pruned := await self.store.prune():
                log.info("Stopped watching %d old Barkeep commit(s)", pruned)

    async def _run(self) -> None:
        """Without leases (one process, tests): poll every interval."""
        while True:
            try:
                await self._round()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Polling Barkeep failed")
            await wait_event(self._wake, self.interval)
            self._wake.clear()

    # -- one round ----------------------------------------------------------------------------------

    def _repos(self) -> dict[tuple[str, str], list[Connection]]:
        repos: dict[tuple[str, str], list[Connection]] = {}
        for conn in self.manager.all(EVENT_TYPE):
            repos.setdefault((instance_of(conn), repo_of(conn)), []).append(conn)
        return repos

    async def poll_once(self) -> PollStats:
        """Poll every connected repository once. Failures are logged, never raised."""
        stats = PollStats()
        async with self._lock:
            for (instance, repo), conns in self._repos().items():
                stats.repos += 1
                try:
                    await self._poll_repo(instance, repo, conns, stats)
                except BarkeepError as e:
                    stats.errors += 1
                    self._report(instance, repo, e.describe())
                except UnknownInstance as e:
                    stats.errors += 1
                    self._report(instance, repo, str(e))
                except asyncio.CancelledError:
                    raise
                except Exception:
                    stats.errors += 1
                    log.exception("Polling Barkeep %s for %s failed", instance, repo)
                else:
                    if self._failing.pop((instance, repo), None) is not None:
                        log.info("Polling Barkeep %s for %s works again", instance, repo)
        return stats

    def _report(self, instance: str, repo: str, text: str) -> None:
        """Log a failure when it starts or changes, not at every poll."""
        if self._failing.get((instance, repo)) != text:
            self._failing[(instance, repo)] = text
            log.warning("Polling Barkeep %s for %s failed: %s", instance, repo, text)

    async def _poll_repo(self, instance: str, repo: str, conns: list[Connection], stats: PollStats) -> None:
        watched = await self.store.watched(instance, repo)
        if not watched:
            return
        client = self.accounts.client(instance)
        for chunk in _chunks(watched, BATCH_SIZE):
            result = await poll_repo(client, repo, chunk)
            stats.commits += len(result.commits)
            stats.queued += await self._announce(instance, repo, conns, chunk, result)
            await self.store.save(instance, repo, result.snapshots)
            if result.missing:
                forgotten = await self.store.mark_missing(instance, repo, result.missing)
                if forgotten:
                    log.info("Barkeep %s has no commits %s in %s for a day: no longer watched",
                             instance, forgotten, repo)

    async def _announce(
        self,
        instance: str,
        repo: str,
        conns: list[Connection],
        previous: dict[str, CommitSnapshot | None],
        result: PollResult,
    ) -> int:
        events: list[OutgoingEvent] = []
        for ann in result.announcements:
            key = dedupe_key(instance, repo, ann, result.commits[ann.sha], previous.get(ann.sha))
            for conn in conns:
                if EVENT_OF_KIND[ann.kind] in events_of(conn):
                    events.append(OutgoingEvent(conn.room_id, notice(ann), dedupe_key=key))
        if not events:
            return 0
        queued = await self.outbox.enqueue(events)
        if len(queued) < len(events):
            log.info("%d Barkeep announcement(s) for %s were queued before; not again", len(events) - len(queued), repo)
        return len(queued)


def _chunks(watched: dict[str, CommitSnapshot | None], size: int) -> Iterator[dict[str, CommitSnapshot | None]]:
    items = list(watched.items())
    for start in range(0, len(items), size):
        yield dict(items[start : start + size])
