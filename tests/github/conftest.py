"""Fixtures for the GitHub tests: the fake GitHub, a webhook receiver and an HTTP session."""

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
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
