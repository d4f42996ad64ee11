"""A bridge with GitFlic enabled, talking to the fake GitFlic of tests/fakes/gitflic.py."""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest_asyncio
from aiohttp.test_utils import TestServer

from fakes.gitflic import FakeGitFlicState, FakeWebhook, deliver, make_app
from hookshot_py.gitflic.connection import EVENT_TYPE
from hookshot_py.services import Services
from support.bridge import PROVISIONING_SECRET, BridgeHarness
from support.helpers import http

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE_OWNER = "acme"
FIXTURE_PROJECT_ID = "5f0c2b7e-1d3a-4c8e-9b61-2a7d4e9f0c13"
BRIDGE_TOKEN = "bridge-token"
ALICE_TOKEN = "alice-token"
VIEWER_TOKEN = "viewer-token"


def fixture_names() -> list[str]:
    return sorted(p.stem for p in FIXTURES.glob("*.json"))


@dataclass
class GitFlicBridge:
    """The bridge and the fake, with a project of its own.

    Every test gets a fresh owner alias: the session's Synapse outlives the bridges, and a new
    bridge picks up the GitFlic connections of earlier tests' rooms from room state.
    """

    harness: BridgeHarness
    fake: FakeGitFlicState
    api_url: str
    owner: str
    project_id: str

    @property
    def key(self) -> str:
        return f"{self.owner}/widgets"

    def payload(self, name: str) -> dict[str, Any]:
        """A fixture delivery rewritten to name this test's project."""
        text = (FIXTURES / f"{name}.json").read_text()
        text = text.replace(FIXTURE_PROJECT_ID, self.project_id).replace(f'"{FIXTURE_OWNER}', f'"{self.owner}')
        text = text.replace(f"/{FIXTURE_OWNER}/", f"/{self.owner}/").replace(f":{FIXTURE_OWNER}/", f":{self.owner}/")
        return json.loads(text)

    @property
    def services(self) -> Services:
        assert self.harness.bridge is not None and self.harness.bridge.services is not None
        return self.harness.bridge.services

    @property
    def webhook_url(self) -> str:
        return f"{self.harness.base_url}/gitflic/webhook"

    def hooks(self, project: str = "widgets") -> list[FakeWebhook]:
        return list(self.fake.project(self.owner, project).webhooks.values())

    def only_hook(self, project: str = "widgets") -> FakeWebhook:
        hooks = self.hooks(project)
        assert len(hooks) == 1, hooks
        return hooks[0]

    async def connect(self, room_id: str, user_id: str, state: dict[str, Any]) -> tuple[int, Any]:
        """Create a connection over the provisioning API."""
        return await http(
            "PUT",
            f"{self.harness.base_url}/v1/{room_id}/connections/{EVENT_TYPE}?userId={user_id}",
            json=state,
            headers={"Authorization": f"Bearer {PROVISIONING_SECRET}"},
        )

    async def provisioning(self, method: str, path: str, user_id: str, body: Any = None) -> tuple[int, Any]:
        return await http(
            method,
            f"{self.harness.base_url}/v1/{path}?userId={user_id}",
            json=body,
            headers={"Authorization": f"Bearer {PROVISIONING_SECRET}"},
        )

    async def deliver(self, payload: dict[str, Any], secret: str | None) -> tuple[int, str]:
        return await deliver(self.webhook_url, str(payload.get("action", "")), payload, secret)

    async def outbox(self, room_id: str) -> list[dict[str, Any]]:
        rows = await self.services.db.fetch(
            "SELECT content, dedupe_key FROM outbox WHERE room_id = $1 AND event_type = 'm.room.message' ORDER BY id",
            room_id,
        )
        return [{"content": r["content"], "dedupe_key": r["dedupe_key"]} for r in rows]

    async def hook_row(self, project: str = "widgets") -> Any:
        return await self.services.db.fetchrow(
            "SELECT * FROM forge_webhooks WHERE service = 'gitflic' AND project = $1", f"{self.owner}/{project}"
        )


GitFlicBridgeFactory = Callable[..., Awaitable[GitFlicBridge]]


@dataclass
class FakeGitFlicServer:
    state: FakeGitFlicState
    server: TestServer
    owner: str
    project_id: str


@pytest_asyncio.fixture(loop_scope="session")
async def fake_gitflic(aiohttp_server: Any) -> FakeGitFlicServer:
    """The fake with tokens for the bridge, alice (admin) and a viewer, and `{owner}/widgets`."""
    state = FakeGitFlicState()
    state.add_token(BRIDGE_TOKEN, "bridgebot")
    state.add_token(ALICE_TOKEN, "alice")
    state.add_token(VIEWER_TOKEN, "viewer")
    owner = f"{FIXTURE_OWNER}-{secrets.token_hex(4)}"
    project = state.add_project(owner, "widgets", admins=("bridgebot", "alice"), members=("viewer",))
    state.add_project(owner, "secret", admins=("bridgebot", "alice"), private=True)
    server = await aiohttp_server(make_app(state))
    return FakeGitFlicServer(state, server, owner, project.id)


@pytest_asyncio.fixture(loop_scope="session")
async def gitflic_bridge(bridge_factory: Any, fake_gitflic: FakeGitFlicServer) -> GitFlicBridgeFactory:
    """`await gitflic_bridge(token=..., public_url=True)`: a bridge with GitFlic pointed at the fake."""
    fake = fake_gitflic
    api_url = str(fake.server.make_url("")).rstrip("/")

    async def factory(token: str | None = BRIDGE_TOKEN, public_url: bool = True, **extra: Any) -> GitFlicBridge:
        harness = await bridge_factory(start=False)
        section: dict[str, Any] = {
            "instances": {"gitflic": {"url": "https://gitflic.ru", "apiUrl": api_url}},
            **extra,
        }
        if token is not None:
            section["token"] = token
        if public_url:
            section["webhook"] = {"publicUrl": harness.base_url}
        harness.overrides = {"gitflic": section}
        await harness.start()
        return GitFlicBridge(harness, fake.state, api_url, fake.owner, fake.project_id)

    return factory
