"""Benchmark: start-up at scale. Creates N generic webhook connections in R rooms (mirror rows and
hook ids, as the bridge stores them), starts the bridge against the null homeserver on a database
that is already up, and prints the time from launching the process to `/ready` answering 200,
with the bridge's RSS then. Runs it twice: the first start may have to migrate a fresh schema.

    .venv/bin/python bench/startup.py --connections 10000 --rooms 1000
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import asyncpg
import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hookshot_py.db.database import Database  # noqa: E402
from hookshot_py.db.embedded import EmbeddedPostgres  # noqa: E402
from hookshot_py.devenv.synapse import free_port, make_registration  # noqa: E402

DOMAIN = "bench.test"
# As installed (pip compiles bytecode): with PYTHONDONTWRITEBYTECODE every start recompiles the package.
BRIDGE_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
EVENT_TYPE = "uk.half-shot.matrix-hookshot.generic.hook"


async def seed(dsn: str, connections: int, rooms: int) -> None:
    db = Database(dsn)
    await db.start()  # creates the schema
    await db.stop()
    conn = await asyncpg.connect(dsn)
    try:
        mirror, hooks = [], []
        for n in range(connections):
            room = f"!room{n % rooms}:{DOMAIN}"
            key = f"hook-{n}"
            cid = hashlib.md5(f"{room}/{EVENT_TYPE}/{key}".encode()).hexdigest()
            mirror.append((room, EVENT_TYPE, key, cid, f'{{"name": "{key}"}}'))
            hooks.append((str(uuid.uuid4()), room, key))
        await conn.copy_records_to_table("connections", records=mirror,
                                         columns=["room_id", "event_type", "state_key", "connection_id", "content"])
        await conn.copy_records_to_table("generic_hooks", records=hooks, columns=["hook_id", "room_id", "state_key"])
    finally:
        await conn.close()


async def time_to_ready(work: Path, config: Path, registration: Path, port: int,
                        profile: Path | None = None) -> tuple[float, int]:
    t0 = time.monotonic()
    prof = ["-m", "cProfile", "-o", str(profile)] if profile else []
    command = [sys.executable, *prof, "-m", "hookshot_py", "run", "-c", str(config), "-r", str(registration)]
    log = open(work / "bridge.log", "ab")  # the child writes it
    proc = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=BRIDGE_ENV)
    try:
        async with aiohttp.ClientSession() as s:
            while True:
                try:
                    async with s.get(f"http://127.0.0.1:{port}/ready") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if proc.poll() is not None:
                    raise RuntimeError((work / "bridge.log").read_text()[-3000:])
                await asyncio.sleep(0.01)
        elapsed = time.monotonic() - t0
        rss = psutil.Process(proc.pid).memory_info().rss
    finally:
        proc.terminate()
        proc.wait(30)
    return elapsed, rss


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=10_000)
    ap.add_argument("--rooms", type=int, default=1_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--profile", type=Path, default=None, help="cProfile one more start, print the top")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hookshot-startup-"))
    pg = EmbeddedPostgres(work / "pg")
    dsn = pg.start()
    null = None
    try:
        await seed(dsn, args.connections, args.rooms)
        hs_port, as_port, listener = free_port(), free_port(), free_port()
        null = subprocess.Popen([sys.executable, str(REPO / "bench" / "null_homeserver.py"), str(hs_port), DOMAIN])
        reg = make_registration(f"http://127.0.0.1:{as_port}", DOMAIN, user_prefixes=("_webhooks_",))
        (work / "registration.yaml").write_text(yaml.safe_dump(reg))
        config = {
            "bridge": {"domain": DOMAIN, "url": f"http://127.0.0.1:{hs_port}", "port": as_port},
            "passFile": str(work / "passkey.pem"),
            "logging": {"level": "warn"},
            "listeners": [{"port": listener, "resources": ["webhooks", "metrics"]}],
            "permissions": [{"actor": "*", "services": [{"service": "*", "level": "admin"}]}],
            "generic": {"enabled": True, "urlPrefix": f"http://127.0.0.1:{listener}/webhook/",
                        "userIdPrefix": "_webhooks_"},
            "metrics": {"enabled": True},
            "database": {"url": dsn},
        }
        (work / "config.yaml").write_text(yaml.safe_dump(config))
        await asyncio.sleep(1)
        print(f"hookshot_py start-up benchmark — {time.strftime('%Y-%m-%d %H:%M')}, "
              f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
              f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.1f}")
        print(f"{args.connections} generic webhook connections in {args.rooms} rooms, null homeserver, "
              "Postgres already up")
        for run in range(args.runs):
            elapsed, rss = await time_to_ready(work, work / "config.yaml", work / "registration.yaml", listener)
            print(f"  start {run + 1}: process launched → /ready 200 in {elapsed:.2f} s, RSS {rss / 2**20:.0f} MiB")
        if args.profile is not None:
            await time_to_ready(work, work / "config.yaml", work / "registration.yaml", listener, args.profile)
            import pstats

            pstats.Stats(str(args.profile)).sort_stats("cumtime").print_stats(45)
    finally:
        if null is not None:
            null.terminate()
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
