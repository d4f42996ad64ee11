"""The appservice listener: homeserver transactions in, raw events out to the bridge.

mautrix provides the routes, token check and IntentAPI. We replace its transaction handler so
that a transaction is acknowledged only after its events were handled (a crash makes the
homeserver resend it), and so already-processed transaction ids are remembered in Postgres.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from mautrix.appservice import AppService
from mautrix.appservice.state_store.memory import ASStateStore
from mautrix.client.state_store.memory import MemoryStateStore

from hookshot_py.db.database import Database

log = logging.getLogger(__name__)

EventHandler = Callable[[dict[str, Any]], Awaitable[None]]


class _MemoryASStateStore(MemoryStateStore, ASStateStore):
    """Membership/registration cache for intents; rebuilt on demand after a restart."""

    def __init__(self) -> None:
        MemoryStateStore.__init__(self)
        ASStateStore.__init__(self)


async def _not_routed(event: dict[str, Any]) -> None:
    raise RuntimeError("a transaction arrived before the bridge's event routing was set up")


class HookshotAppService(AppService):
    def __init__(self, *, db: Database, **kwargs: Any) -> None:
        super().__init__(state_store=_MemoryASStateStore(), **kwargs)
        self.db = db
        # Set by the bridge once its parts are built; until then transactions answer 500 and
        # the homeserver retries them.
        self.on_event: EventHandler = _not_routed

    async def _http_handle_transaction(self, request: web.Request) -> web.Response:
        if not self._check_token(request):
            return web.json_response({"errcode": "M_FORBIDDEN", "error": "Invalid hs_token"}, status=403)
        txn_id = request.match_info["transaction_id"]
        try:
            data = await request.json()
        except json.JSONDecodeError:
            return web.json_response({"errcode": "M_NOT_JSON", "error": "Body is not JSON"}, status=400)
        events = data.get("events") if isinstance(data, dict) else None
        if not isinstance(events, list):
            return web.json_response({"errcode": "M_BAD_JSON", "error": "Missing events"}, status=400)
        try:
            if await self.db.fetchval("SELECT 1 FROM appservice_txns WHERE txn_id = $1", txn_id):
                return web.json_response({})
            for raw in events:
                if isinstance(raw, dict):
                    await self.on_event(raw)
            await self.db.execute(
                "INSERT INTO appservice_txns (txn_id) VALUES ($1) ON CONFLICT DO NOTHING", txn_id
            )
        except Exception:
            # Not acknowledged: the homeserver retries the transaction later.
            log.exception("Failed to handle transaction %s; the homeserver will retry it", txn_id)
            return web.json_response({"errcode": "M_UNKNOWN", "error": "Temporary failure"}, status=500)
        return web.json_response({})
