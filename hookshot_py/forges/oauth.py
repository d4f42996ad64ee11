"""What every forge's OAuth login shares: one-time `state` values kept in Postgres, and the page
the user's browser lands on after the forge sends it back.

A login link carries a random `state` stored in `oauth_states` with the user it was made for.
The forge's callback hands it back; `consume` deletes it and answers the user, so a state
works once, only for the service it was made for, and only within `ttl_minutes` (hookshot
kept these in memory: a restart between link and callback lost the login). A forged or
replayed state answers None: the caller refuses the callback without calling the forge.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from html import escape

from aiohttp import web

from hookshot_py.db.database import Database

__all__ = ["DEFAULT_TTL_MINUTES", "OAuthStates", "callback_page"]

DEFAULT_TTL_MINUTES = 30


@dataclass
class OAuthStates:
    db: Database
    service: str
    ttl_minutes: int = DEFAULT_TTL_MINUTES

    async def issue(self, user_id: str) -> str:
        """A fresh state for `user_id` (expired ones of the service are dropped on the way)."""
        state = secrets.token_urlsafe(24)
        await self.db.execute(
            "DELETE FROM oauth_states WHERE service = $1 AND created_at < now() - make_interval(mins => $2)",
            self.service, self.ttl_minutes,
        )
        await self.db.execute(
            "INSERT INTO oauth_states (state, service, user_id) VALUES ($1, $2, $3)", state, self.service, user_id
        )
        return state

    async def consume(self, state: str) -> str | None:
        """The user a state was issued to, once; None for an unknown, used or expired state."""
        user_id = await self.db.fetchval(
            "DELETE FROM oauth_states WHERE state = $1 AND service = $2 "
            "AND created_at > now() - make_interval(mins => $3) RETURNING user_id",
            state, self.service, self.ttl_minutes,
        )
        return user_id if isinstance(user_id, str) else None


def callback_page(title: str, text: str, status: int = 200) -> web.Response:
    """A minimal HTML page for the browser that followed the forge's redirect."""
    html = (
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
        f"<title>{escape(title)}</title></head><body><h1>{escape(title)}</h1><p>{escape(text)}</p></body></html>"
    )
    return web.Response(text=html, content_type="text/html", status=status)
