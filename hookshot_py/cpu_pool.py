"""CPU work on what a stranger sent, run in worker processes with a deadline.

The event loop is for I/O: markdown built to be superlinear would stall every other request if
rendered on it, and a thread would not help (it holds the GIL most of the time). A worker is a
child process (`python -m hookshot_py.cpu_pool`, niced, with a memory cap) that takes a call to
a module-level function of hookshot_py over its stdin and answers on its stdout. A call that
outlives its deadline kills its worker (another starts for the next call) and raises
`CpuTimeout`, so the caller can fall back to something cheap: at most one deadline of CPU per
call, none of it on the loop.

A worker also exits when its stdin closes, so none outlives the bridge, even after a SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import pickle
import struct
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, cast

__all__ = ["CpuBusy", "CpuPool", "CpuPoolError", "CpuTimeout"]

P = ParamSpec("P")
T = TypeVar("T")

log = logging.getLogger(__name__)

# Three workers on two cores, niced: the event loop's process comes first. Heavy calls get two.
DEFAULT_WORKERS = 3
DEFAULT_HEAVY_WORKERS = 2
DEFAULT_DEADLINE_S = 5.0
# How long a call may wait for a free worker before it gives up (the caller falls back).
DEFAULT_QUEUE_TIMEOUT_S = 30.0
# Imported by a worker as it starts, so its first call does not pay for it.
DEFAULT_PRELOAD = ("hookshot_py.markdown",)
# Starting a worker (an interpreter importing the renderers) is not counted in a call's deadline.
SPAWN_TIMEOUT_S = 60.0
WORKER_NICENESS = 5
WORKER_MEMORY_BYTES = 1024 * 1024 * 1024
_HEADER = struct.Struct(">I")


class CpuPoolError(RuntimeError):
    """The work could not be done in a worker (it died, or none could be started)."""


class CpuTimeout(CpuPoolError):
    """The work took longer than its deadline (or waited too long for a worker)."""


class CpuBusy(CpuTimeout):
    """No worker was free in time: the work never started (the pool is busy, not the work slow)."""


class _Worker:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def call(self, request: bytes) -> tuple[bool, Any]:
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        stdin.write(_HEADER.pack(len(request)) + request)
        await stdin.drain()
        (size,) = _HEADER.unpack(await stdout.readexactly(_HEADER.size))
        ok, value = pickle.loads(await stdout.readexactly(size))
        return bool(ok), value

    async def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        await self.process.wait()


class CpuPool:
    """A few worker processes for CPU-bound calls; `run` and `run_heavy` are the ways in.

    Heavy calls (large bodies) may hold at most `heavy_workers` of the `workers` at once, so a
    burst of them never makes a light call wait behind them. The first call starts a worker and
    the others start in the background; each imports the `preload` modules before its first
    call. `deadline` bounds each call's run time, `queue_timeout` the wait for a free worker;
    both raise `CpuTimeout`.
    """

    def __init__(
        self,
        workers: int = DEFAULT_WORKERS,
        *,
        heavy_workers: int = DEFAULT_HEAVY_WORKERS,
        deadline: float = DEFAULT_DEADLINE_S,
        queue_timeout: float = DEFAULT_QUEUE_TIMEOUT_S,
        preload: Sequence[str] = DEFAULT_PRELOAD,
    ) -> None:
        if not 0 < heavy_workers <= workers:
            raise ValueError("heavy_workers must be between 1 and workers")
        self.deadline = deadline
        self.queue_timeout = queue_timeout
        self._preload = tuple(preload)
        self._sizes = (workers, heavy_workers)
        self._slots: tuple[asyncio.Semaphore, asyncio.Semaphore] | None = None
        self._idle: list[_Worker] = []
        self._running: set[_Worker] = set()
        self._starting: set[asyncio.Task[None]] = set()
        self._closed = False

    def preload(self, module: str) -> None:
        """Have workers started from now on import `module` before their first call (an
        integration whose functions run here), so no call's deadline pays for the import."""
        if module not in self._preload:
            self._preload += (module,)

    @property
    def busy(self) -> int:
        """Calls running in a worker right now."""
        return len(self._running)

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args, **kwargs)` in a worker; its exception is raised here as it was raised there.

        `fn` must be a module-level function of hookshot_py, and its arguments and result
        picklable.
        """
        return cast(T, await self._run(fn, args, kwargs, heavy=False))

    async def run_heavy(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`run` for a call that may take long (a large body): it queues behind other heavy
        calls rather than take the last worker light calls can use."""
        return cast(T, await self._run(fn, args, kwargs, heavy=True))

    async def run_within(self, deadline: float, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`run_heavy` with a deadline of its own: for work whose size a trusted peer bounds (a
        homeserver's transaction), which must not be cut short by the deadline for strangers'."""
        return cast(T, await self._run(fn, args, kwargs, heavy=True, deadline=deadline))

    async def _run(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], *, heavy: bool,
        deadline: float | None = None,
    ) -> Any:
        module, name = fn.__module__, fn.__qualname__
        if not module.startswith("hookshot_py.") or "." in name or "<" in name:
            raise ValueError(f"{module}.{name} is not a module-level function of hookshot_py")
        request = pickle.dumps((module, name, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        if self._closed:
            raise CpuPoolError("The CPU pool is closed")
        if self._slots is None:
            self._slots = (asyncio.Semaphore(self._sizes[0]), asyncio.Semaphore(self._sizes[1]))
        held = [self._slots[1], self._slots[0]] if heavy else [self._slots[0]]
        acquired: list[asyncio.Semaphore] = []
        try:
            try:
                async with asyncio.timeout(self.queue_timeout):
                    for slot in held:
                        await slot.acquire()
                        acquired.append(slot)
            except TimeoutError:
                raise CpuBusy(f"No worker was free within {self.queue_timeout:g} s") from None
            ok, value = await self._call(name, request, self.deadline if deadline is None else deadline)
        finally:
            for slot in acquired:
                slot.release()
        if not ok:
            raise value
        return value

    async def _call(self, name: str, request: bytes, deadline: float) -> tuple[bool, Any]:
        worker = self._idle.pop() if self._idle else await self._spawn()
        self._running.add(worker)
        self._top_up()
        try:
            ok, value = await asyncio.wait_for(worker.call(request), deadline)
        except BaseException as e:
            # Timed out, cancelled or died mid-call: its state is unknown, so it goes.
            self._running.discard(worker)
            await worker.kill()
            self._top_up()
            if isinstance(e, TimeoutError):
                raise CpuTimeout(f"{name} ran longer than {deadline:g} s") from None
            if isinstance(e, (OSError, EOFError, asyncio.IncompleteReadError, pickle.UnpicklingError)):
                raise CpuPoolError(f"The worker running {name} died: {e!r}") from None
            raise
        self._running.discard(worker)
        await self._park(worker)
        return ok, value

    def _top_up(self) -> None:
        """Start workers in the background until the pool is full, so a call seldom waits for
        one (a worker killed on its deadline is replaced at once)."""
        missing = self._sizes[0] - len(self._idle) - len(self._running) - len(self._starting)
        for _ in range(0 if self._closed else missing):
            task = asyncio.create_task(self._start_idle(), name="cpu-pool-spawn")
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)

    async def _start_idle(self) -> None:
        try:
            worker = await self._spawn()
        except CpuPoolError as e:
            log.warning("%s", e)
            return
        await self._park(worker)

    async def _park(self, worker: _Worker) -> None:
        """An idle worker waits for the next call, unless the pool is closed or full."""
        if self._closed or len(self._idle) + len(self._running) >= self._sizes[0]:
            await worker.kill()
        else:
            self._idle.append(worker)

    async def _spawn(self) -> _Worker:
        try:
            process = await asyncio.wait_for(
                asyncio.create_subprocess_exec(
                    sys.executable, "-m", "hookshot_py.cpu_pool", *self._preload,
                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=_worker_env(),
                ),
                SPAWN_TIMEOUT_S,
            )
        except (OSError, TimeoutError) as e:
            raise CpuPoolError(f"Could not start a worker process: {e!r}") from None
        return _Worker(process)

    async def close(self) -> None:
        """Stop the idle workers; calls still running stop theirs when they end."""
        self._closed = True
        starting = list(self._starting)
        for task in starting:
            task.cancel()
        await asyncio.gather(*starting, return_exceptions=True)
        idle, self._idle = self._idle, []
        await asyncio.gather(*(w.kill() for w in idle), return_exceptions=True)


def _worker_env() -> dict[str, str]:
    """The bridge's environment, with hookshot_py importable however the bridge was started."""
    root = str(Path(__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{path}" if path else root}


# --- the worker side ------------------------------------------------------------------------------


def _limit_worker() -> None:
    """Lower priority than the event loop's process, bounded memory, no Ctrl-C tracebacks."""
    import resource
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICENESS)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY_BYTES, WORKER_MEMORY_BYTES))


def _answer(ok: bool, value: object) -> bytes:
    try:
        return pickle.dumps((ok, value), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as e:  # an unpicklable result or exception
        return pickle.dumps((False, CpuPoolError(f"Unpicklable {'result' if ok else 'error'}: {e!r}")))


def _serve(preload: Sequence[str]) -> None:
    _limit_worker()
    for module in preload:
        importlib.import_module(module)
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print() must not break the protocol
    while True:
        header = requests.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return  # the bridge is gone
        (size,) = _HEADER.unpack(header)
        module, name, args, kwargs = pickle.loads(requests.read(size))
        try:
            fn = getattr(importlib.import_module(module), name)
            answer = _answer(True, fn(*args, **kwargs))
        except MemoryError:
            answer = _answer(False, CpuPoolError(f"{name} needed more than {WORKER_MEMORY_BYTES >> 20} MiB"))
        except Exception as e:
            answer = _answer(False, e)
        answers.write(_HEADER.pack(len(answer)) + answer)
        answers.flush()


if __name__ == "__main__":
    _serve(sys.argv[1:])
