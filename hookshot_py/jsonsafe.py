"""JSON from strangers, made safe to store and to walk.

Postgres' `jsonb` cannot hold the NUL character nor lone UTF-16 surrogates, and Python's
recursion limit is reached by deeply nested documents long before any size limit; all three
used to turn bad input into 500s. `loads` parses bytes with a depth bound, checked on the text
at C speed (walking the parsed tree took 0.4 s per MiB of `[{},{},...]` on the event loop);
`find_unstorable` and `storable` deal with the characters Postgres refuses.
"""

from __future__ import annotations

import json
import re
from array import array
from itertools import accumulate
from typing import Any

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")

# Deeper than any real payload (GitHub's nest about 8 levels), shallow enough for recursive code.
MAX_DEPTH = 64
REPLACEMENT = "\ufffd"


class JsonError(ValueError):
    """Not JSON we accept; the message says why (shown to the caller).

    `kind` is what went wrong (`"utf8"`, `"syntax"`, `"constant"`, `"number"` or `"depth"`),
    `detail` the reason without this module's wording, and for `"syntax"` the position
    (`line`, `column`), so that a route with its own wording (generic webhooks, forge
    deliveries) words the same checks its way."""

    def __init__(
        self, message: str, *, kind: str, detail: str, line: int | None = None, column: int | None = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.detail = detail
        self.line = line
        self.column = column


def depth_exceeds(value: Any, limit: int) -> bool:
    """True if `value` nests containers deeper than `limit` (iterative: safe on any input)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if level > limit:
            return True
        stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return False


class _NotJson(ValueError):
    """NaN, Infinity and -Infinity: Python's extension, not JSON (and Postgres refuses them)."""


def _refuse_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not a JSON value")


def loads(raw: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON text, refusing invalid UTF-8, invalid JSON (NaN and Infinity included) and
    nesting deeper than `max_depth`. Raises `JsonError`."""
    too_deep = f"the JSON nests deeper than {max_depth} levels"
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        raise JsonError(too_deep, kind="depth", detail=too_deep) from None
    except UnicodeDecodeError as e:
        detail = f"{e.reason} at byte {e.start}"
        raise JsonError(f"the body is not valid UTF-8: {detail}", kind="utf8", detail=detail) from None
    except json.JSONDecodeError as e:
        raise JsonError(
            f"the body is not valid JSON: {e}", kind="syntax", detail=e.msg, line=e.lineno, column=e.colno
        ) from None
    except _NotJson as e:
        raise JsonError(f"the body is not valid JSON: {e}", kind="constant", detail=str(e)) from None
    except ValueError as e:  # e.g. an integer literal beyond Python's digit limit
        raise JsonError(f"the body is not valid JSON: {e}", kind="number", detail=str(e)) from None
    if nesting_exceeds(raw, max_depth):
        raise JsonError(too_deep, kind="depth", detail=too_deep)
    return value


def split_list(
    raw: bytes, key: str, *, max_depth: int = MAX_DEPTH, id_field: str = "id"
) -> tuple[str | None, list[bytes], dict[str, Any], list[Any]]:
    """(why the body is refused or None, the items of the list under the top-level `key`, each as
    compact JSON text, the document's other top-level fields, each item's `id_field` (None where
    it has none)). For a CPU-pool worker: the caller then parses one item at a time, so a large
    document never holds its event loop for longer than one item costs."""
    try:
        data = loads(raw, max_depth=max_depth)
    except JsonError as e:
        return str(e), [], {}, []
    items = data.get(key) if isinstance(data, dict) else None
    if not isinstance(items, list):
        return f"the body has no `{key}` list", [], {}, []
    texts = (json.dumps(item, ensure_ascii=False, separators=(",", ":")) for item in items)
    rest = {k: v for k, v in data.items() if k != key}
    ids = [item.get(id_field) if isinstance(item, dict) else None for item in items]
    return None, [text.encode("utf-8", "surrogatepass") for text in texts], rest, ids


# Structural characters of JSON text, and the translation that keeps them (quotes included).
_KEEP = b'"[]{}'
_DROP = bytes(b for b in range(256) if b not in _KEEP)
_SQUARE = bytes.maketrans(b"{}", b"[]")
_SIGNS = bytes.maketrans(b"[]", b"\x01\xff")  # +1 and -1 as signed bytes
_QUOTED = re.compile(rb'"[^"]*"')


def nesting_exceeds(text: bytes | str, limit: int) -> bool:
    """True if the JSON `text` (valid: parse it first) nests containers deeper than `limit`.

    Every step is a C-speed pass over bytes, never one Python step per value: escapes are
    removed, then everything but quotes and brackets, then the strings (with the brackets they
    hold; removing an adjacent `""` pair drops an empty string, or merges two strings over
    bracket-free text between them: either way only string content goes). What remains is the
    document's bracket structure. A `replace` pass removes its innermost level; flat documents
    (`[{},{},...]`) vanish in a pass or two, and what resists is measured in one pass of
    running sums. About 50 ms per MiB of brackets at worst.
    """
    if isinstance(text, str):
        data = text.encode("utf-8", "surrogatepass")
    else:
        encoding = json.detect_encoding(text)
        data = text if encoding == "utf-8" else text.decode(encoding, "surrogatepass").encode("utf-8", "surrogatepass")
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    data = data.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _DROP).replace(b'""', b"")
    if b'"' in data:
        data = _QUOTED.sub(b"", data)
    data = data.translate(_SQUARE)
    levels = 0
    while data and levels < limit:
        shorter = data.replace(b"[]", b"")
        levels += 1
        flat = len(shorter) * 2 <= len(data)
        data = shorter
        if not flat:
            break
    if not data:
        return False
    if levels >= limit:
        return True
    return levels + max(accumulate(array("b", data.translate(_SIGNS)))) > limit


def find_unstorable(value: Any, path: str = "") -> str | None:
    """The JSON-pointer-ish path of the first string or key holding a NUL character or a lone
    surrogate (which Postgres cannot store), if any."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, str):
            if _UNSTORABLE.search(node):
                return where or "/"
        elif isinstance(node, dict):
            for key, child in node.items():
                if isinstance(key, str) and _UNSTORABLE.search(key):
                    return f"{where}/{_UNSTORABLE.sub(REPLACEMENT, key)}"
                stack.append((child, f"{where}/{key}"))
        elif isinstance(node, list):
            stack.extend((child, f"{where}/{i}") for i, child in enumerate(node))
    return None


def storable(value: Any) -> Any:
    """`value` with every NUL and lone surrogate in strings and keys replaced by U+FFFD."""
    return _replace(value, _UNSTORABLE)


def without_surrogates(value: Any) -> Any:
    """`value` with every lone surrogate (from `\\ud800`-style escapes) in strings and keys
    replaced by U+FFFD: they cannot be encoded as UTF-8, so cannot be sent anywhere."""
    return _replace(value, _SURROGATE)


def _replace(value: Any, pattern: re.Pattern[str]) -> Any:
    """`value` with `pattern` replaced by U+FFFD in every string and key, keeping key order.
    Recursive: for values whose depth was bounded (by `loads`, or by their producer)."""
    if isinstance(value, str):
        return pattern.sub(REPLACEMENT, value) if pattern.search(value) else value
    if isinstance(value, dict):
        return {_replace(k, pattern): _replace(v, pattern) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, pattern) for v in value]
    return value


def dumps_storable(value: Any) -> str:
    """JSON text Postgres' `jsonb` accepts: unstorable characters are replaced (rarely needed,
    so the common case costs one `json.dumps` and two C-speed scans)."""
    text = json.dumps(value, ensure_ascii=False)
    if "\\u0000" in text or _UNSTORABLE.search(text):
        text = json.dumps(storable(value), ensure_ascii=False)
    return text
