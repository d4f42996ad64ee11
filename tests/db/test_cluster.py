"""Coordination through Postgres: the single-process guard, room locks that die with their
session, leases that pass on, and migrations that only run when needed."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from hookshot_py.db.cluster import Cluster, ClusterError
from hookshot_py.db.database import Database, head_revisions, schema_is_current
from hookshot_py.db.leases import Leases, LeasedJob
from hookshot_py.db.migrate_child import migrate_in_child
from support.bridge import create_database


@pytest.fixture
async def db(pg_admin_dsn):
    database = Database(await create_database(pg_admin_dsn))
    await database.start()
    yield database
    await database.stop()


async def test_migrations_run_only_when_the_schema_is_behind(pg_admin_dsn):
    dsn = await create_database(pg_admin_dsn)
    assert not await schema_is_current(dsn)
    await migrate_in_child(dsn)  # what a bridge process does: alembic stays out of its memory
    assert await schema_is_current(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        assert {r[0] for r in await conn.fetch("SELECT version_num FROM alembic_version")} == head_revisions()
    finally:
        await conn.close()
    with pytest.raises(RuntimeError, match="migrations failed"):
        await migrate_in_child(dsn.rsplit("/", 1)[0] + "/no_such_database")


async def test_a_second_process_on_the_embedded_postgres_is_refused(db):
    first, second = Cluster(db.dsn), Cluster(db.dsn)
    await first.start(exclusive=True)
    try:
        with pytest.raises(ClusterError, match="database.url"):
            await second.start(exclusive=True)
    finally:
        await first.stop()
        await second.stop()


async def test_a_room_lock_is_exclusive_and_dies_with_its_session(db):
    a, b = Cluster(db.dsn), Cluster(db.dsn)
    lost, back = asyncio.Event(), asyncio.Event()
    a.on_lost(lost.set)

    async def reconnected() -> None:
        back.set()

    a.on_reconnect(reconnected)
    await a.start()
    await b.start()
    try:
        assert await a.try_lock("!room") and await a.try_lock("!room")  # re-entrant
        assert not await b.try_lock("!room")
        await db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            f"hookshot_py {a.process_id}",
        )  # what a SIGKILLed process leaves: its session gone
        await asyncio.wait_for(lost.wait(), 10)
        assert not a.holds("!room")
        assert await b.try_lock("!room")
        await asyncio.wait_for(back.wait(), 10)
        assert not await a.try_lock("!room")
    finally:
        await a.stop()
        await b.stop()


async def test_a_leased_job_runs_on_one_process_and_passes_on_when_it_dies(db):
    clusters = [Cluster(db.dsn), Cluster(db.dsn)]
    for c in clusters:
        await c.start()
    runs: list[str] = []

    def job_for(name: str):  # type: ignore[no-untyped-def]
        async def job() -> None:
            runs.append(name)

        return job

    a = LeasedJob(Leases(db, clusters[0]), "poll", 0.2, job_for("a"), ttl=1.5)
    b = LeasedJob(Leases(db, clusters[1]), "poll", 0.2, job_for("b"), ttl=1.5)
    try:
        a.start()
        await asyncio.sleep(0.3)
        b.start()
        await asyncio.sleep(1.5)
        assert a.held and not b.held and set(runs) == {"a"}
        # A dies without a word (no release, its connections gone): B takes over.
        assert a._task is not None
        a._task.cancel()
        await clusters[0].stop()
        died_after = len(runs)
        for _ in range(60):
            if b.held:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        assert b.held and runs[died_after:] and set(runs[died_after:]) == {"b"}
        owner = await db.fetchval("SELECT owner FROM leases WHERE name = 'poll'")
        assert owner == clusters[1].process_id
    finally:
        await b.stop()
        for c in clusters:
            await c.stop()


async def test_waking_a_job_runs_it_on_the_process_that_holds_it(db):
    clusters = [Cluster(db.dsn), Cluster(db.dsn)]
    for c in clusters:
        await c.start()
    runs: list[str] = []

    async def job() -> None:
        runs.append("a")

    a = LeasedJob(Leases(db, clusters[0]), "hourly", 3600, job)
    b = LeasedJob(Leases(db, clusters[1]), "hourly", 3600, job)
    try:
        a.start()
        for _ in range(50):
            if runs:
                break
            await asyncio.sleep(0.1)
        b.start()
        assert runs == ["a"]  # the first run; the next is an hour away
        b.wake()  # asked on the process that does not hold it
        for _ in range(50):
            if len(runs) == 2:
                break
            await asyncio.sleep(0.1)
        assert runs == ["a", "a"] and a.held and not b.held
    finally:
        await a.stop()
        await b.stop()
        for c in clusters:
            await c.stop()
