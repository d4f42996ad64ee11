"""A homeserver that only acknowledges: it answers the few client-server calls the bridge makes
(whoami, ping, register, join, state, account data, profile, send) without storing anything.
Used by the benchmark to show the bridge's own ceiling, without Synapse's cost."""

from __future__ import annotations

import itertools
from typing import Any

from aiohttp import web

_ids = itertools.count()


def make_app(domain: str) -> web.Application:
    sent = {"count": 0}

    def ok(data: Any = None) -> web.Response:
        return web.json_response({} if data is None else data)

    async def handle(request: web.Request) -> web.Response:
        path = request.path
        if request.method == "PUT" and "/send/" in path:
            sent["count"] += 1
            return ok({"event_id": f"$null{next(_ids)}"})
        if path.endswith("/account/whoami"):
            user = request.query.get("user_id", f"@hookshot:{domain}")
            return ok({"user_id": user})
        if "/state/m.room.member/" in path and request.method == "GET":
            return ok({"membership": "join"})
        if "/state/m.room.power_levels" in path and request.method == "GET":
            return ok({"users_default": 100, "state_default": 50})
        if "/state/m.room.create" in path and request.method == "GET":
            return ok({"sender": f"@creator:{domain}", "content": {"room_version": "10"}})
        if request.method == "PUT" and "/state/" in path:
            return ok({"event_id": f"$null{next(_ids)}"})
        if "/account_data/" in path and request.method == "GET":
            return web.json_response({"errcode": "M_NOT_FOUND", "error": "none"}, status=404)
        if path.endswith("/joined_rooms"):
            return ok({"joined_rooms": []})
        if path.endswith("/join") or "/join/" in path:
            return ok({"room_id": path.split("/")[-2]})
        if "/profile/" in path and request.method == "GET":
            return ok({})
        if path.endswith("/_matrix/client/versions"):
            return ok({"versions": ["v1.11"]})
        if path.endswith("/_null/sent"):
            return ok(sent)
        return ok({})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app
