"""Display names and avatars of the bridge's ghost users.

Setting a profile is expensive for the homeserver, so the wanted profile is recorded when a
message is queued (a cheap, usually cached check) and applied once, just before the ghost's
first send, only when it changed.
"""

from __future__ import annotations

import logging

from hookshot_py.db.database import Database
from hookshot_py.matrix.gateway import MatrixGateway

log = logging.getLogger(__name__)

Profile = tuple[str | None, str | None]


class Profiles:
    def __init__(self, db: Database, gateway: MatrixGateway) -> None:
        self.db = db
        self.gateway = gateway
        self._wanted: dict[str, Profile] = {}
        self._applied: dict[str, Profile] = {}

    async def want(self, user_id: str, displayname: str | None, avatar_url: str | None = None) -> bool:
        """Record the profile `user_id` should have; True if that is a change."""
        profile = (displayname, avatar_url)
        if self._wanted.get(user_id) == profile:
            return False
        await self.db.execute(
            "INSERT INTO ghost_profiles (user_id, displayname, avatar_url) VALUES ($1, $2, $3) "
            "ON CONFLICT (user_id) DO UPDATE SET displayname = $2, avatar_url = $3",
            user_id, displayname, avatar_url,
        )
        self._wanted[user_id] = profile
        return True

    async def want_many(self, wanted: dict[str, Profile]) -> None:
        """`want` for many users at once (start-up): one read, and writes only for changes."""
        if not wanted:
            return
        rows = await self.db.fetch(
            "SELECT user_id, displayname, avatar_url FROM ghost_profiles WHERE user_id = ANY($1::text[])",
            list(wanted),
        )
        stored = {r["user_id"]: (r["displayname"], r["avatar_url"]) for r in rows}
        for user_id, profile in wanted.items():
            if stored.get(user_id) == profile:
                self._wanted[user_id] = profile
            else:
                await self.want(user_id, *profile)

    async def ensure_applied(self, user_id: str) -> None:
        if user_id == self.gateway.bot_mxid:
            return
        wanted = self._wanted.get(user_id)
        if wanted is None:
            row = await self.db.fetchrow(
                "SELECT displayname, avatar_url FROM ghost_profiles WHERE user_id = $1", user_id
            )
            if row is None:
                return
            wanted = self._wanted[user_id] = (row["displayname"], row["avatar_url"])
        if self._applied.get(user_id) == wanted:
            return
        current = await self._current(user_id)
        if current != wanted:
            log.info("Setting profile of %s to %r", user_id, wanted)
            await self.gateway.set_profile(
                user_id,
                wanted[0] if wanted[0] != current[0] else None,
                wanted[1] if wanted[1] != current[1] else None,
            )
        self._applied[user_id] = wanted

    async def _current(self, user_id: str) -> Profile:
        await self.gateway.ensure_registered(user_id)
        try:
            return await self.gateway.profile(user_id)
        except Exception:
            return (None, None)
