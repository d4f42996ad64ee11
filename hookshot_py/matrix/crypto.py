"""End-to-end encryption: one Olm device for the bot, its crypto state in the bridge's Postgres.

Appservice mode, no logged-in device and no /sync: the homeserver puts to-device events
(MSC2409), device list changes and one-time-key counts (MSC3202) into the transactions it pushes,
and the bridge creates its bot's device itself (MSC4190). mautrix's OlmMachine does the Olm/Megolm
work with libolm (python-olm); its asyncpg crypto store keeps the account, sessions and device
lists in their own Postgres schema (`mautrix_crypto`, versioned by mautrix, never by our alembic).

Synapse (1.163) caveats, read from its code: it sends an appservice its to-device events only in
live transactions. A transaction it retries is rebuilt from the database without them
(`get_oldest_unsent_txn` → `to_device_messages=[]`), and while it considers the appservice down it
drops transactions that carry no room event. So this module never refuses a transaction, and room
keys sent while the bridge is down are lost: the bridge then asks the sender's devices for them
(a client may re-share a key it had sent to our device; matrix-nio does not) and tells the
sender it could not decrypt. The bot cannot /sync its device instead: Synapse answers /sync
of an appservice's sender with an error (`generate_sync_result`: "We no longer support AS users
using /sync directly").

Ghosts (per-hook senders) have no devices: what they send is encrypted with the bot device's
Megolm session, as mautrix bridges do. Clients decrypt it; a client that checks that the session's
device belongs to the sender marks those messages as sent by another user's device.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import asyncpg
from mautrix.api import Method, Path
from mautrix.appservice import IntentAPI
from mautrix.client import Client
from mautrix.crypto import OlmMachine, PgCryptoStore, StateStore
from mautrix.errors import (
    DecryptionError,
    EncryptionError,
    MatrixRequestError,
    MForbidden,
    MNotFound,
    SessionNotFound,
)
from mautrix.types import (
    ASToDeviceEvent,
    DeviceID,
    DeviceLists,
    DeviceOTKCount,
    EncryptedEvent,
    EventType,
    RoomEncryptionStateEventContent,
    RoomID,
    SerializerError,
    SessionID,
    UserID,
)
from mautrix.util.async_db import Database as MautrixDatabase

from hookshot_py.matrix.encrypted_rooms import ENCRYPTED, ENCRYPTION, Undecryptable

log = logging.getLogger(__name__)


def _json(value: Any) -> Any:
    """Untyped JSON from the wire, handed to mautrix's deserializers."""
    return value

CRYPTO_SCHEMA = "mautrix_crypto"
CRYPTO_LOCK_ID = 0x686F6F6B_73686F74  # "hookshot"
# The bot's own account data remembers which device holds its crypto state: finding it there while
# Postgres has no Olm account means the crypto state was lost (and is said so in the log).
DEVICE_ACCOUNT_DATA = "org.hookshot_py.e2ee"
DEVICE_NAME = "hookshot_py bridge"
# Undecryptable events wait this long for their keys before they are dropped.
KEY_WAIT_S = 600.0
MAX_PENDING = 1000
MAX_EARLY = 10_000


class CryptoInUse(RuntimeError):
    """Another process uses this database's crypto state: two would reuse Megolm message indices."""


async def hold_crypto_lock(dsn: str) -> asyncpg.Connection:
    """A connection holding the crypto state's advisory lock until it is closed (or the process dies)."""
    conn = await asyncpg.connect(dsn)
    try:
        if await conn.fetchval("SELECT pg_try_advisory_lock($1)", CRYPTO_LOCK_ID):
            return conn
    except BaseException:
        await conn.close()
        raise
    await conn.close()
    raise CryptoInUse(
        "another bridge process uses this database's encryption state; run a single process with "
        "encryption enabled (two would encrypt with the same keys and clients would reject messages)"
    )


class CryptoStateLost(RuntimeError):
    """The stored crypto state cannot be used (no account, wrong pickle key, device gone)."""


