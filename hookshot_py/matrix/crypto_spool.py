"""What the other bridge processes hand the encryption leader, kept in Postgres until it is handled.

One process holds the bot's Olm device (`crypto.py`, the crypto lock). The homeserver's
transactions reach any process, so the others write what only the device can handle here before
they acknowledge the transaction: to-device events and key counts (`extras`), encrypted room events
(`event`) and membership changes of rooms that may be encrypted (`state`). The leader reads the
spool in order, handles each item, then deletes it; a NOTIFY tells it there is something new, and
it reads the spool at start too, so nothing waits for a leader that is not there yet.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Literal

from hookshot_py.db.database import Database

log = logging.getLogger(__name__)

CHANNEL = "hookshot_crypto_spool"
Kind = Literal["extras", "event", "state"]
KINDS: tuple[Kind, ...] = ("extras", "event", "state")
# A spool nobody reads stops growing at about this many items (ids are consecutive); the oldest
# are kept, since room keys come before the events that need them. What is refused is logged.
MAX_ITEMS = 100_000


@dataclass(frozen=True)
class Item:
    id: int
    kind: Kind
    body: Any


class CryptoSpool:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def put(self, kind: Kind, body: Any) -> None:
        """Store one item and tell the leader; returns once it is committed."""
        stored = await self.db.fetchval(
            f"""
            WITH put AS (
                INSERT INTO crypto_spool (kind, body)
                SELECT $1, $2 WHERE (SELECT coalesce(max(id) - min(id), 0) FROM crypto_spool) < {MAX_ITEMS}
                RETURNING id
            )
            SELECT count(*) FROM put, LATERAL (SELECT pg_notify('{CHANNEL}', '')) AS told
            """,
            kind, json.dumps(body),
        )
        if not stored:
            log.error("The encryption spool is full (%d items: no process has held the encryption "
                      "device for a while?); dropping a %s item", MAX_ITEMS, kind)

    async def take(self, limit: int = 100) -> list[Item]:
        rows = await self.db.fetch("SELECT id, kind, body FROM crypto_spool ORDER BY id LIMIT $1", limit)
        return [Item(r["id"], r["kind"], json.loads(r["body"])) for r in rows if r["kind"] in KINDS]

    async def done(self, ids: list[int]) -> None:
        await self.db.execute("DELETE FROM crypto_spool WHERE id = ANY($1::bigint[])", ids)
