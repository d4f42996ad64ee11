"""Background work that must run once, whatever the number of bridge processes: leases in Postgres.

A lease is a row of `leases` (name, owner, expires_at, last_run_at). Its owner renews it well
before it expires; another process takes it once it expired, or at once when its owner has no
connection to Postgres any more (it died), so a dead process's work passes on within one renewal
period (`ttl / 3`), at most `ttl` seconds plus that for a process cut off from Postgres.

Two ways to use it:
- `LeasedJob(leases, name, interval, job)`: `job()` runs every `interval` seconds on one process
  at a time (pollers, hook convergence, janitors). The holder records when it last ran, so a
  new holder carries on at the same pace instead of running at once. `wake()` asks the holder,
  whichever process that is, to run now.
- `async with leases.hold(name) as held:` an exclusive section (a one-off job) that keeps its
  lease renewed while it runs; `held` is False when another process has it.

Work done under a lease must still tolerate being done twice in rare cases (a holder cut off
from the database for longer than the ttl): dedupe keys in the outbox, idempotent writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from hookshot_py.aio import wait_event
from hookshot_py.db.cluster import Cluster, alive
from hookshot_py.db.database import Database
from hookshot_py.metrics import Metrics

log = logging.getLogger(__name__)

LEASE_TTL_S = 6.0
OWNER_ALIVE = alive("leases.owner")
CHANNEL = "hookshot_leases"  # payload: "wake <name>" or "free <name>"


@dataclass(frozen=True)
class LeaseInfo:
    name: str
    owner: str
    expires_at: datetime
    last_run_at: datetime | None


class Leases:
    def __init__(self, db: Database, cluster: Cluster, metrics: Metrics | None = None) -> None:
        self.db = db
        self.cluster = cluster
        self.metrics = metrics
        self.owner = cluster.process_id
        self._waiters: dict[str, asyncio.Event] = {}
        self._requested: set[str] = set()  # jobs asked to run now
        cluster.subscribe(CHANNEL, self._notified)

    async def acquire(self, name: str, ttl: float = LEASE_TTL_S) -> float | None:
        """Take or renew the lease. Returns the seconds since its job last ran (inf: never), or
        None when another process holds it."""
        row = await self.db.fetchrow(
            f"""
            INSERT INTO leases (name, owner, expires_at) VALUES ($1, $2, now() + make_interval(secs => $3))
            ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
             WHERE leases.owner = EXCLUDED.owner OR leases.expires_at < now() OR NOT {OWNER_ALIVE}
            RETURNING COALESCE(EXTRACT(EPOCH FROM (now() - last_run_at))::float8, 'Infinity'::float8) AS since
            """,
            name, self.owner, ttl,
        )
        return None if row is None else float(row["since"])

    async def ran(self, name: str) -> None:
        """Record that the job of this lease starts a run now."""
        await self.db.execute("UPDATE leases SET last_run_at = now() WHERE name = $1 AND owner = $2", name, self.owner)

    async def release(self, name: str) -> None:
        """Give the lease up now (a clean stop), so a standby takes over at once."""
        await self.db.execute(
            "UPDATE leases SET expires_at = now() - interval '1 second' WHERE name = $1 AND owner = $2",
            name, self.owner,
        )
        await self.notify(f"free {name}")

    async def holders(self) -> list[LeaseInfo]:
        """Every lease and its owner: what an admin monitors (docs/scale-out.md)."""
        rows = await self.db.fetch("SELECT name, owner, expires_at, last_run_at FROM leases ORDER BY name")
        return [LeaseInfo(**dict(r)) for r in rows]

    async def notify(self, payload: str) -> None:
        await self.db.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)

    @contextlib.asynccontextmanager
    async def hold(self, name: str, ttl: float = LEASE_TTL_S) -> AsyncIterator[bool]:
        """An exclusive section: yields True while this process holds the lease (renewed in the
        background), False when another process has it."""
        if await self.acquire(name, ttl) is None:
            yield False
            return
        renew = asyncio.create_task(self._keep(name, ttl), name=f"lease:{name}")
        try:
            yield True
        finally:
            renew.cancel()
            await asyncio.gather(renew, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self.release(name)

    async def _keep(self, name: str, ttl: float) -> None:
        while True:
            await asyncio.sleep(ttl / 3)
            try:
                if await self.acquire(name, ttl) is None:
                    log.warning("Lost the lease %s to another process", name)
                    return
            except Exception as e:
                log.warning("Renewing the lease %s failed: %s", name, e)

    # -- waking a job on whichever process holds it --------------------------------------------------

    def event(self, name: str) -> asyncio.Event:
        """Set when the lease is freed or its job is asked to run."""
        return self._waiters.setdefault(name, asyncio.Event())

    def request(self, name: str) -> None:
        self._requested.add(name)
        self.event(name).set()

    def take_request(self, name: str) -> bool:
        if name in self._requested:
            self._requested.discard(name)
            return True
        return False

    def _notified(self, payload: str) -> None:
        kind, _, name = payload.partition(" ")
        if kind == "wake":
            self._requested.add(name)
        waiter = self._waiters.get(name)
        if waiter is not None:
            waiter.set()


class LeasedJob:
    """Runs `job()` every `interval` seconds on one process at a time (see the module doc)."""

    def __init__(
        self,
        leases: Leases,
        name: str,
        interval: float,
        job: Callable[[], Awaitable[object]],
        *,
        ttl: float = LEASE_TTL_S,
    ) -> None:
        self.leases = leases
        self.name = name
        self.interval = interval
        self.job = job
        self.ttl = ttl
        self.held = False
        self.runs = 0
        self._wake = leases.event(name)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=f"leased:{self.name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if self.held:
            self._set_held(False)
            with contextlib.suppress(Exception):
                await self.leases.release(self.name)

    def _set_held(self, held: bool) -> None:
        self.held = held
        if self.leases.metrics is not None:
            self.leases.metrics.leases_held.labels(name=self.name).set(1 if held else 0)

    def wake(self) -> None:
        """Run the job now, on whichever process holds the lease."""
        self.leases.request(self.name)
        if not self.held:
            asyncio.ensure_future(self._notify_wake())

    async def _notify_wake(self) -> None:
        try:
            await self.leases.notify(f"wake {self.name}")
        except Exception as e:
            log.debug("Could not wake %s on the other processes: %s", self.name, e)

    async def _loop(self) -> None:
        renew_every = self.ttl / 3
        while True:
            sleep = renew_every
            try:
                since = await self.leases.acquire(self.name, self.ttl)
                if since is None:
                    if self.held:
                        log.info("Lease %s passed to another process", self.name)
                    self._set_held(False)
                else:
                    if not self.held:
                        log.info("This process now runs %s", self.name)
                    self._set_held(True)
                    if self.leases.take_request(self.name) or since >= self.interval:
                        await self.leases.ran(self.name)
                        await self._run()
                        since = 0.0
                    sleep = min(renew_every, max(0.0, self.interval - since))
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("Lease %s: %s", self.name, e)
            await wait_event(self._wake, sleep)
            self._wake.clear()

    async def _run(self) -> None:
        """The job, with the lease renewed meanwhile (a run may last longer than the ttl)."""
        keep = asyncio.create_task(self.leases._keep(self.name, self.ttl))
        try:
            await self.job()
            self.runs += 1
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("The %s job failed", self.name)
        finally:
            keep.cancel()
            await asyncio.gather(keep, return_exceptions=True)
