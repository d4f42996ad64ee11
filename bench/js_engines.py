"""Benchmark: the JavaScript engines we could sandbox transformation functions in.

Each engine's Python package is installed in its own scratch virtualenv (`quickjs` and
`quickjs-ng` both install a module named `quickjs`), then this script runs in each:

    for e in quickjs-ng==0.17.0.2 quickjs==1.19.4 mini-racer==0.14.1; do
      python3.11 -m venv /tmp/js-$e && /tmp/js-$e/bin/pip install -q $e
    done
    /tmp/js-quickjs-ng==0.17.0.2/bin/python bench/js_engines.py quickjs   # quickjs-ng
    /tmp/js-quickjs==1.19.4/bin/python bench/js_engines.py quickjs        # PetterS/quickjs
    /tmp/js-mini-racer==0.14.1/bin/python bench/js_engines.py mini-racer  # V8

It prints, for a fresh context per call (as hookshot does): the cost of one call, what a
script that loops forever or allocates without bound gets, whether the interpreter lets other
Python threads run while JavaScript runs (GIL), and how the time limit behaves when another
thread of the same process is busy.
"""

from __future__ import annotations

import json
import resource
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

TIME_LIMIT_S = 0.5
MEMORY_LIMIT = 64 * 1024 * 1024
DATA = {
    "action": "opened", "number": 42,
    "pull_request": {"title": "x" * 100, "user": {"login": "alice"}, "labels": [{"name": f"l{i}"} for i in range(20)]},
}  # fmt: skip
SCRIPT = "result = {version: 'v2', plain: `**${data.pull_request.user.login}** ${data.action} #${data.number}`};"


def wrap(script: str, data: Any) -> str:
    return f"const data = {json.dumps(data)};\n(() => {{\n{script}\n}})();"


def runner(engine: str) -> Callable[[str], Any]:
    if engine == "quickjs":
        import quickjs

        def run(src: str) -> Any:
            ctx = quickjs.Context()
            ctx.set_memory_limit(MEMORY_LIMIT)
            ctx.set_time_limit(TIME_LIMIT_S)
            ctx.eval(src)
            return json.loads(ctx.eval("JSON.stringify(result)"))

        return run
    from py_mini_racer import MiniRacer

    def run_v8(src: str) -> Any:
        mr = MiniRacer()
        try:
            mr.set_hard_memory_limit(MEMORY_LIMIT)
            mr.eval(src, timeout_sec=TIME_LIMIT_S)
            return json.loads(mr.eval("JSON.stringify(result)"))
        finally:
            mr.close()

    return run_v8


def spin(seconds: float) -> int:
    n, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        n += 1
    return n


def main(engine: str) -> None:
    run = runner(engine)
    src = wrap(SCRIPT, DATA)
    assert run(src) == {"version": "v2", "plain": "**alice** opened #42"}
    n = 300
    t0 = time.perf_counter()
    for _ in range(n):
        run(src)
    print(f"engine: {engine}; one call with a fresh context: {(time.perf_counter() - t0) / n * 1000:.2f} ms")
    for name, script in [
        ("loop forever", "while (true) {}"),
        ("allocate arrays", "const a = []; while (true) a.push(new Array(100000).fill(1.5));"),
        ("double a string", "let s = 'x'; while (true) s = s + s;"),
    ]:
        t0 = time.perf_counter()
        try:
            run(wrap(script, {}))
            outcome = "not stopped"
        except Exception as e:
            outcome = f"{type(e).__name__}: {str(e).splitlines()[0][:70]}"
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        print(f"{name:16} -> {outcome} after {time.perf_counter() - t0:.2f} s (peak RSS {rss} MiB)")

    def looping() -> None:
        try:
            run(wrap("while (true) {}", {}))
        except Exception:
            pass

    idle = spin(0.3)
    thread = threading.Thread(target=looping)
    thread.start()
    time.sleep(0.02)
    busy = spin(0.3)
    thread.join()
    print(f"GIL: a Python thread runs at {busy / idle * 100:.0f}% of its idle speed while a script loops")
    other = threading.Thread(target=spin, args=(2.0,))
    other.start()
    t0 = time.perf_counter()
    looping()
    print(f"time limit while another thread of the process is busy: stopped after {time.perf_counter() - t0:.2f} s")
    other.join()


if __name__ == "__main__":
    main(sys.argv[1])
