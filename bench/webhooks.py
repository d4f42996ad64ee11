"""Benchmark: generic webhooks through the bridge into one room, beside a bare forwarder.

Starts Synapse (or the null homeserver), an embedded Postgres, and then, in the same run and
against the same homeserver and room:
- the bare forwarder (`bench/forwarder.py`): posts each webhook straight to the homeserver and
  answers after the send — the yardstick;
- the bridge, as one or several processes (`python -m hookshot_py run`) on one Postgres, webhooks
  spread round-robin over them, the homeserver's transactions through a round-robin balancer.
For each it fires N webhooks at concurrency C and prints accepted req/s, HTTP latency, the time
until every message is visible (a /sync-ing user in Synapse; the null homeserver's own count),
lost / duplicated messages, causal-order violations (a message posted before one whose request
was answered before its own began), peak RSS and CPU seconds of the processes; then the ratios.

    .venv/bin/python bench/webhooks.py -n 2000 -c 32                     # through Synapse
    .venv/bin/python bench/webhooks.py -n 2000 -c 32 --null-homeserver   # the bridge's own ceiling
    .venv/bin/python bench/webhooks.py -n 2000 -c 32 --null-homeserver --processes 3 --kill-after 1000
    .venv/bin/python bench/webhooks.py -n 2000 -c 32 --null-homeserver --only bridge --profile /tmp/prof
    .venv/bin/python bench/webhooks.py -n 2000 -c 32 --encrypted   # an encrypted room, the user decrypts
    .venv/bin/python bench/webhooks.py -n 2000 -c 32 --transform   # the hook has a transformation function

Only figures of one run compare: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import collections
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import asyncpg
import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from hookshot_py.db.embedded import EmbeddedPostgres  # noqa: E402
from hookshot_py.devenv.balancer import Balancer  # noqa: E402
from hookshot_py.devenv.synapse import SynapseServer, free_port, make_registration  # noqa: E402
from hookshot_py.tokens import SecretBox  # noqa: E402

DOMAIN = "bench.test"
SECRET = "b3nch-0a7f2c9e5d1b8f4a6c3e9d2b7f5a1c8e"  # provisioning secrets need 32+ characters
EVENT_TYPE = "uk.half-shot.matrix-hookshot.generic.hook"
GHOST = f"@_webhooks_bench:{DOMAIN}"
ACCEPTED = (200, 202)  # 202 queued; 200 with waitForComplete (and the forwarder's 202 after its send)
# With --transform: a typical v2 script (reads the payload, builds markdown) giving the same body.
TRANSFORM = "result = {version: 'v2', plain: data.text, mentions: {}}"
# As installed (pip compiles bytecode): with PYTHONDONTWRITEBYTECODE every start recompiles the package.
BRIDGE_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


class Sampler:
    """Samples the processes' RSS every 20 ms in a thread; keeps each one's peak."""

    def __init__(self, pids: list[int]) -> None:
        self.procs = [psutil.Process(pid) for pid in pids]
        self.peaks = [0] * len(pids)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for i, proc in enumerate(self.procs):
                try:
                    self.peaks[i] = max(self.peaks[i], proc.memory_info().rss)
                except psutil.Error:
                    pass
            time.sleep(0.02)

    def cpu(self) -> float:
        total = 0.0
        for proc in self.procs:
            try:
                t = proc.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Shot:
    index: int
    started: float
    answered: float = 0.0
    status: int = 0


@dataclass
class Result:
    name: str
    n: int
    concurrency: int
    shots: list[Shot]
    elapsed: float
    visible_after: float
    unique: int
    total: int
    violations: int
    cpu: float
    peak_rss: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def failures(self) -> int:
        return sum(1 for s in self.shots if s.status not in ACCEPTED)


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


async def fire(
    urls: list[str], n: int, concurrency: int, run: str, on_accepted: Any = None
) -> tuple[list[Shot], float]:
    """n POSTs, `concurrency` at a time, spread round-robin over `urls`."""
    shots = [Shot(i, 0.0) for i in range(n)]
    queue: collections.deque[int] = collections.deque(range(n))
    accepted = 0
    connector = aiohttp.TCPConnector(limit=concurrency * 2)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal accepted
            while queue:
                i = queue.popleft()
                shot = shots[i]
                shot.started = time.monotonic()
                try:
                    async with session.post(urls[i % len(urls)], json={"text": f"{run} {i}"}) as r:
                        await r.read()
                        shot.status = r.status
                except aiohttp.ClientError:
                    shot.status = -1
                shot.answered = time.monotonic()
                if shot.status in ACCEPTED:
                    accepted += 1
                    if on_accepted is not None:
                        on_accepted(accepted)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return shots, elapsed


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] * 1000


def causal_violations(shots: list[Shot], arrival: list[int]) -> int:
    """Messages posted before one whose request was answered before their own request began."""
    position = {index: pos for pos, index in enumerate(arrival)}
    answered = sorted((s for s in shots if s.status in ACCEPTED and s.index in position), key=lambda s: s.answered)
    times = [s.answered for s in answered]
    prefix_max: list[int] = []
    best = -1
    for s in answered:
        best = max(best, position[s.index])
        prefix_max.append(best)
    violations = 0
    for s in shots:
        if s.index not in position:
            continue
        k = bisect.bisect_left(times, s.started)  # answered strictly before s started
        if k and prefix_max[k - 1] > position[s.index]:
            violations += 1
    return violations


async def room_bodies_synapse(client: Any, room: str) -> list[str]:
    """Bodies of the room's messages, oldest first, by paginating /messages."""
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
                if isinstance(body, str):
                    seen.append(body)
            token = data.get("end")
            if not data.get("chunk") or not token:
                break
    return list(reversed(seen))


