"""Benchmark: generic webhooks through the bridge into a room.

Starts Synapse (or a null homeserver), an embedded Postgres and the bridge as a separate
process, fires N webhooks at concurrency C, and prints: accepted req/s, HTTP latency
p50/p95/p99, time until all are visible to a user in the room, lost count, the bridge's peak RSS
and CPU seconds.

    .venv/bin/python bench/webhooks.py -n 2000 -c 32
    .venv/bin/python bench/webhooks.py -n 2000 -c 32 --null-homeserver
    .venv/bin/python bench/webhooks.py -n 2000 -c 32 --encrypted   # an encrypted room, the user decrypts
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import yaml
from aiohttp import web

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests"))

from hookshot_py.db.embedded import EmbeddedPostgres  # noqa: E402
from hookshot_py.devenv.synapse import SynapseServer, free_port, make_registration  # noqa: E402
from null_homeserver import make_app as make_null_homeserver  # noqa: E402

DOMAIN = "bench.test"
SECRET = "b3nch-0a7f2c9e5d1b8f4a6c3e9d2b7f5a1c8e"  # provisioning secrets need 32+ characters
EVENT_TYPE = "uk.half-shot.matrix-hookshot.generic.hook"
# With --transform: a typical v2 script (reads the payload, builds markdown) giving the same body.
TRANSFORM = "result = {version: 'v2', plain: data.text, mentions: {}}"


class Sampler:
    """Samples the bridge process's RSS every 20 ms in a thread; keeps the peak."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.02)

    def cpu(self) -> float:
        t = self.proc.cpu_times()
        return t.user + t.system

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while True:
            try:
                async with s.get(url) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(url)
            await asyncio.sleep(0.1)


async def fire(url: str, n: int, concurrency: int, run: str) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    failures = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal failures
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                t0 = time.perf_counter()
                async with session.post(url, json={"text": f"{run} {i}"}) as r:
                    await r.read()
                    if r.status != 202:
                        failures += 1
                latencies.append(time.perf_counter() - t0)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return latencies, failures, elapsed


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] * 1000


async def count_visible(client: Any, room: str, run: str) -> tuple[int, int]:
    """(unique, total) bench messages of this run in the room, by paginating /messages."""
    seen: list[str] = []
    token = None
    async with aiohttp.ClientSession() as s:
        while True:
            params = {"dir": "b", "limit": "1000"}
            if token:
                params["from"] = token
            async with s.get(
                f"{client.base_url}/_matrix/client/v3/rooms/{room}/messages",
                params=params,
                headers={"Authorization": f"Bearer {client.access_token}"},
            ) as r:
                data = await r.json()
            for e in data.get("chunk", []):
                body = (e.get("content") or {}).get("body", "")
                if isinstance(body, str) and body.startswith(run + " "):
                    seen.append(body)
            token = data.get("end")
            if not data.get("chunk") or not token:
                break
    return len(set(seen)), len(seen)


async def wait_synced(client: Any, room: str, run: str, n: int, timeout: float) -> float:
    """Time until a /sync-ing user has seen all n messages (returns monotonic timestamp)."""
    seen: set[str] = set()
    since = None
    filt = json.dumps({"room": {"timeline": {"limit": 1000}, "state": {"lazy_load_members": True}}})
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while len(seen) < n and time.monotonic() < deadline:
            params = {"timeout": "2000", "filter": filt}
            if since:
                params["since"] = since
            async with s.get(
                f"{client.base_url}/_matrix/client/v3/sync",
                params=params,
                headers={"Authorization": f"Bearer {client.access_token}"},
            ) as r:
                data = await r.json()
            since = data.get("next_batch", since)
            timeline = data.get("rooms", {}).get("join", {}).get(room, {}).get("timeline", {})
            for e in timeline.get("events", []):
                body = (e.get("content") or {}).get("body", "")
                if isinstance(body, str) and body.startswith(run + " "):
                    seen.add(body)
    return time.monotonic()


async def wait_decrypted(user: Any, room: str, run: str, n: int, timeout: float) -> float:
    """Time until the user's encrypting client has decrypted all n messages."""
    await user.wait_for_bodies(room, run + " ", n, timeout)
    return time.monotonic()


