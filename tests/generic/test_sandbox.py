"""The JavaScript sandbox: real QuickJS worker processes, with hostile scripts."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from hookshot_py.generic.sandbox import MAX_WAITING_PER_KEY, JsError, JsResult, JsSandbox, SandboxBusy

NORMAL = "result = {version: 'v2', plain: `hello ${data.who}`}"


@pytest_asyncio.fixture(loop_scope="session")
async def sandbox() -> AsyncIterator[JsSandbox]:
    box = JsSandbox(workers=2)
    await box.start()
    try:
        yield box
    finally:
        await box.stop()


async def run(box: JsSandbox, script: str, data: object = None, key: str = "hook") -> JsResult:
    return await box.run(script, json.dumps({} if data is None else data), key=key)


async def error_of(box: JsSandbox, script: str, key: str = "bad") -> JsError:
    with pytest.raises(JsError) as info:
        await run(box, script, key=key)
    return info.value


async def test_results_are_read_with_javascripts_typeof(sandbox: JsSandbox) -> None:
    assert await run(sandbox, NORMAL, {"who": "world"}) == JsResult("object", {"version": "v2", "plain": "hello world"})
    assert await run(sandbox, "result = `n=${data.n * 2}`", {"n": 1.25}) == JsResult("string", "n=2.5")
    assert await run(sandbox, "") == JsResult("none", "undefined")
    assert await run(sandbox, "result = null") == JsResult("none", "object")
    assert await run(sandbox, "result = 42") == JsResult("none", "number")
    assert await run(sandbox, "result = () => 1") == JsResult("none", "function")
    assert await run(sandbox, "result = [1, {a: undefined}]") == JsResult("object", [1, {}])
    # the script is a function body: `return` works, `data` is a constant, locals stay local
    assert await run(sandbox, "result = 'early'; return; result = 'late'") == JsResult("string", "early")
    assert await run(sandbox, "var result = 'local'") == JsResult("none", "undefined")
    assert (await error_of(sandbox, "data = 1")).describe() == "TypeError: 'data' is read-only (line 1)"
    assert await run(sandbox, "result = HookshotApiVersion") == JsResult("string", "v2")
    # a fresh context each call: nothing leaks from one run to the next
    await run(sandbox, "globalThis.leak = 1; Object.prototype.polluted = true; result = 1")
    assert await run(sandbox, "result = typeof leak + ' ' + typeof ({}).polluted") == JsResult(
        "string", "undefined undefined"
    )
    # lone surrogates cannot go to Matrix: replaced
    assert await run(sandbox, "result = 'a\\ud800b'") == JsResult("string", "a\ufffdb")


async def test_errors_carry_the_engines_message_and_the_scripts_line(sandbox: JsSandbox) -> None:
    error = await error_of(sandbox, "const x = 1;\n\nthrow new Error('boom')")
    assert (error.kind, str(error), error.line) == ("error", "Error: boom", 3)
    error = await error_of(sandbox, "result = data.missing.deeper")
    assert error.describe() == "TypeError: cannot read property 'deeper' of undefined (line 1)"
    error = await error_of(sandbox, "result = {big: 1n}")
    assert error.describe() == "TypeError: BigInt are forbidden in JSON.stringify"  # reading `result`
    error = await error_of(sandbox, "function f() { return f() }\nf()")
    assert error.describe().startswith("RangeError: Maximum call stack size exceeded")


async def test_compile_errors_are_found_without_running(sandbox: JsSandbox) -> None:
    assert await sandbox.compile_error("bibble bobble") == "SyntaxError: expecting ';' (line 1)"
    assert await sandbox.compile_error("let a = 1;\nlet b = (;") is not None
    assert await sandbox.compile_error("result = 1; return;") is None
    assert await sandbox.compile_error("while (true) {}") is None  # compiled, never run


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("require('fs').readFileSync('/etc/passwd')", "ReferenceError: require is not defined"),
        ("process.exit(1)", "ReferenceError: process is not defined"),
        ("fetch('http://127.0.0.1/')", "ReferenceError: fetch is not defined"),
        ("new XMLHttpRequest()", "ReferenceError: XMLHttpRequest is not defined"),
        ("std.loadFile('/etc/passwd')", "ReferenceError: std is not defined"),
        ("os.exec(['/bin/sh'])", "ReferenceError: os is not defined"),
        ("Deno.readTextFileSync('/etc/passwd')", "ReferenceError: Deno is not defined"),
        ("setTimeout(() => {}, 1)", "ReferenceError: setTimeout is not defined"),
        ("WebAssembly.compile(new Uint8Array(8))", "ReferenceError: WebAssembly is not defined"),
        ("this.constructor.constructor('return process')().exit()", "ReferenceError: process is not defined"),
        ("import fs from 'fs'", "SyntaxError"),
    ],
)
async def test_the_host_is_out_of_reach(sandbox: JsSandbox, script: str, expected: str) -> None:
    error = await error_of(sandbox, script)
    assert error.kind == "error" and str(error).startswith(expected)


async def test_dynamic_import_loads_nothing(sandbox: JsSandbox) -> None:
    script = "import('os').then(() => { result = 'loaded' }, (e) => { result = String(e) })"
    # Promise jobs never run (as in hookshot): the import neither resolves nor reads a file.
    assert await run(sandbox, script) == JsResult("none", "undefined")
    globals_ = await run(sandbox, "result = Object.getOwnPropertyNames(globalThis)")
    assert not {"require", "process", "fetch", "std", "os", "console", "setTimeout"} & set(globals_.value)


async def test_runaway_scripts_are_stopped_by_the_engine(sandbox: JsSandbox) -> None:
    assert (await error_of(sandbox, "while (true) {}")).kind == "timeout"
    assert (await error_of(sandbox, "for (;;) { Math.random() }")).describe() == (
        "the transformation function ran longer than 500 ms and was stopped"
    )
    assert (await error_of(sandbox, "const a = []; while (true) a.push(new Array(100000).fill(1.5))")).kind == "memory"
    assert (await error_of(sandbox, "let s = 'x'; while (true) s += s")).kind == "memory"
    # a getter that loops while `result` is read is stopped too
    assert (await error_of(sandbox, "result = {get x() { while (true) {} }}")).kind == "timeout"
    # and the workers are fine afterwards
    assert await run(sandbox, NORMAL, {"who": "again"}) == JsResult("object", {"version": "v2", "plain": "hello again"})


async def test_a_runaway_hook_never_stalls_the_others(sandbox: JsSandbox) -> None:
    """A hook looping forever and one allocating without bound, while normal hooks post: every
    normal call completes before the runaway ones are stopped."""
    finished: list[str] = []

    async def runaway(key: str, script: str) -> None:
        with pytest.raises(JsError):
            await run(sandbox, script, key=key)
        finished.append(key)

    async def normal(i: int) -> None:
        result = await run(sandbox, NORMAL, {"who": i}, key=f"normal-{i % 3}")
        assert result.value["plain"] == f"hello {i}"
        finished.append("normal")

    loop = asyncio.create_task(runaway("loop", "while (true) {}"))
    more_loops = asyncio.create_task(runaway("loop", "while (true) {}"))  # same hook: waits its turn
    await asyncio.sleep(0.05)  # the loop holds a worker now
    await asyncio.gather(*(normal(i) for i in range(30)))
    assert not loop.done(), "normal hooks were served while the loop still ran"
    await asyncio.gather(loop, more_loops)
    assert finished[:30] == ["normal"] * 30 and finished[30:] == ["loop", "loop"]


async def test_a_burst_to_a_fast_script_queues() -> None:
    box = JsSandbox(workers=2)
    await box.start()
    try:
        results = await asyncio.gather(*(run(box, NORMAL, {"who": i}, key="busy") for i in range(200)))
        assert [r.value["plain"] for r in results] == [f"hello {i}" for i in range(200)]
    finally:
        await box.stop()


async def test_one_hook_cannot_queue_without_bound() -> None:
    box = JsSandbox(workers=1, time_limit_ms=50, max_waiting=MAX_WAITING_PER_KEY // 32, max_wait_s=60)
    await box.start()
    try:
        calls = [asyncio.create_task(run(box, "while (true) {}", key="flood")) for _ in range(box.max_waiting + 4)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert sum(isinstance(r, SandboxBusy) for r in results) == 3
        assert all(isinstance(r, (SandboxBusy, JsError)) for r in results)
    finally:
        await box.stop()
    box = JsSandbox(workers=1, time_limit_ms=200, max_wait_s=0.5)
    await box.start()
    try:  # waiting longer than max_wait_s behind a looping script: turned away
        calls = [asyncio.create_task(run(box, "while (true) {}", key="slow")) for _ in range(6)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert any(isinstance(r, SandboxBusy) for r in results) and isinstance(results[0], JsError)
        assert await run(box, NORMAL, {"who": "x"}, key="other") == JsResult(
            "object", {"version": "v2", "plain": "hello x"}
        )
    finally:
        await box.stop()


async def test_many_looping_hooks_turn_callers_away_instead_of_holding_every_hook() -> None:
    """Each hook waits its own turn, but the workers are shared: the wait for one is bounded too."""
    box = JsSandbox(workers=1, time_limit_ms=300, max_wait_s=0.4)
    await box.start()
    try:
        loops = [asyncio.create_task(run(box, "while (true) {}", key=f"loop{n}")) for n in range(4)]
        await asyncio.sleep(0.05)
        started = asyncio.get_running_loop().time()
        with pytest.raises(SandboxBusy):
            await run(box, NORMAL, {"who": "x"}, key="innocent")
        assert asyncio.get_running_loop().time() - started < 1.0, "turned away at the bound, not after every loop"
        results = await asyncio.gather(*loops, return_exceptions=True)
        assert isinstance(results[0], JsError) and any(isinstance(r, SandboxBusy) for r in results[1:])
    finally:
        await box.stop()


async def test_a_dead_worker_is_replaced(sandbox: JsSandbox) -> None:
    call = asyncio.create_task(run(sandbox, "while (true) {}", key="victim"))
    await asyncio.sleep(0.1)
    busy = [w for w in sandbox._all if w.proc.returncode is None]
    for worker in busy:
        os.kill(worker.proc.pid, signal.SIGKILL)
    with pytest.raises(JsError) as info:
        await call
    assert info.value.kind in ("crash", "timeout")
    for i in range(4):  # every slot works again
        assert (await run(sandbox, NORMAL, {"who": i}, key=f"k{i}")).value["plain"] == f"hello {i}"


async def test_workers_run_isolated_from_the_bridge(sandbox: JsSandbox) -> None:
    await run(sandbox, NORMAL, {"who": 1})
    for worker in sandbox._all:
        with open(f"/proc/{worker.proc.pid}/environ", "rb") as f:
            env = dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)
        assert set(env) <= {b"PATH"}, "no secrets or config in the worker's environment"
        limits = open(f"/proc/{worker.proc.pid}/limits").read()
        assert "Max address space" in limits and "1073741824" in limits
