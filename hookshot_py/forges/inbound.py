"""What every forge's webhook route does before it trusts a delivery.

The order is the point: a stranger can send anything, so a route
1. refuses what the headers already show to be wrong (no event, no signature or token),
2. reads the body with a size bound (`read_body`, 413 beyond it),
3. checks the signature or token over the **raw bytes** against the secrets that may apply —
   found without parsing (`string_values` pulls a project name out of the bytes with a bounded
   regular expression; a hook id or the token itself may be enough) — and answers 401 unless
   one matches,
4. only then parses the JSON, with a depth limit (`parse_json_object`, 400 on abuse), and
5. checks that the verified secret belongs to the project the body names (a project's secret
   opens that project's rooms only).
No step answers 5xx to bad input. The verification functions are here so that each forge's
`inbound.py` is a thin route: GitHub's and JIRA's HMAC headers (`verify_hub_signature`),
GitFlic's and GitLab's plain tokens (`token_matches`). A route with large bodies parses and
reads them in a CPU-pool worker (`read_in_worker`), so the event loop never holds the payload.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote_plus

from hookshot_py import jsonsafe
from hookshot_py.cpu_pool import CpuBusy, CpuPool, CpuPoolError
from hookshot_py.errors import ApiError, ErrCode
from hookshot_py.listeners.http import read_body

__all__ = [
    "MAX_JSON_DEPTH",
    "hub_signature",
    "parse_json_object",
    "read_body",
    "read_in_worker",
    "read_payload",
    "sign_sha1",
    "sign_sha256",
    "string_values",
    "token_matches",
    "verify_hub_signature",
    "verify_off_loop",
    "verify_signature",
]

#: Deeper than any forge payload (GitHub's are about 10 levels), far from Python's recursion limit.
MAX_JSON_DEPTH = 64
#: Bodies larger than this are hashed in a worker thread, so the event loop keeps answering.
OFF_LOOP_BYTES = 1024 * 1024
#: Bodies larger than this are read in the CPU pool's heavy lane, never holding up small ones.
LIGHT_BODY_BYTES = 64 * 1024

T = TypeVar("T")
log = logging.getLogger(__name__)

_HEX = {"sha256": 64, "sha1": 40}
_DIGESTS = {"sha256": hashlib.sha256, "sha1": hashlib.sha1}


# -- signatures and tokens ------------------------------------------------------------------------------


def _key(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def hub_signature(secret: str | bytes, body: bytes, algorithm: str = "sha256") -> str:
    """`{algorithm}=<hex HMAC of body>`, the value of GitHub's and JIRA's signature headers."""
    return f"{algorithm}=" + hmac.new(_key(secret), body, _DIGESTS[algorithm]).hexdigest()


def sign_sha256(secret: str | bytes, body: bytes) -> str:
    """The `X-Hub-Signature-256` value GitHub would send for `body`."""
    return hub_signature(secret, body, "sha256")


def sign_sha1(secret: str | bytes, body: bytes) -> str:
    """The legacy `X-Hub-Signature` value GitHub would send for `body`."""
    return hub_signature(secret, body, "sha1")


def verify_hub_signature(
    secret: str | bytes, body: bytes, header: str | None, algorithms: Iterable[str] = ("sha256",)
) -> bool:
    """True if `header` (`sha256=<hex>`) is the HMAC of `body` with `secret`, for one of the
    `algorithms`; compared in constant time. A malformed header or an empty secret is False."""
    key = _key(secret)
    if not key or header is None:
        return False
    algorithm, sep, given = header.strip().partition("=")
    if not sep or algorithm not in algorithms or algorithm not in _HEX:
        return False
    if len(given) != _HEX[algorithm] or not all(c in "0123456789abcdefABCDEF" for c in given):
        return False
    expected = hub_signature(key, body, algorithm)
    return hmac.compare_digest(f"{algorithm}={given.lower()}".encode("ascii"), expected.encode("ascii"))


def verify_signature(secret: str | bytes, body: bytes, sig256: str | None, sig1: str | None) -> bool:
    """GitHub's rule: `X-Hub-Signature-256` when present decides; the legacy SHA-1
    `X-Hub-Signature` counts only without it, so a forged SHA-1 header cannot downgrade a
    delivery. No header at all is False."""
    if sig256 is not None:
        return verify_hub_signature(secret, body, sig256, ("sha256",))
    return verify_hub_signature(secret, body, sig1, ("sha1",))


async def verify_off_loop(secrets: Iterable[str], body: bytes, sig256: str | None, sig1: str | None) -> str | None:
    """The first of `secrets` the GitHub-style headers prove, hashing a large body in a worker
    thread; None when none does. Every candidate is checked (the time does not tell which)."""

    def check() -> str | None:
        matches = [s for s in secrets if verify_signature(s, body, sig256, sig1)]
        return matches[0] if matches else None

    if len(body) > OFF_LOOP_BYTES:
        return await asyncio.to_thread(check)
    return check()


def token_matches(given: str | None, expected: str) -> bool:
    """A plain secret sent back verbatim (GitFlic, GitLab), compared in constant time."""
    if given is None or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


# -- reading a body without trusting it -----------------------------------------------------------------


def string_values(raw: bytes, field: str, *, form: bool = False, limit: int = 4, max_length: int = 300) -> list[str]:
    """The distinct values of the JSON string field `field` wherever it appears in `raw`, found
    without parsing (at most `limit`, each at most `max_length` long): enough to pick the
    secrets a delivery may be signed with. `form`: the JSON is URL-encoded in a form field.

    The values are hints, not facts: whatever the body claims is checked once it is verified.
    """
    name = re.escape(field.encode())
    if form:
        space = rb"(?:\+|%20)*"
        value = rb"((?:(?!%22).){1," + str(max_length * 3).encode() + rb"})"
        pattern = re.compile(rb"%22" + name + rb"%22" + space + rb"%3A" + space + rb"%22" + value + rb"%22")
    else:
        value = rb'((?:[^"\\]|\\.){1,' + str(max_length).encode() + rb"})"
        pattern = re.compile(rb'"' + name + rb'"\s*:\s*"' + value + rb'"')
    found: list[str] = []
    for match in pattern.finditer(raw):
        try:
            if form:
                text: Any = unquote_plus(match.group(1).decode("ascii"))
            else:
                text = json.loads(b'"' + match.group(1) + b'"')
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(text, str) and text not in found:
            found.append(text)
            if len(found) >= limit:
                break
    return found


def form_payload(raw: bytes) -> bytes:
    """The JSON of a form-encoded delivery (`payload=<json>`, as GitHub sends with that content
    type); 400 without one."""
    try:
        values = parse_qs(raw.decode("utf-8"), strict_parsing=True, max_num_fields=16).get("payload")
    except (UnicodeDecodeError, ValueError):
        values = None
    if not values:
        raise ApiError(ErrCode.BAD_VALUE, "A form-encoded delivery must carry a `payload` field.")
    return values[0].encode("utf-8")


def parse_json_object(raw: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """A delivery's JSON object (`jsonsafe.loads`); 400 (`HS_BAD_VALUE`) for anything else,
    including nesting deeper than `max_depth` and the non-JSON constants NaN and Infinity."""
    try:
        data = jsonsafe.loads(raw, max_depth=max_depth)
    except jsonsafe.JsonError as e:
        if e.kind == "depth":
            message = f"The delivery's body is nested deeper than {max_depth} levels."
        else:
            message = f"The delivery's body is not valid JSON: {e.detail}"
        raise ApiError(ErrCode.BAD_VALUE, message) from None
    if not isinstance(data, dict):
        raise ApiError(ErrCode.BAD_VALUE, "The delivery's body must be a JSON object.")
    return data


# Lists and strings of a large delivery beyond these are cut before it reaches the event loop: no
# message reads more (a GitLab push holds 20 commits at most, JIRA's changelog a few items).
PRUNED_LIST_ITEMS = 100
PRUNED_STRING_CHARS = 64 * 1024


def _pruned(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _pruned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_pruned(v) for v in value[:PRUNED_LIST_ITEMS]]
    if isinstance(value, str) and len(value) > PRUNED_STRING_CHARS:
        return value[:PRUNED_STRING_CHARS]
    return value


def parse_pruned(raw: bytes, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any] | str:
    """`parse_json_object`, then long lists and strings cut (recursion is bounded by the depth
    check): what a worker hands back is small, so taking it costs the event loop little. A
    refusal comes back as its message (an exception would not cross the process boundary as is)."""
    try:
        pruned: dict[str, Any] = _pruned(parse_json_object(raw, max_depth=max_depth))
    except ApiError as e:
        return e.error
    return pruned


async def read_payload(cpu: CpuPool | None, raw: bytes) -> dict[str, Any]:
    """A verified delivery's JSON object for a forge that formats on the event loop: parsed here
    when small, in a CPU-pool worker (`parse_pruned`) when large, so a stranger's 10 MiB of tiny
    objects never holds the loop."""
    if cpu is None or len(raw) <= LIGHT_BODY_BYTES:
        return parse_json_object(raw)
    parsed = await read_in_worker(cpu, len(raw), parse_pruned, raw)
    if isinstance(parsed, str):
        raise ApiError(ErrCode.BAD_VALUE, parsed)
    return parsed


async def read_in_worker(cpu: CpuPool, size: int, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)` (a module-level function reading a verified body of `size` bytes)
    in a CPU-pool worker, the heavy lane for a large body. A body the worker cannot read within
    its deadline or memory was built to cost more than any real delivery: 413. A busy pool: 429."""
    run = cpu.run_heavy if size > LIGHT_BODY_BYTES else cpu.run
    try:
        return await run(fn, *args, **kwargs)
    except CpuBusy:
        message = "The bridge is too busy to read this delivery now; retry later."
        raise ApiError(ErrCode.LIMIT_EXCEEDED, message) from None
    except CpuPoolError as e:
        log.warning("Refusing a delivery of %d bytes: %s", size, e)
        raise ApiError(ErrCode.TOO_LARGE, "The delivery cannot be read within the bridge's limits.") from None
