"""End-to-end encryption: one Olm device for the bot, its crypto state in the bridge's Postgres.

Appservice mode, no logged-in device and no /sync: the homeserver puts to-device events
(MSC2409), device list changes and one-time-key counts (MSC3202) into the transactions it pushes,
and the bridge creates its bot's device itself (MSC4190). mautrix's OlmMachine does the Olm/Megolm
work with libolm (python-olm); its asyncpg crypto store keeps the account, sessions and device
lists in their own Postgres schema (`mautrix_crypto`, versioned by mautrix, never by our alembic).

Several bridge processes: the one holding the crypto lock (a Postgres advisory lock) loads the
device; the others spool what only it can handle (`crypto_spool.py`), leave encrypted rooms to it
in the outbox (`may_deliver`, `HandOver`), and wait on the lock to take the device over from
Postgres when it stops or dies. Two processes never use the device at once: they would reuse
Megolm message indices, and clients reject those.

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

from hookshot_py.db.cluster import Cluster
from hookshot_py.matrix.crypto_spool import CHANNEL as SPOOL_CHANNEL
from hookshot_py.matrix.crypto_spool import CryptoSpool, Item
from hookshot_py.matrix.encrypted_rooms import ENCRYPTED, ENCRYPTION, Undecryptable
from hookshot_py.matrix.outbox_sender import HandOver

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
# Every process hears here that a room turned encryption on (payload: the room id).
ROOMS_CHANNEL = "hookshot_crypto_rooms"
# The leader reads the spool when notified, and this often in case a notification was missed.
DRAIN_EVERY_S = 10.0


async def try_crypto_lock(dsn: str) -> asyncpg.Connection | None:
    """A connection holding the crypto state's advisory lock until it is closed (or the process
    dies), or None when another process holds it: two would reuse Megolm message indices."""
    conn = await asyncpg.connect(dsn)
    try:
        if await conn.fetchval("SELECT pg_try_advisory_lock($1)", CRYPTO_LOCK_ID):
            return conn
    except BaseException:
        await conn.close()
        raise
    await conn.close()
    return None


async def wait_crypto_lock(dsn: str) -> asyncpg.Connection:
    """The crypto lock, once the process holding it has let it go (stopped, died, lost Postgres)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", CRYPTO_LOCK_ID)
    except BaseException:
        await conn.close()
        raise
    return conn


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

    Of several bridge processes on one database, one holds the device: the *leader*, holder of the
    crypto lock. The others (*followers*) hand it, through the spool (`crypto_spool.py`), what they
    receive that only the device can handle, never deliver an encrypted room from the outbox, and
    wait for the lock: when the leader stops or dies, one of them loads the device from Postgres.

    - `handle_transaction(to_device, device_lists, otk_counts)`: the extras of a homeserver transaction.
    - `decrypt(event)`: an `m.room.encrypted` event → the plain event, waiting a little for its keys.
    - `spool_event(event)`: the same event, on a follower: handed to the leader.
    - `seal(room_id, type, content)`: encrypt just before sending if the room is encrypted (the outbox).
    - `on_room_state(event)`: member and encryption changes (who gets the next Megolm session).
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
        spool: CryptoSpool,
        cluster: Cluster,
    ) -> None:
        self.bot_mxid = bot_mxid
        self._as_token = as_token
        self._pickle_key = pickle_key
        self._bot_intent = bot  # the appservice bot (no device), for state, members and account data
        self._is_bridge_user = is_bridge_user
        self.spool = spool
        self.cluster = cluster
        self.db = MautrixDatabase.create(
            dsn,
            upgrade_table=PgCryptoStore.upgrade_table,
            db_args={"min_size": 1, "max_size": 4, "server_settings": {"search_path": CRYPTO_SCHEMA}},
            log=logging.getLogger("mau.crypto.db"),
        )
        self._dsn = dsn
        self.rooms = _Rooms(self._fetch_encryption, self._fetch_members, is_bridge_user)
        self.client = Client(mxid=bot_mxid, base_url=homeserver, token=as_token)
        self._new_machine()
        self._share_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._pending: dict[str, list[dict[str, Any]]] = {}
        self._waiters: set[asyncio.Task[None]] = set()
        self._on_late_decrypt: Callable[[dict[str, Any]], Awaitable[None]] | None = None
        self._on_encrypted: Callable[[dict[str, Any]], Awaitable[None]] | None = None
        self._on_leading: Callable[[], Awaitable[None]] | None = None
        self.ready = False  # this process holds the device (the leader) and it is loaded
        self._ready = asyncio.Event()
        self._lock: asyncpg.Connection | None = None
        self._db_started = False
        self._drain_lock = asyncio.Lock()
        self._drain_wanted = False
        self._last_otk: dict[str, dict[str, int]] | None = None  # the last key counts spooled
        self._leads = 0  # times this process took the device
        self._running = False

    def _new_machine(self) -> None:
        """A machine with nothing in memory: whatever another process did is read from Postgres."""
        self.store = PgCryptoStore(self.bot_mxid, self._pickle_key, self.db)
        self.machine = OlmMachine(self.client, self.store, self.rooms)

    @property
    def _bot(self) -> IntentAPI:
        return self._bot_intent()

    @property
    def device_id(self) -> str:
        return str(self.client.device_id)

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(
        self,
        on_late_decrypt: Callable[[dict[str, Any]], Awaitable[None]],
        on_encrypted: Callable[[dict[str, Any]], Awaitable[None]],
        on_leading: Callable[[], Awaitable[None]],
    ) -> None:
        """Take the device if no other process holds it; otherwise follow, and wait for it.

        `on_encrypted` handles an encrypted event another process received; `on_leading` is called
        once this process holds the device (the outbox then delivers the encrypted rooms)."""
        self._on_late_decrypt = on_late_decrypt
        self._on_encrypted = on_encrypted
        self._on_leading = on_leading
        self._running = True
        self.cluster.subscribe(SPOOL_CHANNEL, self._notified)
        self.cluster.subscribe(ROOMS_CHANNEL, self._room_changed)
        self.cluster.on_reconnect(self._notifications_missed)
        lock = await try_crypto_lock(self._dsn)
        if lock is None:
            log.info(
                "Another bridge process holds the bot's encryption device: this one hands it what it "
                "receives for encrypted rooms, and takes the device over if that process stops"
            )
            self._spawn(self._await_leadership(), "crypto-leadership")
            return
        await self._lead(lock)

    async def _await_leadership(self) -> None:
        while self._running:
            try:
                lock = await wait_crypto_lock(self._dsn)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
                log.warning("Waiting for the encryption device's lock failed (%s); trying again in 5 s", e)
                await asyncio.sleep(5)
                continue
            log.info("This process takes the bot's encryption device over (its holder stopped, died or lost Postgres)")
            try:
                await self._lead(lock)
            except Exception:
                log.exception("Could not take the encryption device over; trying again in 5 s")
                await self._step_down(lock)
                await asyncio.sleep(5)
                continue
            return

    async def _lead(self, lock: asyncpg.Connection) -> None:
        """Load (or create) the device from Postgres and handle what the other processes spooled."""
        self._lock = lock
        lock.add_termination_listener(self._lock_lost)
        await lock.execute(f"CREATE SCHEMA IF NOT EXISTS {CRYPTO_SCHEMA}")
        if not self._db_started:
            await self.db.start()
            self._db_started = True
        self._new_machine()
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
        self._ready.set()
        self._leads += 1
        await self._drain()
        self._spawn(self._drain_every(self._leads), "crypto-spool")
        self._spawn(self._load_rooms_with_sessions(), "crypto-rooms")
        log.info("End-to-end encryption ready (appservice mode, device %s)", self.device_id)
        if self._on_leading is not None:
            await self._on_leading()

    def _lock_lost(self, _conn: object) -> None:
        """The lock's connection is gone (Postgres restarted?): another process may take the device
        now, so this one stops using it and waits for the lock again."""
        if not self._running or self._lock is None:
            return
        log.error("Lost the encryption device's lock (connection to Postgres closed): no longer "
                  "encrypting or decrypting until this process holds it again")
        self.ready = False
        self._ready.clear()
        self._lock = None
        self._spawn(self._await_leadership(), "crypto-leadership")

    async def _step_down(self, lock: asyncpg.Connection) -> None:
        self.ready = False
        self._ready.clear()
        self._lock = None
        await lock.close()

    async def stop(self) -> None:
        self._running = False
        self.ready = False
        for task in list(self._waiters):
            task.cancel()
        await asyncio.gather(*self._waiters, return_exceptions=True)
        await self.client.api.session.close()
        if self._db_started:
            await self.db.stop()
        if self._lock is not None:
            lock, self._lock = self._lock, None
            await lock.close()

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

        The leader handles them (after what the spool holds: keys before the events that need
        them), logging what fails: Synapse (1.163) rebuilds a transaction it has to retry without
        its to-device events, so refusing one would lose its room keys for good. A follower, or the
        leader before its device is loaded, stores them in the spool first; only that write can
        fail the transaction (the database is down: nothing could be acknowledged anyway).
        """
        ours = [e for e in to_device if e.get("to_user_id") == self.bot_mxid]
        changes = device_lists if device_lists and (device_lists.get("changed") or device_lists.get("left")) else None
        if self.ready:
            if ours:
                await self._drain()  # Olm messages of one sender must be handled in order
            await self._handle_extras(ours, changes, otk_counts)
            return
        counts = otk_counts.get(self.bot_mxid) or {}
        fresh_counts = {} if counts == self._last_otk else {self.bot_mxid: counts}
        if ours or changes or fresh_counts:
            await self.spool.put("extras", {"to_device": ours, "device_lists": changes, "otk_counts": fresh_counts})
            self._last_otk = counts

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

    async def spool_event(self, event: dict[str, Any]) -> None:
        """An encrypted room event this process cannot decrypt itself: for the leader."""
        await self.spool.put("event", event)

    async def on_room_state(self, event: dict[str, Any]) -> None:
        """A state event from the homeserver: the leader tracks it (`on_state_event`); a follower
        hands the leader the membership changes of rooms that may be encrypted. Either tells every
        process when a room turns encryption on, so none of them posts there in clear again."""
        if event.get("type") == ENCRYPTION and event.get("state_key") == "":
            await self.cluster.notify(ROOMS_CHANNEL, str(event.get("room_id", "")))
        if self.ready:
            self.on_state_event(event)
            return
        self._track_encryption(event)
        user = event.get("state_key")
        if (
            event.get("type") == "m.room.member" and isinstance(user, str) and not self._is_bridge_user(user)
            and self.rooms.encryption.get(event.get("room_id", ""), True) is not None
        ):
            await self.spool.put("state", event)

    def _track_encryption(self, event: dict[str, Any]) -> bool:
        if event.get("type") != ENCRYPTION or event.get("state_key") != "":
            return False
        try:
            content = RoomEncryptionStateEventContent.deserialize(_json(event.get("content") or {}))
        except SerializerError:
            return True
        self.rooms.encryption[event.get("room_id", "")] = content
        return True

    def on_state_event(self, event: dict[str, Any]) -> None:
        """Track encryption settings and members; a member change means a new Megolm session."""
        if self._track_encryption(event):
            return
        room_id, content = event.get("room_id", ""), event.get("content") or {}
        if event.get("type") != "m.room.member" or room_id not in self.rooms.members:
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

    # -- the spool (what followers received) ------------------------------------------------------

    def _notified(self, _payload: str) -> None:
        if self.ready and not self._drain_wanted:
            self._drain_wanted = True
            self._spawn(self._drain(), "crypto-spool")

    async def _drain_every(self, lead: int) -> None:
        """Notifications can be missed (the listening connection reconnected): look now and then."""
        while self.ready and self._leads == lead:
            await asyncio.sleep(DRAIN_EVERY_S)
            try:
                await self._drain()
            except Exception as e:
                log.warning("Reading the encryption spool failed: %s", e)

    async def _drain(self) -> None:
        """Handle what the spool holds, oldest first, then delete it. Items of a leader that died
        half-way are handled again by the next one: commands are run once all the same
        (`command_runs`), and a room key given twice changes nothing."""
        self._drain_wanted = False
        async with self._drain_lock:
            while self.ready:
                items = await self.spool.take()
                if not items:
                    return
                for item in items:
                    try:
                        await self._handle_spooled(item)
                    except Exception:
                        log.exception("Could not handle a spooled %s item; dropping it", item.kind)
                await self.spool.done([i.id for i in items])

    async def _handle_spooled(self, item: Item) -> None:
        body = item.body if isinstance(item.body, dict) else {}
        if item.kind == "extras":
            to_device = body.get("to_device")
            device_lists, otk_counts = body.get("device_lists"), body.get("otk_counts")
            await self._handle_extras(
                [e for e in to_device if isinstance(e, dict)] if isinstance(to_device, list) else [],
                device_lists if isinstance(device_lists, dict) else None,
                otk_counts if isinstance(otk_counts, dict) else {},
            )
        elif item.kind == "state":
            self.on_state_event(body)
        elif self._on_encrypted is not None:  # decrypting may wait for a key: never hold the spool up
            self._spawn(self._on_encrypted(body), "decrypt")

    def _room_changed(self, room_id: str) -> None:
        """A room turned encryption on (seen by some process): read its settings again."""
        if room_id:
            self.rooms.encryption.pop(room_id, None)

    async def _notifications_missed(self) -> None:
        self.rooms.encryption.clear()
        if self.ready:
            await self._drain()

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
        """`(type, content)` as they must be sent: encrypted if the room is, unchanged if not.
        Raises `HandOver` for an encrypted room while another process holds the device."""
        if event_type == ENCRYPTED or not await self.rooms.is_encrypted(RoomID(room_id)):
            return event_type, content
        if not self.ready:
            raise HandOver(f"{room_id} is encrypted and another process holds the encryption device")
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

    async def may_deliver(self, room_id: str) -> bool:
        """Whether this process may deliver the room: any room on the leader, rooms known not to
        be encrypted on a follower. When the homeserver cannot say, the room is taken, and `seal`
        decides for each message."""
        if self.ready:
            return True
        try:
            return not await self.rooms.is_encrypted(RoomID(room_id))
        except Exception as e:
            log.debug("Could not tell whether %s is encrypted (%s)", room_id, e)
            return True

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