@dataclass
class _Rooms(StateStore):
    """What OlmMachine needs to know about rooms: encryption settings and who to share keys with.

    Filled lazily from the homeserver and kept current from the transactions' state events; the
    members are the joined and invited users, without the bridge's own users.
    """

    fetch_encryption: Callable[[str], Awaitable[dict[str, Any] | None]]
    fetch_members: Callable[[str], Awaitable[set[str]]]
    is_bridge_user: Callable[[str], bool]
    encryption: dict[str, RoomEncryptionStateEventContent | None] = field(default_factory=dict)
    members: dict[str, set[str]] = field(default_factory=dict)

    async def get_encryption_info(self, room_id: RoomID) -> RoomEncryptionStateEventContent | None:
        if room_id in self.encryption:
            return self.encryption[room_id]
        try:
            content = await self.fetch_encryption(room_id)
        except MForbidden:
            # Not in the room (yet: a room key can come with the invite). Unknown is not "clear":
            # nothing is cached, the next look-up asks again.
            return None
        info = RoomEncryptionStateEventContent.deserialize(_json(content)) if content else None
        self.encryption[room_id] = info
        return info

    async def is_encrypted(self, room_id: RoomID) -> bool:
        return await self.get_encryption_info(room_id) is not None

    async def find_shared_rooms(self, user_id: UserID) -> list[RoomID]:
        return [RoomID(room) for room, users in self.members.items() if user_id in users]

    async def room_members(self, room_id: str) -> set[str]:
        if room_id not in self.members:
            users = await self.fetch_members(room_id)
            self.members[room_id] = {u for u in users if not self.is_bridge_user(u)}
        return self.members[room_id]


