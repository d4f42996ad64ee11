"""The Postgres mirror of connection state events: read in one query at start, written after
each state event (the room stays the truth). Every write notifies the other bridge processes
(`hookshot_connections`, payload `<origin> TAB <room id>`), which reload that room's rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hookshot_py.db.database import Database

CHANNEL = "hookshot_connections"


@dataclass(frozen=True)
class MirroredRow:
    room_id: str
    event_type: str
    state_key: str
    connection_id: str
    content: dict[str, Any]


class ConnectionMirror:
    def __init__(self, db: Database, origin: str = "") -> None:
        self.db = db
        self.origin = origin  # this process's id: its own notifications are ignored

    async def rows(self, room_id: str | None = None) -> list[MirroredRow]:
        """Every mirrored connection, or those of one room."""
        query = "SELECT room_id, event_type, state_key, connection_id, content FROM connections"
        if room_id is None:
            records = await self.db.fetch(query)
        else:
            records = await self.db.fetch(query + " WHERE room_id = $1", room_id)
        return [MirroredRow(**dict(r)) for r in records]

    async def upsert(self, room_id: str, event_type: str, state_key: str, connection_id: str,
                     content: dict[str, Any]) -> None:
        await self.db.execute(
            """
            WITH up AS (
                INSERT INTO connections (room_id, event_type, state_key, connection_id, content)
                VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT (room_id, event_type, state_key)
                DO UPDATE SET content = EXCLUDED.content, updated_at = now()
                RETURNING 1
            )
            SELECT pg_notify($6, $7 || chr(9) || $1) FROM up
            """,
            room_id, event_type, state_key, connection_id, content, CHANNEL, self.origin,
        )

    async def delete(self, room_id: str, event_type: str, state_key: str) -> None:
        await self.db.execute(
            """
            WITH gone AS (
                DELETE FROM connections WHERE room_id = $1 AND event_type = $2 AND state_key = $3 RETURNING 1
            )
            SELECT pg_notify($4, $5 || chr(9) || $1) FROM gone
            """,
            room_id, event_type, state_key, CHANNEL, self.origin,
        )