async def wait_synced(client: Any, room: str, run: str, n: int, timeout: float) -> float:
    """Monotonic time at which a /sync-ing user has seen all n messages of the run."""
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
            if timeline.get("limited"):  # more arrived than one sync returns: read the gap too
                seen.update(b for b in await room_bodies_synapse(client, room) if b.startswith(run + " "))
    return time.monotonic()


async def wait_decrypted(user: Any, room: str, run: str, n: int, timeout: float) -> float:
    """Time until the user's encrypting client has decrypted all n messages."""
    await user.wait_for_bodies(room, run + " ", n, timeout)
    return time.monotonic()


class Homeserver:
    """Synapse, or the null homeserver as its own process."""

    def __init__(self, work: Path, null: bool, reg_path: Path, log_level: str = "WARNING") -> None:
        self.work = work
        self.null = null
        self.reg_path = reg_path
        self.log_level = log_level
        self.synapse: SynapseServer | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    async def start(self) -> None:
        if self.null:
            port = free_port()
            self.proc = subprocess.Popen(
                [sys.executable, str(REPO / "bench" / "null_homeserver.py"), str(port), DOMAIN], cwd=REPO
            )
            self.url = f"http://127.0.0.1:{port}"
            await wait_http(f"{self.url}/_matrix/client/versions")
        else:
            self.synapse = SynapseServer(self.work / "synapse", DOMAIN, [self.reg_path], log_level=self.log_level)
            await self.synapse.start()
            self.url = self.synapse.base_url

    async def stop(self) -> None:
        if self.synapse is not None:
            await self.synapse.stop()
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)

    async def null_sent(self, since: float = 0.0) -> list[tuple[float, str, str]]:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{self.url}/_null/sent", params={"since": str(since)}) as r:
                return [tuple(x) for x in (await r.json())["sent"]]  # type: ignore[misc]

    async def null_count(self) -> int:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{self.url}/_null/count") as r:
                return int((await r.json())["count"])


