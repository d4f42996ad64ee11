"""Transformation functions run in a pool of QuickJS worker processes, never on the event loop.

Why processes: the engine's CPU-time limit (`clock()`) then counts the script alone, a crash in
the engine costs a worker instead of the bridge, and a worker that stops answering is killed
(wall-clock backstop) and replaced. Each call gets a fresh context in the worker
(`js_worker.py`), with the time limit (hookshot's 500 ms) and a memory limit enforced by QuickJS.

Fairness: one hook runs at most one script at a time, so a hook whose script loops forever holds
one worker at most while the other hooks keep flowing through the rest. Calls of a hook wait
their turn — at most `MAX_WAITING_PER_KEY` of them, for at most `MAX_WAIT_S` each — then get
`SandboxBusy`: a burst to a fast script queues, a flood to a looping one is turned away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from hookshot_py import jsonsafe

log = logging.getLogger(__name__)

TIME_LIMIT_MS = 500
MEMORY_LIMIT_BYTES = 64 * 1024 * 1024
MAX_RESULT_CHARS = 4 * 1024 * 1024
MAX_WAITING_PER_KEY = 256
MAX_WAIT_S = 5.0
# A worker gets this long beyond its two engine-limited evaluations (run, read the result)
# before it is presumed stuck and killed.
_BACKSTOP_SLACK_S = 2.0
_HEADER = struct.Struct(">I")
_WORKER = Path(__file__).with_name("js_worker.py")

ErrorKind = Literal["error", "timeout", "memory", "crash"]


class JsError(Exception):
    """The script failed: a thrown error, the time or memory limit, or a dead worker."""

    def __init__(self, kind: ErrorKind, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.line = line

    def describe(self) -> str:
        if self.kind == "timeout":
            return f"the transformation function ran longer than {TIME_LIMIT_MS} ms and was stopped"
        if self.kind == "memory":
            return f"the transformation function used too much memory and was stopped ({self})"
        where = f" (line {self.line})" if self.line is not None else ""
        return f"{self}{where}"


class SandboxBusy(Exception):
    """Too many calls for one key are waiting already."""


@dataclass(frozen=True)
class JsResult:
    """What the script left in `result`: kind "string" (value: str), "object" (value: the
    JSON-decoded object, or None when it was too large) or "none" (value: its typeof)."""

    kind: Literal["string", "object", "none"]
    value: Any


@dataclass
class _Key:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class _Worker:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def call(self, message: dict[str, Any], limit_s: float) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        payload = json.dumps(message).encode()
        self.proc.stdin.write(_HEADER.pack(len(payload)) + payload)
        async with asyncio.timeout(limit_s):
            await self.proc.stdin.drain()
            return await self.read()

    async def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        (length,) = _HEADER.unpack(await self.proc.stdout.readexactly(_HEADER.size))
        answer: dict[str, Any] = json.loads(await self.proc.stdout.readexactly(length))
        return answer

    async def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        await self.proc.wait()


class JsSandbox:
    def __init__(
        self,
        workers: int = 2,
        *,
        time_limit_ms: int = TIME_LIMIT_MS,
        memory_limit: int = MEMORY_LIMIT_BYTES,
        max_result_chars: int = MAX_RESULT_CHARS,
        max_waiting: int = MAX_WAITING_PER_KEY,
        max_wait_s: float = MAX_WAIT_S,
    ) -> None:
        self.size = workers
        self.max_waiting = max_waiting
        self.max_wait_s = max_wait_s
        self.time_limit_ms = time_limit_ms
        self.memory_limit = memory_limit
        self.max_result_chars = max_result_chars
        self._slots: asyncio.Queue[_Worker | None] | None = None
        self._keys: dict[str, _Key] = {}
        self._all: set[_Worker] = set()

    async def start(self) -> None:
        """Start one worker now, so a missing or broken engine stops the bridge at start-up."""
        self._slots = asyncio.Queue()
        first = await self._spawn()
        self._slots.put_nowait(first)
        for _ in range(self.size - 1):
            self._slots.put_nowait(None)  # spawned when first needed

    async def stop(self) -> None:
        for worker in list(self._all):
            await worker.kill()
        self._all.clear()
        self._slots = None

    # -- the API ------------------------------------------------------------------------------------

    async def run(self, script: str, data_json: str, *, key: str) -> JsResult:
        """Run `script` with `data` (JSON text); raises JsError, or SandboxBusy for `key`."""
        answer = await self._call({"op": "run", "script": script, "data": data_json}, key=key)
        if not answer.get("ok"):
            raise JsError(answer.get("kind", "error"), answer.get("error", "Error"), answer.get("line"))
        kind, value = answer["kind"], answer["value"]
        if kind in ("object", "string") and value is None:
            raise JsError("memory", f"the result is larger than {self.max_result_chars} characters")
        try:
            if kind == "object":
                value = json.loads(value)
            return JsResult(kind, jsonsafe.without_surrogates(value))
        except RecursionError:
            raise JsError("error", "the result is nested too deeply") from None

    async def compile_error(self, script: str) -> str | None:
        """The engine's message if `script` does not compile (it is not run), else None."""
        answer = await self._call({"op": "compile", "script": script}, key="")
        if answer.get("ok"):
            return None
        line = answer.get("line")
        return f"{answer.get('error', 'Error')}{f' (line {line})' if line is not None else ''}"

    # -- the pool -----------------------------------------------------------------------------------

    async def _call(self, message: dict[str, Any], *, key: str) -> dict[str, Any]:
        state = self._keys.setdefault(key, _Key())
        if state.users > self.max_waiting:
            raise SandboxBusy(key)
        state.users += 1
        # One bound on the whole wait, for this hook's turn and then a free worker: many different
        # looping hooks at once turn callers away rather than hold every scripted hook up.
        deadline = asyncio.get_running_loop().time() + self.max_wait_s
        try:
            try:
                async with asyncio.timeout_at(deadline):
                    await state.lock.acquire()
            except TimeoutError:
                raise SandboxBusy(key) from None
            try:
                return await self._on_a_worker(message, key, deadline)
            finally:
                state.lock.release()
        finally:
            state.users -= 1
            if state.users == 0:
                self._keys.pop(key, None)

    async def _on_a_worker(self, message: dict[str, Any], key: str, deadline: float) -> dict[str, Any]:
        if self._slots is None:
            raise RuntimeError("the JavaScript sandbox is not started")
        slots = self._slots
        try:
            async with asyncio.timeout_at(deadline):
                worker = await slots.get()
        except TimeoutError:
            raise SandboxBusy(key) from None
        try:
            if worker is None:
                worker = await self._spawn()
            answer = await worker.call(message, 2 * self.time_limit_ms / 1000 + _BACKSTOP_SLACK_S)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, OSError, RuntimeError) as e:
            if worker is not None:
                log.warning("Killing JavaScript worker %s: %s", worker.proc.pid, type(e).__name__)
                await self._retire(worker)
                worker = None
            if isinstance(e, TimeoutError):
                return {"ok": False, "kind": "timeout", "error": "InternalError: interrupted"}
            return {"ok": False, "kind": "crash", "error": f"the JavaScript engine failed: {e or type(e).__name__}"}
        except BaseException:
            if worker is not None:  # cancelled mid-call: the worker's answer would be out of step
                await self._retire(worker)
                worker = None
            raise
        finally:
            slots.put_nowait(worker)
        return answer

    async def _retire(self, worker: _Worker) -> None:
        self._all.discard(worker)
        await asyncio.shield(worker.kill())

    async def _spawn(self) -> _Worker:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-I", str(_WORKER),
            str(self.time_limit_ms), str(self.memory_limit), str(self.max_result_chars),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        )
        worker = _Worker(proc)
        self._all.add(worker)
        try:
            async with asyncio.timeout(30):
                hello = await worker.read()
        except (TimeoutError, asyncio.IncompleteReadError) as e:
            await self._retire(worker)
            raise RuntimeError(f"the JavaScript worker did not start: {type(e).__name__}") from None
        if not hello.get("ok"):
            await self._retire(worker)
            raise RuntimeError(hello.get("error", "the JavaScript worker did not start"))
        return worker
