"""Session fixtures for a real Synapse loaded with the bridge's appservice registration.

``tests/conftest.py`` re-exports these. The registration is written before Synapse starts (Synapse
reads it only at startup); its ``url`` points at ``bridge_as_port``, where the bridge's appservice
listener must bind once a test starts the bridge.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
import yaml

from hookshot_py.db.database import Database
from hookshot_py.db.embedded import EmbeddedPostgres
from hookshot_py.devenv.matrix_client import MatrixTestClient
from hookshot_py.devenv.synapse import SynapseServer, free_port, make_registration, start_synapse

from .bridge import BridgeHarness, create_database, create_migrated_database, release_migrated_database
from .core import CoreFactory, CoreHarness

SERVER_NAME = "hookshot.test"

MakeUser = Callable[..., Awaitable[MatrixTestClient]]


@pytest.fixture(scope="session")
def bridge_as_port() -> int:
    """The port the bridge's appservice listener must use: Synapse pushes transactions there."""
    return free_port()


@pytest.fixture(scope="session")
def registration(bridge_as_port: int) -> dict[str, Any]:
    """The appservice registration (id ``hookshot``, bot ``@hookshot``, fresh tokens) as a dict."""
    return make_registration(f"http://127.0.0.1:{bridge_as_port}", SERVER_NAME)


@pytest.fixture(scope="session")
def registration_path(tmp_path_factory: pytest.TempPathFactory, registration: dict[str, Any]) -> Path:
    path = tmp_path_factory.mktemp("appservice") / "registration.yaml"
    path.write_text(yaml.safe_dump(registration, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def misrouted_registration_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second registration Synapse loads, whose `url` does not lead to a bridge listening on its
    port (https, where the bridge serves http): for the start-up check that tells a wrong `url` in
    the registration apart."""
    reg = make_registration(f"https://127.0.0.1:{free_port()}", SERVER_NAME, "misrouted", user_prefixes=())
    reg["id"] = "misrouted"
    path = tmp_path_factory.mktemp("appservice-misrouted") / "registration.yaml"
    path.write_text(yaml.safe_dump(reg, sort_keys=False))
    return path


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def synapse(
    tmp_path_factory: pytest.TempPathFactory, registration_path: Path, misrouted_registration_path: Path
) -> AsyncIterator[SynapseServer]:
    registrations = [registration_path, misrouted_registration_path]
    server = await start_synapse(tmp_path_factory.mktemp("synapse"), registrations, SERVER_NAME)
    try:
        yield server
    finally:
        await server.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def make_user(synapse: SynapseServer) -> AsyncIterator[MakeUser]:
    """``await make_user("alice")`` registers a fresh ``@alice-<random>`` and returns its client."""
    clients: list[MatrixTestClient] = []

    async def factory(name: str = "user", password: str | None = None, admin: bool = False) -> MatrixTestClient:
        client = await synapse.register_user(f"{name.lower()}-{secrets.token_hex(4)}", password, admin)
        clients.append(client)
        return client

    try:
        yield factory
    finally:
        for client in clients:
            await client.close()


# -- Postgres and the bridge --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_admin_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Postgres server for the session: HOOKSHOT_DATABASE_URL, else an embedded one."""
    url = os.environ.get("HOOKSHOT_DATABASE_URL")
    if url:
        yield url
        return
    embedded = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data")
    dsn = embedded.start()
    asyncio.run(_without_durability(dsn))
    try:
        yield dsn
    finally:
        embedded.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def db(pg_admin_dsn: str) -> AsyncIterator[Database]:
    """A database of its own for the test, with the current schema and no rows (started)."""
    database = Database(await create_migrated_database(pg_admin_dsn))
    await database.start(migrate=False)
    try:
        yield database
    finally:
        await database.stop()
        await release_migrated_database(pg_admin_dsn, database.dsn)


async def _without_durability(dsn: str) -> None:
    """The session's own throw-away server needs no crash safety: without fsync, creating a
    database per test costs a fraction (only ever done to the embedded server, never to one
    given by HOOKSHOT_DATABASE_URL)."""
    conn = await asyncpg.connect(dsn)
    try:
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            await conn.execute(f"ALTER SYSTEM SET {setting} = off")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()


BridgeFactory = Callable[..., Awaitable[BridgeHarness]]


@pytest_asyncio.fixture(loop_scope="session")
async def bridge_factory(
    synapse: SynapseServer,
    registration_path: Path,
    bridge_as_port: int,
    pg_admin_dsn: str,
    tmp_path: Path,
) -> AsyncIterator[BridgeFactory]:
    """`await bridge_factory(overrides={...}, start=True)` → a BridgeHarness on a fresh database."""
    harnesses: list[BridgeHarness] = []

    async def factory(overrides: dict[str, Any] | None = None, start: bool = True, dsn: str | None = None) -> BridgeHarness:
        workdir = tmp_path / f"bridge{len(harnesses)}"
        workdir.mkdir()
        harness = BridgeHarness(
            synapse=synapse,
            registration_path=registration_path,
            as_port=bridge_as_port,
            workdir=workdir,
            dsn=dsn or await create_database(pg_admin_dsn),
            overrides=overrides or {},
        )
        harnesses.append(harness)
        if start:
            await harness.start()
        return harness

    try:
        yield factory
    finally:
        for harness in harnesses:
            await harness.stop()
            if harness.process is not None:
                harness.kill()


@pytest_asyncio.fixture(loop_scope="session")
async def bridge(bridge_factory: BridgeFactory) -> BridgeHarness:
    """A running bridge with the default test config (generic webhooks, provisioning, metrics)."""
    return await bridge_factory()


BOT = f"@hookshot:{SERVER_NAME}"


async def room_with_bot(user: MatrixTestClient, *, bot_level: int | None = 50, name: str = "test room") -> str:
    """A room created by `user` with the bot invited, joined and (by default) a moderator."""
    room_id = await user.create_room(invite=[BOT], name=name)
    await user.wait_for_message(
        room_id,
        lambda e: e.get("type") == "m.room.member" and e.get("state_key") == BOT
        and e.get("content", {}).get("membership") == "join",
    )
    if bot_level is not None:
        await user.set_power_levels(room_id, {BOT: bot_level})
    return room_id


# -- the core on the in-memory homeserver (no Synapse) --------------------------------------------------


@pytest_asyncio.fixture(loop_scope="session")
async def core_factory(pg_admin_dsn: str) -> AsyncIterator[CoreFactory]:
    """Cores (services, integrations, dispatcher, router) on tests/fakes/matrix.py and a fresh database."""
    factory = CoreFactory(pg_admin_dsn)
    try:
        yield factory
    finally:
        await factory.stop_all()


@pytest_asyncio.fixture(loop_scope="session")
async def core(core_factory: CoreFactory) -> CoreHarness:
    """A core with the default test config (generic webhooks, provisioning, everyone an admin)."""
    return await core_factory()
