"""Inbound generic webhooks: `/webhook/{hookId}` (and the legacy `/{hookId}`).

A request is answered 202 only once its message is a committed outbox row (200 after it was
sent, with `waitForComplete`). Bad input gets a precise 4xx, never a 500.

A hook with a transformation function runs it in the sandbox first (never on the event loop).
What it returns is read as hookshot reads it (`transform.py`). When it fails (throws, times out,
returns a bad result) the room gets hookshot's failure notice and, with `waitForComplete`, the
caller gets the error (422). A `webhookResponse` from the script is the answer, with or without
`waitForComplete` (the script has run before the answer either way).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from hookshot_py.config import GenericConfig
from hookshot_py.connections.base import Connection
from hookshot_py.connections.manager import ConnectionManager
from hookshot_py.cpu_pool import CpuPool, CpuPoolError
from hookshot_py.errors import ApiError, ErrCode
from hookshot_py.generic.connection import GenericHookType, HookConfig
from hookshot_py.generic.format import render_body, render_fallback, render_message
from hookshot_py.generic.payload import PayloadError, parse_body
from hookshot_py.generic.sandbox import JsError, SandboxBusy
from hookshot_py.generic.transform import (
    Transformed,
    TransformError,
    WebhookResponse,
    failure_content,
    interpret,
    message_content,
)
from hookshot_py.listeners.http import read_body
from hookshot_py.matrix.outbox import Outbox, OutgoingEvent

log = logging.getLogger(__name__)

WAIT_FOR_COMPLETE_TIMEOUT_S = 10.0
# Bodies above this render in the CPU pool's "heavy" lane, so they never hold up small ones.
LIGHT_BODY_BYTES = 4 * 1024
_ALLOWED_METHODS = {"POST", "PUT"}
# A script's answer is served from the bridge's origin: never let a browser run or frame it.
_SCRIPT_RESPONSE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; sandbox",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


# A small body without brackets and with few other markdown delimiters is rendered on the event
# loop: its cost is bounded (1.5 ms for the worst such input we could build, 0.05 ms for a usual
# one; brackets are what markdown-it spends quadratic time on) and far below a round trip to a
# worker process, which at full load halved the webhooks delivered per second. Anything else
# renders in the CPU pool.
INLINE_BODY_BYTES = 1024
INLINE_DELIMITERS = 16
_DELIMITERS = tuple(bytes([c]) for c in b"()!*_`<>&\\#~|:")


def cheap_to_render(raw: bytes) -> bool:
    return (
        len(raw) <= INLINE_BODY_BYTES and b"[" not in raw and b"]" not in raw
        and sum(raw.count(d) for d in _DELIMITERS) <= INLINE_DELIMITERS
    )


@dataclass(frozen=True)
class _Outcome:
    content: dict[str, Any] | None  # None: nothing to post (the script said `empty`)
    response: WebhookResponse | None = None
    error: str | None = None  # the transformation failed: why


class GenericWebhooks:
    def __init__(
        self,
        config: GenericConfig,
        hooks: GenericHookType,
        manager: ConnectionManager,
        outbox: Outbox,
        cpu: CpuPool,
    ) -> None:
        self.config = config
        self.hooks = hooks
        self.manager = manager
        self.outbox = outbox
        self.cpu = cpu

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/webhook/{hook_id}", self.handle)
        # Legacy path; registered last so the service paths (/github/webhook ...) win.
        app.router.add_route("*", "/{hook_id}", self.handle)

    def _live_connection(self, hook_id: str) -> Connection | None:
        conn = self.hooks.connection_for_hook(hook_id)
        if conn is None:
            return None
        live = self.manager.find(conn.room_id, conn.event_type, conn.state_key)
        return live if live is not None and self.hooks.hook_id(live) == hook_id else None

    async def handle(self, request: web.Request) -> web.Response:
        hook_id = request.match_info["hook_id"]
        conn = self._live_connection(hook_id)
        if conn is None:
            raise ApiError(ErrCode.NOT_FOUND, "Webhook not found", {"ok": False})
        allowed = _ALLOWED_METHODS | ({"GET"} if self.config.enable_http_get else set())
        if request.method not in allowed:
            raise ApiError(
                ErrCode.METHOD_NOT_ALLOWED,
                f"Method {request.method} is not allowed; use {' or '.join(sorted(allowed))}.",
                {"ok": False},
            )
        hook = self.hooks.config_of(conn)
        if hook.expired():
            raise ApiError(ErrCode.NOT_FOUND, "This hook has expired", {"ok": False})
        raw = b"" if request.method == "GET" else await read_body(request, self.config.payload_size_limit)
        content_type = request.headers.get("Content-Type")
        big = len(raw) > LIGHT_BODY_BYTES
        if hook.transformation_function is None and request.method != "GET":
            outcome = _Outcome(await self._render_body(conn, hook, content_type, raw, big=big))
            return await self._deliver(conn, hook, outcome)
        data = _parse(request.method, content_type, raw, request)
        if hook.transformation_function is not None:
            outcome = await self._transform(conn, hook, hook_id, data, big=big)
        else:
            outcome = _Outcome(await self._render(conn, hook, data, big=big))
        return await self._deliver(conn, hook, outcome)

    # -- making the message ---------------------------------------------------------------------

    async def _render_body(
        self, conn: Connection, hook: HookConfig, content_type: str | None, raw: bytes, *, big: bool
    ) -> dict[str, Any]:
        """The body parsed and rendered in one CPU-pool call: the event loop never holds a body
        it only renders (parsing and pickling a MiB of small JSON objects took it 0.1 s and
        more). Past the deadline the body is parsed here and posted as plain text."""
        render = self.cpu.run_heavy if big else self.cpu.run
        try:
            if cheap_to_render(raw):
                return render_body(content_type, raw, hook_name=conn.state_key,
                                   include_hook_body=hook.include_hook_body, msgtype=hook.msgtype)
            return await render(
                render_body, content_type, raw, hook_name=conn.state_key, include_hook_body=hook.include_hook_body,
                msgtype=hook.msgtype,
            )
        except PayloadError as e:
            raise ApiError(ErrCode.BAD_VALUE, str(e), {"ok": False}) from e
        except CpuPoolError as e:
            log.warning("Webhook %r: %s; posting it as plain text", conn.state_key, e)
            return render_fallback(_parse("POST", content_type, raw), msgtype=hook.msgtype)

    async def _render(self, conn: Connection, hook: HookConfig, data: object, *, big: bool) -> dict[str, Any]:
        """Markdown and HTML cost CPU the sender controls: off the event loop, with a deadline;
        past it (or if a worker fails) the message is posted as plain text."""
        render = self.cpu.run_heavy if big else self.cpu.run
        try:
            return await render(
                render_message, data, hook_name=conn.state_key, include_hook_body=hook.include_hook_body,
                msgtype=hook.msgtype,
            )
        except CpuPoolError as e:
            log.warning("Webhook %r: %s; posting it as plain text", conn.state_key, e)
            return render_fallback(data, msgtype=hook.msgtype)

    async def _transform(
        self, conn: Connection, hook: HookConfig, hook_id: str, data: object, *, big: bool
    ) -> _Outcome:
        sandbox = self.hooks.sandbox
        if sandbox is None:
            # State written while scripts were allowed, read back after they were turned off.
            raise ApiError(
                ErrCode.DISABLED_FEATURE,
                "This webhook has a transformation function, and this bridge does not allow them "
                "(generic.allowJsTransformationFunctions).",
                {"ok": False},
            )
        script, include_body = hook.transformation_function or "", hook.include_hook_body
        data_json = await asyncio.to_thread(json.dumps, data) if big else json.dumps(data)
        try:
            result = interpret(await sandbox.run(script, data_json, key=hook_id))
        except SandboxBusy:
            raise ApiError(
                ErrCode.LIMIT_EXCEEDED,
                "Too many requests for this webhook are waiting for its transformation function; retry later.",
                {"ok": False},
            ) from None
        except (JsError, TransformError) as e:
            reason = e.describe() if isinstance(e, JsError) else str(e)
            log.warning("Transformation function of webhook %s in %s failed: %s", conn.state_key, conn.room_id, reason)
            content = failure_content(data, include_hook_body=include_body)
            return _Outcome(content, error=reason)
        if result.plain is None:
            return _Outcome(None, result.response)
        return _Outcome(await self._content(result, hook, data), result.response)

    async def _content(self, result: Transformed, hook: HookConfig, data: object) -> dict[str, Any]:
        size = len(result.plain or "") + len(result.html or "")
        render = self.cpu.run_heavy if size > LIGHT_BODY_BYTES else self.cpu.run
        try:
            return await render(
                message_content, result, data, include_hook_body=hook.include_hook_body, default_msgtype=hook.msgtype
            )
        except CpuPoolError as e:
            log.warning("Webhook %r: %s; posting the script's text as is", hook.name, e)
            return render_fallback(result.plain or "", msgtype=hook.msgtype)

    # -- answering ----------------------------------------------------------------------------------

    async def _deliver(self, conn: Connection, hook: HookConfig, outcome: _Outcome) -> web.Response:
        wait = hook.wait_for_complete
        event_id: str | None = None
        if outcome.content is not None:
            sender = self.hooks.sender_for(conn)
            ids = await self.outbox.enqueue([OutgoingEvent(conn.room_id, outcome.content, sender=sender)])
            if wait:
                try:
                    results = await self.outbox.wait_sent(ids, WAIT_FOR_COMPLETE_TIMEOUT_S)
                except TimeoutError:
                    # Durably queued but the homeserver is slow or down: say so instead of failing.
                    if outcome.error is None and outcome.response is None:
                        return web.json_response({"ok": True, "sent": False}, status=202)
                    results = [""]
                if any(r is None for r in results) and outcome.error is None:
                    return web.json_response(
                        {"ok": False, "errcode": ErrCode.UNKNOWN.value, "error": "The homeserver refused the message."},
                        status=502,
                    )
                event_id = results[0] if results else None
        if outcome.error is not None:
            if not wait:
                return web.json_response({"ok": True}, status=202)  # the room was told; as hookshot
            raise ApiError(
                ErrCode.BAD_VALUE,
                f"The webhook's transformation function failed: {outcome.error}",
                {"ok": False},
                status=422,
            )
        if outcome.response is not None:
            return _script_response(outcome.response)
        if not wait:
            return web.json_response({"ok": True}, status=202)
        return web.json_response({"ok": True, **({"eventId": event_id} if event_id else {})}, status=200)


def _parse(method: str, content_type: str | None, raw: bytes, request: web.Request | None = None) -> object:
    try:
        return parse_body(method, content_type, raw, request.query if request is not None else {})
    except PayloadError as e:
        raise ApiError(ErrCode.BAD_VALUE, str(e), {"ok": False}) from e


def _script_response(response: WebhookResponse) -> web.Response:
    resp = web.Response(status=response.status or 200, body=response.body.encode())
    resp.headers["Content-Type"] = response.content_type or "text/plain; charset=utf-8"
    resp.headers.update(_SCRIPT_RESPONSE_HEADERS)
    return resp
