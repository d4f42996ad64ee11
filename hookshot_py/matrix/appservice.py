"""The appservice listener: homeserver transactions in, raw events out to the bridge.

mautrix provides the routes, token check and IntentAPI. We replace its transaction handler so
that a transaction is acknowledged only after its events were handled (a crash makes the
homeserver resend it), and so already-processed transaction ids are remembered in Postgres.
The encryption extras of a transaction (to-device events, device list changes, one-time-key
counts: MSC2409/MSC3202) go to the crypto sink first, so a room key arrives before the events
that need it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import asyncpg
from aiohttp import web
from mautrix.appservice import AppService
from mautrix.appservice.state_store.memory import ASStateStore
from mautrix.client.state_store.memory import MemoryStateStore
from mautrix.errors import MatrixConnectionError

from hookshot_py import jsonsafe
from hookshot_py.db.database import Database
from hookshot_py.errors import ApiError
from hookshot_py.listeners.http import read_body

log = logging.getLogger(__name__)

EventHandler = Callable[[dict[str, Any]], Awaitable[None]]

MAX_TRANSACTION_BYTES = 32 * 1024 * 1024
# Event ids handled recently: a transaction retried after a partial failure skips them.
RECENT_EVENTS = 10_000
# Failures that say nothing about the event: retrying the transaction later can succeed.
TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.TooManyConnectionsError,
    asyncpg.CannotConnectNowError,
    MatrixConnectionError,
)


class CryptoSink(Protocol):
    async def handle_transaction(
        self,
        to_device: list[dict[str, Any]],
        device_lists: dict[str, Any] | None,
        otk_counts: dict[str, dict[str, dict[str, int]]],
    ) -> None: ...


def _field(data: dict[str, Any], *names: str) -> Any:
    """The first of a field's stable and unstable names that is present."""
    for name in names:
        if name in data:
            return data[name]
    return None


def encryption_extras(
    data: dict[str, Any],
) -> tuple[list[dict[str, Any]], dict[str, Any] | None, dict[str, dict[str, dict[str, int]]]]:
    """(to-device events, device list changes, one-time-key counts) of a transaction body."""
    to_device = _field(data, "to_device", "de.sorunome.msc2409.to_device")
    device_lists = _field(data, "device_lists", "org.matrix.msc3202.device_lists")
    otk = _field(
        data,
        "device_one_time_keys_count",
        "org.matrix.msc3202.device_one_time_keys_count",
        "org.matrix.msc3202.device_one_time_key_counts",
    )
    return (
        [e for e in to_device if isinstance(e, dict)] if isinstance(to_device, list) else [],
        device_lists if isinstance(device_lists, dict) else None,
        otk if isinstance(otk, dict) else {},
    )


class _MemoryASStateStore(MemoryStateStore, ASStateStore):
    """Membership/registration cache for intents; rebuilt on demand after a restart."""

    def __init__(self) -> None:
        MemoryStateStore.__init__(self)
        ASStateStore.__init__(self)


async def _not_routed(event: dict[str, Any]) -> None:
    raise ConnectionError("a transaction arrived before the bridge's event routing was set up")


class HookshotAppService(AppService):
    def __init__(self, *, db: Database, **kwargs: Any) -> None:
        super().__init__(state_store=_MemoryASStateStore(), **kwargs)
        self.db = db
        # Set by the bridge once its parts are built; until then transactions answer 500 and
        # the homeserver retries them.
        self.on_event: EventHandler = _not_routed
        self.crypto: CryptoSink | None = None  # set when encryption is enabled
        self._recent: OrderedDict[str, None] = OrderedDict()

    async def _http_handle_transaction(self, request: web.Request) -> web.Response:
        if not self._check_token(request):
            return web.json_response({"errcode": "M_FORBIDDEN", "error": "Invalid hs_token"}, status=403)
        txn_id = request.match_info["transaction_id"]
        try:
            raw = await read_body(request, MAX_TRANSACTION_BYTES)
            data = jsonsafe.loads(raw)
        except ApiError as e:
            return web.json_response({"errcode": "M_TOO_LARGE", "error": e.error}, status=e.status or 413)
        except jsonsafe.JsonError as e:
            return web.json_response({"errcode": "M_NOT_JSON", "error": str(e)}, status=400)
        events = data.get("events") if isinstance(data, dict) else None
        if not isinstance(events, list):
            return web.json_response({"errcode": "M_BAD_JSON", "error": "Missing events"}, status=400)
        # A homeserver may number its transactions from 1 again after a restart (Synapse on
        # SQLite does): a transaction is a repeat only if its id *and* its content match.
        digest = hashlib.sha256(raw).digest()
        try:
            if await self.db.fetchval(
                "SELECT 1 FROM appservice_txns WHERE txn_id = $1 AND digest = $2", txn_id, digest
            ):
                return web.json_response({})
            if self.crypto is not None:
                # Room keys first: the events of this transaction may need them. Never raises.
                extras = encryption_extras(data)
                log.debug("Transaction %s: %d event(s), %d to-device event(s)", txn_id, len(events), len(extras[0]))
                await self.crypto.handle_transaction(*extras)
            for raw_event in events:
                if isinstance(raw_event, dict):
                    await self._handle_one(txn_id, raw_event)
            await self.db.execute(
                "INSERT INTO appservice_txns (txn_id, digest) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                txn_id, digest,
            )
        except Exception:
            # Not acknowledged: the homeserver retries the transaction later.
            log.exception("Failed to handle transaction %s; the homeserver will retry it", txn_id)
            return web.json_response({"errcode": "M_UNKNOWN", "error": "Temporary failure"}, status=500)
        return web.json_response({})

    async def _handle_one(self, txn_id: str, event: dict[str, Any]) -> None:
        """Handle one event in isolation: a failure of ours that retrying can fix (the database
        or the homeserver unreachable) fails the transaction so it is retried; anything else is
        this event's problem, logged and skipped, so one bad event never wedges the stream."""
        event_id = event.get("event_id")
        if isinstance(event_id, str):
            if event_id in self._recent:
                return  # handled already, in an earlier try of a transaction that then failed
        try:
            await self.on_event(event)
        except TRANSIENT as e:
            log.warning("Event %s of transaction %s failed for now (%s): the transaction will be retried",
                        event_id, txn_id, type(e).__name__)
            raise
        except Exception:
            log.exception("Skipping event %s (%s in %s) of transaction %s: it cannot be handled",
                          event_id, event.get("type"), event.get("room_id"), txn_id)
        if isinstance(event_id, str):
            self._recent[event_id] = None
            if len(self._recent) > RECENT_EVENTS:
                self._recent.popitem(last=False)
