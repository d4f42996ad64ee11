"""What a transformation function's `result` means, exactly as in hookshot's WebhookTransformer.

- a string (API v1) is the message "Received webhook: <string>";
- anything that is not an object (undefined, a number, false; and null, as hookshot's docs say)
  is the message "No content";
- an object must say `version: "v2"` and gives `plain` (markdown unless `html` is given),
  `html`, `msgtype`, `empty` (no message), `mentions {room, user_ids}`, `hints {showUrlPreviews}`
  and `webhookResponse {body, contentType, statusCode}` (the answer to the caller).

A result that breaks these rules is a `TransformError` with hookshot's wording; the caller posts
hookshot's failure notice instead. The script's HTML is sanitised like any foreign HTML.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from hookshot_py.generic.format import HTML_FORMAT, WEBHOOK_DATA_KEY, fit_to_event_size, sanitise_for_matrix
from hookshot_py.generic.sandbox import JsResult
from hookshot_py.markdown import render_markdown, sanitize_html

FAILURE_TEXT = "Webhook received but failed to process via transformation function"
LINK_PREVIEWS_KEY = "com.beeper.linkpreviews"
MAX_RESPONSE_BODY_CHARS = 1024 * 1024
_HEADER_VALUE = re.compile(r"[\x20-\x7e]{1,255}")
_PREFIX = "Result returned from transformation"


class TransformError(Exception):
    """The script ran but its `result` is not something hookshot accepts."""


@dataclass(frozen=True)
class WebhookResponse:
    body: str
    content_type: str | None = None
    status: int | None = None


@dataclass(frozen=True)
class Transformed:
    """A transformation's outcome; `plain` is None when no message is to be sent (`empty`)."""

    plain: str | None
    html: str | None = None
    msgtype: str | None = None
    mentions: dict[str, Any] | None = None
    show_url_previews: bool | None = None
    response: WebhookResponse | None = None


def js_truthy(value: Any) -> bool:
    """JavaScript's truthiness for JSON values (`[]` and `{}` are true, `0`, `""` and NaN false)."""
    if value is None or value is False or value == "":
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value != 0 and not math.isnan(value)
    return True


def interpret(result: JsResult) -> Transformed:
    """hookshot's reading of `result` (`WebhookTransformer.execute`)."""
    if result.kind == "string":
        return Transformed(plain=f"Received webhook: {result.value}")
    if result.kind == "none":
        return Transformed(plain="No content")
    obj = result.value
    if not isinstance(obj, dict) or obj.get("version") != "v2":
        raise TransformError(f"{_PREFIX} didn't specify version = v2")

    response = _response(obj.get("webhookResponse"))
    if js_truthy(obj.get("empty")):
        return Transformed(plain=None, response=response)
    plain, html, msgtype = obj.get("plain"), obj.get("html"), obj.get("msgtype")
    if not isinstance(plain, str):
        raise TransformError(f"{_PREFIX} didn't provide a string value for plain")
    if html is not None and not isinstance(html, str):
        raise TransformError(f"{_PREFIX} didn't provide a string value for html")
    if msgtype is not None and not isinstance(msgtype, str):
        raise TransformError(f"{_PREFIX} didn't provide a string value for msgtype")
    return Transformed(
        plain=plain,
        html=html,
        msgtype=msgtype,
        mentions=_mentions(obj.get("mentions")),
        show_url_previews=_hints(obj.get("hints")),
        response=response,
    )


def _response(value: Any) -> WebhookResponse | None:
    if not js_truthy(value):
        return None
    if not isinstance(value, dict):
        value = {}  # a truthy non-object has no string `body`
    body, content_type, status = value.get("body"), value.get("contentType"), value.get("statusCode")
    if not isinstance(body, str):
        raise TransformError(f"{_PREFIX} didn't provide a string value for webhookResponse.body")
    if len(body) > MAX_RESPONSE_BODY_CHARS:
        raise TransformError(f"{_PREFIX} provided a webhookResponse.body over {MAX_RESPONSE_BODY_CHARS} characters")
    # Stricter than hookshot, whose check never fires: an HTTP status a response can carry.
    if status is not None and (
        isinstance(status, bool) or not isinstance(status, (int, float)) or status != int(status)
        or not 200 <= status <= 599
    ):
        raise TransformError(f"{_PREFIX} didn't provide a number value for webhookResponse.statusCode")
    if content_type is not None and (not isinstance(content_type, str) or not _HEADER_VALUE.fullmatch(content_type)):
        raise TransformError(f"{_PREFIX} didn't provide a contentType value for msgtype")
    return WebhookResponse(body, content_type, int(status) if status is not None else None)


def _mentions(value: Any) -> dict[str, Any] | None:
    if not js_truthy(value):
        return None
    if not isinstance(value, dict):
        return {}  # hookshot keeps only `room` and `user_ids`, which a non-object lacks
    room, user_ids = value.get("room"), value.get("user_ids")
    if room is not None and not isinstance(room, bool):
        raise TransformError(f"{_PREFIX} provided an invalid mentions.room")
    if user_ids is not None and (not isinstance(user_ids, list) or not all(isinstance(u, str) for u in user_ids)):
        raise TransformError(f"{_PREFIX} provided an invalid mentions.user_ids")
    out: dict[str, Any] = {}
    if room is not None:
        out["room"] = room
    if user_ids is not None:
        out["user_ids"] = user_ids
    return out


def _hints(value: Any) -> bool | None:
    if not js_truthy(value) or not isinstance(value, dict):
        return None
    show = value.get("showUrlPreviews")
    if show is not None and not isinstance(show, bool):
        raise TransformError(f"{_PREFIX} provided an invalid hints.showUrlPreviews")
    return show


def message_content(
    result: Transformed,
    data: object,
    *,
    include_hook_body: bool,
    default_msgtype: str = "m.notice",
    allow_url_previews: bool = True,
) -> dict[str, Any]:
    """The `m.room.message` content for a transformation that produced a message (as hookshot's
    `onGenericHook`): markdown `plain` rendered when there is no `html`, within the size limit."""
    assert result.plain is not None
    html = sanitize_html(result.html) if result.html else ""
    if not html.strip():
        html = render_markdown(result.plain)
    content: dict[str, Any] = {
        "msgtype": result.msgtype or default_msgtype,
        "body": result.plain,
        "format": HTML_FORMAT,
        "formatted_body": html,
    }
    if result.mentions is not None:
        content["m.mentions"] = result.mentions
    if include_hook_body:
        content[WEBHOOK_DATA_KEY] = sanitise_for_matrix(data)
    if not (result.show_url_previews if result.show_url_previews is not None else allow_url_previews):
        content[LINK_PREVIEWS_KEY] = []
    return fit_to_event_size(content)


def failure_content(data: object, *, include_hook_body: bool, allow_url_previews: bool = True) -> dict[str, Any]:
    """hookshot's notice for a script that failed (threw, timed out, or returned a bad result)."""
    return message_content(
        Transformed(plain=FAILURE_TEXT), data, include_hook_body=include_hook_body,
        allow_url_previews=allow_url_previews,
    )
