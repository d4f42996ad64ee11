"""The bridge's core on the in-memory homeserver (tests/fakes/matrix.py) and a real Postgres.

`start_core()` builds what `Bridge.start` builds — the services, the integrations, the
dispatcher and the event router, through the same `build_services` and `assemble` — on a
`FakeMatrixGateway` instead of mautrix, so the manager, the provisioning API, commands and event
routing are tested in milliseconds, without Synapse. `settle()` plays the part of the
homeserver's transactions and the outbox's sender until nothing is left to do.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fakes.matrix import FakeHomeserver, FakeMatrixGateway
from hookshot_py.config import Config, parse_config, parse_registration
from hookshot_py.connections.base import ConnectionType
from hookshot_py.connections.manager import ConnectionManager
from hookshot_py.core import Core, assemble
from hookshot_py.db.database import Database
from hookshot_py.devenv.synapse import make_registration
from hookshot_py.metrics import Metrics
from hookshot_py.services import Services, build_services
from hookshot_py.tokens import SecretBox

from .bridge import PROVISIONING_SECRET, create_migrated_database, deep_merge, release_migrated_database

SERVER_NAME = "core.test"
BOT = f"@hookshot:{SERVER_NAME}"
URL_PREFIX = "https://hooks.core.test/webhook/"


def core_config(overrides: dict[str, Any] | None = None, base_dir: Path = Path(".")) -> Config:
    """The test bridge's config: generic webhooks, provisioning, everyone on the server an admin."""
    base = {
        "bridge": {"domain": SERVER_NAME, "url": "http://127.0.0.1:1", "port": 9993, "bindAddress": "127.0.0.1"},
        "passFile": "passkey.pem",
        "listeners": [{"port": 9000, "bindAddress": "127.0.0.1", "resources": ["webhooks", "provisioning", "metrics"]}],
        "permissions": [{"actor": SERVER_NAME, "services": [{"service": "*", "level": "admin"}]}],
        "generic": {"enabled": True, "urlPrefix": URL_PREFIX, "userIdPrefix": "_webhooks_"},
        "provisioning": {"secret": PROVISIONING_SECRET},
        "database": {"url": "postgresql://unused/unused"},
    }
    return parse_config(deep_merge(base, overrides or {}), base_dir)


class Background:
    """The bridge's `spawn`: background work (a command, an invite), awaited by `settle()`."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


@dataclass
class CoreHarness:
    hs: FakeHomeserver
    gateway: FakeMatrixGateway
    db: Database
    core: Core
    background: Background
    secret_key: bytes
    overrides: dict[str, Any] = field(default_factory=dict)
    types: list[ConnectionType[Any]] = field(default_factory=list)

    @property
    def services(self) -> Services:
        return self.core.services

    @property
    def manager(self) -> ConnectionManager:
        return self.core.services.manager

    async def settle(self, timeout: float = 10.0) -> None:
        """Deliver what the homeserver pushed to the router, finish spawned work, and let the
        outbox send every queued row, until none of them has anything left (TimeoutError if
        that takes longer than `timeout`: something keeps retrying)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            await self.hs.deliver(self.core.router.on_event)
            tasks = list(self.background.tasks)
            if tasks:
                # A failure here is a bug in the bridge (it would only be logged there): raise it.
                await asyncio.wait_for(asyncio.gather(*tasks), max(0.1, deadline - loop.time()))
                continue
            rows = await self.db.fetch("SELECT id FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL")
            if rows:
                await self.services.outbox.wait_sent([r["id"] for r in rows], max(0.1, deadline - loop.time()))
                continue
            if not self.hs.pushed:
                return

    def room_with_bot(self, creator: str, *, bot_level: int | None = 50, version: str = "12", **kw: Any) -> str:
        """A room made by `creator` with the bot invited and joined (like the bot accepting an
        invite) and, by default, a moderator. Nothing is left queued for the router."""
        room_id = self.hs.create_room(creator, version=version, **kw)
        self.hs.invite(room_id, creator, BOT)
        self.hs.join(room_id, BOT)
        if bot_level is not None:
            self.hs.set_power_levels(room_id, creator, {BOT: bot_level})
        self.services.manager.access.mark_joined(room_id, True)
        self.hs.pushed.clear()
        return room_id

    async def stop(self) -> None:
        tasks = list(self.background.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for integration in self.core.integrations:
            await integration.stop()
        await self.services.close()
        await self.db.stop()


async def start_core(
    pg_admin_dsn: str,
    overrides: dict[str, Any] | None = None,
    *,
    dsn: str | None = None,
    hs: FakeHomeserver | None = None,
    secret_key: bytes | None = None,
    types: Sequence[ConnectionType[Any]] = (),
) -> CoreHarness:
    """A started core (as `Bridge.start` leaves it, minus sockets) on a fresh database and
    homeserver, or on `dsn` and `hs` for a restart. `types` are connection types added to the
    enabled integrations' (tests/support/widget.py)."""
    overrides = overrides or {}
    config = core_config(overrides)
    registration = parse_registration(make_registration("http://127.0.0.1:1", SERVER_NAME))
    hs = hs or FakeHomeserver(SERVER_NAME, BOT, registration.is_exclusive_user)
    gateway = FakeMatrixGateway(hs)
    db = Database(dsn or await create_migrated_database(pg_admin_dsn))
    await db.start(migrate=False)
    secret_key = secret_key or os.urandom(32)
    services = build_services(config, db, gateway, Metrics(), SecretBox(secret_key))  # type: ignore[arg-type]
    background = Background()
    core = assemble(services, is_bridge_user=registration.is_exclusive_user, spawn=background.spawn)
    for ctype in types:
        services.manager.add_type(ctype)
    await services.manager.load()
    await services.dms.load()
    await services.outbox.start()
    for integration in core.integrations:
        await integration.start()
    return CoreHarness(hs, gateway, db, core, background, secret_key, overrides, list(types))


class CoreFactory:
    """The `core_factory` fixture: `await core_factory(overrides)` starts a core on a fresh
    database; `await core_factory.restart(core)` restarts one (same database and homeserver,
    nothing kept in memory). Every core is stopped at the end of the test."""

    def __init__(self, pg_admin_dsn: str) -> None:
        self.pg_admin_dsn = pg_admin_dsn
        self.running: list[CoreHarness] = []

    async def __call__(
        self, overrides: dict[str, Any] | None = None, *, types: Sequence[ConnectionType[Any]] = ()
    ) -> CoreHarness:
        harness = await start_core(self.pg_admin_dsn, overrides, types=types)
        self.running.append(harness)
        return harness

    async def restart(self, harness: CoreHarness) -> CoreHarness:
        self.running.remove(harness)
        await harness.stop()
        again = await start_core(
            self.pg_admin_dsn,
            harness.overrides,
            dsn=harness.db.dsn,
            hs=harness.hs,
            secret_key=harness.secret_key,
            types=harness.types,
        )
        self.running.append(again)
        return again

    async def stop_all(self) -> None:
        dsns = {h.db.dsn for h in self.running}
        while self.running:
            await self.running.pop().stop()
        for dsn in dsns:
            await release_migrated_database(self.pg_admin_dsn, dsn)
