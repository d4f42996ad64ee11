"""Benchmark: transformation functions in the QuickJS sandbox (no HTTP, no Matrix).

Measures what one transformed webhook costs the bridge beyond a plain one: a call of
`JsSandbox.run` (a fresh QuickJS context in a worker process, the script, reading `result`,
the pipe both ways) plus hookshot's result rules and the message content (`transform.py`).

    .venv/bin/python bench/transform.py -n 5000 -c 16 --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hookshot_py.generic.sandbox import JsSandbox  # noqa: E402
from hookshot_py.generic.transform import interpret, message_content  # noqa: E402

SCRIPT = """
const failed = data.alerts.filter(a => a.status === "firing");
result = {
  version: "v2",
  plain: `**${data.receiver}**: ${failed.length} alert(s) firing\\n\\n` +
         failed.map(a => `- ${a.labels.alertname} on ${a.labels.instance}`).join("\\n"),
  mentions: failed.length > 2 ? {room: true} : {},
};
"""
DATA = {
    "receiver": "ops",
    "alerts": [
        {"status": "firing" if i % 2 else "resolved", "labels": {"alertname": f"Alert{i}", "instance": f"db{i}"}}
        for i in range(10)
    ],
}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=5000)
    ap.add_argument("-c", "--concurrency", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    box = JsSandbox(workers=args.workers)
    await box.start()
    data_json = json.dumps(DATA)
    try:
        # one at a time: the latency of a call
        for _ in range(50):
            await box.run(SCRIPT, data_json, key="warm")
        t0 = time.perf_counter()
        single = min(args.n, 1000)
        for _ in range(single):
            await box.run(SCRIPT, data_json, key="one")
        per_call = (time.perf_counter() - t0) / single

        # many hooks at once: throughput of the pool, with the content built as the handler does
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(args.n):
            queue.put_nowait(i)

        async def worker(w: int) -> None:
            while not queue.empty():
                queue.get_nowait()
                result = interpret(await box.run(SCRIPT, data_json, key=f"hook-{w}"))
                message_content(result, DATA, include_hook_body=True)

        cpu0 = time.process_time()
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(args.concurrency)))
        elapsed = time.perf_counter() - t0
        parent_cpu = time.process_time() - cpu0
    finally:
        await box.stop()
    print(f"hookshot_py transformation benchmark — {time.strftime('%Y-%m-%d')}, "
          f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"workers: {args.workers}, concurrency: {args.concurrency}, N: {args.n}")
    print(f"one call at a time:  {per_call * 1000:.3f} ms per call (fresh context, script, result, pipe)")
    print(f"pool throughput:     {args.n / elapsed:.0f} transformed webhooks/s "
          f"(bridge process CPU {parent_cpu / args.n * 1000:.3f} ms per webhook)")


if __name__ == "__main__":
    asyncio.run(main())