class Bridges:
    """N bridge processes on one Postgres; the homeserver's transactions reach them through a
    round-robin balancer on the registration's port when there are several."""

    def __init__(self, work: Path, n: int, hs_url: str, as_port: int, dsn: str, reg_path: Path, window: int | None,
                 profile: Path | None, transform: bool = False, encrypted: bool = False) -> None:
        self.transform = transform
        self.encrypted = encrypted
        self.work = work
        self.n = n
        self.hs_url = hs_url
        self.as_port = as_port
        self.dsn = dsn
        self.reg_path = reg_path
        self.window = window
        self.profile = profile
        self.procs: list[subprocess.Popen[bytes] | None] = []
        self.listener_ports: list[int] = []
        self.balancer: Balancer | None = None

    def config(self, i: int, as_port: int, listener_port: int) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "bridge": {"domain": DOMAIN, "url": self.hs_url, "port": as_port, "bindAddress": "127.0.0.1"},
            "passFile": str(self.work / "passkey.pem"),
            "logging": {"level": "warn"},
            "listeners": [{"port": listener_port, "bindAddress": "127.0.0.1",
                           "resources": ["webhooks", "provisioning", "metrics"]}],
            "permissions": [{"actor": "*", "services": [{"service": "*", "level": "admin"}]}],
            "generic": {"enabled": True, "urlPrefix": f"http://127.0.0.1:{self.listener_ports[0]}/webhook/",
                        "userIdPrefix": "_webhooks_"},
            "provisioning": {"secret": SECRET},
            "metrics": {"enabled": True},
            "database": {"url": self.dsn},
        }
        if self.window is not None:
            cfg["outbox"] = {"roomWindow": self.window}
        if self.transform:
            cfg["generic"]["allowJsTransformationFunctions"] = True
        if self.encrypted:
            cfg["encryption"] = {"enabled": True}
        return cfg

    async def start(self) -> None:
        self.listener_ports = [free_port() for _ in range(self.n)]
        as_ports = [self.as_port] if self.n == 1 else [free_port() for _ in range(self.n)]
        if self.n > 1:
            self.balancer = Balancer(self.as_port, [f"http://127.0.0.1:{p}" for p in as_ports])
            await self.balancer.start()
        # A deployed bridge has its passFile from its first start: the bench measures that bridge,
        # not a first start (which also generates the key, loading `cryptography`: +7.5 MiB).
        SecretBox.from_pass_file(self.work / "passkey.pem")
        for i in range(self.n):
            cfg_path = self.work / f"config{i}.yaml"
            cfg_path.write_text(yaml.safe_dump(self.config(i, as_ports[i], self.listener_ports[i])))
            log = open(self.work / f"bridge{i}.log", "wb")
            profile = ["-m", "cProfile", "-o", str(self.profile)] if self.profile is not None and i == 0 else []
            self.procs.append(subprocess.Popen(
                [sys.executable, *profile, "-m", "hookshot_py", "run", "-c", str(cfg_path), "-r", str(self.reg_path)],
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=BRIDGE_ENV,
            ))
            await wait_http(f"http://127.0.0.1:{self.listener_ports[i]}/ready")

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p is not None]

    def base(self, i: int = 0) -> str:
        return f"http://127.0.0.1:{self.listener_ports[i]}"

    def kill(self, pid: int) -> None:
        for i, p in enumerate(self.procs):
            if p is not None and p.pid == pid:
                p.send_signal(signal.SIGKILL)
                p.wait()
                self.procs[i] = None

    async def stop(self) -> None:
        for p in self.procs:
            if p is not None:
                p.terminate()
        for p in self.procs:
            if p is not None:
                p.wait(30)
        if self.balancer is not None:
            await self.balancer.stop()


async def commit_stats(base: str) -> str:
    """Rows per commit and time per commit, from the bridge's metrics (one process)."""
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{base}/metrics") as r:
            text = await r.text()
    values = {}
    for line in text.splitlines():
        for name in ("hookshot_outbox_commits_total", "hookshot_outbox_commit_seconds_total",
                     "hookshot_outbox_queued_total"):
            if line.startswith(name + " "):
                values[name] = float(line.split()[-1])
    commits = values.get("hookshot_outbox_commits_total", 0) or 1
    return (f"{values.get('hookshot_outbox_queued_total', 0) / commits:.1f} rows per commit, "
            f"{1000 * values.get('hookshot_outbox_commit_seconds_total', 0) / commits:.1f} ms per commit "
            f"({commits:.0f} commits, this process)")


