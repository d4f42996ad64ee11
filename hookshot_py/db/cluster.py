"""This process among the others sharing the database (docs/scale-out.md).

Several identical bridge processes may run on one Postgres; they coordinate through it and
nothing else. Each process has an id (`host:pid:random`, shown as `application_name` in
`pg_stat_activity`, as the holder of outbox rooms and as the owner of leases) and one dedicated
connection, outside the pool, that carries what must live in a session:
- `LISTEN` for the channels other processes `NOTIFY` on (outbox rows queued, connections changed,
  leases released...): callbacks get the payload;
- session advisory locks (`try_lock`/`unlock`): an outbox room is delivered by the process that
  holds its lock; Postgres drops a dead process's locks with its session.
When that connection is lost, its locks are gone: `on_lost` callbacks stop what relied on them at
once, and after reconnecting `on_reconnect` callbacks catch up with notifications that may have
been missed. Pooled connections never hold session state (see `Database`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

# Advisory lock classes (the first int4 of the two-key form); the second key is hashtext(name).
LOCK_CLASS_ROOM = 0x686B5201  # an outbox room
LOCK_CLASS_PROCESS = 0x686B5202  # the single-process guard of the embedded Postgres
RECONNECT_MAX_S = 5.0
# The server notices a vanished host (not just a dead process, whose socket the kernel closes) by
# TCP keepalives on this session: locks of a lost machine are freed within about 10 s.
_KEEPALIVE = {"tcp_keepalives_idle": "4", "tcp_keepalives_interval": "2", "tcp_keepalives_count": "3"}

Listener = Callable[[str], None]


class ClusterError(RuntimeError):
    """This process cannot run beside the others (told to the admin at start)."""


def new_process_id() -> str:
    """`host:pid:random`, short enough to fit in `application_name` (63 bytes) after our prefix."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{secrets.token_hex(3)}"


APPLICATION_PREFIX = "hookshot_py "


def alive(owner_sql: str) -> str:
    """SQL: whether the process whose id is `owner_sql` (an SQL expression) is connected to
    Postgres — its connections carry `application_name = 'hookshot_py <id>'`. A process that
    died has none left: what it held can be taken at once rather than when its lease expires."""
    return (f"EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = "
            f"'{APPLICATION_PREFIX}' || {owner_sql})")


