"""One bridge for the hostile-input suite: every listener and route a stranger can reach, with a
generic hook, a GitHub repository (config-wide secret, `prDiff` on) and a GitFlic project (hook
registered on the fake GitFlic) connected in one room, so that authentic-looking requests reach
each route's parser and formatter. Real Synapse and Postgres, the bridge in-process: a stall of
its event loop is a stall of this test's loop, which the `/live` probes of `probe.py` measure.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from fakes.gitflic import FakeGitFlicState
from fakes.gitflic import make_app as gitflic_app
from hookshot_py.devenv.matrix_client import MatrixTestClient
from hookshot_py.devenv.synapse import SynapseServer
from hookshot_py.generic.connection import EVENT_TYPE as GENERIC_TYPE
from hookshot_py.gitflic.connection import EVENT_TYPE as GITFLIC_TYPE
from hookshot_py.github.state import ALLOWED_EVENTS
from hookshot_py.github.state import EVENT_TYPE as GITHUB_TYPE
from hookshot_py.listeners import http as listener_http
from support.bridge import PROVISIONING_SECRET, BridgeHarness, create_database
from support.fixtures import room_with_bot
from support.helpers import eventually

from .probe import LiveProbe

GITHUB_SECRET = "hostile-suite-github-secret"
GITFLIC_TOKEN = "hostile-suite-gitflic-token"
GITHUB_REPO = "octo-org/hostile"
# A client that stalls its body is dropped after this long (30 s in production).
BODY_TIMEOUT_S = 1.0
CPU_DEADLINE_S = 1.0


@dataclass
class HostileEnv:
    harness: BridgeHarness
    registration: dict[str, Any]
    as_port: int
    alice: MatrixTestClient
    room: str
    hook_url: str
    gitflic_secret: str
    gitflic_owner: str
    canary: Canary
    probe: LiveProbe
    session: aiohttp.ClientSession

    @property
    def base_url(self) -> str:
        return self.harness.base_url

    @property
    def as_url(self) -> str:
        return f"http://127.0.0.1:{self.as_port}"

    @property
    def hs_token(self) -> str:
        return str(self.registration["hs_token"])

    @property
    def services(self) -> Any:
        assert self.harness.bridge is not None
        return self.harness.bridge.services

    @property
    def provisioning_auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {PROVISIONING_SECRET}"}


@dataclass
class Canary:
    """A server no request of the bridge may reach (the target of SSRF attempts)."""

    server: TestServer
    hits: list[str]

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")


async def _canary() -> Canary:
    hits: list[str] = []

    async def record(request: web.Request) -> web.Response:
        hits.append(request.path_qs)
        return web.Response(text="root:x:0:0:secret canary content")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return Canary(server, hits)


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def env(
    synapse: SynapseServer,
    registration: dict[str, Any],
    registration_path: Path,
    bridge_as_port: int,
    pg_admin_dsn: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[HostileEnv]:
    saved_timeout = listener_http.BODY_TIMEOUT_S
    listener_http.BODY_TIMEOUT_S = BODY_TIMEOUT_S
    fake = FakeGitFlicState()
    fake.add_token(GITFLIC_TOKEN, "bridgebot")
    owner = f"hostile-{secrets.token_hex(4)}"
    fake.add_project(owner, "widgets", admins=("bridgebot",))
    gitflic = TestServer(gitflic_app(fake), host="127.0.0.1")
    await gitflic.start_server()
    canary = await _canary()
    harness = BridgeHarness(
        synapse=synapse,
        registration_path=registration_path,
        as_port=bridge_as_port,
        workdir=tmp_path_factory.mktemp("hostile"),
        dsn=await create_database(pg_admin_dsn),
    )
    harness.overrides = {
        "github": {
            "apiUrl": "http://127.0.0.1:9",  # never called: connections are made by hand
            "oauthUrl": "https://github.com",
            "webhook": {"secret": GITHUB_SECRET, "publicUrl": f"{harness.base_url}/"},
            "oauth": {"client_id": "c", "client_secret": "s", "redirect_uri": f"{harness.base_url}/github/oauth"},
        },
        "gitflic": {
            "instances": {"gitflic": {"url": "https://gitflic.ru", "apiUrl": str(gitflic.make_url("")).rstrip("/")}},
            "token": GITFLIC_TOKEN,
            "webhook": {"publicUrl": harness.base_url},
        },
    }
    await harness.start()
    # Pathological markdown runs into the CPU pool's deadline; 1 s (not 5) keeps the suite short.
    harness.bridge.services.cpu.deadline = CPU_DEADLINE_S  # type: ignore[union-attr]
    alice = await synapse.register_user(f"alice-{secrets.token_hex(4)}")
    session = aiohttp.ClientSession()
    try:
        room = await room_with_bot(alice, name="hostile")
        manager = harness.bridge.services.manager  # type: ignore[union-attr]
        _, outcome = await manager.create(room, GENERIC_TYPE, {"name": "hostile"}, user_id=alice.user_id)
        hook_url = outcome.secrets["url"]
        _, _ = await manager.create(room, GITFLIC_TYPE, {"ownerAlias": owner, "projectAlias": "widgets"}, user_id=alice.user_id)
        [hook] = fake.project(owner, "widgets").webhooks.values()
        # GitHub, as an admin would set it up by hand: state in the room, the config-wide secret.
        await alice.send_state(
            room, GITHUB_TYPE, GITHUB_REPO,
            {"org": "octo-org", "repo": "hostile", "enableHooks": sorted(ALLOWED_EVENTS), "prDiff": {"enabled": True}},
        )
        await eventually(lambda: _has(manager, room, GITHUB_TYPE, GITHUB_REPO))
        probe = LiveProbe(session, f"{harness.base_url}/live")
        await probe.calibrate()
        yield HostileEnv(
            harness, registration, bridge_as_port, alice, room, hook_url, hook.secret, owner, canary, probe, session
        )
    finally:
        await session.close()
        await alice.close()
        await harness.stop()
        await canary.server.close()
        await gitflic.close()
        listener_http.BODY_TIMEOUT_S = saved_timeout


async def _has(manager: Any, room: str, event_type: str, key: str) -> bool:
    return manager.find(room, event_type, key) is not None
