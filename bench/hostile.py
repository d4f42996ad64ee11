"""Benchmark: what one hostile generic webhook costs the bridge (issue 16, item 3).

Starts the bridge as its own process (with the null homeserver by default, see `webhooks.py`),
then sends each hostile body and, while it is in flight, probes `/live` and a small ordinary
webhook every 20 ms. Prints, per case: the hostile request's answer and time, the slowest
`/live` and probe webhook seen meanwhile, and the CPU the bridge and its worker processes spent.

    .venv/bin/python bench/hostile.py                # every case
    .venv/bin/python bench/hostile.py punycode md-[  # some cases
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from webhooks import bridge_stack  # noqa: E402

KIB = 1024
MIB = 1024 * 1024


@dataclass(frozen=True)
class Request:
    data: bytes
    content_type: str


def text(markdown: str) -> Request:
    return Request(json.dumps({"text": markdown}).encode(), "application/json")


def html(markup: str) -> Request:
    return Request(json.dumps({"html": markup}).encode(), "application/json")


def fill(unit: str, size: int) -> str:
    return unit * (size // len(unit))


ORDINARY = "Deploy **ok** on _main_, see [the log](https://ci.example/1) and `make test`.\n\n"

CASES: dict[str, Callable[[], list[Request]]] = {
    "punycode": lambda: [Request(b"-" + b"9" * (200 * KIB), "text/plain; charset=punycode")],
    "md-[": lambda: [text(fill("[", 32 * KIB - 16))],
    "md-![[": lambda: [text(fill("![[", 32 * KIB - 16))],
    "md-[-200k": lambda: [text(fill("[", 200 * KIB))],
    "html-<b> </b>": lambda: [html(fill("<b> </b>", MIB - KIB))],
    "html-<div>": lambda: [html(fill("<div>", MIB - KIB))],
    "6x60k-md": lambda: [text(fill(ORDINARY, 60 * KIB)) for _ in range(6)],
}


@dataclass
class Probe:
    times: list[float] = field(default_factory=list)
    failures: int = 0

    def worst_ms(self) -> str:
        return f"{max(self.times) * 1000:.0f} ms" if self.times else "-"


async def probe_until(done: asyncio.Event, session: aiohttp.ClientSession, method: str, url: str,
                      body: object | None, probe: Probe) -> None:
    while not done.is_set():
        t0 = time.perf_counter()
        try:
            async with session.request(method, url, json=body) as r:
                await r.read()
                if r.status >= 400:
                    probe.failures += 1
        except aiohttp.ClientError:
            probe.failures += 1
        probe.times.append(time.perf_counter() - t0)
        await asyncio.sleep(0.02)


def cpu_seconds(proc: psutil.Process) -> float:
    """CPU of the bridge and of every child it has now (its render workers)."""
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            pass
    return total


async def run_case(name: str, base: str, hook_url: str, pid: int) -> str:
    requests = CASES[name]()
    proc = psutil.Process(pid)
    # Children that exit (a worker killed on its deadline) are counted through children_* times
    # only once reaped; sample before and after, plus a settle pause, and report the difference.
    cpu0 = cpu_seconds(proc)
    done = asyncio.Event()
    live, hook = Probe(), Probe()
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as hostile, aiohttp.ClientSession(timeout=timeout) as probes:
        probing = [
            asyncio.create_task(probe_until(done, probes, "GET", f"{base}/live", None, live)),
            asyncio.create_task(probe_until(done, probes, "POST", hook_url, {"text": "probe"}, hook)),
        ]

        async def one(req: Request) -> tuple[int, float, str]:
            t0 = time.perf_counter()
            async with hostile.post(hook_url, data=req.data, headers={"Content-Type": req.content_type}) as r:
                answer = await r.text()
                return r.status, time.perf_counter() - t0, answer

        await asyncio.sleep(0.1)
        results = await asyncio.gather(*(one(r) for r in requests))
        done.set()
        await asyncio.gather(*probing)
    await asyncio.sleep(0.5)
    cpu = cpu_seconds(proc) - cpu0
    statuses = ",".join(sorted({str(s) for s, _, _ in results}))
    slowest = max(t for _, t, _ in results)
    size = sum(len(r.data) for r in requests)
    note = ""
    if any(s >= 400 for s, _, _ in results):
        note = results[0][2][:80].replace("|", "/")
    return (f"| {name} | {size / KIB:.0f} KiB × {len(requests)} | {statuses} | {slowest:.2f} s | "
            f"{live.worst_ms()} ({len(live.times)}) | {hook.worst_ms()} ({len(hook.times)}) | {cpu:.1f} s | {note} |")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cases", nargs="*", default=list(CASES))
    ap.add_argument("--synapse", action="store_true", help="through Synapse instead of the null homeserver")
    args = ap.parse_args()
    unknown = set(args.cases) - set(CASES)
    if unknown:
        ap.error(f"unknown case(s) {sorted(unknown)}; known: {list(CASES)}")

    async with bridge_stack(null_homeserver=not args.synapse) as stack:
        print(f"hostile webhook bodies — {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
              f"{os.cpu_count()} cores, Python {platform.python_version()}")
        print("| case | body | answer | hostile request | worst /live (probes) | worst probe webhook (probes) | bridge CPU | error |")
        print("|---|---|---|---|---|---|---|---|")
        for name in args.cases:
            print(await run_case(name, stack.base, stack.hook_url, stack.pid), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
