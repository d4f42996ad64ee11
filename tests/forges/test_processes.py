"""Two bridge processes on one database share every project's hook: a hook one process registers
is verified by the other, and a change through either keeps the hook's one secret."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from hookshot_py.db.cluster import Cluster
from hookshot_py.forges.policy import ProjectHooks
from hookshot_py.forges.webhooks import HookKey

from .conftest import PROJECT, Clock, FakeForge, FakeHooks, make_policy

ALICE, BOB = "@alice:x", "@bob:x"
KEY = HookKey("", PROJECT.lower())


async def _until(check, what: str, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


@pytest.fixture
async def processes(db, box, forge: FakeForge) -> AsyncIterator[list[ProjectHooks[str]]]:  # type: ignore[no-untyped-def]
    """The project-hook policy of two processes (each its own cluster link) over one forge."""
    clusters = [Cluster(db.dsn), Cluster(db.dsn)]
    policies = []
    try:
        for cluster in clusters:
            await cluster.start()
            hooks = FakeHooks(forge)
            hooks.tokens.update({ALICE, BOB})
            policy = make_policy(db, box, hooks, Clock())
            policy.store.attach(cluster)
            await policy.store.load()
            policies.append(policy)
        forge.admins.update({ALICE, BOB})
        yield policies
    finally:
        for c in clusters:
            await c.stop()


async def test_hooks_registered_or_removed_by_one_process_are_seen_by_the_other(processes, forge) -> None:
    a, b = processes
    made = await a.ensure(PROJECT, ["push"], user_id=ALICE)
    await _until(lambda: b.store.get(KEY) == made.row, "B knows the secret A registered")

    # A second room connected through B widens the same hook, with the same secret.
    widened = await b.ensure(PROJECT, ["push", "issues"], user_id=BOB)
    [hook] = forge.hooks.values()
    assert widened.row.secret == made.row.secret == hook.secret
    assert widened.row.hook_id == made.row.hook_id and hook.events == ("issues", "push")
    await _until(lambda: a.store.get(KEY) == widened.row, "A follows B's change")

    assert await a.release(PROJECT, None, user_id=ALICE) == []
    await _until(lambda: b.store.get(KEY) is None, "B forgets the removed hook")


async def test_two_processes_changing_one_hook_at_once_leave_it_one_secret(processes, forge, db) -> None:
    changes = await asyncio.gather(*(p.ensure(PROJECT, ["push"], user_id=ALICE) for p in processes))
    [hook] = forge.hooks.values()
    assert {c.row.secret for c in changes} == {hook.secret}
    assert await db.fetchval("SELECT count(*) FROM forge_webhooks") == 1
