"""One bridge for the hostile-input suite: the core on the in-memory homeserver and a real
Postgres (tests/support/core.py), served on sockets as `Bridge.start` serves it — the configured
listener (webhooks, provisioning, metrics) and the appservice listener, each on a
`ListenerRunner` — with a generic hook, a GitHub repository (config-wide secret, `prDiff` on) and
a GitFlic project (hook registered on the fake GitFlic) connected in one room, so that
authentic-looking requests reach each route's parser and formatter. No Synapse: the suite is a
unit test. The bridge runs in this test's event loop: a stall of the bridge is a stall of the
`/live` probes of `probe.py`.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from fakes.gitflic import FakeGitFlicState
from fakes.gitflic import make_app as gitflic_app
from hookshot_py.core import listener_app
from hookshot_py.devenv.synapse import free_port
from hookshot_py.generic.connection import EVENT_TYPE as GENERIC_TYPE
from hookshot_py.gitflic.connection import EVENT_TYPE as GITFLIC_TYPE
from hookshot_py.github.state import ALLOWED_EVENTS
from hookshot_py.github.state import EVENT_TYPE as GITHUB_TYPE
from hookshot_py.listeners import http as listener_http
from hookshot_py.listeners.http import ListenerRunner, add_health_routes
from hookshot_py.matrix.appservice import HookshotAppService
from support.bridge import PROVISIONING_SECRET, release_migrated_database
from support.core import SERVER_NAME, CoreHarness, start_core

from .probe import LiveProbe

ALICE = f"@alice:{SERVER_NAME}"
HS_TOKEN = "hostile-suite-hs-token"
GITHUB_SECRET = "hostile-suite-github-secret"
GITFLIC_TOKEN = "hostile-suite-gitflic-token"
GITLAB_SECRET = "hostile-suite-gitlab-secret"
JIRA_SECRET = "hostile-suite-jira-secret"
GITHUB_REPO = "octo-org/hostile"
# A client that stalls its body is dropped after this long (30 s in production).
BODY_TIMEOUT_S = 1.0
# Pathological markdown runs into the CPU pool's deadline; 0.3 s (not 5) keeps the suite short.
CPU_DEADLINE_S = 0.3


@dataclass
class Canary:
    """A server no request of the bridge may reach (the target of SSRF attempts)."""

    server: TestServer
    hits: list[str]

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")


@dataclass
class HostileEnv:
    core: CoreHarness
    base_url: str  # the configured listener
    as_url: str  # the appservice listener
    alice: str
    room: str
    hook_url: str
    gitflic_secret: str
    gitflic_owner: str
    canary: Canary
    probe: LiveProbe
    session: aiohttp.ClientSession

    @property
    def hs_token(self) -> str:
        return HS_TOKEN

    @property
    def services(self) -> Any:
        return self.core.services

    @property
    def provisioning_auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {PROVISIONING_SECRET}"}


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


async def _serve(app: web.Application, port: int) -> ListenerRunner:
    runner = ListenerRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def env(pg_admin_dsn: str) -> AsyncIterator[HostileEnv]:
    saved_timeout = listener_http.BODY_TIMEOUT_S
    listener_http.BODY_TIMEOUT_S = BODY_TIMEOUT_S
    fake = FakeGitFlicState()
    fake.add_token(GITFLIC_TOKEN, "bridgebot")
    owner = f"hostile-{secrets.token_hex(4)}"
    fake.add_project(owner, "widgets", admins=("bridgebot",))
    gitflic = TestServer(gitflic_app(fake), host="127.0.0.1")
    await gitflic.start_server()
    canary = await _canary()
    port, as_port = free_port(), free_port()
    base_url = f"http://127.0.0.1:{port}"
    core = await start_core(pg_admin_dsn, {
        "generic": {"urlPrefix": f"{base_url}/webhook/"},
        "github": {
            "apiUrl": "http://127.0.0.1:9",  # never called: the connection is made by hand
            "oauthUrl": "https://github.com",
            "webhook": {"secret": GITHUB_SECRET, "publicUrl": f"{base_url}/"},
            "oauth": {"client_id": "c", "client_secret": "s", "redirect_uri": f"{base_url}/github/oauth"},
        },
        "gitflic": {
            "instances": {"gitflic": {"url": "https://gitflic.ru", "apiUrl": str(gitflic.make_url("")).rstrip("/")}},
            "token": GITFLIC_TOKEN,
            "webhook": {"publicUrl": base_url},
        },
        "gitlab": {
            "instances": {"gitlab": {"url": "https://gitlab.example.org"}},
            "webhook": {"secret": GITLAB_SECRET, "publicUrl": base_url},
        },
        "jira": {"webhook": {"secret": JIRA_SECRET}, "url": "https://jira.example.org"},
    })  # fmt: skip
    core.services.cpu.deadline = CPU_DEADLINE_S
    ready = lambda: (True, {})  # noqa: E731
    listener = await _serve(listener_app(core.core, ["webhooks", "provisioning", "metrics"], ready), port)
    appservice = HookshotAppService(
        db=core.db, server="http://127.0.0.1:9", domain=SERVER_NAME, as_token="as", hs_token=HS_TOKEN,
        bot_localpart="hookshot", id="hostile",
    )
    appservice.on_event = core.core.router.on_event
    appservice.cpu = core.services.cpu
    add_health_routes(appservice.app, ready)
    await appservice.start("127.0.0.1", as_port)
    session = aiohttp.ClientSession()
    try:
        room = core.room_with_bot(ALICE)
        manager = core.manager
        _, outcome = await manager.create(room, GENERIC_TYPE, {"name": "hostile"}, user_id=ALICE)
        await manager.create(room, GITFLIC_TYPE, {"ownerAlias": owner, "projectAlias": "widgets"}, user_id=ALICE)
        [hook] = fake.project(owner, "widgets").webhooks.values()
        # GitHub, as an admin would set it up by hand: state in the room, the config-wide secret.
        core.hs.send_state(
            room, ALICE, GITHUB_TYPE, GITHUB_REPO,
            {"org": "octo-org", "repo": "hostile", "enableHooks": sorted(ALLOWED_EVENTS), "prDiff": {"enabled": True}},
        )
        await core.settle()
        assert manager.find(room, GITHUB_TYPE, GITHUB_REPO) is not None
        probe = LiveProbe(
            session, f"{base_url}/live", busy=lambda: bool(core.background.tasks) or core.services.cpu.busy > 0
        )
        await probe.calibrate()
        yield HostileEnv(
            core, base_url, f"http://127.0.0.1:{as_port}", ALICE, room, outcome.secrets["url"], hook.secret, owner,
            canary, probe, session,
        )
    finally:
        await session.close()
        await appservice.stop()
        await listener.cleanup()
        await core.stop()
        await release_migrated_database(pg_admin_dsn, core.db.dsn)
        await canary.server.close()
        await gitflic.close()
        listener_http.BODY_TIMEOUT_S = saved_timeout
