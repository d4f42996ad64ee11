"""Which items of a feed are the same item: the identity that decides "already posted".

GUID (RSS `<guid>`, Atom `<id>`, JSON Feed `id`) first; without one, the item's link; without that,
its title and date; an item with none of these is identified by its summary. The identity is
hashed to a fixed size for storage. A feed that reorders its items, or rewrites everything but the
GUID, therefore posts nothing twice.

An item with a GUID, a link and a title is also known by its link and title together (`alias_key`):
a feed that rewrites its GUIDs (a blog moved to another engine, a feed generator upgraded) keeps
links and titles, and its items are not posted again. A new item at an old link has a new title.
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


ALIAS_PREFIX = "alias:"  # stored aliases are told apart from identities (counts, pruning)


def alias_key(guid: str | None, link: str | None, title: str | None) -> str | None:
    """The second identity of an item identified by its GUID (see the module docstring)."""
    if guid and link and title:
        return f"link+title:{link}|{title}"
    return None


def item_id(key: str) -> str:
    """The stored form of an identity key: 40 hex characters."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:40]