class RoomCrypto:
    """The bot's Olm device. Built and started by the app when `encryption.enabled`.

    - `handle_transaction(to_device, device_lists, otk_counts)`: the extras of a homeserver transaction.
    - `decrypt(event)`: an `m.room.encrypted` event → the plain event, waiting a little for its keys.
    - `seal(room_id, type, content)`: encrypt just before sending if the room is encrypted (the outbox).
    - `on_state_event(event)`: member and encryption changes (who gets the next Megolm session).
    """

    def __init__(
        self,
        *,
        homeserver: str,
        bot_mxid: str,
        as_token: str,
        dsn: str,
        pickle_key: str,
        bot: Callable[[], IntentAPI],
        is_bridge_user: Callable[[str], bool],
    ) -> None:
        self.bot_mxid = bot_mxid
        self._as_token = as_token
        self._bot_intent = bot  # the appservice bot (no device), for state, members and account data
        self._is_bridge_user = is_bridge_user
        self.db = MautrixDatabase.create(
            dsn,
            upgrade_table=PgCryptoStore.upgrade_table,
            db_args={"min_size": 1, "max_size": 4, "server_settings": {"search_path": CRYPTO_SCHEMA}},
            log=logging.getLogger("mau.crypto.db"),
        )
        self._dsn = dsn
        self.store = PgCryptoStore(bot_mxid, pickle_key, self.db)
        self.rooms = _Rooms(self._fetch_encryption, self._fetch_members, is_bridge_user)
        self.client = Client(mxid=bot_mxid, base_url=homeserver, token=as_token)
        self.machine = OlmMachine(self.client, self.store, self.rooms)
        self._share_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._pending: dict[str, list[dict[str, Any]]] = {}
        self._waiters: set[asyncio.Task[None]] = set()
        self._on_late_decrypt: Callable[[dict[str, Any]], Awaitable[None]] | None = None
        self._early: list[tuple[list[dict[str, Any]], dict[str, Any] | None, dict[str, dict[str, dict[str, int]]]]] = []
        self.ready = False
        self._ready = asyncio.Event()
        self._lock: asyncpg.Connection | None = None

    @property
    def _bot(self) -> IntentAPI:
        return self._bot_intent()

    @property
    def device_id(self) -> str:
        return str(self.client.device_id)

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self, on_late_decrypt: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        """Open the store, make sure our device exists with its keys on the homeserver."""
        self._on_late_decrypt = on_late_decrypt
        self._lock = await hold_crypto_lock(self._dsn)
        await self._lock.execute(f"CREATE SCHEMA IF NOT EXISTS {CRYPTO_SCHEMA}")
        await self.db.start()
        await self.store.open()
        self.client.api.token = self._as_token
        known = await self._remembered_device()
        device_id = await self.store.get_device_id()
        if known and device_id and known != device_id:
            log.warning(
                "The bot's account data names encryption device %s but this database holds device %s: "
                "was another database used with this bot? This one's device is used from now on.",
                known, device_id,
            )
        try:
            if device_id:
                await self._load_existing(device_id)
            else:
                if known:
                    log.error(
                        "Crypto state lost: the bot's device %s is remembered in its account data, but "
                        "Postgres has no Olm account for it (schema %s emptied or another database?). "
                        "Starting a new device; messages encrypted for %s before now stay unreadable "
                        "to the bridge, and users' clients will show a new device for the bot.",
                        known, CRYPTO_SCHEMA, known,
                    )
                    await self._delete_device(known)
                await self._new_device()
        except CryptoStateLost as e:
            log.error("Crypto state lost: %s. Starting a new device for the bot.", e)
            await self.store.delete()
            await self._delete_device(device_id or "")
            self.machine.account = None
            await self._new_device()
        self.ready = True
        early, self._early = self._early, []
        for extras in early:
            await self._handle_extras(*extras)
        self._ready.set()
        self._spawn(self._load_rooms_with_sessions(), "crypto-rooms")
        log.info("End-to-end encryption ready (appservice mode, device %s)", self.device_id)

    async def stop(self) -> None:
        self.ready = False
        for task in list(self._waiters):
            task.cancel()
        await asyncio.gather(*self._waiters, return_exceptions=True)
        await self.client.api.session.close()
        await self.db.stop()
        if self._lock is not None:
            await self._lock.close()
            self._lock = None

    async def _load_rooms_with_sessions(self) -> None:
        """Members of the rooms we encrypt for, so a device change there rotates the session."""
        rows = await self.db.fetch(
            "SELECT room_id FROM crypto_megolm_outbound_session WHERE account_id = $1", self.bot_mxid
        )
        for row in rows:
            try:
                await self.rooms.room_members(row["room_id"])
            except MatrixRequestError as e:
                log.debug("Could not load the members of %s: %s", row["room_id"], e)

    async def _load_existing(self, device_id: str) -> None:
        await self.client.create_device_msc4190(device_id=device_id, initial_display_name=DEVICE_NAME)
        try:
            await self.machine.load()
        except Exception as e:  # olm.OlmAccountError: pickled with another key
            raise CryptoStateLost(
                f"the Olm account of device {device_id} cannot be unpickled ({e}); was passFile replaced?"
            ) from e
        account = self.machine.account
        assert account is not None
        if not account.shared:
            await self.machine.share_keys()
            return
        resp = await self.client.query_keys([UserID(self.bot_mxid)])
        ours = (resp.device_keys.get(UserID(self.bot_mxid)) or {}).get(DeviceID(device_id))
        if ours is None or account.signing_key not in ours.keys.values():
            raise CryptoStateLost(
                f"the homeserver no longer has the keys of device {device_id} (device deleted or "
                "homeserver database reset)"
            )
        await self._remember_device(device_id)

    async def _new_device(self) -> None:
        device_id = "HOOKSHOT" + secrets.token_hex(4).upper()
        await self.client.create_device_msc4190(device_id=device_id, initial_display_name=DEVICE_NAME)
        await self.machine.load()
        await self.store.put_device_id(self.client.device_id)
        await self.machine.share_keys()
        await self._remember_device(device_id)
        log.info("Created the bot's encryption device %s", device_id)

    async def _remembered_device(self) -> str | None:
        try:
            data = await self._bot.get_account_data(DEVICE_ACCOUNT_DATA)
        except MNotFound:
            return None
        value = data.get("device_id") if isinstance(data, dict) else None
        return value if isinstance(value, str) else None

    async def _remember_device(self, device_id: str) -> None:
        if await self._remembered_device() != device_id:
            await self._bot.set_account_data(DEVICE_ACCOUNT_DATA, _json({"device_id": device_id}))

    async def _delete_device(self, device_id: str) -> None:
        if not device_id:
            return
        try:  # MSC4190: an appservice deletes its users' devices without interactive auth.
            await self._bot.api.request(Method.DELETE, Path.v3.devices[device_id], {})
        except MatrixRequestError as e:
            log.warning("Could not delete the old device %s: %s", device_id, e)

    # -- what the homeserver pushes ---------------------------------------------------------------

    async def handle_transaction(
        self,
        to_device: list[dict[str, Any]],
        device_lists: dict[str, Any] | None,
        otk_counts: dict[str, dict[str, dict[str, int]]],
    ) -> None:
        """Room keys, key requests, device list changes and key counts of one transaction.

        Never raises: Synapse (1.163) rebuilds a transaction it has to retry without its to-device
        events, so refusing one would lose its room keys for good. Before `start` finished they
        are kept in memory and handled then.
        """
        if not self.ready:
            if len(self._early) < MAX_EARLY:
                self._early.append((to_device, device_lists, otk_counts))
            else:
                log.error("Dropping to-device events that arrived while encryption was starting (too many)")
            return
        await self._handle_extras(to_device, device_lists, otk_counts)

    async def _handle_extras(
        self,
        to_device: list[dict[str, Any]],
        device_lists: dict[str, Any] | None,
        otk_counts: dict[str, dict[str, dict[str, int]]],
    ) -> None:
        for raw in to_device:
            if raw.get("to_user_id") != self.bot_mxid or raw.get("to_device_id") != self.device_id:
                log.debug("Ignoring a to-device event for %s/%s", raw.get("to_user_id"), raw.get("to_device_id"))
                continue  # for another device (an old one of ours, or a ghost)
            try:
                evt = cast(ASToDeviceEvent, ASToDeviceEvent.deserialize(_json(raw)))
                await self.machine.handle_as_to_device_event(evt)
            except Exception as e:
                log.error("Could not handle a %s to-device event from %s: %s", raw.get("type"), raw.get("sender"), e)
        try:
            if device_lists and device_lists.get("changed"):
                await self.machine.handle_as_device_lists(DeviceLists.deserialize(_json(device_lists)))
            ours = (otk_counts.get(self.bot_mxid) or {}).get(self.device_id)
            if isinstance(ours, dict):
                await self.machine.handle_otk_count(DeviceOTKCount.deserialize(_json(ours)))
        except Exception as e:
            log.error("Could not handle device list changes or key counts: %s", e)

    def on_state_event(self, event: dict[str, Any]) -> None:
        """Track encryption settings and members; a member change means a new Megolm session."""
        room_id, etype = event.get("room_id", ""), event.get("type")
        content = event.get("content") or {}
        if etype == ENCRYPTION and event.get("state_key") == "":
            try:
                self.rooms.encryption[room_id] = RoomEncryptionStateEventContent.deserialize(_json(content))
            except SerializerError:
                pass
            return
        if etype != "m.room.member" or room_id not in self.rooms.members:
            return
        user = event.get("state_key")
        if not isinstance(user, str) or self._is_bridge_user(user):
            return  # ghosts have no devices: they never change who can read
        members = self.rooms.members[room_id]
        inside = content.get("membership") in ("join", "invite")
        if inside != (user in members):
            (members.add if inside else members.discard)(user)
            # The next message gets a new session, shared with exactly the users in the room now.
            self._spawn(self.store.remove_outbound_group_session(room_id), f"rotate:{room_id}")

    async def is_encrypted(self, room_id: str) -> bool:
        return await self.rooms.is_encrypted(RoomID(room_id))

    # -- decrypting -------------------------------------------------------------------------------

    async def decrypt(self, event: dict[str, Any], wait_s: float = 5.0) -> dict[str, Any] | Undecryptable:
        """The plain event, or why not. A missing key is waited for (it often arrives in the next
        transaction), then asked for from the sender's devices; after that the event keeps waiting
        in the background and is handed to `on_late_decrypt` if its key ever arrives."""
        try:
            evt = EncryptedEvent.deserialize(_json(event))
        except SerializerError as e:
            return Undecryptable(event, "", f"malformed encrypted event ({e})")
        session_id = str(getattr(evt.content, "session_id", "") or "")
        await self._ready.wait()
        try:
            return await self._decrypt_once(event, evt)
        except SessionNotFound:
            pass
        except DecryptionError as e:
            return Undecryptable(event, session_id, f"{type(e).__name__}: {e}")
        if await self.machine.wait_for_session(evt.room_id, evt.content.session_id, timeout=wait_s):
            try:
                return await self._decrypt_once(event, evt)
            except DecryptionError as e:
                return Undecryptable(event, session_id, f"{type(e).__name__}: {e}")
        await self._request_key(evt)
        if await self.machine.wait_for_session(evt.room_id, evt.content.session_id, timeout=wait_s * 2):
            try:
                return await self._decrypt_once(event, evt)
            except DecryptionError as e:
                return Undecryptable(event, session_id, f"{type(e).__name__}: {e}")
        self._park(event, evt)
        return Undecryptable(event, session_id, "the sender's device did not share the message's key with the bridge")

    async def _decrypt_once(self, raw: dict[str, Any], evt: EncryptedEvent) -> dict[str, Any]:
        decrypted = await self.machine.decrypt_megolm_event(evt)
        content = decrypted.content.serialize() if hasattr(decrypted.content, "serialize") else dict(decrypted.content)
        plain = {k: v for k, v in raw.items() if k not in ("type", "content")}
        plain["type"] = decrypted.type.t if hasattr(decrypted.type, "t") else str(decrypted.type)
        plain["content"] = content
        return plain

    async def _request_key(self, evt: EncryptedEvent) -> None:
        devices = [evt.content.device_id] if evt.content.device_id else []
        if not devices:
            known = await self.store.get_devices(evt.sender) or {}
            devices = list(known)
        if not devices:
            return
        try:
            await self.machine.request_room_key(
                evt.room_id, evt.content.sender_key, evt.content.session_id, {evt.sender: devices}, timeout=0
            )
        except MatrixRequestError as e:
            log.warning("Could not request the key of %s from %s: %s", evt.event_id, evt.sender, e)

    def _park(self, raw: dict[str, Any], evt: EncryptedEvent) -> None:
        """Keep waiting for the key in the background, bounded in number and time."""
        session_id = str(evt.content.session_id)
        if sum(len(v) for v in self._pending.values()) >= MAX_PENDING:
            log.warning("Too many undecryptable events waiting for keys; dropping %s", evt.event_id)
            return
        waiting = self._pending.setdefault(session_id, [])
        waiting.append(raw)
        if len(waiting) == 1:
            self._spawn(self._wait_late(evt.room_id, session_id), f"keys:{session_id}")

    async def _wait_late(self, room_id: str, session_id: str) -> None:
        deadline = time.monotonic() + KEY_WAIT_S
        got = False
        while not got and time.monotonic() < deadline:
            remaining = min(60.0, deadline - time.monotonic())
            got = await self.machine.wait_for_session(RoomID(room_id), SessionID(session_id), timeout=remaining)
        events = self._pending.pop(session_id, [])
        if not got:
            log.info("Gave up on %d event(s) of Megolm session %s: its key never arrived", len(events), session_id)
            return
        for raw in events:
            try:
                plain = await self._decrypt_once(raw, EncryptedEvent.deserialize(_json(raw)))
            except DecryptionError as e:
                log.warning("Event %s still cannot be decrypted: %s", raw.get("event_id"), e)
                continue
            log.info("Decrypted %s after its key arrived late", raw.get("event_id"))
            if self._on_late_decrypt is not None:
                await self._on_late_decrypt(plain)

    # -- encrypting (the outbox, at send time) ----------------------------------------------------

    async def seal(self, room_id: str, event_type: str, content: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """`(type, content)` as they must be sent: encrypted if the room is, unchanged if not."""
        if event_type == ENCRYPTED or not await self.rooms.is_encrypted(RoomID(room_id)):
            return event_type, content
        etype = EventType.find(event_type, EventType.Class.MESSAGE)
        room = RoomID(room_id)
        async with self._share_locks[room_id]:
            try:
                encrypted = await self.machine.encrypt_megolm_event(room, etype, content)
            except EncryptionError:
                # No session yet, or it expired (rotation) or was dropped (members changed).
                users = await self.rooms.room_members(room_id)
                await self.machine.share_group_session(room, [UserID(u) for u in sorted(users)])
                encrypted = await self.machine.encrypt_megolm_event(room, etype, content)
        return ENCRYPTED, encrypted.serialize()

    # -- homeserver look-ups ------------------------------------------------------------------------

    async def _fetch_encryption(self, room_id: str) -> dict[str, Any] | None:
        try:
            content = await self._bot.api.request(Method.GET, Path.v3.rooms[room_id].state[ENCRYPTION][""])
        except MNotFound:
            return None
        return content if isinstance(content, dict) else None

    async def _fetch_members(self, room_id: str) -> set[str]:
        resp = await self._bot.api.request(
            Method.GET, Path.v3.rooms[room_id].members, query_params={"not_membership": "leave"}
        )
        return {
            e["state_key"]
            for e in resp.get("chunk", [])
            if isinstance(e, dict) and (e.get("content") or {}).get("membership") in ("join", "invite")
            and isinstance(e.get("state_key"), str)
        }

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._waiters.add(task)
        task.add_done_callback(self._waiters.discard)
