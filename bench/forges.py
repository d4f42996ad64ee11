"""Figures behind two choices of the forge layer (hookshot_py/forges/), printed, asserting nothing.

1. Declared models: msgspec (what the bridge uses) against pydantic v2, when pydantic is
   installed (`pip install pydantic==2.14.3` in a scratch venv): import time, decoding a page
   of 100 GitHub hooks from bytes and from parsed JSON.
2. Inbound verification before parsing: what an unsigned 22 MiB body costs the bridge now
   (the bounded scan for `"full_name"` plus one HMAC) against what parsing it first cost.

    .venv/bin/python bench/forges.py
"""

from __future__ import annotations

import gc
import importlib
import json
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HOOK = {
    "type": "Repository", "id": 12345678, "name": "web", "active": True, "events": ["push", "pull_request"],
    "config": {"content_type": "json", "insecure_ssl": "0", "url": "https://example.com/webhook", "secret": "********"},
    "updated_at": "2019-06-03T00:57:16Z", "created_at": "2019-06-03T00:57:16Z",
    "url": "https://api.github.com/repos/octocat/Hello-World/hooks/12345678",
    "test_url": "https://api.github.com/repos/octocat/Hello-World/hooks/12345678/test",
    "ping_url": "https://api.github.com/repos/octocat/Hello-World/hooks/12345678/pings",
    "last_response": {"code": None, "status": "unused", "message": None},
}


def per_call(fn: Any, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def timed_import(name: str) -> float:
    """Seconds to import `name` in a fresh interpreter (this one has imported too much already)."""
    importlib.import_module(name)  # ImportError here when it is not installed
    code = f"import time; t = time.perf_counter(); import {name}; print(time.perf_counter() - t)"
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def models() -> None:
    print("## Declared models: a page of 100 GitHub hooks")
    raw = json.dumps([dict(HOOK, id=i) for i in range(100)]).encode()
    print(f"json.loads alone: {per_call(lambda: json.loads(raw), 500) * 1e6:.0f} us")
    ms_import = timed_import("msgspec")
    from hookshot_py.forges.models import convert, decode
    from hookshot_py.github.models import Hook

    print(f"msgspec: import {ms_import * 1000:.1f} ms; decode from bytes "
          f"{per_call(lambda: decode(raw, list[Hook]), 500) * 1e6:.0f} us; json.loads + convert "
          f"{per_call(lambda: convert(json.loads(raw), list[Hook]), 500) * 1e6:.0f} us")
    try:
        pd_import = timed_import("pydantic")
    except ImportError:
        print("pydantic: not installed (pip install pydantic==2.14.3 to compare)")
        return
    from pydantic import BaseModel, ConfigDict, TypeAdapter

    class PConfig(BaseModel):
        model_config = ConfigDict(frozen=True)
        url: str = ""
        content_type: str | None = None
        insecure_ssl: str | int | None = None
        secret: str | None = None

    class PHook(BaseModel):
        model_config = ConfigDict(frozen=True)
        id: int
        events: list[str] = []
        active: bool = False
        config: PConfig = PConfig()

    adapter = TypeAdapter(list[PHook])
    print(f"pydantic: import {pd_import * 1000:.1f} ms; validate_json "
          f"{per_call(lambda: adapter.validate_json(raw), 500) * 1e6:.0f} us; json.loads + validate_python "
          f"{per_call(lambda: adapter.validate_python(json.loads(raw)), 500) * 1e6:.0f} us")


def inbound() -> None:
    from hookshot_py.forges.inbound import string_values, verify_signature

    print("\n## An unsigned 22 MiB body on /github/webhook")
    filler = [{"id": i, "message": "x" * 200, "author": {"name": "n", "email": "e@x"}} for i in range(80_000)]
    body = json.dumps({"commits": filler, "repository": {"full_name": "octo-org/hello-world"}}).encode()
    print(f"body: {len(body) / 2**20:.1f} MiB")
    start = time.perf_counter()
    names = string_values(body, "full_name", limit=4)
    scan = time.perf_counter() - start
    start = time.perf_counter()
    verify_signature("secret", body, "sha256=" + "0" * 64, None)
    mac = time.perf_counter() - start
    print(f"now: scan for full_name {scan * 1000:.1f} ms ({names}), one HMAC-SHA256 {mac * 1000:.1f} ms, "
          "no allocation beyond the body")
    gc.collect()
    tracemalloc.start()
    start = time.perf_counter()
    parsed = json.loads(body)
    parse = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del parsed
    print(f"before: json.loads first {parse * 1000:.0f} ms, {peak / 2**20:.0f} MiB allocated at peak")


if __name__ == "__main__":
    models()
    inbound()
