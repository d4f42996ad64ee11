"""`ForgeConnectionType`: a connection to a forge project whose webhook is shared by its rooms.

A forge's connection type subclasses this and says, for a connection, which project it names
(`ref`) and which forge events its rooms need (`hook_events`); it may check the user's rights
first (`authorize`) and word the answer (`outcome`). The rest is here, the same for every forge:

- an index of connections by project, kept in `start`/`on_loaded`/`on_unloaded`, so a delivery
  is routed with one look-up (`project_connections`) instead of a scan of every connection;
- connections being created (`project_pending`): not yet in the manager's index while their hook is
  registered, yet their events count, and a forge's "hook created" ping reaches their room;
- the hook's life through `ProjectHooks`: `prepare` → `ensure` with the union of the project's
  rooms, `on_removed` → `release`, `on_loaded` → `follow` (state edited by hand), `start` →
  load the rows and catch up with what changed while the bridge was down.
"""

from __future__ import annotations

import asyncio
import logging
from abc import abstractmethod
from collections.abc import Iterable
from typing import Any, ClassVar, Generic, TypeVar

from hookshot_py.connections.base import Connection, ConnectionType, Outcome
from hookshot_py.forges.policy import HookChange, ProjectHooks
from hookshot_py.forges.webhooks import HookKey

__all__ = ["ForgeConnectionType"]

log = logging.getLogger(__name__)

ConfigT = TypeVar("ConfigT")
RefT = TypeVar("RefT")


class ForgeConnectionType(ConnectionType[ConfigT], Generic[ConfigT, RefT]):
    #: How long a room being connected counts as pending (receives the hook's first ping).
    pending_ttl_s: ClassVar[float] = 60.0

    def __init__(self, hooks: ProjectHooks[RefT]) -> None:
        self.hooks = hooks
        self._index: dict[HookKey, dict[str, Connection]] = {}
        self._pending: dict[HookKey, dict[str, Connection]] = {}

    # -- what the forge says ------------------------------------------------------------------------

    @abstractmethod
    def ref(self, conn: Connection) -> RefT:
        """The project `conn` names (from `config_of(conn)`)."""

    @abstractmethod
    def hook_events(self, conn: Connection) -> Iterable[str]:
        """The forge events the project's hook must deliver for `conn`."""

    async def authorize(self, conn: Connection, user_id: str | None) -> bool:
        """Check that `user_id` may connect the project (raise ApiError to refuse); return
        whether their own credential may manage its hook."""
        return True

    def outcome(self, conn: Connection, change: HookChange) -> Outcome:
        """The answer for the user: warnings, and what to enter by hand."""
        return Outcome(warnings=list(change.warnings))

    # -- the index ----------------------------------------------------------------------------------

    def key_of(self, conn: Connection) -> HookKey:
        return self.hooks.forge.key(self.ref(conn))

    def project_connections(self, key: HookKey) -> list[Connection]:
        """Every room's connection to the project."""
        return list(self._index.get(key, {}).values())

    def project_pending(self, key: HookKey) -> list[Connection]:
        """Connections being created for the project, not yet in the index."""
        return list(self._pending.get(key, {}).values())

    def union(self, key: HookKey, *, without: str | None = None, extra: Connection | None = None) -> list[str]:
        """The events the project's connections (live and pending, `extra` too) need."""
        conns = {**self._pending.get(key, {}), **self._index.get(key, {})}
        if without is not None:
            conns.pop(without, None)
        events: set[str] = set()
        for conn in [*conns.values(), *([extra] if extra is not None else [])]:
            events.update(self.hook_events(conn))
        return sorted(events)

    def _others(self, key: HookKey, conn_id: str) -> bool:
        conns = {**self._pending.get(key, {}), **self._index.get(key, {})}
        conns.pop(conn_id, None)
        return bool(conns)

    @staticmethod
    def _drop(table: dict[HookKey, dict[str, Connection]], key: HookKey, conn_id: str) -> None:
        group = table.get(key)
        if group is not None:
            group.pop(conn_id, None)
            if not group:
                table.pop(key, None)

    def _add_pending(self, conn: Connection) -> None:
        key = self.key_of(conn)
        self._pending.setdefault(key, {})[conn.id] = conn
        asyncio.get_running_loop().call_later(self.pending_ttl_s, self._drop, self._pending, key, conn.id)

    # -- ConnectionType -----------------------------------------------------------------------------

    async def start(self, conns: list[Connection]) -> None:
        for conn in conns:
            self._index.setdefault(self.key_of(conn), {})[conn.id] = conn
        await self.hooks.store.load()
        # Connections edited or removed while the bridge was down: bring the wanted events in line.
        for key, group in list(self._index.items()):
            await self.hooks.follow(self.ref(next(iter(group.values()))), self.union(key))
        self.hooks.sync.start()

    async def stop(self) -> None:
        """Stop the background sync (the integration's `stop` calls this)."""
        await self.hooks.sync.stop()

    async def on_loaded(self, conn: Connection) -> None:
        key = self.key_of(conn)
        self._drop(self._pending, key, conn.id)
        self._index.setdefault(key, {})[conn.id] = conn
        # State edited by hand in a client changes no hook by itself: bring the hook in line
        # (a no-op when `prepare` already did), in the background, with the registrant's or
        # the bridge's credential.
        await self.hooks.follow(self.ref(conn), self.union(key))

    async def on_unloaded(self, conn: Connection) -> None:
        self._drop(self._index, self.key_of(conn), conn.id)

    async def prepare(self, conn: Connection, *, existing: Connection | None, user_id: str | None) -> Outcome:
        key = self.key_of(conn)
        union = self.union(key, without=conn.id, extra=conn)
        if (existing is not None and self.key_of(existing) == key
                and union == self.union(key, without=conn.id, extra=existing)):
            # An edit that changes nothing on the forge (a filter, includeCommentBody, the prefix):
            # the room's permission is enough, as in hookshot; no forge login is needed.
            return Outcome()
        user_can_admin = await self.authorize(conn, user_id)
        if existing is None:
            self._add_pending(conn)
        try:
            change = await self.hooks.ensure(
                self.ref(conn), union, user_id=user_id, user_can_admin=user_can_admin,
                new_connection=existing is None,
            )
        except BaseException:
            self._drop(self._pending, key, conn.id)
            raise
        return self.outcome(conn, change)

    async def on_removed(self, conn: Connection, *, user_id: str | None) -> list[str]:
        key = self.key_of(conn)
        forge = self.hooks.forge
        if not forge.configured(key.instance):
            return [f"The {forge.label} instance {key.instance!r} is no longer configured: its webhook was left alone."]
        self._drop(self._pending, key, conn.id)
        remaining = self.union(key, without=conn.id) if self._others(key, conn.id) else None
        return await self.hooks.release(self.ref(conn), remaining, user_id=user_id)

    def secrets(self, conn: Connection) -> dict[str, Any] | None:
        return None
