"""Homeserver transactions handled once across bridge processes.

The homeserver sends a transaction to one URL; behind a load balancer any process may get it, and
a retry (after a timeout) may reach another process while the first is still handling it. So a
process claims the transaction in Postgres before handling it: the claim names the process and
holds for `lease_s` seconds (renewed while handling). Another process receiving the same
transaction waits for the claimer to finish, then answers as it would have; if the claimer died,
its claim expires and the transaction is handled again (events handled before the crash are
handled twice: state and membership are idempotent, and commands are claimed on their own,
`commands/runs.py`). A transaction is identified by its id *and* content digest: a restarted
homeserver may number its transactions from 1 again.

Claims are committed without waiting for the disk (`synchronous_commit = off`): losing one in a
Postgres crash only means handling a transaction again, which the above makes harmless, and the
homeserver's stream of transactions (one at a time) does not wait for an fsync twice each.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import AsyncIterator

from hookshot_py.db.cluster import alive
from hookshot_py.db.database import Database

log = logging.getLogger(__name__)

LEASE_S = 30.0
OWNER_ALIVE = alive("appservice_txns.owner")


class Claim(enum.Enum):
    OURS = "ours"  # handle it now
    DONE = "done"  # handled already: acknowledge
    BUSY = "busy"  # another process handles it now


class TransactionClaims:
    def __init__(self, db: Database, owner: str, lease_s: float = LEASE_S) -> None:
        self.db = db
        self.owner = owner
        self.lease_s = lease_s

    async def claim(self, txn_id: str, digest: bytes) -> Claim:
        row = await self.db.fetchrow(
            f"""
            WITH lazy AS (SELECT set_config('synchronous_commit', 'off', true)), claimed AS (
                INSERT INTO appservice_txns (txn_id, digest, owner, claimed_until, processed_at)
                VALUES ($1, $2, $3, now() + make_interval(secs => $4), NULL)
                ON CONFLICT (txn_id, digest) DO UPDATE
                   SET owner = EXCLUDED.owner, claimed_until = EXCLUDED.claimed_until
                 WHERE appservice_txns.processed_at IS NULL
                   AND (appservice_txns.claimed_until < now() OR NOT {OWNER_ALIVE})
                RETURNING 1
            )
            SELECT EXISTS (SELECT 1 FROM claimed) AS ours,
                   (SELECT processed_at IS NOT NULL FROM appservice_txns WHERE txn_id = $1 AND digest = $2) AS done
              FROM lazy
            """,
            txn_id, digest, self.owner, self.lease_s,
        )
        if row is None:
            return Claim.BUSY
        if row["ours"]:
            return Claim.OURS
        return Claim.DONE if row["done"] else Claim.BUSY

    async def done(self, txn_id: str, digest: bytes) -> None:
        await self.db.execute(
            "WITH lazy AS (SELECT set_config('synchronous_commit', 'off', true)) "
            "UPDATE appservice_txns SET processed_at = now(), claimed_until = NULL FROM lazy "
            "WHERE txn_id = $1 AND digest = $2 AND owner = $3",
            txn_id, digest, self.owner,
        )

    async def release(self, txn_id: str, digest: bytes) -> None:
        """Handling failed for now: the homeserver's retry may be handled by any process."""
        await self.db.execute(
            "UPDATE appservice_txns SET claimed_until = now() - interval '1 second' "
            "WHERE txn_id = $1 AND digest = $2 AND owner = $3 AND processed_at IS NULL",
            txn_id, digest, self.owner,
        )

    @contextlib.asynccontextmanager
    async def kept(self, txn_id: str, digest: bytes) -> AsyncIterator[None]:
        """Renew the claim while the transaction is being handled."""

        async def renew() -> None:
            while True:
                await asyncio.sleep(self.lease_s / 3)
                try:
                    await self.db.execute(
                        "UPDATE appservice_txns SET claimed_until = now() + make_interval(secs => $4) "
                        "WHERE txn_id = $1 AND digest = $2 AND owner = $3 AND processed_at IS NULL",
                        txn_id, digest, self.owner, self.lease_s,
                    )
                except Exception as e:
                    log.warning("Renewing the claim on transaction %s failed: %s", txn_id, e)

        task = asyncio.create_task(renew(), name=f"txn-claim:{txn_id}")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
