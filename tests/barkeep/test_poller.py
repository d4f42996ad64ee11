"""The poller against the fake Barkeep, a real Postgres and the real outbox (not delivering):
what changes between polls is queued once, also across a restart and a crash mid-poll."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from fakes.barkeep import FakeBarkeepState
from hookshot_py.barkeep import poller as poller_module
from hookshot_py.barkeep.accounts import BarkeepAccounts
from hookshot_py.barkeep.connection import EVENT_TYPE
from hookshot_py.barkeep.format import Announcement
from hookshot_py.barkeep.models import Commit, CommitSnapshot
from hookshot_py.barkeep.poller import BarkeepPoller, dedupe_key
from hookshot_py.barkeep.store import WatchStore
from hookshot_py.config import BarkeepConfig, BarkeepInstance
from hookshot_py.connections.base import Connection
from hookshot_py.db.database import Database
from hookshot_py.matrix.outbox import Outbox
from hookshot_py.metrics import Metrics
from hookshot_py.tokens import SecretBox, TokenStore

from .conftest import NOW, REPO, SHA_A, SHA_B, SHA_C

ROOM_ALL, ROOM_APPROVALS, ROOM_ELSEWHERE = "!all:test", "!approvals:test", "!elsewhere:test"


class Manager:
    """The one ConnectionManager call the poller makes."""

    def __init__(self, conns: list[Connection]) -> None:
        self.conns = conns

    def all(self, event_type: str | None = None) -> Iterator[Connection]:
        return iter([c for c in self.conns if event_type in (None, c.event_type)])


class Gateway:
    bot_mxid = "@bot:test"


def conn(room: str, repo: str = REPO, events: list[str] | None = None, instance: str = "main") -> Connection:
    state = {"instance": instance, "repo": repo, "events": events or ["approvals", "comments"], "commandPrefix": "!barkeep"}
    return Connection(room, EVENT_TYPE, f"{instance}/{repo}", state)


class Env:
    def __init__(self, db: Database, url: str, session: aiohttp.ClientSession, conns: list[Connection]) -> None:
        self.db = db
        config = BarkeepConfig(instances={"main": BarkeepInstance(url=url)})
        self.accounts = BarkeepAccounts(config, session, TokenStore(db, SecretBox(os.urandom(32))))
        self.manager = Manager(conns)
        self.restart()

    def restart(self) -> None:
        """A new bridge process: nothing kept in memory."""
        self.store = WatchStore(self.db)
        outbox = Outbox(self.db, Gateway(), None, Metrics())  # type: ignore[arg-type]
        self.poller = BarkeepPoller(self.accounts, self.store, self.manager, outbox, interval=3600)  # type: ignore[arg-type]

    async def rows(self) -> list[tuple[str, str, str]]:
        rows = await self.db.fetch("SELECT room_id, content, dedupe_key FROM outbox ORDER BY id")
        return [(r["room_id"], r["content"]["body"], r["dedupe_key"]) for r in rows]

    async def bodies(self, room: str) -> list[str]:
        return [body for r, body, _ in await self.rows() if r == room]


@pytest.fixture
async def env(db: Database, server: TestServer, session: aiohttp.ClientSession) -> Env:
    return Env(
        db,
        str(server.make_url("")).rstrip("/"),
        session,
        [conn(ROOM_ALL), conn(ROOM_APPROVALS, events=["approvals"]), conn(ROOM_ELSEWHERE, repo="elsewhere")],
    )


async def test_news_between_polls_is_queued_once_per_room(env: Env, state: FakeBarkeepState) -> None:
    state.approve(REPO, SHA_B, name="Old Approval", email="old@example.org")  # before watching: not news
    await env.store.watch("main", REPO, [SHA_A, SHA_B])
    first = await env.poller.poll_once()
    assert (first.repos, first.commits, first.queued, first.errors) == (2, 2, 0, 0)
    assert await env.rows() == []

    state.add_comments(REPO, SHA_A, 2)
    state.approve(REPO, SHA_A, name="Jane Doe", email="jane@example.org", at=1_700_000_100)
    state.unapprove(REPO, SHA_B)
    second = await env.poller.poll_once()
    assert second.queued == 5
    # commits watched together come in sha order, each one's news comments first
    assert await env.bodies(ROOM_ALL) == [
        "⚠️ 3b42b44 approval withdrawn",
        "💬 2 new comments on 9df81d0",
        "✅ 9df81d0 approved by Jane Doe",
    ]
    assert await env.bodies(ROOM_APPROVALS) == ["⚠️ 3b42b44 approval withdrawn", "✅ 9df81d0 approved by Jane Doe"]
    assert await env.bodies(ROOM_ELSEWHERE) == []
    keys = {key for room, _, key in await env.rows() if room == ROOM_ALL}
    assert keys == {
        f"barkeep:main:{REPO}:{SHA_A}:comments:2",
        f"barkeep:main:{REPO}:{SHA_A}:approved:1700000100",
        f"barkeep:main:{REPO}:{SHA_B}:withdrawn:{NOW}",  # when the old approval was given
    }
    # one batch per poll, unsigned
    batches = state.requests_to(f"/api/commits/{REPO}")
    assert len(batches) == 2 and all("signature" not in r.params for r in batches)

    third = await env.poller.poll_once()
    assert third.queued == 0 and len(await env.rows()) == 5

    state.add_comments(REPO, SHA_A, 1)
    await env.poller.poll_once()
    assert (await env.bodies(ROOM_ALL))[-1] == "💬 1 new comment on 9df81d0"
    assert await env.bodies(ROOM_APPROVALS) == ["⚠️ 3b42b44 approval withdrawn", "✅ 9df81d0 approved by Jane Doe"]


async def test_a_restart_announces_nothing_twice_and_misses_nothing(env: Env, state: FakeBarkeepState) -> None:
    await env.store.watch("main", REPO, [SHA_A])
    await env.poller.poll_once()
    state.approve(REPO, SHA_A)
    await env.poller.poll_once()
    assert await env.bodies(ROOM_ALL) == ["✅ 9df81d0 approved by Jane Doe"]

    env.restart()
    await env.poller.poll_once()
    assert await env.bodies(ROOM_ALL) == ["✅ 9df81d0 approved by Jane Doe"]

    # news that arrived while the bridge was down is announced after the restart
    env.restart()
    state.add_comments(REPO, SHA_A, 3)
    await env.poller.poll_once()
    assert await env.bodies(ROOM_ALL) == ["✅ 9df81d0 approved by Jane Doe", "💬 3 new comments on 9df81d0"]


async def test_a_crash_between_queuing_and_saving_posts_nothing_twice(env: Env, state: FakeBarkeepState) -> None:
    await env.store.watch("main", REPO, [SHA_A, SHA_C])
    await env.poller.poll_once()
    before = await env.db.fetch("SELECT sha, snapshot FROM barkeep_watched_commits")
    state.approve(REPO, SHA_A)
    state.add_comments(REPO, SHA_C, 2)
    await env.poller.poll_once()
    assert len(await env.rows()) == 3  # two in ROOM_ALL, the approval in ROOM_APPROVALS
    # the process died before the snapshots were stored: they are still the old ones
    for row in before:
        await env.db.execute("UPDATE barkeep_watched_commits SET snapshot = $1 WHERE sha = $2", row["snapshot"], row["sha"])
    env.restart()
    stats = await env.poller.poll_once()
    assert stats.queued == 0 and len(await env.rows()) == 3
    assert await env.store.watched("main", REPO) == {
        SHA_A: CommitSnapshot(SHA_A, True, state.commit(REPO, SHA_A).approved_at, 0),
        SHA_C: CommitSnapshot(SHA_C, False, None, 2),
    }


async def test_unknown_commits_are_kept_for_a_while_and_the_rest_still_polled(env: Env, state: FakeBarkeepState) -> None:
    not_imported = "d" * 40
    await env.store.watch("main", REPO, [SHA_A, not_imported])
    await env.poller.poll_once()
    state.add_comments(REPO, SHA_A)
    stats = await env.poller.poll_once()
    assert stats.errors == 0 and await env.bodies(ROOM_ALL) == ["💬 1 new comment on 9df81d0"]
    assert set(await env.store.watched("main", REPO)) == {SHA_A, not_imported}
    # Barkeep imports it later: first sight is a baseline, then news
    state.add_commit(REPO, not_imported)
    state.approve(REPO, not_imported)
    await env.poller.poll_once()
    state.add_comments(REPO, not_imported)
    await env.poller.poll_once()
    assert (await env.bodies(ROOM_ALL))[1:] == ["💬 1 new comment on ddddddd"]


async def test_failures_are_logged_once_and_other_repositories_still_polled(
    env: Env, state: FakeBarkeepState, caplog: pytest.LogCaptureFixture
) -> None:
    await env.store.watch("main", "elsewhere", [SHA_A])  # Barkeep has no repository "elsewhere"
    await env.store.watch("main", REPO, [SHA_A])
    await env.poller.poll_once()
    state.approve(REPO, SHA_A)
    with caplog.at_level(logging.WARNING, logger="hookshot_py.barkeep.poller"):
        stats = await env.poller.poll_once()
        await env.poller.poll_once()
    assert (stats.repos, stats.errors, stats.queued) == (2, 1, 2)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "does not track a repository named elsewhere" in warnings[0]

    state.add_repo("elsewhere")
    state.add_commit("elsewhere", SHA_A)
    with caplog.at_level(logging.INFO, logger="hookshot_py.barkeep.poller"):
        assert (await env.poller.poll_once()).errors == 0
    assert any("works again" in r.getMessage() for r in caplog.records)


async def test_an_unreachable_barkeep_is_an_error_not_a_crash(db: Database, session: aiohttp.ClientSession) -> None:
    env = Env(db, "http://127.0.0.1:9", session, [conn(ROOM_ALL)])
    await env.store.watch("main", REPO, [SHA_A])
    stats = await env.poller.poll_once()
    assert (stats.repos, stats.errors) == (1, 1)
    assert await env.store.watched("main", REPO) == {SHA_A: None}


async def test_a_connection_to_an_instance_no_longer_configured_is_skipped(env: Env) -> None:
    env.manager.conns.append(conn(ROOM_ALL, instance="gone"))
    await env.store.watch("gone", REPO, [SHA_A])
    stats = await env.poller.poll_once()
    assert stats.errors == 1


async def test_commits_are_asked_in_batches(env: Env, state: FakeBarkeepState, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(poller_module, "BATCH_SIZE", 2)
    await env.store.watch("main", REPO, [SHA_A, SHA_B, SHA_C])
    stats = await env.poller.poll_once()
    assert stats.commits == 3
    assert sorted(len(r.form["shas"].split(",")) for r in state.requests_to(f"/api/commits/{REPO}")) == [1, 2]


async def test_the_loop_polls_on_its_own_until_stopped(env: Env, state: FakeBarkeepState) -> None:
    await env.store.watch("main", REPO, [SHA_A])
    env.poller.interval = 0.05
    env.poller.start()
    try:
        await wait_for(lambda: env.store.watched("main", REPO), lambda w: w[SHA_A] is not None)
        state.approve(REPO, SHA_A)
        await wait_for(lambda: env.bodies(ROOM_ALL), lambda b: b == ["✅ 9df81d0 approved by Jane Doe"])
    finally:
        await env.poller.stop()
    polls = len(state.requests)
    await asyncio.sleep(0.2)
    assert len(state.requests) == polls


def test_dedupe_keys_name_the_state_they_announce() -> None:
    commit = Commit(SHA_A, True, "J <j@x>", 1234, 7, None)
    previous = CommitSnapshot(SHA_A, True, 1000, 5)
    ann = {k: Announcement(k, SHA_A, "", "") for k in ("approved", "withdrawn", "comments")}  # type: ignore[misc]
    assert dedupe_key("main", "r", ann["approved"], commit, previous) == f"barkeep:main:r:{SHA_A}:approved:1234"
    assert dedupe_key("main", "r", ann["withdrawn"], commit, previous) == f"barkeep:main:r:{SHA_A}:withdrawn:1000"
    assert dedupe_key("main", "r", ann["comments"], commit, previous) == f"barkeep:main:r:{SHA_A}:comments:7"


async def wait_for(fetch: Any, done: Any, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await fetch()
        if done(value):
            return
        assert loop.time() < deadline, f"not reached: {value!r}"
        await asyncio.sleep(0.02)
