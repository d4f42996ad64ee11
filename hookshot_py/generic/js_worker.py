"""A sandbox worker process: runs webhook transformation functions in QuickJS, one at a time.

Started by `generic.sandbox.JsSandbox` as `python -I js_worker.py <time_limit_ms> <memory_bytes>
<max_result_chars>`; it imports nothing from hookshot_py. Requests and answers are frames on
stdin/stdout: a 4-byte big-endian length, then UTF-8 JSON.

Every request gets a fresh QuickJS context with the memory and CPU-time limits set: the engine
stops the script itself (`interrupted`, `out of memory`). CPU time is measured with clock(),
which counts this process only, so other work in the bridge never eats a script's time. The
context has only the ECMAScript built-ins: no `require`, `fetch`, `process`, `std`/`os`
modules, module loader or timers (and the address space of the whole process is capped too).
"""

from __future__ import annotations

import json
import resource
import struct
import sys
from typing import Any, BinaryIO

_HEADER = struct.Struct(">I")
ADDRESS_SPACE_BYTES = 1024**3  # a backstop under the engine's own memory limit

# The script runs as in hookshot: `data` is a constant, `result` a global the script sets.
# Lines before the script: 2 (error positions are shifted back by this much).
RUN_TEMPLATE = "const data = {data};\n(() => {{\n{script}\n}})();"
# Compile without running: `new Function` parses the body as hookshot's `function f(data) {...}`.
COMPILE_TEMPLATE = "new Function('data', {script}); undefined;"
SCRIPT_LINE_OFFSET = 2
# What the script left in `result`, read with JavaScript's own typeof and JSON.stringify.
_READ_RESULT = """(() => {{
  if (typeof result === "string") return JSON.stringify(["string", result.length > {max} ? null : result]);
  if (typeof result !== "object" || result === null) return JSON.stringify(["none", typeof result]);
  const text = JSON.stringify(result);
  return JSON.stringify(["object", text === undefined || text.length > {max} ? null : text]);
}})()"""


def read_frame(stream: BinaryIO) -> dict[str, Any] | None:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (length,) = _HEADER.unpack(header)
    payload = stream.read(length)
    if len(payload) < length:
        return None
    message: dict[str, Any] = json.loads(payload)
    return message


def write_frame(stream: BinaryIO, message: dict[str, Any]) -> None:
    payload = json.dumps(message).encode()
    stream.write(_HEADER.pack(len(payload)) + payload)
    stream.flush()


class Engine:
    def __init__(self, time_limit_ms: int, memory_bytes: int, max_result_chars: int) -> None:
        import quickjs  # only here: the parent process never loads the engine

        self.quickjs = quickjs
        self.time_limit_s = time_limit_ms / 1000
        self.memory_bytes = memory_bytes
        self.read_result = _READ_RESULT.format(max=max_result_chars)

    def _context(self) -> Any:
        ctx = self.quickjs.Context()
        ctx.set_memory_limit(self.memory_bytes)
        ctx.set_time_limit(self.time_limit_s)
        ctx.set("HookshotApiVersion", "v2")
        return ctx

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        ctx = self._context()
        script: str = request["script"]
        lines = script.count("\n") + 1
        try:
            if request["op"] == "compile":
                ctx.eval(COMPILE_TEMPLATE.format(script=json.dumps(script)))
                return {"ok": True}
            ctx.eval(RUN_TEMPLATE.format(data=request["data"], script=script))
        except Exception as e:
            return {"ok": False, **self._failure(e, lines)}
        try:  # reading `result` (a getter may throw or loop): no script line to point at
            kind, value = json.loads(ctx.eval(self.read_result))
        except Exception as e:
            return {"ok": False, **self._failure(e, 0)}
        return {"ok": True, "kind": kind, "value": value}

    def _failure(self, error: Exception, script_lines: int) -> dict[str, Any]:
        if isinstance(error, self.quickjs.StackOverflow):
            return {"kind": "error", "error": "RangeError: Maximum call stack size exceeded"}
        if isinstance(error, MemoryError):
            return {"kind": "memory", "error": "InternalError: out of memory"}
        if isinstance(error, self.quickjs.JSException):
            return classify(str(error), script_lines)
        return {"kind": "error", "error": f"{type(error).__name__}: {error}"}


def classify(message: str, script_lines: int) -> dict[str, Any]:
    """The engine's error text → {kind, error, line?}; `line` is counted in the script itself
    (left out when the position is outside the script's `script_lines` lines)."""
    lines = message.strip().splitlines() or ["Error"]
    first = lines[0].strip()
    kind = "error"
    if first == "InternalError: interrupted":
        kind = "timeout"
    elif first in ("InternalError: out of memory", "RangeError: out of memory") or first.endswith("string too long"):
        kind = "memory"
    out: dict[str, Any] = {"kind": kind, "error": first}
    for frame in lines[1:]:
        marker = frame.rfind("<input>:")
        if marker < 0:
            continue
        position = frame[marker + len("<input>:"):].rstrip(")").split(":")
        if position and position[0].isdigit():
            line = int(position[0]) - SCRIPT_LINE_OFFSET
            if 1 <= line <= script_lines:
                out["line"] = line
            break
    return out


def main(argv: list[str]) -> int:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_BYTES, ADDRESS_SPACE_BYTES))
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but frames on the real stdout
    try:
        engine = Engine(int(argv[1]), int(argv[2]), int(argv[3]))
    except Exception as e:
        write_frame(stdout, {"ok": False, "kind": "crash", "error": f"cannot start the JavaScript engine: {e}"})
        return 1
    write_frame(stdout, {"ok": True, "engine": "quickjs-ng"})
    while (request := read_frame(stdin)) is not None:
        write_frame(stdout, engine.handle(request))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
