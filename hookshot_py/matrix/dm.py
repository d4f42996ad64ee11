"""Direct-message ("admin") rooms between the bot and each user: where secrets are sent.

Every change notifies the other bridge processes (`hookshot_dms`), which reload the table."""

from __future__ import annotations

import asyncio
import logging

from hookshot_py.db.database import Database
from hookshot_py.matrix.gateway import MatrixGateway

log = logging.getLogger(__name__)

CHANNEL = "hookshot_dms"  # payload: the origin process id


class DirectMessages:
    def __init__(self, db: Database, gateway: MatrixGateway, origin: str = "", *, encrypted: bool = False) -> None:
        self.db = db
        self.gateway = gateway
        self.origin = origin
        self.encrypted = encrypted  # new DM rooms are created encrypted
        self._room_of: dict[str, str] = {}
        self._user_of: dict[str, str] = {}
        self._lock = asyncio.Lock()
        self._reload: asyncio.Future[None] | None = None

    async def load(self) -> None:
        rows = await self.db.fetch("SELECT user_id, room_id FROM dm_rooms")
        self._room_of.clear()
        self._user_of.clear()
        for r in rows:
            self._remember(r["user_id"], r["room_id"])

    def changed_elsewhere(self, origin: str) -> None:
        if origin != self.origin:
            self._reload = asyncio.ensure_future(self.load())

    def user_of(self, room_id: str) -> str | None:
        """The user whose DM room this is, if it is one."""
        return self._user_of.get(room_id)

    async def record(self, user_id: str, room_id: str) -> None:
        await self.db.execute(
            "WITH up AS (INSERT INTO dm_rooms (user_id, room_id) VALUES ($1, $2) "
            "ON CONFLICT (user_id) DO UPDATE SET room_id = EXCLUDED.room_id RETURNING 1) "
            "SELECT pg_notify($3, $4) FROM up",
            user_id, room_id, CHANNEL, self.origin,
        )
        self._remember(user_id, room_id)

    async def forget_room(self, room_id: str) -> None:
        user_id = self._user_of.pop(room_id, None)
        if user_id is not None:
            self._room_of.pop(user_id, None)
            await self.db.execute(
                "WITH gone AS (DELETE FROM dm_rooms WHERE user_id = $1 AND room_id = $2 RETURNING 1) "
                "SELECT pg_notify($3, $4) FROM gone",
                user_id, room_id, CHANNEL, self.origin,
            )

    async def room_for(self, user_id: str) -> str:
        """The user's DM room, created (with an invite) when there is none yet."""
        async with self._lock:
            room_id = self._room_of.get(user_id)
            if room_id is not None:
                return room_id
            room_id = await self.gateway.create_dm(user_id, name="Hookshot", encrypted=self.encrypted)
            log.info("Created DM room %s with %s", room_id, user_id)
            await self.record(user_id, room_id)
            return room_id

    def _remember(self, user_id: str, room_id: str) -> None:
        old = self._room_of.get(user_id)
        if old is not None:
            self._user_of.pop(old, None)
        self._room_of[user_id] = room_id
        self._user_of[room_id] = user_id
