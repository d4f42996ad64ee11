"""The delivery log of an outbound webhook, on the provisioning API.

`GET /v1/{roomId}/connections/{id}/deliveries?userId=...[&limit=50][&before=<id>][&status=...]`
answers `{"deliveries": [...], "counts": {"pending", "delivered", "failed"}, "next": <id>|null}`,
newest first; `next` is the `before` of the following page. Readable by the users who may edit
the connection (the log holds the receiver's answers), like its secrets.
"""

from __future__ import annotations

from aiohttp import web

from hookshot_py.errors import ApiError, ErrCode
from hookshot_py.outbound.connection import EVENT_TYPE
from hookshot_py.outbound.queue import STATUSES, OutboundQueue
from hookshot_py.provisioning.api import room_id_of, user_id_of
from hookshot_py.services import Services

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


def _int_param(request: web.Request, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ApiError(ErrCode.BAD_VALUE, f"{name} must be an integer from {low} to {high}.")
    return int(raw)


class DeliveryLogRoute:
    def __init__(self, services: Services, queue: OutboundQueue) -> None:
        self.s = services
        self.queue = queue

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/{room_id}/connections/{id}/deliveries", self.deliveries)

    async def deliveries(self, request: web.Request) -> web.Response:
        user_id, room_id = user_id_of(request), room_id_of(request)
        limit = _int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        before = _int_param(request, "before", None, 1, 2**63 - 1)
        status = request.query.get("status")
        if status is not None and status not in STATUSES:
            raise ApiError(ErrCode.BAD_VALUE, f"status must be one of {', '.join(STATUSES)}.")
        manager = self.s.manager
        await manager.access.assert_can_read(room_id, user_id)
        conn = manager.get(room_id, request.match_info["id"])
        if conn.event_type != EVENT_TYPE:
            raise ApiError(ErrCode.UNSUPPORTED_OPERATION, "Only outbound webhooks have a delivery log.")
        await manager.assert_can_write(room_id, user_id, manager.type_of(conn))
        assert limit is not None
        entries = await self.queue.log(conn.id, limit=limit, before=before, status=status)
        return web.json_response({
            "deliveries": entries,
            "counts": await self.queue.counts(conn.id),
            "next": entries[-1]["id"] if len(entries) == limit else None,
        })
