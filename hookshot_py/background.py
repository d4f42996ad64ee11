"""`Background`: a job that runs in rounds in one task and sleeps between them until its next
round is due or `wake()` is called (the forge hook sync, the GitLab review summaries).

The start, the stop and the sleep are here once: the sleep uses `asyncio.timeout`, not
`wait_for`, which on Python 3.11 can swallow a cancellation racing the wake-up and leave the
loop running after `stop()`.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod

__all__ = ["Background"]


class Background(ABC):
    def __init__(self, name: str) -> None:
        self._name = name  # the task's name
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @abstractmethod
    async def round(self) -> float:
        """One round of the job; returns the seconds to sleep before the next one. Catches and
        logs its own failures: an exception ends the job."""

    def wake(self) -> None:
        """Something became due: run a round soon rather than at the planned time."""
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=self._name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            delay = await self.round()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
