"""Generic webhook data → `m.room.message` content, as hookshot's `transformHookData` does it.

Rules (Mattermost/Slack-like, `src/Connections/GenericHook.ts`): a string body is
"Received webhook data: …"; an object's `text` is the markdown body, `html` the formatted body,
`username` a bold prefix; anything else is shown as a pretty JSON dump. Where hookshot falls
short this module does better: foreign HTML is sanitised, `html` alone gets a readable plain body,
the username is escaped, the JSON dump is valid (escaped) HTML, size is counted in UTF-8 bytes,
and `uk.half-shot.hookshot.webhook_data` is always valid Matrix canonical JSON.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from html import escape
from typing import Any

from hookshot_py.generic.payload import parse_body
from hookshot_py.markdown import escape_markdown, html_to_text, render_markdown, sanitize_html
from hookshot_py.matrix.mentions import MENTIONS_KEY

__all__ = [
    "HTML_FORMAT",
    "MAX_EVENT_SIZE_BYTES",
    "WEBHOOK_DATA_KEY",
    "content_size",
    "fit_to_event_size",
    "js_number",
    "render_body",
    "render_fallback",
    "render_message",
    "sanitise_for_matrix",
    "to_json",
]

HTML_FORMAT = "org.matrix.custom.html"
WEBHOOK_DATA_KEY = "uk.half-shot.hookshot.webhook_data"
# hookshot: "a bit lower than the max size an event can be in Matrix" (65536 with the envelope).
MAX_EVENT_SIZE_BYTES = 65536 - 4 * 1024
TRUNCATED_BODY_CHARS = MAX_EVENT_SIZE_BYTES // 2
ELLIPSIS = "…"

SANITISE_MAX_DEPTH = 10
SANITISE_MAX_BREADTH = 50
# Matrix canonical JSON only allows integers in [-(2**53)+1, 2**53-1].
MAX_SAFE_INTEGER = 2**53 - 1

_DATA_PREFIX = "Received webhook data:"


# --- JSON as JavaScript writes it -------------------------------------------------------------


def js_number(value: float) -> str:
    """`Number.prototype.toString()` for a float: `2.0` → "2", `1e21` → "1e+21", `1e-7` → "1e-7"."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    # repr() gives the shortest round-tripping digits, the same digits JavaScript picks.
    mantissa = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(map(str, mantissa.digits))
    k = len(digits)
    assert isinstance(mantissa.exponent, int)
    n = mantissa.exponent + k  # value = 0.<digits> × 10**n
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = f"{digits[:n]}.{digits[n:]}"
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        exponent = n - 1
        fraction = f".{digits[1:]}" if k > 1 else ""
        text = f"{digits[0]}{fraction}e{'+' if exponent >= 0 else '-'}{abs(exponent)}"
    return sign + text


def to_json(value: object, indent: int | None = None) -> str:
    """`JSON.stringify(value, null, indent)` for JSON-like Python data.

    Numbers are written as JavaScript writes them and non-finite floats become `null`, so dumps
    read exactly as hookshot's. Raises `TypeError` for anything that is not JSON-like data.
    """
    return _to_json(value, indent, 0)


def _to_json(value: object, indent: int | None, level: int) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return js_number(value) if math.isfinite(value) else "null"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        items = [_to_json(item, indent, level + 1) for item in value]
        return _wrap("[", "]", items, indent, level)
    if isinstance(value, dict):
        separator = ": " if indent else ":"
        items = [
            json.dumps(str(key), ensure_ascii=False) + separator + _to_json(item, indent, level + 1)
            for key, item in value.items()
        ]
        return _wrap("{", "}", items, indent, level)
    raise TypeError(f"{type(value).__name__} is not JSON data")


def _wrap(open_: str, close: str, items: list[str], indent: int | None, level: int) -> str:
    if not items:
        return open_ + close
    if not indent:
        return open_ + ",".join(items) + close
    inner = "\n" + " " * (indent * (level + 1))
    return open_ + inner + ("," + inner).join(items) + "\n" + " " * (indent * level) + close


# --- webhook_data ---------------------------------------------------------------------------


def sanitise_for_matrix(data: object, depth: int = 0, breadth: int = 0) -> object:
    """hookshot's `sanitiseObjectForMatrixJSON`: make `data` storable in an event.

    Non-integral floats (and NaN/±Infinity) become their JavaScript string; integral floats
    become ints. A container deeper than 10 levels, or past the 50th entry of its parent, is
    replaced by its compact JSON text. Unlike hookshot, integers outside canonical JSON's range
    also become strings, so the event is never refused by the homeserver.
    """
    if data is None or isinstance(data, (bool, str)):
        return data
    if isinstance(data, float):
        if data.is_integer() and abs(data) <= MAX_SAFE_INTEGER:
            return int(data)
        return js_number(data)
    if isinstance(data, int):
        return data if abs(data) <= MAX_SAFE_INTEGER else str(data)
    if depth > SANITISE_MAX_DEPTH or breadth > SANITISE_MAX_BREADTH:
        return to_json(data)
    if isinstance(data, (list, tuple)):
        return [sanitise_for_matrix(item, depth + 1, index) for index, item in enumerate(data)]
    if isinstance(data, dict):
        return {
            str(key): sanitise_for_matrix(value, depth + 1, index)
            for index, (key, value) in enumerate(data.items(), start=1)
        }
    raise TypeError(f"{type(data).__name__} is not JSON data")


# --- rendering ------------------------------------------------------------------------------


def _markdown_escape(text: str) -> str:
    """Make `text` literal inside markdown (a username must not open a link or emphasis)."""
    return escape_markdown(" ".join(text.splitlines()))