class Cluster:
    def __init__(self, dsn: str, process_id: str | None = None) -> None:
        self.dsn = dsn
        self.process_id = process_id or new_process_id()
        self._conn: asyncpg.Connection | None = None
        self._op = asyncio.Lock()  # one query at a time on the dedicated connection
        self._listeners: dict[str, list[Listener]] = {}
        self._on_lost: list[Callable[[], None]] = []
        self._on_reconnect: list[Callable[[], Awaitable[None]]] = []
        self._held: dict[str, int] = {}
        self._subscribing: set[asyncio.Future[None]] = set()
        self._exclusive = False
        self._reconnecting: asyncio.Task[None] | None = None
        self._closed = False
        self.generation = 0  # bumped on every (re)connection: locks of older generations are gone

    # -- lifecycle ----------------------------------------------------------------------------------

    async def start(self, *, exclusive: bool = False) -> None:
        """Connect. `exclusive` (the embedded Postgres): refuse to start beside another process."""
        self._exclusive = exclusive
        await self._connect()

    async def stop(self) -> None:
        self._closed = True
        if self._reconnecting is not None:
            self._reconnecting.cancel()
            await asyncio.gather(self._reconnecting, return_exceptions=True)
        conn, self._conn = self._conn, None
        self._held.clear()
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), 2)
            except (TimeoutError, OSError, asyncpg.PostgresError):
                conn.terminate()

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def _connect(self) -> None:
        conn = await asyncpg.connect(
            self.dsn, server_settings={"application_name": APPLICATION_PREFIX + self.process_id, **_KEEPALIVE}
        )
        try:
            if self._exclusive and not await conn.fetchval(
                "SELECT pg_try_advisory_lock($1, 0)", LOCK_CLASS_PROCESS
            ):
                raise ClusterError(
                    "another hookshot_py process is running on this embedded Postgres. Several bridge "
                    "processes need a shared Postgres: set database.url (see docs/scale-out.md)."
                )
            for channel in self._listeners:
                await conn.add_listener(channel, self._dispatch)
        except BaseException:
            await conn.close()
            raise
        conn.add_termination_listener(self._terminated)
        self._conn = conn
        self.generation += 1

    # -- notifications ------------------------------------------------------------------------------

    def subscribe(self, channel: str, listener: Listener) -> None:
        """Call `listener(payload)` for every notification on `channel` (our own included)."""
        new = channel not in self._listeners
        self._listeners.setdefault(channel, []).append(listener)
        if new and self._conn is not None:
            self._subscribing.add(asyncio.ensure_future(self._listen(channel)))

    async def _listen(self, channel: str) -> None:
        async with self._op:
            if self._conn is not None and not self._conn.is_closed():
                await self._conn.add_listener(channel, self._dispatch)

    async def notify(self, channel: str, payload: str) -> None:
        """NOTIFY every process (this one included) on `channel`."""
        await self._query("SELECT pg_notify($1, $2)", channel, payload)

    def on_lost(self, callback: Callable[[], None]) -> None:
        """Called when the dedicated connection is lost: every lock is gone."""
        self._on_lost.append(callback)

    def on_reconnect(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Called after reconnecting: notifications may have been missed meanwhile."""
        self._on_reconnect.append(callback)

    def _dispatch(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        for listener in self._listeners.get(channel, ()):
            try:
                listener(payload)
            except Exception:
                log.exception("A listener of %s failed", channel)

    # -- session advisory locks ---------------------------------------------------------------------

    async def try_lock(self, name: str) -> bool:
        """Take the session lock on `name` (an outbox room) if nobody holds it. Re-entrant."""
        if name in self._held:
            self._held[name] += 1
            return True
        got = await self._query("SELECT pg_try_advisory_lock($1, hashtext($2))", LOCK_CLASS_ROOM, name)
        if got:
            self._held[name] = 1
        return bool(got)

    async def unlock(self, name: str) -> None:
        count = self._held.get(name, 0)
        if count == 0:
            return
        if count > 1:
            self._held[name] = count - 1
            return
        del self._held[name]
        try:
            await self._query("SELECT pg_advisory_unlock($1, hashtext($2))", LOCK_CLASS_ROOM, name)
        except (ConnectionError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
            log.warning("Releasing the lock on %s failed (%s); it goes with the session", name, e)

    def holds(self, name: str) -> bool:
        return name in self._held

    async def _query(self, query: str, *args: object) -> Any:
        async with self._op:
            conn = self._conn
            if conn is None or conn.is_closed():
                raise ConnectionError("the coordination connection to Postgres is down")
            return await conn.fetchval(query, *args)

    # -- losing and regaining the connection --------------------------------------------------------

    def _terminated(self, conn: asyncpg.Connection) -> None:
        if conn is not self._conn or self._closed:
            return
        log.warning("Lost the coordination connection to Postgres: outbox rooms are released until it is back")
        self._conn = None
        self._held.clear()
        for callback in self._on_lost:
            try:
                callback()
            except Exception:
                log.exception("An on_lost callback failed")
        if self._reconnecting is None or self._reconnecting.done():
            self._reconnecting = asyncio.create_task(self._reconnect(), name="cluster-reconnect")

    async def _reconnect(self) -> None:
        delay = 0.25
        while not self._closed:
            try:
                await self._connect()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as e:
                log.info("Coordination connection not back yet (%s); retrying in %.1fs", e, delay)
                await asyncio.sleep(delay)
                delay = min(RECONNECT_MAX_S, delay * 2)
                continue
            log.info("Coordination connection to Postgres is back")
            for callback in self._on_reconnect:
                try:
                    await callback()
                except Exception:
                    log.exception("An on_reconnect callback failed")
            return
