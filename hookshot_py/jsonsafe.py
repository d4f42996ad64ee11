"""JSON from strangers, made safe to store and to walk.

Postgres' `jsonb` cannot hold the NUL character nor lone UTF-16 surrogates, and Python's
recursion limit is reached by deeply nested documents long before any size limit; all three
used to turn bad input into 500s. `loads` parses bytes with a depth bound (an iterative walk, no
recursion); `find_unstorable` and `storable` deal with the characters Postgres refuses.
"""

from __future__ import annotations

import json
import re
from typing import Any

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

# Deeper than any real payload (GitHub's nest about 8 levels), shallow enough for recursive code.
MAX_DEPTH = 64
REPLACEMENT = "\ufffd"


class JsonError(ValueError):
    """Not JSON we accept; the message says why (shown to the caller)."""


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


def loads(raw: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON text, refusing invalid UTF-8, invalid JSON and nesting deeper than `max_depth`."""
    try:
        value = json.loads(raw)
    except RecursionError as e:
        raise JsonError(f"the JSON nests deeper than {max_depth} levels") from e
    except UnicodeDecodeError as e:
        raise JsonError(f"the body is not valid UTF-8: {e.reason} at byte {e.start}") from e
    except ValueError as e:
        raise JsonError(f"the body is not valid JSON: {e}") from e
    if depth_exceeds(value, max_depth):
        raise JsonError(f"the JSON nests deeper than {max_depth} levels")
    return value


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
    if isinstance(value, str):
        return _UNSTORABLE.sub(REPLACEMENT, value)
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v) for v in value]
    return value


def dumps_storable(value: Any) -> str:
    """JSON text Postgres' `jsonb` accepts: unstorable characters are replaced (rarely needed,
    so the common case costs one `json.dumps` and two C-speed scans)."""
    text = json.dumps(value, ensure_ascii=False)
    if "\\u0000" in text or _UNSTORABLE.search(text):
        text = json.dumps(storable(value), ensure_ascii=False)
    return text
