"""Inbound generic webhooks: `/webhook/{hookId}` (and the legacy `/{hookId}`).

A request is answered 202 only once its message is a committed outbox row (200 after it was
sent, with `waitForComplete`). Bad input gets a precise 4xx, never a 500.
"""

from __future__ import annotations

import logging
import re

from aiohttp import web

from hookshot_py.config import GenericConfig
from hookshot_py.connections.base import Connection
from hookshot_py.connections.manager import ConnectionManager
from hookshot_py.cpu_pool import CpuPool, CpuPoolError
from hookshot_py.errors import ApiError, ErrCode
from hookshot_py.generic.connection import GenericHookType
from hookshot_py.generic.format import render_fallback, render_message
from hookshot_py.generic.payload import PayloadError, parse_body
from hookshot_py.listeners.http import read_body
from hookshot_py.matrix.outbox import Outbox, OutgoingEvent
from hookshot_py.matrix.profiles import Profiles

log = logging.getLogger(__name__)

WAIT_FOR_COMPLETE_TIMEOUT_S = 10.0
# Bodies up to this size render in a fraction of a second even when built to be slow.
LIGHT_BODY_BYTES = 4 * 1024
_ALLOWED_METHODS = {"POST", "PUT"}


def ghost_user_id(prefix: str, name: str, domain: str) -> str:
    localpart = re.sub(r"[^a-z0-9\-.=_]", "", name.lower())
    return f"@{prefix}{localpart}:{domain}"


class GenericWebhooks:
    def __init__(
        self,
        config: GenericConfig,
        hooks: GenericHookType,
        manager: ConnectionManager,
        outbox: Outbox,
        profiles: Profiles,
        domain: str,
        cpu: CpuPool,
    ) -> None:
        self.config = config
        self.hooks = hooks
        self.manager = manager
        self.outbox = outbox
        self.profiles = profiles
        self.domain = domain
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
        try:
            data = parse_body(request.method, request.headers.get("Content-Type"), raw, request.query)
        except PayloadError as e:
            raise ApiError(ErrCode.BAD_VALUE, str(e), {"ok": False}) from e
        include_body = hook.include_hook_body
        # Markdown and HTML cost CPU the sender controls: off the event loop, with a deadline;
        # large bodies queue among themselves so they never hold up the small ones.
        render = self.cpu.run_heavy if len(raw) > LIGHT_BODY_BYTES else self.cpu.run
        try:
            content = await render(render_message, data, hook_name=conn.state_key, include_hook_body=include_body)
        except CpuPoolError as e:
            log.warning("Webhook %r: %s; posting it as plain text", conn.state_key, e)
            content = render_fallback(data)
        sender = None
        if self.config.user_id_prefix:
            sender = ghost_user_id(self.config.user_id_prefix, conn.state_key, self.domain)
            await self.profiles.want(sender, f"{conn.state_key} (Webhook)")
        ids = await self.outbox.enqueue([OutgoingEvent(conn.room_id, content, sender=sender)])
        if not hook.wait_for_complete:
            return web.json_response({"ok": True}, status=202)
        try:
            results = await self.outbox.wait_sent(ids, WAIT_FOR_COMPLETE_TIMEOUT_S)
        except TimeoutError:
            # Durably queued but the homeserver is slow or down: say so instead of failing.
            return web.json_response({"ok": True, "sent": False}, status=202)
        if any(r is None for r in results):
            return web.json_response(
                {"ok": False, "errcode": ErrCode.UNKNOWN.value, "error": "The homeserver refused the message."},
                status=502,
            )
        return web.json_response({"ok": True, "eventId": results[0]}, status=200)
