"""Which items of a feed are the same item: the identity that decides "already posted".

GUID (RSS `<guid>`, Atom `<id>`, JSON Feed `id`) first; without one, the item's link; without that,
its title and date; an item with none of these is identified by its summary. The identity is
hashed to a fixed size for storage. A feed that reorders its items, or rewrites everything but the
GUID, therefore posts nothing twice.
"""

from __future__ import annotations

import hashlib
from datetime import datetime


def identity_key(
    guid: str | None, link: str | None, title: str | None, published: datetime | None, summary: str | None
) -> str | None:
    """The identity of an item as text, or None for an item that cannot be told apart (skipped)."""
    if guid:
        return f"guid:{guid}"
    if link:
        return f"link:{link}"
    if title:
        return f"title:{title}|{published.isoformat() if published else ''}"
    if summary:
        return f"summary:{summary}"
    return None


def item_id(key: str) -> str:
    """The stored form of an identity key: 40 hex characters."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:40]
