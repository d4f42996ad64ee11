"""Expiring webhooks: dates, durations (`30d`, `12h`) and the notice sent once before expiry.

With `generic.sendExpiryNotice`, a room is told "The webhook **NAME** will be expiring in N
hours." once, when less than 3 days remain (hookshot's wording and window). "Once" survives
restarts: a row in `generic_expiry_notices` per (hook, expiry date) is written after the notice
is queued, and the notice itself is queued with a dedupe key, so a crash between the two
cannot post it twice. A hook created or changed by the bridge to expire within the window is
noted without a notice, as in hookshot: whoever set it knows.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from hookshot_py.config import ConfigError
from hookshot_py.config.values import duration_ms
from hookshot_py.connections.base import Connection
from hookshot_py.db.database import Database
from hookshot_py.markdown import render_markdown
from hookshot_py.matrix.outbox import Outbox, OutgoingEvent

log = logging.getLogger(__name__)

WARN_BEFORE = timedelta(days=3)
TOO_LATE = timedelta(minutes=15)  # hookshot says nothing about a hook this close to expiry
CHECK_INTERVAL_S = 15 * 60


def parse_expiry(value: str) -> datetime | None:
    """hookshot's `yyyy-MM-dd'T'HH:mm:ss.SSSXX`; any ISO 8601 time with a zone is accepted."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def format_expiry(when: datetime) -> str:
    """As JavaScript's `toISOString()` writes it (what hookshot stores): `2026-01-31T12:00:00.000Z`."""
    utc = when.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_duration(text: str) -> timedelta | None:
    """`30d`, `12h`, `90m`, `1h30m`, `2w` ... (hookshot uses parse-duration); None if it is not one."""
    if not any(ch.isalpha() for ch in text):
        return None  # a bare number is a name, not milliseconds
    try:
        return timedelta(milliseconds=duration_ms(text, "duration"))
    except ConfigError:
        return None


def hours_text(remaining: timedelta) -> str:
    hours = int(remaining.total_seconds() // 3600)
    if hours == 0:
        return "less than an hour"
    return f"{hours} hour{'' if hours == 1 else 's'}"


class ExpiryNotices:
    def __init__(self, db: Database, outbox: Outbox) -> None:
        self.db = db
        self.outbox = outbox

    async def on_expiry_set(self, conn: Connection, now: datetime | None = None) -> None:
        """The bridge set this hook's expiry: inside the warning window, no notice is due."""
        expiry = conn.state.get("expirationDate")
        if not isinstance(expiry, str) or (when := parse_expiry(expiry)) is None:
            return
        if when - (now or datetime.now(UTC)) <= WARN_BEFORE:
            await self._note(conn, expiry)

    async def check(
        self, conns: Iterable[Connection], sender_for: Callable[[Connection], str | None], now: datetime | None = None
    ) -> int:
        """Queue the notice for every hook that entered the window; returns how many."""
        now = now or datetime.now(UTC)
        due: list[tuple[Connection, str, timedelta]] = []
        for conn in conns:
            expiry = conn.state.get("expirationDate")
            if not isinstance(expiry, str) or (when := parse_expiry(expiry)) is None:
                continue
            if TOO_LATE < when - now <= WARN_BEFORE:
                due.append((conn, expiry, when - now))
        if not due:
            return 0
        noted = await self.db.fetch(
            "SELECT room_id, state_key, expiration_date FROM generic_expiry_notices "
            "WHERE room_id = ANY($1::text[])",
            list({conn.room_id for conn, _, _ in due}),
        )
        done = {(r["room_id"], r["state_key"], r["expiration_date"]) for r in noted}
        sent = 0
        for conn, expiry, remaining in due:
            if (conn.room_id, conn.state_key, expiry) in done:
                continue
            name = conn.state.get("name", conn.state_key)
            text = f"The webhook **{name}** will be expiring in {hours_text(remaining)}."
            content = {
                "msgtype": "m.notice",
                "body": text,
                "format": "org.matrix.custom.html",
                "formatted_body": render_markdown(text),
            }
            await self.outbox.enqueue([OutgoingEvent(
                conn.room_id, content, sender=sender_for(conn),
                dedupe_key=f"generic-expiry/{conn.state_key}/{expiry}",
            )])
            await self._note(conn, expiry)
            sent += 1
        return sent

    async def run(
        self,
        conns: Callable[[], Iterable[Connection]],
        sender_for: Callable[[Connection], str | None],
        interval_s: float = CHECK_INTERVAL_S,
    ) -> None:
        """Check now, then about every `interval_s` (with jitter), until cancelled."""
        while True:
            try:
                await self.check(list(conns()), sender_for)
            except Exception:
                log.exception("Checking webhook expiry dates failed")
            await asyncio.sleep(interval_s * random.uniform(1.0, 1.2))

    async def _note(self, conn: Connection, expiry: str) -> None:
        await self.db.execute(
            "INSERT INTO generic_expiry_notices (room_id, state_key, expiration_date) VALUES ($1, $2, $3) "
            "ON CONFLICT DO NOTHING",
            conn.room_id, conn.state_key, expiry,
        )
