"""The bare forwarder: the yardstick of `bench/webhooks.py`.

An appservice reduced to one thing: each webhook is posted straight to the homeserver (`PUT
/send` as a ghost, with the registration's token, over one pooled keep-alive session) and answered
after the homeserver answered. No database, no queue, no markdown: what delivery costs when nothing
is made durable and order is left to the client. The event has the shape and size of the bridge's
(body, formatted body, the raw data), so the homeserver does the same work for both. Run as its
own process, like the bridge:

    python bench/forwarder.py --port 9100 --homeserver http://127.0.0.1:8008 \
        --token AS_TOKEN --user @_webhooks_bench:bench.test      # then POST /webhook/{room id}
"""

from __future__ import annotations

import argparse
import html
import itertools
import json
import os
from urllib.parse import quote

import aiohttp
from aiohttp import web


def make_app(homeserver: str, token: str, user: str) -> web.Application:
    """Webhooks to `/webhook/{room id}` go to that room."""
    ids = itertools.count()
    prefix = f"fwd{os.getpid()}"
    headers = {"Authorization": f"Bearer {token}"}
    params = {"user_id": user}
    app = web.Application()

    async def session_ctx(app: web.Application):  # type: ignore[no-untyped-def]
        app["session"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
        yield
        await app["session"].close()

    async def handle(request: web.Request) -> web.Response:
        data = json.loads(await request.read())
        text = str(data.get("text", ""))
        content = {"msgtype": "m.notice", "body": text, "format": "org.matrix.custom.html",
                   "formatted_body": f"<p>{html.escape(text)}</p>", "uk.half-shot.hookshot.webhook_data": data,
                   "m.mentions": {}}
        session: aiohttp.ClientSession = request.app["session"]
        room = quote(request.match_info["room"], safe="")
        url = f"{homeserver}/_matrix/client/v3/rooms/{room}/send/m.room.message/{prefix}.{next(ids)}"
        async with session.put(url, json=content, params=params, headers=headers) as resp:
            await resp.read()
            status = resp.status
        return web.json_response({"ok": status == 200}, status=202 if status == 200 else 502)

    async def ready(_: web.Request) -> web.Response:
        return web.json_response({"ready": True})

    app.cleanup_ctx.append(session_ctx)
    app.router.add_post("/webhook/{room}", handle)
    app.router.add_get("/ready", ready)
    return app


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--homeserver", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--user", required=True)
    args = ap.parse_args()
    web.run_app(make_app(args.homeserver, args.token, args.user), host="127.0.0.1", port=args.port,
                access_log=None, print=None)


if __name__ == "__main__":
    main()
