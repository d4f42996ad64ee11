"""Which commits the bridge watches on Barkeep, and how pushes seen elsewhere add to them.

A commit is watched when someone types `!barkeep watch <sha>`, or when a GitHub or GitFlic
connection in a room delivers a push to a repository of the same name as that room's Barkeep
connection. The forges' push handlers call `watch_pushed_commits` for that; it knows nothing of
their payloads beyond `pushed_shas`, and never raises.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Protocol

from hookshot_py.barkeep.repo import EVENT_TYPE, instance_of, repo_of
from hookshot_py.barkeep.store import WatchStore, is_full_sha
from hookshot_py.connections.base import Connection
from hookshot_py.connections.manager import ConnectionManager
from hookshot_py.db.database import Database

log = logging.getLogger(__name__)

# GitHub lists at most 20 commits in a push, GitFlic a few more; anything beyond is not news.
MAX_SHAS_PER_PUSH = 100
_ZERO_SHA = "0" * 40


class _HasManagerAndDb(Protocol):
    manager: ConnectionManager
    db: Database


def same_repo_name(barkeep_repo: str, forge_repo: str) -> bool:
    """A forge repository ("owner/name" or "name") and a Barkeep repository match by name,
    case-insensitively (GitHub and GitFlic names are; Barkeep's clone is named after the URL)."""
    name = forge_repo.rstrip("/").rsplit("/", 1)[-1]
    if name.lower().endswith(".git"):
        name = name[:-4]
    return bool(name) and name.casefold() == barkeep_repo.casefold()


def connections_for(manager: ConnectionManager, room_id: str, repo_name: str) -> list[Connection]:
    """The room's Barkeep connections to a repository of that name."""
    return [
        c for c in manager.connections(room_id) if c.event_type == EVENT_TYPE and same_repo_name(repo_of(c), repo_name)
    ]


def pushed_shas(payload: Any) -> list[str]:
    """The commit shas of a push delivery, lower-case, in order: GitHub's `commits[].id` (and
    `head_commit`), GitFlic's `push.commits[].id` (and `push.after`). Deleted refs give none."""
    if not isinstance(payload, dict):
        return []
    found: list[Any] = []
    push = payload.get("push")
    bodies: list[dict[str, Any]] = [b for b in (payload, push) if isinstance(b, dict)]
    for body in bodies:
        commits = body.get("commits")
        if isinstance(commits, list):
            found += [c.get("id") for c in commits if isinstance(c, dict)]
        head = body.get("head_commit")
        if isinstance(head, dict):
            found.append(head.get("id"))
        if "after" in body and body is push:
            found.append(body.get("after"))
    shas = [s.lower() for s in found if isinstance(s, str) and is_full_sha(s.lower()) and s != _ZERO_SHA]
    return list(dict.fromkeys(shas))[:MAX_SHAS_PER_PUSH]


async def watch_pushed_commits(services: _HasManagerAndDb, room_id: str, repo_name: str, shas: Iterable[str]) -> int:
    """Watch pushed commits for every Barkeep connection in `room_id` whose repository is named
    like the forge's `repo_name` ("owner/name" or "name"). Returns how many (connection, commit)
    pairs were newly watched. Safe to call for any room and any push: it never raises."""
    try:
        conns = connections_for(services.manager, room_id, repo_name)
        wanted = [s.lower() for s in shas if isinstance(s, str) and is_full_sha(s.lower())][:MAX_SHAS_PER_PUSH]
        if not conns or not wanted:
            return 0
        store = WatchStore(services.db)
        added = 0
        for key in dict.fromkeys((instance_of(c), repo_of(c)) for c in conns):
            new = await store.watch(key[0], key[1], wanted)
            added += len(new)
            if new:
                log.info("Watching %d pushed commit(s) of %s on Barkeep %s", len(new), key[1], key[0])
        return added
    except Exception:
        log.exception("Could not watch the commits pushed to %s in %s on Barkeep", repo_name, room_id)
        return 0
