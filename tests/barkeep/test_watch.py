"""Commits pushed to a forge repository named like a room's Barkeep connection get watched."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from hookshot_py.barkeep.connection import EVENT_TYPE
from hookshot_py.barkeep.store import WatchStore
from hookshot_py.barkeep.watch import pushed_shas, same_repo_name, watch_pushed_commits
from hookshot_py.connections.base import Connection
from hookshot_py.db.database import Database

from .conftest import SHA_A, SHA_B, SHA_C

GITHUB_PUSH = {
    "ref": "refs/heads/main",
    "before": SHA_A,
    "after": SHA_C,
    "repository": {"full_name": "acme/Widgets"},
    "commits": [{"id": SHA_B, "message": "one"}, {"id": SHA_C.upper(), "message": "two"}],
    "head_commit": {"id": SHA_C},
}
GITFLIC_PUSH = {
    "action": "BRANCH_UPDATE",
    "push": {"before": SHA_A, "after": SHA_C, "commits": [{"id": SHA_B}, {"id": "not-a-sha"}, "junk"]},
}


class Manager:
    def __init__(self, conns: list[Connection]) -> None:
        self.conns = conns

    def connections(self, room_id: str) -> list[Connection]:
        return [c for c in self.conns if c.room_id == room_id]


@dataclass
class Services:
    manager: Manager
    db: Database


def barkeep(room: str, repo: str, instance: str = "main") -> Connection:
    return Connection(room, EVENT_TYPE, f"{instance}/{repo}", {"instance": instance, "repo": repo})


def test_pushed_shas_of_github_and_gitflic_pushes() -> None:
    assert pushed_shas(GITHUB_PUSH) == [SHA_B, SHA_C]
    assert pushed_shas(GITFLIC_PUSH) == [SHA_B, SHA_C]
    deleted = {"after": "0" * 40, "push": {"after": "0" * 40, "commits": []}, "commits": []}
    assert pushed_shas(deleted) == []
    assert pushed_shas([1, 2]) == [] and pushed_shas({"commits": "x"}) == []


def test_repo_names_match_without_owner_and_case() -> None:
    assert same_repo_name("widgets", "acme/Widgets")
    assert same_repo_name("widgets", "widgets.git")
    assert same_repo_name("Widgets", "widgets")
    assert not same_repo_name("widgets", "acme/gadgets")
    assert not same_repo_name("widgets", "")


async def test_pushes_are_watched_for_the_rooms_barkeep_connections(db: Database) -> None:
    services = Services(
        Manager([barkeep("!room", "widgets"), barkeep("!room", "widgets", "second"), barkeep("!other", "widgets")]),
        db,
    )
    assert await watch_pushed_commits(services, "!room", "acme/Widgets", pushed_shas(GITHUB_PUSH)) == 4  # type: ignore[arg-type]
    store = WatchStore(db)
    assert await store.watched("main", "widgets") == {SHA_B: None, SHA_C: None}
    assert await store.watched("second", "widgets") == {SHA_B: None, SHA_C: None}
    # the same push again, another repository, a room without a Barkeep connection: nothing new
    assert await watch_pushed_commits(services, "!room", "acme/widgets", [SHA_B]) == 0  # type: ignore[arg-type]
    assert await watch_pushed_commits(services, "!room", "acme/gadgets", [SHA_A]) == 0  # type: ignore[arg-type]
    assert await watch_pushed_commits(services, "!nowhere", "widgets", [SHA_A]) == 0  # type: ignore[arg-type]
    assert await watch_pushed_commits(services, "!room", "widgets", ["abc", 7]) == 0  # type: ignore[arg-type, list-item]
    assert set(await store.watched("main", "widgets")) == {SHA_B, SHA_C}


async def test_watching_never_raises(db: Database) -> None:
    class Broken:
        def connections(self, room_id: str) -> Iterator[Connection]:
            raise RuntimeError("index gone")

    assert await watch_pushed_commits(Services(Broken(), db), "!room", "widgets", [SHA_A]) == 0  # type: ignore[arg-type]
