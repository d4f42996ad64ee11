"""Fixtures for the GitHub tests: the fake GitHub, a webhook receiver and an HTTP session."""

import copy
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from hookshot_py.github.client import GitHubClient
from fakes.github import FakeGitHubState, make_app

TOKENS = {"alice": "tok-alice", "bob": "tok-bob", "carol": "tok-carol", "dave": "tok-dave"}


@pytest.fixture
def gh() -> FakeGitHubState:
    """alice administers octo-org/hello-world, bob may write, carol may read, dave is a stranger."""
    state = FakeGitHubState()
    for login, token in TOKENS.items():
        state.add_user(login, token)
    state.add_org("octo-org", ["alice", "bob"])
    state.add_repo(
        "octo-org", "hello-world", permissions={"alice": "admin", "bob": "write", "carol": "read"}
    )
    state.add_repo("octo-org", "secret", private=True, permissions={"alice": "admin"})
    return state


@pytest.fixture
async def server(gh: FakeGitHubState, aiohttp_server: Any) -> TestServer:
    return await aiohttp_server(make_app(gh))


@pytest.fixture
def base_url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def client_for(base_url: str, session: aiohttp.ClientSession) -> Any:
    def make(login: str) -> GitHubClient:
        return GitHubClient(base_url, TOKENS.get(login, login), session)

    return make


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    received: list[Received] = field(default_factory=list)

    def events(self) -> list[str]:
        return [r.headers["X-GitHub-Event"] for r in self.received]


@pytest.fixture
async def receiver(aiohttp_server: Any) -> Receiver:
    """Where hooks deliver: records every POST and answers 200."""
    app = web.Application()
    box = Receiver(url="")

    async def handle(request: web.Request) -> web.Response:
        box.received.append(Received(dict(request.headers), await request.read()))
        return web.Response(text="ok")

    app.router.add_post("/github/webhook", handle)
    srv = await aiohttp_server(app)
    box.url = str(srv.make_url("/github/webhook"))
    return box


# --- the bridge wired to the fake GitHub ---------------------------------------------------------

OAUTH_CLIENT = ("client-1", "client-secret-1")
CONFIG_SECRET = "config-wide-secret"


@dataclass
class GitHubBridge:
    """A running bridge whose `github` section points at the fake GitHub."""

    harness: Any
    gh: FakeGitHubState
    api: str

    @property
    def services(self) -> Any:
        return self.harness.bridge.services

    @property
    def integration(self) -> Any:
        return next(i for i in self.harness.bridge.integrations if i.name == "github")

    @property
    def webhook_url(self) -> str:
        return f"{self.harness.base_url}/github/webhook"

    async def login(self, user_id: str, login: str) -> None:
        """Store `login`'s fake token for the Matrix user, as `github setpersonaltoken` would."""
        from hookshot_py.github.accounts import StoredToken

        await self.services.tokens.put(user_id, "github", StoredToken(TOKENS[login], login, "pat").to_json())


def github_config(api: str, listener: str, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "apiUrl": api,
        "oauthUrl": api,
        "webhook": {"publicUrl": f"{listener}/"},
        "oauth": {
            "client_id": OAUTH_CLIENT[0],
            "client_secret": OAUTH_CLIENT[1],
            "redirect_uri": f"{listener}/github/oauth",
        },
    }
    for key, value in extra.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    return config


@pytest.fixture
async def start_github_bridge(bridge_factory: Any, gh: FakeGitHubState, base_url: str) -> Any:
    """`await start_github_bridge(webhook_secret=None, **github_overrides)` → GitHubBridge
    (an override of None drops the key)."""
    gh.add_oauth_app(*OAUTH_CLIENT)

    async def start(webhook_secret: str | None = None, **extra: Any) -> GitHubBridge:
        harness = await bridge_factory(start=False)
        config = github_config(base_url, harness.base_url, **extra)
        if webhook_secret is not None:
            config["webhook"]["secret"] = webhook_secret
        harness.overrides = {"github": config}
        await harness.start()
        return GitHubBridge(harness, gh, base_url)

    return start


@pytest.fixture
async def gh_bridge(start_github_bridge: Any) -> GitHubBridge:
    return await start_github_bridge()


async def rest(
    bridge: GitHubBridge, method: str, path: str, user_id: str | None = None, json_body: Any = None,
    **query: str,
) -> tuple[int, Any]:
    """A provisioning API call with the Bearer secret (`path` after `/v1`)."""
    from urllib.parse import quote, urlencode

    from support.bridge import PROVISIONING_SECRET
    from support.helpers import http

    params = {**({"userId": user_id} if user_id else {}), **query}
    url = f"{bridge.harness.base_url}/v1{quote(path)}" + (f"?{urlencode(params)}" if params else "")
    return await http(method, url, json=json_body, headers={"Authorization": f"Bearer {PROVISIONING_SECRET}"})


FIXTURES = Path(__file__).parent / "fixtures"


def payload(name: str, repo: str, title: str | None = None) -> dict[str, Any]:
    """A fixture payload moved to `octo-org/<repo>` (the bot stays in earlier tests' rooms, whose
    connections a new bridge picks up: each test uses its own repository)."""
    data = copy.deepcopy(json.loads((FIXTURES / f"{name}.json").read_text()))
    data["repository"]["full_name"] = f"octo-org/{repo}"
    data["repository"]["name"] = repo
    if title is not None:
        data["issue"]["title"] = title
    return data
