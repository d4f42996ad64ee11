"""The ConnectionManager: the only door to connections.

Bot commands, the provisioning API and state events arriving from the homeserver all go
through here: validate → check permission (`access.py`) → write the state event (the truth)
→ mirror the row in Postgres (`mirror.py`) → index in memory. Connection state of a type this
bridge does not serve is kept aside and reported (`unsupported.py`); room events reach the
types that want them (`room_event`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from typing import Any

from mautrix.errors import MatrixRequestError

from hookshot_py import jsonsafe
from hookshot_py.connections.access import RoomAccess
from hookshot_py.connections.base import Connection, ConnectionType, Outcome, connection_id, is_disabled
from hookshot_py.connections.known import known_type
from hookshot_py.connections.mirror import ConnectionMirror, MirroredRow
from hookshot_py.connections.unsupported import UnsupportedConnections
from hookshot_py.errors import ApiError, ErrCode, ValidationIssue, validation_error
from hookshot_py.matrix.gateway import MatrixGateway
from hookshot_py.matrix.outbox import Outbox, OutgoingEvent
from hookshot_py.metrics import Metrics

log = logging.getLogger(__name__)

AnyType = ConnectionType[Any]
MAX_STATE_DEPTH = 16


class ConnectionManager:
    def __init__(
        self,
        mirror: ConnectionMirror,
        access: RoomAccess,
        gateway: MatrixGateway,
        outbox: Outbox,
        metrics: Metrics,
    ) -> None:
        self.mirror = mirror
        self.access = access
        self.gateway = gateway
        self.outbox = outbox
        self.metrics = metrics
        self.types: list[AnyType] = []
        self._by_event_type: dict[str, AnyType] = {}
        self._rooms: dict[str, dict[str, Connection]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.unsupported = UnsupportedConnections(mirror.db, outbox)
        self._reloads: set[asyncio.Task[None]] = set()

    def add_type(self, ctype: AnyType) -> None:
        """Register a connection type (before `load()`)."""
        self.types.append(ctype)
        for et in (ctype.event_type, *ctype.legacy_event_types):
            self._by_event_type[et] = ctype

    # -- lookup -----------------------------------------------------------------------------------

    def type_for(self, event_type: str) -> AnyType | None:
        return self._by_event_type.get(event_type)

    def follows_state(self, event_type: str) -> bool:
        """A connection state type: served here, or known from hookshot and reported as unserved."""
        return event_type in self._by_event_type or known_type(event_type) is not None

    def _served(self) -> set[str]:
        return {t.event_type for t in self.types}

    def type_of(self, conn: Connection) -> AnyType:
        return self._by_event_type[conn.event_type]

    def connections(self, room_id: str) -> list[Connection]:
        return list(self._rooms.get(room_id, {}).values())

    def all(self, event_type: str | None = None) -> Iterator[Connection]:
        for room in self._rooms.values():
            for conn in room.values():
                if event_type is None or conn.event_type == event_type:
                    yield conn

    def get(self, room_id: str, connection_id: str) -> Connection:
        conn = self._rooms.get(room_id, {}).get(connection_id)
        if conn is None:
            unserved = self.unsupported.get(room_id, connection_id)
            if unserved is not None:
                raise ApiError(
                    ErrCode.UNSUPPORTED_OPERATION,
                    f"{unserved.reason} The connection's state is kept as it is.",
                )
            raise ApiError(ErrCode.NOT_FOUND, "Connection not found.")
        return conn

    def find(self, room_id: str, event_type: str, state_key: str) -> Connection | None:
        for conn in self._rooms.get(room_id, {}).values():
            if conn.event_type == event_type and conn.state_key == state_key:
                return conn
        return None

    def details(self, conn: Connection, *, include_secrets: bool) -> dict[str, Any]:
        """The provisioning API's view of a connection."""
        ctype = self.type_of(conn)
        out: dict[str, Any] = {
            "type": ctype.type_name,
            "eventType": ctype.event_type,
            "id": conn.id,
            "service": ctype.display_service or ctype.service,
            "botUserId": self.gateway.bot_mxid,
            "config": conn.state,
        }
        if include_secrets:
            secrets = ctype.secrets(conn)
            if secrets:
                out["secrets"] = secrets
        return out

    # -- startup ----------------------------------------------------------------------------------

    async def load(self) -> int:
        """Load every mirrored connection in one query (no room state is read), then the static
        connections declared in the config (which win over a mirrored one of the same key)."""
        by_type: dict[str, dict[str, Connection]] = {}
        unserved: list[tuple[str, str, str, dict[str, Any]]] = []
        for row in await self.mirror.rows():
            ctype = self.type_for(row.event_type)
            if ctype is None:  # a type disabled in the config since; keep the row
                unserved.append((row.room_id, row.event_type, row.state_key, row.content))
                continue
            conn = Connection(row.room_id, row.event_type, row.state_key, row.content, row.connection_id)
            try:
                ctype.config_of(conn)
            except ValueError as e:
                log.warning("Not loading %s connection %s in %s: %s", ctype.type_name, row.state_key, row.room_id, e)
                continue
            self._rooms.setdefault(conn.room_id, {})[conn.id] = conn
            by_type.setdefault(conn.event_type, {})[conn.id] = conn
        for t in self.types:
            for conn in t.static_connections():
                t.config_of(conn)
                self._rooms.setdefault(conn.room_id, {})[conn.id] = conn
                by_type.setdefault(conn.event_type, {})[conn.id] = conn
        for t in self.types:
            await t.start(list(by_type.get(t.event_type, {}).values()))
        self._update_gauges()
        await self.unsupported.load(self._served(), unserved)
        self.unsupported.summary("known at start-up", each=False)  # listed after reading room state
        return sum(len(v) for v in by_type.values())

    def static_rooms(self) -> set[str]:
        return {conn.room_id for conn in self.all() if conn.static}

    def _from_row(self, row: MirroredRow) -> Connection | None:
        ctype = self.type_for(row.event_type)
        if ctype is None:
            return None  # a type disabled in the config since; keep the row
        conn = Connection(row.room_id, row.event_type, row.state_key, row.content, row.connection_id)
        try:
            ctype.config_of(conn)
        except ValueError as e:
            log.warning("Not loading %s connection %s in %s: %s", ctype.type_name, row.state_key, row.room_id, e)
            return None
        return conn

    # -- changes made by other bridge processes ---------------------------------------------------

    def changed_elsewhere(self, payload: str) -> None:
        """A mirror notification (`<origin> TAB <room>`): another process changed the room's
        connections; take them from the mirror, as they are now."""
        origin, _, room_id = payload.partition("\t")
        if origin != self.mirror.origin and room_id:
            task = asyncio.create_task(self._reload_logged(room_id), name=f"reload:{room_id}")
            self._reloads.add(task)
            task.add_done_callback(self._reloads.discard)

    async def _reload_logged(self, room_id: str) -> None:
        try:
            await self.reload_room(room_id)
        except Exception:
            log.exception("Reloading the connections of %s failed", room_id)

    async def reload_room(self, room_id: str, rows: Sequence[MirroredRow] | None = None) -> None:
        """Index the room's mirrored rows (read now unless given): new and changed connections are
        loaded, missing ones unloaded. The mirror is not written: the process that made the change
        did that, and the side effects (forge hooks, secrets) too."""
        async with self._lock(room_id):
            if rows is None:
                rows = await self.mirror.rows(room_id)
            fresh = {c.id: c for c in (self._from_row(r) for r in rows) if c is not None}
            room = self._rooms.setdefault(room_id, {})
            for conn_id, conn in list(room.items()):
                if conn_id not in fresh and not conn.static:  # static ones are not mirrored
                    del room[conn_id]
                    await self.type_of(conn).on_unloaded(conn)
            for conn_id, conn in fresh.items():
                current = room.get(conn_id)
                if current is not None and current.state == conn.state:
                    continue
                await self.type_of(conn).on_loaded(conn)
                room[conn_id] = conn
            if not room:
                self._rooms.pop(room_id, None)
        self._update_gauges()

    async def reload_all(self) -> None:
        """After notifications may have been missed (the coordination connection was down)."""
        by_room: dict[str, list[MirroredRow]] = {room_id: [] for room_id in self._rooms}
        for row in await self.mirror.rows():
            by_room.setdefault(row.room_id, []).append(row)
        for room_id, rows in by_room.items():
            await self.reload_room(room_id, rows)

    async def reconcile(self, room_ids: Sequence[str] | None = None, concurrency: int = 4) -> None:
        """Bring the mirror in line with room state (the truth). Runs in the background."""
        if room_ids is None:
            room_ids = await self.gateway.joined_rooms()
        for room_id in room_ids:
            self.access.mark_joined(room_id, True)
        sem = asyncio.Semaphore(concurrency)

        async def one(room_id: str) -> None:
            async with sem:
                for attempt in range(5):
                    try:
                        await self.reconcile_room(room_id)
                        return
                    except Exception as e:
                        log.warning("Reconciling %s failed (attempt %d): %s", room_id, attempt + 1, e)
                        await asyncio.sleep(min(30, 2**attempt))
                log.error("Giving up reconciling %s for now; its mirrored connections stay in use", room_id)

        await asyncio.gather(*(one(r) for r in room_ids))
        log.info("Reconciled connections of %d room(s)", len(room_ids))
        self.unsupported.summary("after reading room state")

    async def reconcile_room(self, room_id: str) -> None:
        state = await self.gateway.room_state(room_id)
        seen: set[str] = set()
        refused: list[tuple[dict[str, Any], str]] = []
        for ev in state:
            ctype = self.type_for(ev.get("type", ""))
            if ctype is None or not isinstance(ev.get("state_key"), str):
                continue
            if is_disabled(ev.get("content")):
                continue
            conn = await self.apply_state_event(ev, quiet=True, refused=refused)
            if conn is not None:
                seen.add(conn.id)
        for conn in self.connections(room_id):
            if conn.id not in seen and not conn.static:
                log.info("Connection %s in %s is gone from room state; removing", conn.state_key, room_id)
                await self._drop(conn)
        await self.unsupported.sync_room(room_id, state, self._served(), refused)

    # -- writes ---------------------------------------------------------------------------------

    def _lock(self, room_id: str) -> asyncio.Lock:
        return self._locks.setdefault(room_id, asyncio.Lock())

    def _check_prefix(self, room_id: str, ctype: AnyType, conn: Connection) -> None:
        prefix = ctype.command_prefix(conn)
        if prefix is None:
            return
        for other in self.connections(room_id):
            if other.id != conn.id and self.type_of(other).command_prefix(other) == prefix:
                raise ApiError(
                    ErrCode.CONFLICTING_CONNECTION,
                    f"The command prefix {prefix} is already used by another connection in this room.",
                    {"existingConnection": self.details(other, include_secrets=False)},
                )

    def _validated(
        self, ctype: AnyType, state: dict[str, Any], *, existing: Connection | None, is_new: bool
    ) -> dict[str, Any]:
        normalized, issues = self._validate(ctype, state, existing=existing, is_new=is_new)
        if issues:
            raise validation_error(issues)
        return normalized

    @staticmethod
    def _validate(
        ctype: AnyType, state: dict[str, Any], *, existing: Connection | None, is_new: bool
    ) -> tuple[dict[str, Any], list[ValidationIssue]]:
        """The type's validation, after what no state may hold: characters Postgres cannot store
        and nesting deeper than any real connection needs (they used to wedge the homeserver's
        transactions with 500s)."""
        if (path := jsonsafe.find_unstorable(state)) is not None:
            return state, [ValidationIssue(path, "contains a NUL character or invalid Unicode")]
        if jsonsafe.depth_exceeds(state, MAX_STATE_DEPTH):
            return state, [ValidationIssue("/", f"nests deeper than {MAX_STATE_DEPTH} levels")]
        return ctype.validate(state, existing=existing, is_new=is_new)

    async def assert_can_write(self, room_id: str, user_id: str, ctype: AnyType) -> None:
        await self.access.assert_can_write(room_id, user_id, ctype.service, ctype.event_type)

    async def create(
        self, room_id: str, event_type: str, state: Any, *, user_id: str
    ) -> tuple[Connection, Outcome]:
        ctype = self.type_for(event_type)
        if ctype is None:
            raise ApiError(ErrCode.NOT_FOUND, f"Unknown or disabled connection type {event_type}.")
        if not isinstance(state, dict):
            raise ApiError(ErrCode.BAD_VALUE, "A JSON object must be provided as the connection's state.")
        await self.assert_can_write(room_id, user_id, ctype)
        normalized = self._validated(ctype, state, existing=None, is_new=True)
        key = ctype.state_key(normalized)
        async with self._lock(room_id):
            existing = self.find(room_id, ctype.event_type, key)
            if existing is not None:
                raise ApiError(
                    ErrCode.CONFLICTING_CONNECTION,
                    f"A {ctype.type_name} connection for {key} already exists in this room.",
                    {"existingConnection": self.details(existing, include_secrets=False)},
                )
            conn = Connection(room_id, ctype.event_type, key, normalized)
            ctype.config_of(conn)
            self._check_prefix(room_id, ctype, conn)
            outcome = await ctype.prepare(conn, existing=None, user_id=user_id)
            try:
                await self._write(conn)
            except BaseException:
                # Undo prepare's side effects (a forge hook, a secret) for a connection that never was.
                await ctype.on_removed(conn, user_id=user_id)
                raise
        log.info("%s created %s connection %s in %s", user_id, ctype.type_name, key, room_id)
        return conn, outcome

    async def update(
        self, room_id: str, connection_id: str, patch: Any, *, user_id: str
    ) -> tuple[Connection, Outcome]:
        if not isinstance(patch, dict):
            raise ApiError(ErrCode.BAD_VALUE, "A JSON object must be provided.")
        current = self.get(room_id, connection_id)
        _refuse_static(current)
        ctype = self.type_of(current)
        await self.assert_can_write(room_id, user_id, ctype)
        normalized = self._validated(ctype, {**current.state, **patch}, existing=current, is_new=True)
        if ctype.state_key(normalized) != current.state_key:
            raise ApiError(
                ErrCode.BAD_VALUE,
                "This change would alter the connection's identity (its state key); "
                "remove the connection and create a new one instead.",
            )
        async with self._lock(room_id):
            conn = Connection(room_id, current.event_type, current.state_key, normalized, current.id)
            ctype.config_of(conn)
            self._check_prefix(room_id, ctype, conn)
            outcome = await ctype.prepare(conn, existing=current, user_id=user_id)
            await self._write(conn)
        return conn, outcome

    async def remove(self, room_id: str, connection_id: str, *, user_id: str) -> list[str]:
        conn = self.get(room_id, connection_id)
        _refuse_static(conn)
        ctype = self.type_of(conn)
        await self.assert_can_write(room_id, user_id, ctype)
        async with self._lock(room_id):
            await self.gateway.put_state(room_id, conn.event_type, conn.state_key, {"disabled": True})
            await self._drop(conn)
        log.info("%s removed %s connection %s in %s", user_id, ctype.type_name, conn.state_key, room_id)
        return await ctype.on_removed(conn, user_id=user_id)

    async def _write(self, conn: Connection) -> None:
        """State event first (the truth), then the mirror, then the index."""
        try:
            await self.gateway.put_state(conn.room_id, conn.event_type, conn.state_key, conn.state)
        except MatrixRequestError as e:
            raise ApiError(ErrCode.FORBIDDEN_BOT, f"The homeserver refused the bot's state event: {e}") from e
        await self._mirror(conn)

    async def _mirror(self, conn: Connection) -> None:
        """Store the row, let the type get ready for the connection (hook ids, forge hooks),
        then index it: once a connection is visible here, it is fully usable."""
        await self.mirror.upsert(conn.room_id, conn.event_type, conn.state_key, conn.id, conn.state)
        await self.type_of(conn).on_loaded(conn)
        room = self._rooms.setdefault(conn.room_id, {})
        is_new = conn.id not in room
        room[conn.id] = conn
        if is_new:
            self._update_gauges()

    async def _drop(self, conn: Connection) -> None:
        await self.mirror.delete(conn.room_id, conn.event_type, conn.state_key)
        room = self._rooms.get(conn.room_id, {})
        if room.pop(conn.id, None) is not None:
            self._update_gauges()
            await self.type_of(conn).on_unloaded(conn)

    # -- the reverse path: state arriving from the homeserver -------------------------------------

    async def apply_state_event(
        self, event: dict[str, Any], *, quiet: bool = False, refused: list[tuple[dict[str, Any], str]] | None = None
    ) -> Connection | None:
        """Follow a connection state event seen in a room (edited by hand, written by hookshot,
        or our own echo). Returns the resulting connection, if any. State refused while no
        connection of that key is served goes to `refused` (the event, why), when given."""
        ctype = self.type_for(event.get("type", ""))
        room_id, key = event.get("room_id"), event.get("state_key")
        if ctype is None and isinstance(room_id, str):
            async with self._lock(room_id):
                await self.unsupported.apply(event, self._served())
            return None
        if ctype is None or not isinstance(room_id, str) or not isinstance(key, str):
            return None
        raw = event.get("content")
        content: dict[str, Any] = raw if isinstance(raw, dict) else {}
        async with self._lock(room_id):
            current = self.find(room_id, ctype.event_type, key)
            if current is not None and current.static:
                log.info("Ignoring %s state %s in %s: a static connection has that key", ctype.event_type, key, room_id)
                return current
            if is_disabled(content):
                await self.unsupported.discard(room_id, connection_id(room_id, ctype.event_type, key))
                if current is not None:
                    log.info("Connection %s in %s was removed from room state", key, room_id)
                    await self._drop(current)
                    await ctype.on_removed(current, user_id=None)
                return None
            if current is not None and current.state == content:
                return current  # our own write echoing back
            sender = event.get("sender", "")
            if sender != self.gateway.bot_mxid and not self.access.permissions.check(
                sender, ctype.service, "manageConnections"
            ):
                log.warning("Ignoring %s state from %s in %s: no manageConnections", ctype.event_type, sender, room_id)
                if refused is not None and current is None:
                    refused.append((event, f"set by {sender}, who lacks the manageConnections permission on this "
                                           "bridge; someone who has it must set it again."))
                if not quiet:
                    await self._notice(
                        room_id,
                        f"⚠️ Ignoring the {ctype.type_name} connection `{key}` set by {sender}: "
                        "they lack the manageConnections permission on this bridge.",
                    )
                return current
            normalized, issues = self._validate(ctype, content, existing=current, is_new=False)
            if issues:
                problems = "; ".join(f"{i.path or '/'}: {i.message}" for i in issues)
                log.warning("Ignoring invalid %s state %s in %s: %s", ctype.event_type, key, room_id, problems)
                if refused is not None and current is None:
                    refused.append((event, problems))
                if not quiet:
                    await self._notice(room_id, f"⚠️ Ignoring the {ctype.type_name} connection `{key}`: {problems}")
                return current
            conn = Connection(room_id, ctype.event_type, key, normalized)
            ctype.config_of(conn)
            await self._mirror(conn)
            if current is None:
                log.info("Picked up %s connection %s in %s from room state", ctype.type_name, key, room_id)
                await self.unsupported.discard(room_id, conn.id)
            return conn

    async def forget_room(self, room_id: str) -> None:
        """The bot left or was kicked: its connections there stop (room state keeps them)."""
        self.access.mark_joined(room_id, False)
        self.unsupported.forget_room(room_id)
        for conn in self.connections(room_id):
            if not conn.static:  # declared in the config: back as soon as the bot is
                await self._drop(conn)

    # -- room events --------------------------------------------------------------------------------

    async def room_event(self, event: dict[str, Any]) -> None:
        """A non-state event someone other than the bridge's users sent: handed to the room's
        connections whose type wants room events (outbound webhooks queue it)."""
        room_id = event.get("room_id")
        if not isinstance(room_id, str):
            return
        for conn in self.connections(room_id):
            ctype = self.type_of(conn)
            if ctype.wants_room_events:
                await ctype.on_room_event(conn, event)

    async def _notice(self, room_id: str, text: str) -> None:
        await self.outbox.enqueue([OutgoingEvent(room_id, {"msgtype": "m.notice", "body": text})])

    def _update_gauges(self) -> None:
        counts = {t.type_name: 0 for t in self.types}
        for conn in self.all():
            counts[self.type_of(conn).type_name] += 1
        for name, n in counts.items():
            self.metrics.connections.labels(type=name).set(n)


def _refuse_static(conn: Connection) -> None:
    if conn.static:
        raise ApiError(
            ErrCode.UNSUPPORTED_OPERATION,
            "Connection is static and cannot be changed at runtime (it is declared in the bridge's config).",
        )