def _transform(data: object) -> tuple[str, str]:
    """(plain body, HTML body) for `data`; the HTML is "" when there is none."""
    if isinstance(data, str):
        plain = f"{_DATA_PREFIX} {data}"
        return plain, render_markdown(plain)

    fields: dict[str, Any] = data if isinstance(data, dict) else {}
    text, given_html, username = fields.get("text"), fields.get("html"), fields.get("username")
    html = sanitize_html(given_html) if isinstance(given_html, str) else ""
    if not html.strip():
        html = ""  # nothing (left) to show: behave as if no `html` was sent

    if isinstance(text, str):
        plain = text
    elif html:
        plain = html_to_text(html)
    else:
        dump = to_json(data, 2)
        plain = f"{_DATA_PREFIX}\n\n```json\n\n{dump}\n\n```"
        html = f'<p>{_DATA_PREFIX}</p><pre><code class="language-json">{escape(dump, quote=False)}</code></pre>'

    if isinstance(username, str):
        plain = f"**{username}**: {plain}"
        if html:
            html = f"<strong>{escape(username, quote=False)}</strong>: {html}"
    if not html:
        # Only reached with a `text`: hookshot renders the plain body (username prefix included).
        assert isinstance(text, str)
        source = f"**{_markdown_escape(username)}**: {text}" if isinstance(username, str) else text
        html = render_markdown(source)
    return plain, html


def render_message(
    data: object,
    *,
    hook_name: str,
    include_hook_body: bool,
    msgtype: str = "m.notice",
    mentions: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The `m.room.message` content for one generic webhook delivery, within Matrix's size limit.

    `data` is what `parse_body` returned. `hook_name` is the connection's name; like hookshot,
    the message does not show it, it only names the hook in errors. `include_hook_body` adds the
    sanitised data under `uk.half-shot.hookshot.webhook_data`. `mentions` is for a hook whose
    state or transformation explicitly asks to ping (`hookshot_py.matrix.mentions.mentions`);
    without it the message pings no one. Raises `TypeError` only for data that no body parser
    produces (not JSON-like).
    """
    try:
        plain, html = _transform(data)
        hook_data = sanitise_for_matrix(data) if include_hook_body else None
    except TypeError as e:
        raise TypeError(f"Webhook {hook_name!r}: cannot render {e}") from None
    content: dict[str, Any] = {"msgtype": msgtype, "body": plain}
    if html:
        content["formatted_body"] = html
        content["format"] = HTML_FORMAT
    if hook_data is not None:
        content[WEBHOOK_DATA_KEY] = hook_data
    if mentions is not None:
        content[MENTIONS_KEY] = mentions
    return fit_to_event_size(content)


def render_body(
    content_type: str | None, raw: bytes, *, hook_name: str, include_hook_body: bool, msgtype: str = "m.notice"
) -> dict[str, Any]:
    """`render_message` of a POST/PUT body, parsing it first (`parse_body`): one CPU-pool call
    for a hook that only renders what it receives. Raises `PayloadError` for an unreadable body."""
    data = parse_body("POST", content_type, raw, {})
    return render_message(data, hook_name=hook_name, include_hook_body=include_hook_body, msgtype=msgtype)


def render_fallback(data: object, *, msgtype: str = "m.notice") -> dict[str, Any]:
    """Plain-text content for `data` whose rendering failed (ran out of time): no markdown, no
    HTML, no webhook data, and cheap (linear, C-speed JSON) so it can run on the event loop."""
    fields = data if isinstance(data, dict) else {}
    text, username = fields.get("text"), fields.get("username")
    if isinstance(data, str):
        plain = f"{_DATA_PREFIX} {data}"
    elif isinstance(text, str):
        plain = f"**{username}**: {text}" if isinstance(username, str) else text
    else:
        try:
            plain = f"{_DATA_PREFIX} {json.dumps(data, ensure_ascii=False)}"
        except (TypeError, ValueError):
            plain = _DATA_PREFIX
    return fit_to_event_size({"msgtype": msgtype, "body": plain})


# --- size -----------------------------------------------------------------------------------


def content_size(content: dict[str, Any]) -> int:
    """Bytes of `content` as compact UTF-8 JSON, the form the homeserver measures."""
    encoded = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
    return len(encoded.encode("utf-8", "surrogatepass"))


def fit_to_event_size(content: dict[str, Any], limit: int = MAX_EVENT_SIZE_BYTES) -> dict[str, Any]:
    """Shrink `content` in place to at most `limit` bytes, in hookshot's order.

    First the webhook data goes, then the HTML, then the body is cut to 30,720 characters
    plus "…" — and, unlike hookshot, cut further if multi-byte text still does not fit.
    """
    if content_size(content) <= limit:
        return content
    content.pop(WEBHOOK_DATA_KEY, None)
    if content_size(content) <= limit:
        return content
    content.pop("formatted_body", None)
    content.pop("format", None)
    if content_size(content) <= limit:
        return content
    body: str = content["body"]
    keep = min(len(body), TRUNCATED_BODY_CHARS)
    content["body"] = body[:keep] + ELLIPSIS
    if content_size(content) <= limit:
        return content
    low, high = 0, keep - 1  # the longest prefix that fits is in [low, high]
    while low < high:
        middle = (low + high + 1) // 2
        content["body"] = body[:middle] + ELLIPSIS
        if content_size(content) <= limit:
            low = middle
        else:
            high = middle - 1
    content["body"] = body[:low] + ELLIPSIS
    return content
