"""Fixtures for the GitLab tests: the fake GitLab, fixture payloads, and the GitLab parts wired
to a real (migrated) Postgres without Synapse (`stack`); the bridge against a real Synapse
(`gitlab_bridge`) for the end-to-end tests."""

from __future__ import annotations

import copy
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from fakes.gitlab import DEVELOPER, MAINTAINER, OWNER, REPORTER, FakeGitLabState, make_app
from hookshot_py.config import GitLabConfig, GitLabInstance, GitLabWebhook
from hookshot_py.connections.base import Connection, Outcome
from hookshot_py.db.database import Database
from hookshot_py.gitlab.accounts import GitLabAccounts, StoredToken
from hookshot_py.gitlab.connection import EVENT_TYPE, GitLabRepoType
from hookshot_py.gitlab.hooks import GitLabProjectHooks
from hookshot_py.gitlab.inbound import GitLabWebhookRoute
from hookshot_py.gitlab.render import Renderer
from hookshot_py.gitlab.review import ReviewDebouncer
from hookshot_py.listeners.http import error_middleware
from hookshot_py.matrix.outbox import Outbox
from hookshot_py.metrics import Metrics
from hookshot_py.tokens import SecretBox, TokenStore
from support.bridge import PROVISIONING_SECRET, BridgeHarness
from support.helpers import http

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE_BASE = "https://gitlab.example.com"
FIXTURE_PATH = "acme/widgets"
TOKENS = {"alice": "glpat-alice", "dave": "glpat-dave", "carol": "glpat-carol", "erin": "glpat-erin"}
CONFIG_SECRET = "config-wide-gitlab-secret"
INSTANCE = "gl"
ROUTE = "route"  # make_stack(public_url=ROUTE)


def fixture_names() -> list[str]:
    return sorted(p.stem for p in FIXTURES.glob("*.json"))


def payload(name: str, *, base: str = FIXTURE_BASE, path: str = FIXTURE_PATH) -> dict[str, Any]:
    """A fixture delivery moved to `base`/`path`."""
    text = (FIXTURES / f"{name}.json").read_text()
    text = text.replace(FIXTURE_BASE, base).replace(FIXTURE_PATH, path)
    return copy.deepcopy(json.loads(text))


@pytest.fixture
def gl() -> FakeGitLabState:
    """alice maintains acme/widgets (private), dave develops, carol reports, erin is a stranger;
    alice owns acme/public (public)."""
    state = FakeGitLabState()
    for username, token in TOKENS.items():
        state.add_user(username, token)
    state.add_project("acme/widgets", {"alice": MAINTAINER, "dave": DEVELOPER, "carol": REPORTER},
                      description="Widgets for everyone")
    state.add_project("acme/public", {"alice": OWNER}, private=False)
    return state


@pytest_asyncio.fixture
async def gl_server(gl: FakeGitLabState, aiohttp_server: Any) -> TestServer:
    server = await aiohttp_server(make_app(gl))
    gl.base_url = str(server.make_url("")).rstrip("/")
    return server


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def gitlab_config(gl_url: str, *, public_url: str | None = "https://bridge.example/hookshot/",
                  secret: str | None = CONFIG_SECRET, debounce_ms: int = 5000,
                  more_instances: dict[str, str] | None = None) -> GitLabConfig:
    instances = {INSTANCE: GitLabInstance(url=gl_url)}
    instances.update({name: GitLabInstance(url=url) for name, url in (more_instances or {}).items()})
    return GitLabConfig(
        webhook=GitLabWebhook(secret=secret, public_url=public_url),
        instances=instances,
        comment_debounce_ms=debounce_ms,
    )


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Stack:
    """The GitLab integration's parts on a real Postgres, with an outbox that stores rows but
    sends nothing (no homeserver), and the webhook route served."""

    gl: FakeGitLabState
    config: GitLabConfig
    db: Database
    accounts: GitLabAccounts
    hooks: GitLabProjectHooks
    projects: GitLabRepoType
    outbox: Outbox
    reviews: ReviewDebouncer
    route: GitLabWebhookRoute
    clock: Clock
    webhook_url: str = ""
    conns: list[Connection] = field(default_factory=list)

    async def login(self, user_id: str, username: str) -> None:
        user = self.gl.user(username)
        await self.accounts.put(user_id, INSTANCE, StoredToken(TOKENS[username], username, user.id))

    def make(self, room_id: str, **state: Any) -> Connection:
        full = {"instance": INSTANCE, "path": FIXTURE_PATH, **state}
        normalized, issues = self.projects.validate(full, existing=None, is_new=True)
        assert not issues, issues
        return Connection(room_id, EVENT_TYPE, self.projects.state_key(normalized), normalized)

    async def connect(self, room_id: str, user_id: str, **state: Any) -> tuple[Connection, Outcome]:
        """What the ConnectionManager does on create: prepare (hook), then index the connection."""
        conn = self.make(room_id, **state)
        outcome = await self.projects.prepare(conn, existing=None, user_id=user_id)
        await self.projects.on_loaded(conn)
        self.conns.append(conn)
        return conn, outcome

    async def update(self, conn: Connection, user_id: str, **patch: Any) -> tuple[Connection, Outcome]:
        normalized, issues = self.projects.validate({**conn.state, **patch}, existing=conn, is_new=True)
        assert not issues, issues
        new = Connection(conn.room_id, conn.event_type, conn.state_key, normalized, conn.id)
        outcome = await self.projects.prepare(new, existing=conn, user_id=user_id)
        await self.projects.on_loaded(new)
        self.conns = [c for c in self.conns if c.id != conn.id] + [new]
        return new, outcome

    async def remove(self, conn: Connection, user_id: str | None) -> list[str]:
        await self.projects.on_unloaded(conn)
        self.conns = [c for c in self.conns if c.id != conn.id]
        return await self.projects.on_removed(conn, user_id=user_id)

    async def messages(self, room_id: str) -> list[dict[str, Any]]:
        rows = await self.db.fetch(
            "SELECT content FROM outbox WHERE room_id = $1 AND event_type = 'm.room.message' ORDER BY id", room_id
        )
        return [r["content"] for r in rows]

    async def bodies(self, room_id: str) -> list[str]:
        return [m["body"] for m in await self.messages(room_id)]

    async def hook_row(self, path: str = FIXTURE_PATH) -> Any:
        return await self.db.fetchrow(
            "SELECT * FROM forge_webhooks WHERE service = 'gitlab' AND project = $1", path.lower()
        )

    async def post(self, body: dict[str, Any], token: str | None, **headers: str) -> tuple[int, Any]:
        all_headers = {"Content-Type": "application/json", **headers}
        if token is not None:
            all_headers["X-Gitlab-Token"] = token
        return await http("POST", self.webhook_url, data=json.dumps(body).encode(), headers=all_headers)


