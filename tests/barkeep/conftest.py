"""The fake Barkeep of tests/fakes/barkeep.py with two users and a repository of three commits
(fixed clock, for the client's own tests), and a bridge with Barkeep pointed at a fake that
follows the real time (for the integration's tests)."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from fakes.barkeep import FakeBarkeepState, make_app
from hookshot_py.barkeep.client import BarkeepClient
from hookshot_py.barkeep.connection import EVENT_TYPE
from hookshot_py.barkeep.integration import BarkeepIntegration
from hookshot_py.services import Services
from support.bridge import PROVISIONING_SECRET, BridgeHarness
from support.helpers import http

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


# -- the bridge side: Postgres, a real-time fake, and a bridge with Barkeep configured ---------------

SHA_ABC = "abc1234f00dfeedfacecafe0123456789abcdef0"  # "abc1234" in announcements
USER_KEY, USER_SECRET = "user-key", "user-secret"
ADMIN_KEY, ADMIN_SECRET = "admin-key", "admin-secret"


class LiveClock:
    """Real time plus `offset`: the fake server's clock when the bridge, which signs with the
    real time, talks to it (skew a test by moving `offset`)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class BarkeepBridge:
    harness: BridgeHarness
    fake: FakeBarkeepState
    clock: LiveClock
    repo: str  # a repository of this test's own: the session's rooms outlive the bridges

    @property
    def services(self) -> Services:
        assert self.harness.bridge is not None and self.harness.bridge.services is not None
        return self.harness.bridge.services

    @property
    def integration(self) -> BarkeepIntegration:
        assert self.harness.bridge is not None
        [found] = [i for i in self.harness.bridge.integrations if isinstance(i, BarkeepIntegration)]
        return found

    async def connect(self, room_id: str, user_id: str, state: dict[str, Any]) -> tuple[int, Any]:
        return await http(
            "PUT",
            f"{self.harness.base_url}/v1/{room_id}/connections/{EVENT_TYPE}?userId={user_id}",
            json=state,
            headers={"Authorization": f"Bearer {PROVISIONING_SECRET}"},
        )

    async def outbox_bodies(self, room_id: str) -> list[str]:
        rows = await self.services.db.fetch(
            "SELECT content FROM outbox WHERE room_id = $1 AND event_type = 'm.room.message' ORDER BY id", room_id
        )
        return [r["content"]["body"] for r in rows]


BarkeepBridgeFactory = Callable[..., Any]


@pytest.fixture
async def barkeep_bridge(bridge_factory: Any, aiohttp_server: Any) -> BarkeepBridgeFactory:
    """`await barkeep_bridge(key=(ADMIN_KEY, ADMIN_SECRET), poll_interval=3600)`: a bridge whose
    instance `main` is a fake Barkeep with Jane (user), Ada (admin) and a repository of its own
    holding SHA_ABC, SHA_B and SHA_C."""

    async def factory(key: tuple[str, str] | None = (ADMIN_KEY, ADMIN_SECRET), poll_interval: int = 3600) -> BarkeepBridge:
        clock = LiveClock()
        fake = FakeBarkeepState(clock=clock)
        fake.add_user(USER_KEY, USER_SECRET, name="Jane Doe", email="jane@example.org")
        fake.add_user(ADMIN_KEY, ADMIN_SECRET, admin=True, name="Ada Admin", email="ada@example.org")
        fake.add_user("other-key", "other-secret", name="Otto Other", email="otto@example.org")
        repo = f"proj-{secrets.token_hex(3)}"
        for sha in (SHA_ABC, SHA_B, SHA_C):
            fake.add_commit(repo, sha)
        server = await aiohttp_server(make_app(fake))
        instance: dict[str, Any] = {"url": str(server.make_url("")).rstrip("/")}
        if key is not None:
            instance.update(apiKey=key[0], apiSecret=key[1])
        harness = await bridge_factory(
            {"barkeep": {"instances": {"main": instance}, "pollIntervalSeconds": poll_interval}}
        )
        return BarkeepBridge(harness, fake, clock, repo)

    return factory
