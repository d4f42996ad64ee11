"""Provisioning API v1 (hookshot's, seed 000): thin handlers over the ConnectionManager.

Every route but `/v1/health` (and the OpenAPI document) needs `Authorization: Bearer <secret>`;
routes acting for a user need `?userId=`.
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

from hookshot_py.connections.base import Connection, Outcome
from hookshot_py.errors import ApiError, ErrCode
from hookshot_py.integration import Integration
from hookshot_py.listeners.http import parse_json, read_body
from hookshot_py.provisioning import params
from hookshot_py.provisioning.openapi import openapi_document
from hookshot_py.services import Services

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
# Room version 12 ids have no `:server` part; older ones do. Both are accepted.
_ROOM_ID = re.compile(r"^![^\s/]+$")
_PUBLIC = {"/v1/health", "/v1/openapi.json"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def user_id_of(request: web.Request) -> str:
    """The `?userId=` a request acts for (400 when missing or malformed)."""
    return params.user_id(request)


def room_id_of(request: web.Request) -> str:
    """The `{room_id}` of the path (400 when it is not a room id)."""
    room_id = request.match_info["room_id"]
    if not _ROOM_ID.match(room_id) or len(room_id) > 255:
        raise ApiError(ErrCode.BAD_VALUE, f"Invalid roomId {room_id!r}: room ids start with '!'.")
    return room_id


class ProvisioningApi:
    def __init__(self, services: Services, secret: str) -> None:
        self.s = services
        self._secret = secret.encode()

    def add_routes(self, app: web.Application, integrations: Sequence[Integration] = ()) -> None:
        app.middlewares.append(self._auth)
        r = app.router
        r.add_get("/v1/health", self.health)
        r.add_get("/v1/openapi.json", self.openapi)
        r.add_get("/v1/connectiontypes", self.connection_types)
        for integration in integrations:
            integration.add_provisioning_routes(app)
        enabled = {i.name for i in integrations}
        for service in ("github", "gitlab", "jira"):
            if service not in enabled:
                r.add_route("*", f"/v1/{service}/{{tail:.*}}", self._disabled(service))
        r.add_get("/v1/{room_id}/connections", self.list_connections)
        r.add_get("/v1/{room_id}/connections/{id}", self.get_connection)
        r.add_put("/v1/{room_id}/connections/{event_type}", self.create_connection)
        r.add_patch("/v1/{room_id}/connections/{id}", self.update_connection)
        r.add_delete("/v1/{room_id}/connections/{id}", self.delete_connection)

    # -- request checks ------------------------------------------------------------------------

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/v1/") and request.path not in _PUBLIC:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self._secret):
                raise ApiError(ErrCode.BAD_TOKEN, "Unauthorized: a valid Bearer token is required.")
        resp = await handler(request)
        self.s.metrics.provisioning_requests.labels(method=request.method, status=str(resp.status)).inc()
        return resp

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        raw = await read_body(request, MAX_BODY_BYTES)
        if not raw.strip():
            raise ApiError(ErrCode.BAD_VALUE, "The body is empty: a JSON object must be provided.")
        body = parse_json(raw)
        if not isinstance(body, dict):
            raise ApiError(ErrCode.BAD_VALUE, "A JSON object must be provided as the body.")
        return body

    def _disabled(self, service: str) -> Handler:
        async def handler(_: web.Request) -> web.Response:
            raise ApiError(ErrCode.DISABLED_FEATURE, f"The {service} service is not enabled on this bridge.")

        return handler

    async def _can_edit(self, room_id: str, user_id: str, event_type: str) -> bool:
        ctype = self.s.manager.type_for(event_type)
        return ctype is not None and await self.s.manager.access.can_write(
            room_id, user_id, ctype.service, ctype.event_type
        )

    # -- routes ---------------------------------------------------------------------------------

    async def health(self, _: web.Request) -> web.Response:
        return web.json_response({})

    async def openapi(self, _: web.Request) -> web.Response:
        return web.json_response(openapi_document())

    async def connection_types(self, _: web.Request) -> web.Response:
        bot = self.s.gateway.bot_mxid
        return web.json_response(
            {
                t.type_name: {
                    "type": t.type_name,
                    "eventType": t.event_type,
                    "service": t.display_service or t.service,
                    "botUserId": bot,
                }
                for t in self.s.manager.types
            }
        )

    async def list_connections(self, request: web.Request) -> web.Response:
        user_id, room_id = user_id_of(request), room_id_of(request)
        await self.s.manager.access.assert_can_read(room_id, user_id)
        out = []
        can_edit: dict[str, bool] = {}
        for conn in self.s.manager.connections(room_id):
            if conn.event_type not in can_edit:
                can_edit[conn.event_type] = await self._can_edit(room_id, user_id, conn.event_type)
            out.append(self.s.manager.details(conn, include_secrets=can_edit[conn.event_type]))
        bot = self.s.gateway.bot_mxid
        out.extend(c.details(bot) for c in self.s.manager.unsupported.in_room(room_id))
        return web.json_response(out)

    async def get_connection(self, request: web.Request) -> web.Response:
        user_id, room_id = user_id_of(request), room_id_of(request)
        await self.s.manager.access.assert_can_read(room_id, user_id)
        unserved = self.s.manager.unsupported.get(room_id, request.match_info["id"])
        if unserved is not None:
            return web.json_response(unserved.details(self.s.gateway.bot_mxid))
        conn = self.s.manager.get(room_id, request.match_info["id"])
        secrets = await self._can_edit(room_id, user_id, conn.event_type)
        return web.json_response(self.s.manager.details(conn, include_secrets=secrets))

    async def create_connection(self, request: web.Request) -> web.Response:
        user_id, room_id = user_id_of(request), room_id_of(request)
        event_type = request.match_info["event_type"]
        if self.s.manager.type_for(event_type) is None:
            raise ApiError(ErrCode.NOT_FOUND, f"Unknown event type {event_type}.")
        body = await self._body(request)
        return self._saved(*await self.s.manager.create(room_id, event_type, body, user_id=user_id))

    async def update_connection(self, request: web.Request) -> web.Response:
        user_id, room_id = user_id_of(request), room_id_of(request)
        body = await self._body(request)
        await self.s.manager.access.assert_can_read(room_id, user_id)
        return self._saved(*await self.s.manager.update(room_id, request.match_info["id"], body, user_id=user_id))

    def _saved(self, conn: Connection, outcome: Outcome) -> web.Response:
        """A created or updated connection, its secrets and the warnings as hookshot answers."""
        out = self.s.manager.details(conn, include_secrets=True)
        if outcome.warnings:
            out["warning"] = {"header": "Warning", "message": " ".join(outcome.warnings)}
        return web.json_response(out)

    async def delete_connection(self, request: web.Request) -> web.Response:
        user_id, room_id = user_id_of(request), room_id_of(request)
        await self.s.manager.access.assert_can_read(room_id, user_id)
        await self.s.manager.remove(room_id, request.match_info["id"], user_id=user_id)
        return web.json_response({"ok": True})