@pytest_asyncio.fixture
async def make_stack(
    gl: FakeGitLabState, gl_server: TestServer, db: Database, session: aiohttp.ClientSession, aiohttp_server: Any
) -> AsyncIterator[Any]:
    """`await make_stack(public_url=..., secret=..., debounce_ms=...)` → Stack."""
    stacks: list[Stack] = []

    async def make(**options: Any) -> Stack:
        """`public_url=ROUTE`: GitLab is told to deliver to this stack's own webhook route."""
        to_route = options.get("public_url") == ROUTE
        config = gitlab_config(gl.base_url, **options)
        box = SecretBox(b"g" * 32)
        accounts = GitLabAccounts(TokenStore(db, box), config, session)
        hooks = GitLabProjectHooks(config, accounts, db, box)
        await hooks.store.load()
        projects = GitLabRepoType(config, accounts, hooks)
        outbox = Outbox(db, SimpleNamespace(bot_mxid="@hookshot:test"), None, Metrics())  # type: ignore[arg-type]
        renderer = Renderer(None)
        clock = Clock()
        stack_ref: list[Stack] = []

        def is_live(room_id: str, connection_id: str) -> bool:
            return any(c.id == connection_id and c.room_id == room_id for c in stack_ref[0].conns)

        reviews = ReviewDebouncer(db, outbox, renderer, debounce_s=config.comment_debounce_ms / 1000,
                                  is_live=is_live, clock=clock, resolve_timeout_s=0.05)
        route = GitLabWebhookRoute(config, hooks, projects, outbox, renderer, reviews)
        app = web.Application(middlewares=[error_middleware])
        route.add_routes(app)
        server = await aiohttp_server(app)
        if to_route:
            config.webhook.public_url = str(server.make_url("/"))
        stack = Stack(gl, config, db, accounts, hooks, projects, outbox, reviews, route, clock,
                      str(server.make_url("/gitlab/webhook")))
        stack_ref.append(stack)
        stacks.append(stack)
        return stack

    try:
        yield make
    finally:
        for stack in stacks:
            await stack.projects.stop()
            await stack.reviews.stop()


def rest_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {PROVISIONING_SECRET}"}


# -- the bridge against a real Synapse -------------------------------------------------------------------------


@dataclass
class GitLabBridge:
    harness: BridgeHarness
    gl: FakeGitLabState
    path: str  # this test's project

    @property
    def services(self) -> Any:
        assert self.harness.bridge is not None
        return self.harness.bridge.services

    @property
    def webhook_url(self) -> str:
        return f"{self.harness.base_url}/gitlab/webhook"

    def payload(self, name: str) -> dict[str, Any]:
        return payload(name, base=self.gl.base_url, path=self.path)

    async def rest(self, method: str, path: str, user_id: str | None = None, body: Any = None,
                   **query: str) -> tuple[int, Any]:
        from urllib.parse import urlencode

        params = {**({"userId": user_id} if user_id else {}), **query}
        url = f"{self.harness.base_url}/v1{path}" + (f"?{urlencode(params)}" if params else "")
        return await http(method, url, json=body, headers=rest_headers())


@pytest_asyncio.fixture
async def gitlab_bridge(bridge_factory: Any, gl: FakeGitLabState, gl_server: TestServer) -> Any:
    """`await gitlab_bridge(debounce_ms=...)`: a bridge whose `gitlab` section points at the fake,
    with a project of its own (`acme/widgets-<hex>`, alice Maintainer, dave Developer): rooms of
    earlier tests stay in the session's Synapse, and a new bridge picks their connections up."""

    async def start(debounce_ms: int = 300, secret: str | None = CONFIG_SECRET) -> GitLabBridge:
        path = f"acme/widgets-{secrets.token_hex(3)}"
        gl.add_project(path, {"alice": MAINTAINER, "dave": DEVELOPER})
        harness = await bridge_factory(start=False)
        webhook: dict[str, Any] = {"publicUrl": f"{harness.base_url}/"}
        if secret is not None:
            webhook["secret"] = secret
        harness.overrides = {"gitlab": {
            "instances": {INSTANCE: {"url": gl.base_url}},
            "webhook": webhook,
            "commentDebounceMs": debounce_ms,
        }}
        await harness.start()
        return GitLabBridge(harness, gl, path)

    return start
