"""Benchmark: outbound webhook deliveries from the Postgres queue to a local receiver.

Runs in one process: an embedded Postgres (or HOOKSHOT_DATABASE_URL), the queue and sender as a
bridge process runs them, and the tests' receiver (tests/fakes/receiver.py, which parses every
multipart body). Measures:

1. **enqueue**: the cost each event adds to the homeserver's transaction (one INSERT per hook);
2. **one hook**: E events to one hook, delivered strictly in order (one at a time);
3. **many hooks**: H hooks × E/H events, delivered in parallel (16 hooks at a time per process);
4. **outage**: the receiver answers 503 for a while, then recovers: time to drain the backlog.

    .venv/bin/python bench/outbound.py -e 2000 --hooks 50
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from aiohttp import web

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from fakes.receiver import Receiver  # noqa: E402

from hookshot_py.config import OutboundDeliveryConfig  # noqa: E402
from hookshot_py.db.database import Database  # noqa: E402
from hookshot_py.db.embedded import EmbeddedPostgres  # noqa: E402
from hookshot_py.matrix.outbox import Outbox  # noqa: E402
from hookshot_py.metrics import Metrics  # noqa: E402
from hookshot_py.net.guard import UrlPolicy, guarded_session  # noqa: E402
from hookshot_py.outbound.queue import OutboundQueue  # noqa: E402
from hookshot_py.outbound.request import OutboundClient  # noqa: E402
from hookshot_py.outbound.sender import OutboundSender  # noqa: E402
from hookshot_py.tokens import SecretBox  # noqa: E402

ROOM = "!bench:bench.test"


def event(hook: int, n: int) -> dict[str, Any]:
    return {"type": "m.room.message", "event_id": f"$h{hook}e{n}", "room_id": ROOM, "sender": "@alice:bench.test",
            "origin_server_ts": 1, "content": {"msgtype": "m.text", "body": f"message {n} " + "x" * 200}}  # fmt: skip


async def no_media(mxc: str, max_bytes: int, timeout: float) -> tuple[bytes, str | None]:
    raise AssertionError


async def fresh(db: Database) -> None:
    await db.execute("TRUNCATE outbound_deliveries, outbound_hooks, outbox")


async def run(dsn: str, events: int, hooks: int, outage_s: float) -> None:
    db = Database(dsn)
    await db.start()
    receiver = Receiver()
    runner = web.AppRunner(receiver.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}"
    session = guarded_session(UrlPolicy.create(allowed_ranges=["127.0.0.1/32"]))
    queue = OutboundQueue(db, SecretBox(os.urandom(32)), "bench")
    client = OutboundClient(session, no_media, max_media_bytes=1024, timeout_s=30)
    outbox = Outbox(db, SimpleNamespace(bot_mxid="@hookshot:bench.test"), None, Metrics())  # type: ignore[arg-type]

    async def setup(n_hooks: int, per_hook: int) -> tuple[list[str], float]:
        await fresh(db)
        receiver.received.clear()
        ids = []
        for h in range(n_hooks):
            conn = f"hook{h}"
            await queue.save_hook(conn, ROOM, conn, f"{base}/{conn}", "PUT", f"hs-ob-bench-{h}")
            ids.append(conn)
        t0 = time.perf_counter()
        for n in range(per_hook):
            for h, conn in enumerate(ids):
                await queue.enqueue(conn, event(h, n))
        return ids, time.perf_counter() - t0

    async def deliver(total: int, fail_for: float = 0.0) -> float:
        sender = OutboundSender(queue, client, outbox, Metrics(), OutboundDeliveryConfig(), poll_s=0.5,
                                base_backoff_s=0.25, max_backoff_s=1.0)  # fmt: skip
        t0 = time.perf_counter()
        receiver.fail_status = 503 if fail_for else None
        sender.start()
        if fail_for:
            await asyncio.sleep(fail_for)
            receiver.fail_status = None
            t0 = time.perf_counter()
        await receiver.wait_for(total, timeout=3600)
        took = time.perf_counter() - t0
        await sender.stop()
        return took

    print(f"python {platform.python_version()}, {os.cpu_count()} cores, Postgres at {dsn.split('@')[-1]}")
    _, t = await setup(1, events)
    print(f"enqueue: {events} events in {t:.2f} s = {t / events * 1000:.2f} ms per event per hook")
    took = await deliver(events)
    print(f"one hook, in order: {events} deliveries in {took:.2f} s = {events / took:.0f}/s "
          f"({took / events * 1000:.2f} ms each)")  # fmt: skip
    per = max(1, events // hooks)
    await setup(hooks, per)
    took = await deliver(hooks * per)
    print(f"{hooks} hooks x {per}: {hooks * per} deliveries in {took:.2f} s = {hooks * per / took:.0f}/s")
    await setup(hooks, per)
    took = await deliver(hooks * per, fail_for=outage_s)
    retries = receiver.attempts
    print(f"after a {outage_s:.0f} s outage (503): backlog of {hooks * per} drained in {took:.2f} s "
          f"(receiver saw {retries} requests in all)")  # fmt: skip
    await session.close()
    await runner.cleanup()
    await db.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-e", "--events", type=int, default=2000)
    parser.add_argument("--hooks", type=int, default=50)
    parser.add_argument("--outage", type=float, default=10.0, help="seconds the receiver answers 503")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    dsn = os.environ.get("HOOKSHOT_DATABASE_URL")
    if dsn:
        asyncio.run(run(dsn, args.events, args.hooks, args.outage))
        return
    with tempfile.TemporaryDirectory() as tmp:
        pg = EmbeddedPostgres(Path(tmp) / "pg")
        try:
            asyncio.run(run(pg.start(), args.events, args.hooks, args.outage))
        finally:
            pg.stop()


if __name__ == "__main__":
    main()
