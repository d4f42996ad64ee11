"""The appservice listener: homeserver transactions in, raw events out to the bridge.

mautrix provides the routes, token check and IntentAPI. We replace its transaction handler so
that a transaction is acknowledged only after its events were handled (a crash makes the
homeserver resend it), and so it is handled once across bridge processes and restarts: it is
claimed in Postgres first, by its id and its events' ids (`txn_claims.py`, `_digest`).
The listener is served like every other listener of the bridge (`listeners/http.py`): bounded
header, keep-alive and body times, a connection cap, `{errcode, error}` for what a handler did
not expect, no access log (homeservers may put the `hs_token` in the query string); the ping
route reads its body with the same limits as the transaction route.

The encryption extras of a transaction (to-device events, device list changes, one-time-key
counts: MSC2409/MSC3202) go to the crypto sink first, so a room key arrives before the events
that need it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import aiohttp
import asyncpg
from aiohttp import web
from mautrix.appservice import AppService
from mautrix.appservice.api import AppServiceAPI
from mautrix.appservice.state_store.memory import ASStateStore
from mautrix.client.state_store.memory import MemoryStateStore
from mautrix.errors import MatrixConnectionError

from hookshot_py import jsonsafe
from hookshot_py.cpu_pool import CpuPool, CpuPoolError
from hookshot_py.db.database import Database
from hookshot_py.errors import ApiError
from hookshot_py.listeners.http import ListenerRunner, error_middleware, read_body
from hookshot_py.matrix.txn_claims import Claim, TransactionClaims

log = logging.getLogger(__name__)

EventHandler = Callable[[dict[str, Any]], Awaitable[None]]
Answer = tuple[int, dict[str, Any]]

MAX_TRANSACTION_BYTES = 32 * 1024 * 1024
MAX_PING_BYTES = 64 * 1024
# Transactions larger than this are cut into events in a CPU-pool worker (see `_split`).
SPLIT_TRANSACTION_BYTES = 256 * 1024
SPLIT_DEADLINE_S = 30.0
NO_EVENTS = "the body has no `events` list"
# A transaction is refused (and retried by the homeserver for ever) only if it cannot be read at
# all: any room member can send an event nested deeper than the bridge handles, so depth is
# checked per event (too deep: that event is skipped). The bound on the whole text only stops
# what no homeserver sends; Python's parser gives up near 1,000 levels, as Synapse's own does.
TXN_MAX_DEPTH = 2_000
MAX_EVENT_DEPTH = jsonsafe.MAX_DEPTH
# How long a retried transaction waits for another process that is handling it, before the
# homeserver is told to try again later.
BUSY_WAIT_S = 20.0
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
    def __init__(self, *, db: Database, process_id: str = "", **kwargs: Any) -> None:
        kwargs.setdefault("aiohttp_params", {"middlewares": [error_middleware]})
        super().__init__(state_store=_MemoryASStateStore(), **kwargs)
        self.db = db
        self.claims = TransactionClaims(db, process_id or f"pid{id(self)}")
        self._handling: dict[tuple[str, bytes], asyncio.Future[Answer]] = {}
        # The bridge's own users (bot, ghosts): a transaction of their events only (the echoes
        # of what the bridge sent) is idempotent, and needs no claim.
        self.is_own_user: Callable[[str], bool] = lambda user_id: False
        # Set by the bridge once its parts are built; until then transactions answer 500 and
        # the homeserver retries them.
        self.on_event: EventHandler = _not_routed
        self.crypto: CryptoSink | None = None  # set when encryption is enabled
        # Set by the bridge with `on_event`: where large transactions are parsed.
        self.cpu: CpuPool | None = None
        self._recent: OrderedDict[str, None] = OrderedDict()

    async def start(self, host: str = "127.0.0.1", port: int = 8080) -> None:
        """mautrix's `start` (the client session and the bot's intent), with the listener served
        by `ListenerRunner` like the bridge's other listeners."""
        await self.state_store.open()
        self._http_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.connection_limit), headers={"User-Agent": self.default_ua}
        )
        self._intent = AppServiceAPI(
            base_url=self.server,
            bot_mxid=self.bot_mxid,
            log=self.log,
            token=self.as_token,
            state_store=self.state_store,
            bridge_name=self.bridge_name,
            client_session=self._http_session,
            default_retry_count=self.default_http_retry_count,
        ).bot_intent()
        self.runner = ListenerRunner(self.app)
        await self.runner.setup()
        await web.TCPSite(self.runner, host, port).start()

    def _check_token(self, request: web.Request) -> bool:
        """The homeserver's token, compared in constant time (query string or Bearer header)."""
        token = request.rel_url.query.get("access_token")
        if token is None:
            token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        return hmac.compare_digest(token.encode("utf-8", "surrogateescape"), self.hs_token.encode())

    async def _http_ping(self, request: web.Request) -> web.Response:
        if not self._check_token(request):
            return web.json_response({"errcode": "M_FORBIDDEN", "error": "Invalid hs_token"}, status=403)
        try:
            data = jsonsafe.loads(await read_body(request, MAX_PING_BYTES) or b"{}")
        except ApiError as e:
            return web.json_response({"errcode": "M_TOO_LARGE", "error": e.error}, status=e.status or 413)
        except jsonsafe.JsonError as e:
            return web.json_response({"errcode": "M_NOT_JSON", "error": str(e)}, status=400)
        txn_id = data.get("transaction_id") if isinstance(data, dict) else None
        log.info("The homeserver pinged the bridge (transaction %r)", txn_id if isinstance(txn_id, str) else None)
        return web.json_response({})

    async def _http_handle_transaction(self, request: web.Request) -> web.Response:
        if not self._check_token(request):
            return web.json_response({"errcode": "M_FORBIDDEN", "error": "Invalid hs_token"}, status=403)
        txn_id = request.match_info["transaction_id"]
        try:
            raw = await read_body(request, MAX_TRANSACTION_BYTES)
        except ApiError as e:
            return web.json_response({"errcode": "M_TOO_LARGE", "error": e.error}, status=e.status or 413)
        refusal, events, rest, event_ids = await self._split(raw, txn_id)
        if refusal is not None:
            errcode = "M_BAD_JSON" if refusal == NO_EVENTS else "M_NOT_JSON"
            return web.json_response({"errcode": errcode, "error": refusal}, status=400)
        key = (txn_id, _digest(raw, event_ids))
        running = self._handling.get(key)
        if running is not None:  # retried while this process still handles it
            status, body = await asyncio.shield(running)
            return web.json_response(body, status=status)
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._handling[key] = future
        try:
            status, body = answer = await self._claim_and_handle(txn_id, key[1], events, rest)
            future.set_result(answer)
            return web.json_response(body, status=status)
        except BaseException as e:
            future.set_exception(e)
            future.exception()  # retrieved: a waiting retry sees it, nobody else must
            raise
        finally:
            del self._handling[key]

    async def _claim_and_handle(self, txn_id: str, digest: bytes, events: list[Any], rest: dict[str, Any]) -> Answer:
        """Handle the transaction once across processes: claimed first, acknowledged after."""
        if self._echoes_only(events, rest):
            return await self._handle_unclaimed(txn_id, events, rest)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BUSY_WAIT_S
        try:
            while (claim := await self.claims.claim(txn_id, digest)) is Claim.BUSY:
                if loop.time() > deadline:
                    return 503, {"errcode": "M_UNKNOWN", "error": "Another bridge process is handling this transaction"}
                await asyncio.sleep(0.2)  # another process has it: wait until it is done, or dies
            if claim is Claim.DONE:
                return 200, {}
            async with self.claims.kept(txn_id, digest):
                await self._handle_events(txn_id, events, rest)
            await self.claims.done(txn_id, digest)
        except Exception:
            # Not acknowledged: the homeserver retries the transaction later.
            log.exception("Failed to handle transaction %s; the homeserver will retry it", txn_id)
            try:
                await self.claims.release(txn_id, digest)
            except Exception as e:
                log.debug("Releasing the claim on %s failed (%s); it expires by itself", txn_id, e)
            return 500, {"errcode": "M_UNKNOWN", "error": "Temporary failure"}
        return 200, {}

    def _echoes_only(self, events: list[Any], rest: dict[str, Any]) -> bool:
        """Only events the bridge's own users sent (what it posted, coming back) and nothing for
        the crypto sink: handling them twice is harmless."""
        if not events or (self.crypto is not None and any(encryption_extras(rest))):
            return False
        return all(isinstance(e, dict) and self.is_own_user(str(e.get("sender", ""))) for e in events)

    async def _handle_unclaimed(self, txn_id: str, events: list[Any], rest: dict[str, Any]) -> Answer:
        try:
            await self._handle_events(txn_id, events, rest)
        except Exception:
            log.exception("Failed to handle transaction %s; the homeserver will retry it", txn_id)
            return 500, {"errcode": "M_UNKNOWN", "error": "Temporary failure"}
        return 200, {}

    async def _handle_events(self, txn_id: str, events: list[Any], rest: dict[str, Any]) -> None:
        if self.crypto is not None:
            # Room keys first: the events of this transaction may need them. Never raises.
            extras = encryption_extras(rest)
            log.debug("Transaction %s: %d event(s), %d to-device event(s)", txn_id, len(events), len(extras[0]))
            await self.crypto.handle_transaction(*extras)
        for item in events:
            if isinstance(item, bytes):  # cut by a worker; its depth is checked on the text, at C speed
                too_deep = jsonsafe.nesting_exceeds(item, MAX_EVENT_DEPTH)
                try:
                    raw_event = json.loads(item)
                except RecursionError:
                    raw_event, too_deep = {}, True
                if too_deep:
                    _skip_deep(txn_id, raw_event)
                    continue
            else:
                raw_event = item
            if isinstance(raw_event, dict):
                await self._handle_one(txn_id, raw_event)
            await asyncio.sleep(0)  # one event at a time: a long transaction never holds the loop

    async def _split(self, raw: bytes, txn_id: str) -> tuple[str | None, list[Any], dict[str, Any], list[Any]]:
        """(why the body is refused, its events, its other fields: the encryption extras). A small
        transaction is parsed here; a large one (a room's burst of big events can make one of
        several MiB: parsing it took the event loop 0.2 s) is cut into its events in a CPU-pool
        worker, each parsed here when its turn comes."""
        if len(raw) > SPLIT_TRANSACTION_BYTES and self.cpu is not None:
            try:
                return await self.cpu.run_within(
                    SPLIT_DEADLINE_S, jsonsafe.split_list, raw, "events", max_depth=TXN_MAX_DEPTH, id_field="event_id"
                )
            except CpuPoolError as e:
                log.warning("Parsing a transaction of %d bytes here: %s", len(raw), e)
        try:
            data = jsonsafe.loads(raw, max_depth=TXN_MAX_DEPTH)
        except jsonsafe.JsonError as e:
            return str(e), [], {}, []
        events = data.get("events") if isinstance(data, dict) else None
        if not isinstance(events, list):
            return NO_EVENTS, [], {}, []
        event_ids = [e.get("event_id") if isinstance(e, dict) else None for e in events]
        if jsonsafe.nesting_exceeds(raw, MAX_EVENT_DEPTH + 2):  # {"events": [event, ...]}
            events = [e for e in events if not (jsonsafe.depth_exceeds(e, MAX_EVENT_DEPTH) and _skip_deep(txn_id, e))]
        return None, events, data, event_ids

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


def _skip_deep(txn_id: str, event: Any) -> bool:
    """Log an event too deeply nested to handle (any room member can send one); True."""
    event = event if isinstance(event, dict) else {}
    log.warning("Skipping event %s (%s in %s) of transaction %s: nested deeper than %d levels",
                event.get("event_id"), event.get("type"), event.get("room_id"), txn_id, MAX_EVENT_DEPTH)
    return True


def _digest(raw: bytes, event_ids: list[Any]) -> bytes:
    """What makes a transaction the same one again. A homeserver may number its transactions from
    1 again after a restart (Synapse on SQLite does), so the id alone is not enough; and Synapse
    rebuilds a retried transaction (`unsigned.age` changes), so its bytes are not either. Its
    events' ids are what a retry keeps; a transaction without events is known by its bytes."""
    if event_ids and all(isinstance(i, str) for i in event_ids):
        return hashlib.sha256("\n".join(event_ids).encode("utf-8", "surrogatepass")).digest()
    return hashlib.sha256(raw).digest()
