"""`m.mentions`: whom a message pings. The bridge pings no one unless a message asks.

Without `m.mentions`, clients and push rules fall back to reading the body, so an `@room` or a
display name in a webhook's text or a forge's issue title would ping the room. With it (even
empty) only the listed users, and the room only when `room` is true, are notified. The outbox
gives every `m.room.message` an explicit `m.mentions`: empty unless the message carries its own.

A message that should ping (a generic hook whose state or transformation asks for it) sets
`content[MENTIONS_KEY] = mentions(user_ids, room=...)` before it is queued.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["MAX_MENTIONED_USERS", "MENTIONS_KEY", "mentions", "with_mentions"]

MENTIONS_KEY = "m.mentions"
# Far beyond a real ping list; keeps a transformation from notifying a whole server.
MAX_MENTIONED_USERS = 50
_MAX_USER_ID_LENGTH = 255


def _is_user_id(value: object) -> bool:
    return (
        isinstance(value, str)
        and value.startswith("@")
        and ":" in value
        and len(value) <= _MAX_USER_ID_LENGTH
    )


def mentions(user_ids: Iterable[object] = (), *, room: bool = False) -> dict[str, Any]:
    """An `m.mentions` value pinging the valid, distinct `user_ids` (at most 50) and, if asked,
    the room. Anything that is not a Matrix user id is left out."""
    users = list(dict.fromkeys(u for u in user_ids if _is_user_id(u)))[:MAX_MENTIONED_USERS]
    value: dict[str, Any] = {}
    if users:
        value["user_ids"] = users
    if room:
        value["room"] = True
    return value


def with_mentions(content: dict[str, Any]) -> dict[str, Any]:
    """`content` with a well-formed `m.mentions`: the one it has, cleaned, else none (empty)."""
    given = content.get(MENTIONS_KEY)
    if isinstance(given, dict):
        user_ids = given.get("user_ids")
        cleaned = mentions(
            user_ids if isinstance(user_ids, list) else (), room=given.get("room") is True
        )
    else:
        cleaned = {}
    if given == cleaned:
        return content
    return {**content, MENTIONS_KEY: cleaned}
