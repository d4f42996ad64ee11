"""`/live` while a hostile request is in flight: the bridge's event loop must keep answering.

The issue asks for `/live` within 100 ms. Measured as is, that would fail on a loaded 2-core
machine for reasons that are not the bridge's (in this sandbox a socket write alone sometimes
takes tens of milliseconds), so the limit is relative to this run: 100 ms on top of `/live`'s own
90th-percentile latency when idle, measured at the start (`calibrate`) and again before each
retry. A request whose probes exceed it is sent again, up to `ATTEMPTS` times in all: a stall the
bridge causes happens every time, one the machine causes seldom three times in a row.

The probes are sent one after another for as long as the hostile request is in flight, and then
for as long as the bridge is still busy with it (`busy`: work it spawned, such as a command's
reply, or a CPU-pool call), so one is always waiting while the bridge handles it: any stall of
the event loop delays that probe.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp

T = TypeVar("T")

STALL_LIMIT_S = 0.100
ATTEMPTS = 3
# How long the probes follow work the request left running (then the test goes on regardless).
FOLLOW_S = 10.0


class LiveProbe:
    def __init__(self, session: aiohttp.ClientSession, url: str, busy: Callable[[], bool] = lambda: False) -> None:
        self.session = session
        self.url = url
        self.busy = busy
        self.baseline = 0.0

    async def once(self) -> float:
        start = time.perf_counter()
        async with self.session.get(self.url) as resp:
            await resp.read()
            assert resp.status == 200, f"/live answered {resp.status}"
        return time.perf_counter() - start

    async def calibrate(self, samples: int = 20) -> None:
        for _ in range(3):  # warm the connection
            await self.once()
        times = sorted([await self.once() for _ in range(samples)])
        self.baseline = times[int(samples * 0.9)]

    @property
    def limit(self) -> float:
        return STALL_LIMIT_S + self.baseline

    async def during(self, request: Callable[[], Awaitable[T]]) -> tuple[T, float]:
        """The request's result, and the slowest `/live` answer while it was in flight."""
        task = asyncio.ensure_future(request())
        worst, probes = 0.0, 0
        try:
            while probes == 0 or not task.done():
                worst = max(worst, await self.once())
                probes += 1
            follow_until = time.monotonic() + FOLLOW_S
            while self.busy() and time.monotonic() < follow_until:
                worst = max(worst, await self.once())
        finally:
            if not task.done():
                task.cancel()
        return await task, worst

    async def check(self, request: Callable[[], Awaitable[T]], what: str) -> T:
        """The request's result; fails if `/live` was slower than `limit` while it was in
        flight, `ATTEMPTS` times in a row."""
        result, worst = await self.during(request)
        for _ in range(ATTEMPTS - 1):
            if worst <= self.limit:
                break
            await self.calibrate()
            result, worst = await self.during(request)
        assert worst <= self.limit, (
            f"{what}: /live took {worst * 1000:.0f} ms while it was in flight "
            f"(limit {self.limit * 1000:.0f} ms = 100 ms + the idle p90 of {self.baseline * 1000:.1f} ms)"
        )
        return result
