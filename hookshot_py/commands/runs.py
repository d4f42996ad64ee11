"""Each bot command runs once across bridge processes, and again only if its runner died.

A command is claimed in Postgres (`command_runs`, keyed by its event id) before it runs; the
claim is a lease renewed while the command runs. A homeserver transaction redone by another
process (its first handler died), or delivered to two processes, finds the claim and skips the
command. When the process running a command dies, its lease expires and one process (the
`command-redo` leased job) runs the command again, as long as it is recent; the replies it had
already queued are not posted twice, since a command's replies are deduplicated in the outbox by
the command's event id and their rank (`CommandContext`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from hookshot_py import jsonsafe
from hookshot_py.db.cluster import alive
from hookshot_py.db.database import Database
from hookshot_py.db.leases import LeasedJob, Leases

log = logging.getLogger(__name__)

LEASE_S = 30.0
OWNER_ALIVE = alive("command_runs.owner")
REDO_EVERY_S = 10.0


class CommandRuns:
    def __init__(self, db: Database, owner: str, lease_s: float = LEASE_S) -> None:
        self.db = db
        self.owner = owner
        self.lease_s = lease_s
        self._redo: LeasedJob | None = None

    async def claim(self, event: dict[str, Any]) -> bool:
        """True if this process is to run the command (nobody claimed it before)."""
        return bool(await self.db.fetchval(
            """
            INSERT INTO command_runs (event_id, room_id, event, owner, lease_until)
            VALUES ($1, $2, $3::jsonb, $4, now() + make_interval(secs => $5))
            ON CONFLICT (event_id) DO NOTHING RETURNING true
            """,
            event.get("event_id"), event.get("room_id", ""), jsonsafe.dumps_storable(event), self.owner, self.lease_s,
        ))

    @contextlib.asynccontextmanager
    async def running(self, event_id: str) -> AsyncIterator[None]:
        """Keep the claim while the command runs; mark it done after (failed or not)."""

        async def renew() -> None:
            while True:
                await asyncio.sleep(self.lease_s / 3)
                with contextlib.suppress(Exception):
                    await self.db.execute(
                        "UPDATE command_runs SET lease_until = now() + make_interval(secs => $3) "
                        "WHERE event_id = $1 AND owner = $2 AND done_at IS NULL",
                        event_id, self.owner, self.lease_s,
                    )

        task = asyncio.create_task(renew(), name=f"command:{event_id}")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            try:
                await self.db.execute("UPDATE command_runs SET done_at = now() WHERE event_id = $1", event_id)
            except Exception as e:
                log.warning("Could not record command %s as done (%s); it may run again", event_id, e)

    async def orphaned(self, max_age_s: float) -> list[dict[str, Any]]:
        """Commands whose runner died (lease expired, not done) and that are recent: claimed by
        this process to run them again."""
        rows = await self.db.fetch(
            f"""
            UPDATE command_runs SET owner = $1, lease_until = now() + make_interval(secs => $2)
             WHERE done_at IS NULL AND (lease_until < now() OR NOT {OWNER_ALIVE})
               AND created_at > now() - make_interval(secs => $3)
            RETURNING event
            """,
            self.owner, self.lease_s, max_age_s,
        )
        return [r["event"] for r in rows]

    def start_redo(self, leases: Leases, run: Callable[[dict[str, Any]], Awaitable[None]], max_age_s: float) -> None:
        async def redo() -> None:
            for event in await self.orphaned(max_age_s):
                log.info("Running command %s again: the process running it stopped", event.get("event_id"))
                await run(event)

        self._redo = LeasedJob(leases, "command-redo", REDO_EVERY_S, redo)
        self._redo.start()

    async def stop(self) -> None:
        if self._redo is not None:
            await self._redo.stop()
