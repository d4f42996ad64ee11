"""A homeserver that only acknowledges: it answers the few client-server calls the bridge makes
(whoami, ping, register, join, state, account data, profile, send, messages) without storing
anything but what was sent: each send's body, room and arrival time, so the benchmark can count
lost and duplicated messages, check their order, and time a fail-over. Used to show the bridge's
own ceiling, without Synapse's cost. Sends are deduplicated by transaction id, as a homeserver
does until it restarts."""

from __future__ import annotations

import itertools
import time
from typing import Any

from aiohttp import web

_ids = itertools.count()


def make_app(domain: str) -> web.Application:
    sent: list[tuple[float, str, str]] = []  # (monotonic time, room, body)
    txns: dict[str, str] = {}

    def ok(data: Any = None) -> web.Response:
        return web.json_response({} if data is None else data)

    async def handle(request: web.Request) -> web.Response:
        path = request.path
        if request.method == "PUT" and "/send/" in path:
            txn = f"{request.query.get('user_id', '')}/{path}"
            if txn in txns:
                return ok({"event_id": txns[txn]})
            content = await request.json()
            event_id = txns[txn] = f"$null{next(_ids)}"
            sent.append((time.monotonic(), path.split("/")[5], str(content.get("body", ""))))
            return ok({"event_id": event_id})
        if path.endswith("/account/whoami"):
            user = request.query.get("user_id", f"@hookshot:{domain}")
            return ok({"user_id": user})
        if "/state/m.room.member/" in path and request.method == "GET":
            return ok({"membership": "join"})
        if "/state/m.room.power_levels" in path and request.method == "GET":
            return ok({"users_default": 100, "state_default": 50})
        if "/state/m.room.create" in path and request.method == "GET":
            return ok({"sender": f"@creator:{domain}", "content": {"room_version": "10"}})
        if path.endswith("/state") and request.method == "GET":
            return web.json_response([])
        if request.method == "PUT" and "/state/" in path:
            return ok({"event_id": f"$null{next(_ids)}"})
        if "/account_data/" in path and request.method == "GET":
            return web.json_response({"errcode": "M_NOT_FOUND", "error": "none"}, status=404)
        if path.endswith("/joined_rooms"):
            return ok({"joined_rooms": []})
        if path.endswith("/messages"):
            return ok({"chunk": [], "start": "s0"})
        if path.endswith("/join") or "/join/" in path:
            return ok({"room_id": path.split("/")[-2]})
        if "/profile/" in path and request.method == "GET":
            return ok({})
        if path.endswith("/_matrix/client/versions"):
            return ok({"versions": ["v1.11"]})
        if path.endswith("/_null/sent"):
            since = float(request.query.get("since", "0"))
            return ok({"count": len(sent), "sent": [s for s in sent if s[0] >= since]})
        if path.endswith("/_null/count"):
            return ok({"count": len(sent)})
        return ok({})

    app = web.Application(client_max_size=64 * 1024**2)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def main() -> None:
    """Run on its own (the benchmark starts it as a process, so it does not share a core with the
    load generator): `python bench/null_homeserver.py PORT DOMAIN`."""
    import sys

    web.run_app(make_app(sys.argv[2]), host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
