"""`HookSync`: the background job that converges forge hooks whose change did not go through.

A change the forge refused (an outage, a rate limit, a credential gone) or that had to wait
(room state edited by hand) leaves its `forge_webhooks` row marked `needs_sync` with a
`next_sync_at`. The job's one entry point, `run_due()`, claims the rows that are due
(`WebhookStore.claim_due`) and converges each (`ProjectHooks.converge`), which either clears the
mark or pushes `next_sync_at` back with exponential backoff (and the forge's `Retry-After`).
The marks live in Postgres, so a restart resumes where the last process stopped; with several
processes (issue 11), `claim_due` becomes a lease and nothing else changes.

The loop (`background.Background`) sleeps until the earliest due row (at most `idle_s`), or until
`wake()`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from hookshot_py.background import Background
from hookshot_py.forges.webhooks import HookKey, WebhookStore

__all__ = ["HookSync"]

log = logging.getLogger(__name__)

IDLE_S = 300.0


class HookSync(Background):
    def __init__(
        self,
        store: WebhookStore,
        converge: Callable[[HookKey], Awaitable[bool]],
        *,
        clock: Callable[[], float] = time.time,
        idle_s: float = IDLE_S,
    ) -> None:
        super().__init__(f"hook-sync-{store.service}")
        self.store = store
        self.converge = converge
        self.clock = clock
        self.idle_s = idle_s

    async def run_due(self) -> int:
        """Converge every row that is due now; returns how many converged."""
        done = 0
        for row in await self.store.claim_due(self.clock()):
            try:
                done += await self.converge(row.key)
            except Exception:
                log.exception("Converging the %s webhook of %s failed", self.store.service, row.project)
        return done

    async def round(self) -> float:
        try:
            await self.run_due()
            due = await self.store.next_due()
        except Exception:
            log.exception("The %s webhook sync failed; trying again later", self.store.service)
            due = None
        delay = self.idle_s if due is None else min(self.idle_s, max(0.0, due - self.clock()))
        return max(delay, 1.0)