@dataclass
class Stack:
    """A running bridge (own process) with one generic webhook in one room."""

    base: str  # the bridge's webhooks/provisioning listener
    hook_url: str
    hs_url: str
    room: str
    pid: int
    user: Any  # a MatrixTestClient in the room, or None with the null homeserver
    e2ee: Any = None  # with --encrypted: the same user's encrypting client (tests/support/e2ee.py)


@asynccontextmanager
async def bridge_stack(
    null_homeserver: bool, transform: bool = False, encrypted: bool = False
) -> AsyncIterator[Stack]:
    """Embedded Postgres, Synapse or the null homeserver, the bridge as a process, a webhook."""
    work = Path(tempfile.mkdtemp(prefix="hookshot-bench-"))
    as_port, listener_port = free_port(), free_port()
    reg = make_registration(f"http://127.0.0.1:{as_port}", DOMAIN, user_prefixes=("_webhooks_",))
    reg_path = work / "registration.yaml"
    reg_path.write_text(yaml.safe_dump(reg))

    pg = EmbeddedPostgres(work / "pg")
    dsn = pg.start()
    synapse = None
    null_runner = None
    user = None
    e2ee = None
    bridge = None
    try:
        if null_homeserver:
            hs_port = free_port()
            null_runner = web.AppRunner(make_null_homeserver(DOMAIN))
            await null_runner.setup()
            await web.TCPSite(null_runner, "127.0.0.1", hs_port).start()
            hs_url = f"http://127.0.0.1:{hs_port}"
        else:
            synapse = SynapseServer(work / "synapse", DOMAIN, [reg_path])
            await synapse.start()
            hs_url = synapse.base_url

        config = {
            "bridge": {"domain": DOMAIN, "url": hs_url, "port": as_port, "bindAddress": "127.0.0.1"},
            "passFile": str(work / "passkey.pem"),
            "logging": {"level": "warn"},
            "listeners": [{"port": listener_port, "bindAddress": "127.0.0.1", "resources": ["webhooks", "provisioning", "metrics"]}],
            "permissions": [{"actor": "*", "services": [{"service": "*", "level": "admin"}]}],
            "generic": {"enabled": True, "urlPrefix": f"http://127.0.0.1:{listener_port}/webhook/", "userIdPrefix": "_webhooks_",
                        "allowJsTransformationFunctions": transform},
            "provisioning": {"secret": SECRET},
            "metrics": {"enabled": True},
            "database": {"url": dsn},
        }
        if encrypted:
            config["encryption"] = {"enabled": True}
        cfg_path = work / "config.yaml"
        cfg_path.write_text(yaml.safe_dump(config))
        log = open(work / "bridge.log", "wb")
        bridge = subprocess.Popen(
            [sys.executable, "-m", "hookshot_py", "run", "-c", str(cfg_path), "-r", str(reg_path)],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{listener_port}"
        await wait_http(f"{base}/ready")

        if synapse is not None:
            user = await synapse.register_user("bench")
            bot = f"@hookshot:{DOMAIN}"
            room = await user.create_room(invite=[bot], name="bench")
            await user.wait_for_message(room, lambda e: e.get("type") == "m.room.member" and e.get("state_key") == bot
                                        and e.get("content", {}).get("membership") == "join", timeout=30)
            await user.set_power_levels(room, {bot: 50})
            user_id = user.user_id
            if encrypted:
                from support.e2ee import MEGOLM, E2EEUser

                await user.send_state(room, "m.room.encryption", "", MEGOLM)
                e2ee = await E2EEUser(user, work / "nio").start()  # a device the bridge shares keys with
        else:
            room, user_id = "!bench:" + DOMAIN, "@bench:" + DOMAIN
        async with aiohttp.ClientSession() as s:
            async with s.put(f"{base}/v1/{room}/connections/{EVENT_TYPE}", params={"userId": user_id},
                             json={"name": "bench", **({"transformationFunction": TRANSFORM} if transform else {})},
                             headers={"Authorization": f"Bearer {SECRET}"}) as r:
                created = await r.json()
                assert r.status == 200, created
        hook_url = created["secrets"]["url"]
        # warm up: the ghost joins and gets its profile once
        async with aiohttp.ClientSession() as s:
            await s.post(hook_url, json={"text": "warm-up"})
        await asyncio.sleep(2)
        yield Stack(base, hook_url, hs_url, room, bridge.pid, user, e2ee)
    finally:
        if bridge is not None:
            bridge.terminate()
            bridge.wait(30)
        if e2ee is not None:
            await e2ee.close()
        if user is not None:
            await user.close()
        if synapse is not None:
            await synapse.stop()
        if null_runner is not None:
            await null_runner.cleanup()
        pg.stop()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("-c", "--concurrency", type=int, default=32)
    ap.add_argument("--null-homeserver", action="store_true")
    ap.add_argument("--encrypted", action="store_true", help="an encrypted room (Synapse only)")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--transform", action="store_true",
                    help="give the hook a transformation function (QuickJS sandbox) that writes the same text")
    args = ap.parse_args()
    if args.encrypted and args.null_homeserver:
        ap.error("--encrypted needs Synapse")

    async with bridge_stack(args.null_homeserver, args.transform, args.encrypted) as stack:
        base, hook_url, user, room = stack.base, stack.hook_url, stack.user, stack.room
        run = f"bench-{int(time.time())}"
        with Sampler(stack.pid) as sampler:
            cpu0 = sampler.cpu()
            if stack.e2ee is not None:  # visible = decrypted by the user's client
                sync_task = asyncio.create_task(wait_decrypted(stack.e2ee, room, run, args.n, args.timeout))
            elif user is not None:
                sync_task = asyncio.create_task(wait_synced(user, room, run, args.n, args.timeout))
            else:
                sync_task = None
            t0 = time.monotonic()
            latencies, failures, elapsed = await fire(hook_url, args.n, args.concurrency, run)
            if sync_task is not None:
                t_visible = await sync_task
            else:
                async with aiohttp.ClientSession() as s:
                    while True:
                        async with s.get(f"{base}/metrics") as r:
                            text = await r.text()
                        sent = next(float(l.split()[-1]) for l in text.splitlines() if l.startswith("hookshot_outbox_sent_total"))
                        if sent >= args.n + 1 or time.monotonic() - t0 > args.timeout:
                            break
                        await asyncio.sleep(0.05)
                t_visible = time.monotonic()
            cpu = sampler.cpu() - cpu0
            peak = sampler.peak
        if stack.e2ee is not None:
            bodies = [str(e.body) for e in stack.e2ee.decrypted(room) if str(e.body).startswith(run + " ")]
            unique, total = len(set(bodies)), len(bodies)
        elif user is not None:
            unique, total = await count_visible(user, room, run)
        else:
            async with aiohttp.ClientSession() as s:
                async with s.get(f"{stack.hs_url}/_null/sent") as r:
                    total = (await r.json())["count"] - 1  # minus the warm-up
            unique = total
        lost = args.n - failures - unique
        print(f"hookshot_py generic webhook benchmark — {time.strftime('%Y-%m-%d')}, "
              f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
        print(f"homeserver:          {'null (acknowledges only)' if args.null_homeserver else 'Synapse (SQLite)'}"
              f"{', encrypted room (the user decrypts every message)' if args.encrypted else ''}")
        print(f"transformation:      {'yes (QuickJS sandbox)' if args.transform else 'no'}")
        print(f"requests:            N={args.n} concurrency={args.concurrency}, non-202 answers: {failures}")
        print(f"accepted:            {args.n / elapsed:.0f} req/s ({elapsed:.2f} s)")
        print(f"HTTP latency:        p50 {pct(latencies, 50):.1f} ms, p95 {pct(latencies, 95):.1f} ms, p99 {pct(latencies, 99):.1f} ms")
        print(f"all visible after:   {t_visible - t0:.2f} s ({args.n / (t_visible - t0):.0f} msg/s end to end)")
        print(f"lost:                {lost}   duplicates: {total - unique}")
        print(f"bridge peak RSS:     {peak / 1024 / 1024:.0f} MiB, CPU: {cpu:.2f} s")


if __name__ == "__main__":
    asyncio.run(main())