async def causal_width(dsn: str, room: str) -> str:
    """How many rows each row could be in flight with: its id minus its barrier (the highest row it
    must follow). Rows whose requests overlapped have no order; the rest wait for what they follow."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT percentile_disc(ARRAY[0.1, 0.5, 0.9]) WITHIN GROUP (ORDER BY id - barrier) AS p, count(*) AS n "
            "FROM outbox WHERE room_id = $1 AND barrier > 0", room)
    finally:
        await conn.close()
    if row is None or not row["n"]:
        return "no row had a barrier"
    p10, p50, p90 = row["p"]
    return f"id − barrier p10 {p10}, median {p50}, p90 {p90} ({row['n']} rows had one)"


async def holder_pid(dsn: str, room: str) -> int | None:
    """The pid of the process delivering `room` now (outbox_rooms.holder is host:pid:random)."""
    conn = await asyncpg.connect(dsn)
    try:
        holder = await conn.fetchval("SELECT holder FROM outbox_rooms WHERE room_id = $1", room)
    finally:
        await conn.close()
    return int(holder.split(":")[1]) if holder else None


def postgres_cpu(pg_pid: int) -> float:
    """CPU seconds of the Postgres server and its backends so far."""
    total = 0.0
    try:
        root = psutil.Process(pg_pid)
        for proc in [root, *root.children(recursive=True)]:
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    except psutil.Error:
        pass
    return total


async def measure(name: str, args: argparse.Namespace, hs: Homeserver, urls: list[str], pids: list[int],
                  user: Any, room: str, run: str, kill: Any = None, pg_pid: int = 0, e2ee: Any = None) -> Result:
    with Sampler(pids) as sampler:
        cpu0 = sampler.cpu()
        pg0 = postgres_cpu(pg_pid) if pg_pid else 0.0
        base_count = await hs.null_count() if hs.null else 0
        if e2ee is not None:  # visible = decrypted by the user's client
            sync_task: asyncio.Task[float] | None = asyncio.create_task(
                wait_decrypted(e2ee, room, run, args.n, args.timeout))
        else:
            sync_task = asyncio.create_task(wait_synced(user, room, run, args.n, args.timeout)) if user else None
        t0 = time.monotonic()
        shots, elapsed = await fire(urls, args.n, args.concurrency, run, kill)
        accepted = sum(1 for s in shots if s.status in ACCEPTED)
        if sync_task is not None:
            t_visible = await sync_task
        else:
            while True:
                if await hs.null_count() - base_count >= accepted or time.monotonic() - t0 > args.timeout:
                    break
                await asyncio.sleep(0.02)
            t_visible = time.monotonic()
        cpu = sampler.cpu() - cpu0
        pg_cpu = postgres_cpu(pg_pid) - pg0 if pg_pid else 0.0
        peak = max(sampler.peaks)
    if e2ee is not None:
        bodies = [str(e.body) for e in e2ee.decrypted(room) if str(e.body).startswith(run + " ")]
    elif user is not None:
        bodies = [b for b in await room_bodies_synapse(user, room) if b.startswith(run + " ")]
    else:
        bodies = [body for _, r, body in await hs.null_sent() if body.startswith(run + " ")]
    arrival: list[int] = []
    seen: set[str] = set()
    for b in bodies:
        if b not in seen:
            seen.add(b)
            arrival.append(int(b.split()[-1]))
    result = Result(name, args.n, args.concurrency, shots, elapsed, t_visible - t0, len(seen), len(bodies),
                    causal_violations(shots, arrival), cpu, peak)
    if pg_pid:
        result.extra["Postgres CPU"] = f"{pg_cpu:.2f} s ({pg_cpu / args.n * 1000:.2f} ms per message)"
    return result


def report(r: Result) -> None:
    lat = [s.answered - s.started for s in r.shots]
    lost = r.n - r.failures - r.unique
    print(f"[{r.name}]")
    print(f"  requests:          N={r.n} concurrency={r.concurrency}, answers other than 200/202: {r.failures}")
    print(f"  accepted:          {r.n / r.elapsed:.0f} req/s ({r.elapsed:.2f} s)")
    print(f"  HTTP latency:      p50 {pct(lat, 50):.1f} ms, p95 {pct(lat, 95):.1f} ms, p99 {pct(lat, 99):.1f} ms")
    print(f"  all visible after: {r.visible_after:.2f} s ({r.n / r.visible_after:.0f} msg/s end to end)")
    print(f"  lost: {lost}   duplicates: {r.total - r.unique}   causal-order violations: {r.violations}")
    print(f"  peak RSS:          {r.peak_rss / 1024 / 1024:.0f} MiB, CPU: {r.cpu:.2f} s "
          f"({r.cpu / r.n * 1000:.2f} ms per message)")
    for k, v in r.extra.items():
        print(f"  {k}: {v}")


def summarize_profile(raw: Path, top: int = 30) -> None:
    """Top functions by inclusive and self samples, from py-spy's collapsed stacks."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = stack.split(";")
        for f in set(frames):
            inclusive[f] += n
        own[frames[-1]] += n
    print(f"\nprofile: {total} samples — top by self time")
    for f, n in own.most_common(top):
        print(f"  {100 * n / total:5.1f}%  {f}")
    print("top by inclusive time")
    for f, n in inclusive.most_common(top):
        print(f"  {100 * n / total:5.1f}%  {f}")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("-c", "--concurrency", type=int, default=32)
    ap.add_argument("--null-homeserver", action="store_true")
    ap.add_argument("--processes", type=int, default=1, help="bridge processes on one Postgres")
    ap.add_argument("--only", choices=["bridge", "forwarder"], default=None)
    ap.add_argument("--window", type=int, default=None, help="outbox.roomWindow (the bridge's default if unset)")
    ap.add_argument("--kill-after", type=int, default=None,
                    help="SIGKILL the process delivering the room once this many webhooks were accepted")
    ap.add_argument("--profile", type=Path, default=None, help="py-spy the first bridge process (raw stacks here)")
    ap.add_argument("--cprofile", type=Path, default=None, help="run the first bridge process under cProfile")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--synapse-log", type=Path, default=None,
                    help="keep Synapse's log at INFO (its access log: time per request) in this file")
    ap.add_argument("--rounds", type=int, default=1, help="alternate forwarder and bridge this many times")
    ap.add_argument("--encrypted", action="store_true", help="an encrypted room the user decrypts (Synapse)")
    ap.add_argument("--wait-for-complete", action="store_true",
                    help="the hook answers after its message is sent (waitForComplete), like the forwarder")
    ap.add_argument("--transform", action="store_true",
                    help="give the hook a transformation function (QuickJS sandbox) that writes the same text")
    args = ap.parse_args()
    if args.encrypted:
        if args.null_homeserver:
            ap.error("--encrypted needs Synapse")
        args.only = "bridge"  # the forwarder does not encrypt

    work = Path(tempfile.mkdtemp(prefix="hookshot-bench-"))
    as_port = free_port()
    reg = make_registration(f"http://127.0.0.1:{as_port}", DOMAIN, user_prefixes=("_webhooks_",))
    reg_path = work / "registration.yaml"
    reg_path.write_text(yaml.safe_dump(reg))

    pg = EmbeddedPostgres(work / "pg")
    dsn = pg.start()
    hs = Homeserver(work, args.null_homeserver, reg_path, "INFO" if args.synapse_log else "WARNING")
    bridges: Bridges | None = None
    forwarder: subprocess.Popen[bytes] | None = None
    user = None
    e2ee = None
    results: list[Result] = []
    try:
        await hs.start()
        bridges = Bridges(work, args.processes, hs.url, as_port, dsn, reg_path, args.window, args.cprofile,
                          args.transform, args.encrypted)
        await bridges.start()
        base = bridges.base(0)
        e2ee = None
        if hs.synapse is not None:
            user = await hs.synapse.register_user("bench")
            if args.encrypted:
                from support.e2ee import E2EEUser

                e2ee = await E2EEUser(user, work / "nio").start()  # a device the bridge shares keys with
        user_id = user.user_id if user is not None else "@bench:" + DOMAIN
        bot = f"@hookshot:{DOMAIN}"
        if args.only != "bridge":
            fwd_port = free_port()
            forwarder = subprocess.Popen(
                [sys.executable, str(REPO / "bench" / "forwarder.py"), "--port", str(fwd_port), "--homeserver", hs.url,
                 "--token", reg["as_token"], "--user", GHOST], cwd=REPO,
            )
            await wait_http(f"http://127.0.0.1:{fwd_port}/ready")

        async def fresh_room(name: str, with_bot: bool) -> str:
            """Every phase gets a room of its own: Synapse slows down as a room grows."""
            if user is None:
                return f"!{name}:{DOMAIN}"
            # Both rooms have the same members (the user, the bot, the sender): Synapse's work per
            # event grows with them.
            room = await user.create_room(invite=[bot], name=name)
            await user.wait_for_message(room, lambda e: e.get("type") == "m.room.member"
                                        and e.get("state_key") == bot
                                        and e.get("content", {}).get("membership") == "join", timeout=30)
            await user.set_power_levels(room, {bot: 50})
            if not with_bot:  # the forwarder's ghost joins (a public room: no invite needed)
                await user.request("PUT", f"/_matrix/client/v3/rooms/{quote(room, safe='')}/state/m.room.join_rules",
                                   {"join_rule": "public"})
                async with aiohttp.ClientSession() as s:
                    async with s.post(f"{hs.url}/_matrix/client/v3/register",
                                      json={"type": "m.login.application_service", "username": GHOST[1:].split(":")[0]},
                                      headers={"Authorization": f"Bearer {reg['as_token']}"}) as r:
                        await r.read()  # M_USER_IN_USE after the first time
                    async with s.post(f"{hs.url}/_matrix/client/v3/join/{quote(room, safe='')}",
                                      params={"user_id": GHOST}, json={},
                                      headers={"Authorization": f"Bearer {reg['as_token']}"}) as r:
                        assert r.status == 200, await r.text()
            return room

        async def bridge_room(r: int) -> tuple[str, list[str]]:
            room = await fresh_room(f"bench-bridge-{r}", with_bot=True)
            if e2ee is not None:
                from support.e2ee import MEGOLM

                await user.send_state(room, "m.room.encryption", "", MEGOLM)
            hook = {"name": "bench", **({"transformationFunction": TRANSFORM} if args.transform else {}),
                    **({"waitForComplete": True} if args.wait_for_complete else {})}
            async with aiohttp.ClientSession() as s:
                async with s.put(f"{base}/v1/{room}/connections/{EVENT_TYPE}", params={"userId": user_id},
                                 json=hook, headers={"Authorization": f"Bearer {SECRET}"}) as resp:
                    created = await resp.json()
                    assert resp.status == 200, created
            hook_path = "/webhook/" + created["secrets"]["url"].rsplit("/", 1)[1]
            urls = [bridges.base(i) + hook_path for i in range(args.processes) if bridges.procs[i] is not None]
            # Warm-up: the ghost joins; every process knows the hook.
            async with aiohttp.ClientSession() as s:
                for url in urls:
                    for _ in range(100):
                        async with s.post(url, json={"text": "warm-up"}) as resp:
                            if resp.status in ACCEPTED:
                                break
                        await asyncio.sleep(0.1)
            await asyncio.sleep(2)
            return room, urls

        async def run_forwarder(r: int) -> None:
            assert forwarder is not None
            room = await fresh_room(f"bench-forwarder-{r}", with_bot=False)
            url = f"http://127.0.0.1:{fwd_port}/webhook/{quote(room, safe='')}"
            result = await measure("bare forwarder", args, hs, [url], [forwarder.pid], user, room,
                                   f"fwd{r}-{int(time.time())}")
            result.extra["room"] = room
            results.append(result)
            await asyncio.sleep(2)

        async def run_bridge(r: int) -> None:
            room, bridge_urls = await bridge_room(r)
            spy = None
            if args.profile is not None:
                spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid",
                                        str(bridges.pids[0]), "--format", "raw", "--nonblocking", "--output",
                                        str(args.profile)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                await asyncio.sleep(1)
            killed: dict[str, float] = {}
            kill_task: list[asyncio.Task[None]] = []

            async def kill_holder() -> None:
                pid = await holder_pid(dsn, room)
                if pid is not None:
                    killed["at"] = time.monotonic()
                    bridges.kill(pid)
                    killed["pid"] = pid

            def on_accepted(count: int) -> None:
                if args.kill_after is not None and r == 0 and count == args.kill_after and not kill_task:
                    kill_task.append(asyncio.create_task(kill_holder()))

            name = f"bridge ×{args.processes}" if args.processes > 1 else "bridge"
            result = await measure(name, args, hs, bridge_urls, bridges.pids, user, room, f"hs{r}-{int(time.time())}",
                                   on_accepted, pg_pid=pg._server.get_pid(), e2ee=e2ee)
            if "at" in killed and hs.null:
                after = [t for t, _, body in await hs.null_sent(killed["at"]) if body.startswith(f"hs{r}-")]
                first = min(after) - killed["at"] if after else float("nan")
                result.extra["fail-over"] = (f"SIGKILL of pid {killed['pid']} (the room's holder) → first message "
                                             f"delivered by a survivor after {first:.2f} s")
            result.extra["room"] = room
            result.extra["causal width"] = await causal_width(dsn, room)
            live = [i for i, p in enumerate(bridges.procs) if p is not None]
            result.extra["group commit"] = "; ".join([await commit_stats(bridges.base(i)) for i in live])
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(60)
            results.append(result)
            await asyncio.sleep(2)

        phases = [p for p in (run_forwarder, run_bridge) if args.only is None or p.__name__ == f"run_{args.only}"]
        for r in range(args.rounds):
            for phase in phases if r % 2 == 0 else reversed(phases):  # alternate which goes first
                await phase(r)

        print(f"\nhookshot_py generic webhook benchmark — {time.strftime('%Y-%m-%d %H:%M')}, "
              f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
              f"Python {platform.python_version()}, "
              f"load average {os.getloadavg()[0]:.1f}")
        print(f"homeserver: {'null (acknowledges only)' if args.null_homeserver else 'Synapse (SQLite)'}"
              + (f", bridge outbox.roomWindow={args.window}" if args.window else "")
              + (", encrypted room (the user decrypts every message)" if args.encrypted else "")
              + (", transformation function (QuickJS sandbox)" if args.transform else "")
              + (", waitForComplete (answers after the send)" if args.wait_for_complete else ""))
        for r in results:
            report(r)
        fwds = [r for r in results if r.name == "bare forwarder"]
        brs = [r for r in results if r.name != "bare forwarder"]
        if fwds and brs:
            fwd_t = statistics.median(r.visible_after for r in fwds)
            br_t = statistics.median(r.visible_after for r in brs)
            fwd_a = statistics.median(r.n / r.elapsed for r in fwds)
            br_a = statistics.median(r.n / r.elapsed for r in brs)
            print(f"[ratio bridge / forwarder, medians of {len(brs)} round(s)] all visible: {br_t / fwd_t:.2f}× "
                  f"({br_t:.2f} s / {fwd_t:.2f} s), accepted req/s: {br_a / fwd_a:.2f}× ({br_a:.0f} / {fwd_a:.0f})")
            if len(fwds) == len(brs) == args.rounds:
                # Each round's two phases ran side by side: their ratio is free of the drift between
                # rounds (Synapse's database grows, the shared host's load changes).
                pairs = [b.visible_after / f.visible_after for f, b in zip(fwds, brs, strict=True)]
                print(f"[ratio bridge / forwarder, paired by round] all visible: "
                      f"{statistics.geometric_mean(pairs):.3f}× (geometric mean; rounds: "
                      + ", ".join(f"{p:.2f}" for p in pairs) + ")")
        if args.profile is not None and args.profile.exists():
            summarize_profile(args.profile)
    finally:
        if forwarder is not None:
            forwarder.terminate()
        if bridges is not None:
            await bridges.stop()
        if args.cprofile is not None and args.cprofile.exists():
            import pstats

            stats = pstats.Stats(str(args.cprofile))
            stats.sort_stats("tottime").print_stats(25)
            stats.sort_stats("cumtime").print_stats(40)
        if e2ee is not None:
            await e2ee.close()
        if user is not None:
            await user.close()
        await hs.stop()
        if args.synapse_log is not None and hs.synapse is not None:
            shutil.copyfile(hs.synapse.log_path, args.synapse_log)
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
