"""Running until SIGINT/SIGTERM, stoppable in every phase.

A signal during start-up cancels the start (whatever it waits for: the database, migrations, the
homeserver), then the stop runs; after start-up the stop runs on the first signal. Either way the
process ends within `STOP_DEADLINE` seconds of the signal: each shutdown step gets a share of a
`Deadline`, and what holds a process outside ours (the embedded Postgres) is released last,
whatever happened before.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)

STOP_DEADLINE = 10.0
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Deadline:
    """A time budget shared by the steps of a shutdown."""

    def __init__(self, seconds: float) -> None:
        self._end = time.monotonic() + seconds

    def remaining(self, cap: float | None = None) -> float:
        left = max(0.0, self._end - time.monotonic())
        return left if cap is None else min(left, cap)

    async def run(self, what: str, step: Awaitable[Any], cap: float | None = None) -> None:
        """Await `step` for at most `cap` seconds (and what is left of the budget); log, never raise."""
        try:
            await asyncio.wait_for(step, timeout=max(self.remaining(cap), 0.01))
        except TimeoutError:
            log.warning("Stopping: %s did not finish in time; going on", what)
        except Exception:
            log.exception("Stopping: %s failed", what)


async def run_until_signal(
    start: Callable[[], Coroutine[Any, Any, Any]],
    stop: Callable[[], Awaitable[None]],
) -> str:
    """Run `start()`, then wait for SIGINT/SIGTERM; `stop()` runs at the end in every case.

    A signal during `start()` cancels it. Returns the name of the signal that stopped us;
    re-raises what `start()` raised (after `stop()`).
    """
    loop = asyncio.get_running_loop()
    received: list[str] = []
    stopping = asyncio.Event()

    def on_signal(sig: signal.Signals) -> None:
        if received:
            log.warning("%s received again: already stopping", sig.name)
            return
        received.append(sig.name)
        log.info("%s received: stopping", sig.name)
        stopping.set()

    for sig in SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)
    starting = asyncio.create_task(start(), name="start")
    waiting = asyncio.create_task(stopping.wait(), name="wait-for-signal")
    try:
        await asyncio.wait({starting, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()  # raises start()'s error
            await waiting
    finally:
        waiting.cancel()
        if not starting.done():
            log.info("Start-up interrupted")
            await _cancel(starting)
        try:
            await stop()
        finally:
            for sig in SIGNALS:
                loop.remove_signal_handler(sig)
    return received[0]


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception as e:  # an interrupted start-up may fail on its way out: that is expected
        log.debug("Interrupted start-up ended with %r", e)
