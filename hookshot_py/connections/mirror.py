"""The Postgres mirror of connection state events: read in one query at start, written after
each state event (the room stays the truth)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hookshot_py.db.database import Database


@dataclass(frozen=True)
class MirroredRow:
    room_id: str
    event_type: str
    state_key: str
    connection_id: str
    content: dict[str, Any]


class ConnectionMirror:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def rows(self) -> list[MirroredRow]:
        records = await self.db.fetch(
            "SELECT room_id, event_type, state_key, connection_id, content FROM connections"
        )
        return [MirroredRow(**dict(r)) for r in records]

    async def upsert(self, room_id: str, event_type: str, state_key: str, connection_id: str,
                     content: dict[str, Any]) -> None:
        await self.db.execute(
            """
            INSERT INTO connections (room_id, event_type, state_key, connection_id, content)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (room_id, event_type, state_key)
            DO UPDATE SET content = EXCLUDED.content, updated_at = now()
            """,
            room_id, event_type, state_key, connection_id, content,
        )

    async def delete(self, room_id: str, event_type: str, state_key: str) -> None:
        await self.db.execute(
            "DELETE FROM connections WHERE room_id = $1 AND event_type = $2 AND state_key = $3",
            room_id, event_type, state_key,
        )
