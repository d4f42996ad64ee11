"""The fake Barkeep of tests/fakes/barkeep.py with two users and a repository of three commits."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from fakes.barkeep import FakeBarkeepState, make_app
from hookshot_py.barkeep.client import BarkeepClient

NOW = 1_700_000_000
REPO = "project51"
SHA_A = "9df81d0a4e6b2c7f1e3d5a9b8c7d6e5f4a3b2c1d"
SHA_B = "3b42b44fa73ade36e566724faf498e1c9c9769d0"
SHA_C = "3b42c0ffee00000000000000000000000000beef"  # shares "3b42" with SHA_B


class Clock:
    """A settable clock, shared by the fake server and the clients unless a test skews one."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def state(clock: Clock) -> FakeBarkeepState:
    s = FakeBarkeepState(clock=clock)
    s.add_user("user-key", "user-secret", name="Jane Doe", email="jane@example.org")
    s.add_user("admin-key", "admin-secret", admin=True, name="Ada Admin", email="ada@example.org")
    for sha in (SHA_A, SHA_B, SHA_C):
        s.add_commit(REPO, sha)
    return s


@pytest.fixture
async def server(state: FakeBarkeepState, aiohttp_server: Any) -> TestServer:
    return await aiohttp_server(make_app(state))


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


MakeClient = Callable[..., BarkeepClient]


@pytest.fixture
def make_client(server: TestServer, session: aiohttp.ClientSession, clock: Clock) -> MakeClient:
    def make(api_key: str | None = "user-key", api_secret: str | None = "user-secret", **kwargs: Any) -> BarkeepClient:
        kwargs.setdefault("clock", clock)
        return BarkeepClient(str(server.make_url("")), session, api_key, api_secret, **kwargs)

    return make
