"""Fixtures for the JIRA tests: the fake JIRA (tests/fakes/jira.py), a migrated Postgres, and a
bridge with `jira` configured against the fake (cloud or on-premise).

Every test gets its own site address and project keys: the session's Synapse outlives the
bridges, and a new bridge picks up the JIRA connections of earlier tests' rooms from room state.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer

from fakes.jira import FakeAccount, FakeJiraState, FakeProject, FakeSite, make_app
from hookshot_py.config import JiraConfig
from hookshot_py.config.sections import JiraOAuth, JiraWebhook
from hookshot_py.db.database import Database
from hookshot_py.jira.accounts import JiraAccounts
from hookshot_py.jira.auth import AtlassianAuth
from hookshot_py.tokens import SecretBox, TokenStore
from support.bridge import PROVISIONING_SECRET, BridgeHarness
from support.helpers import http

FIXTURES = Path(__file__).parent / "fixtures"
CLIENT_ID, CLIENT_SECRET = "jira-client-1", "jira-client-secret-1"
WEBHOOK_SECRET = "hookshot-test-secret"  # CONTRACTS.md's vector uses this secret


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


@dataclass
class World:
    """The fake's people and projects: alice sees PLAY and WEB, bob sees PLAY, carol nothing."""

    state: FakeJiraState
    alice: FakeAccount
    bob: FakeAccount
    carol: FakeAccount
    site: FakeSite
    play: FakeProject
    web: FakeProject
    ops: FakeProject  # on the on-premise instance; alice and bob
    base_url: str = ""


@pytest.fixture
def world() -> World:
    state = FakeJiraState()
    alice, bob, carol = state.add_account("alice", "Alice Liddell"), state.add_account("bob"), state.add_account("carol")
    site = state.add_site(f"acme{secrets.token_hex(3)}")
    play = state.add_project(site, "PLAY", "Jira Playground", [alice, bob])
    web = state.add_project(site, "WEB", "Website", [alice])
    ops = state.add_project(state.on_prem, "OPS", "Operations", [alice, bob])
    state.approve_as = alice.account_id
    return World(state, alice, bob, carol, site, play, web, ops)


@pytest_asyncio.fixture
async def server(world: World, aiohttp_server: Any) -> TestServer:
    srv = await aiohttp_server(make_app(world.state))
    world.base_url = str(srv.make_url("")).rstrip("/")
    world.state.on_prem.url = world.base_url
    world.state.base_url = world.base_url
    return srv


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def cloud_config(base_url: str, redirect: str = "https://bridge.example/jira/oauth") -> JiraConfig:
    return JiraConfig(
        webhook=JiraWebhook(secret=WEBHOOK_SECRET),
        oauth=JiraOAuth(redirect_uri=redirect, client_id=CLIENT_ID, client_secret=CLIENT_SECRET),
        oauth_url=base_url,
        api_url=base_url,
    )


@dataclass
class Told:
    """What the accounts told users in their DMs."""

    messages: list[tuple[str, str]] = field(default_factory=list)

    async def __call__(self, user_id: str, text: Any) -> None:
        self.messages.append((user_id, text.notice(inline=True, extra={}).body))


@pytest.fixture
def told() -> Told:
    return Told()


def make_accounts(
    config: JiraConfig, db: Database, session: aiohttp.ClientSession, told: Told, **kwargs: Any
) -> JiraAccounts:
    auth = None
    if config.cloud and config.oauth is not None:
        assert config.oauth.client_id and config.oauth.client_secret
        auth = AtlassianAuth(config.oauth_url, config.api_url, config.oauth.client_id, config.oauth.client_secret,
                             config.oauth.redirect_uri, session)
    return JiraAccounts(config, TokenStore(db, SecretBox(b"j" * 32)), db, session, auth, told, **kwargs)


# -- a bridge against the fake --------------------------------------------------------------------------


@dataclass
class JiraBridge:
    harness: BridgeHarness
    world: World

    @property
    def services(self) -> Any:
        assert self.harness.bridge is not None
        return self.harness.bridge.services

    @property
    def integration(self) -> Any:
        assert self.harness.bridge is not None
        return next(i for i in self.harness.bridge.integrations if i.name == "jira")

    @property
    def webhook_url(self) -> str:
        return f"{self.harness.base_url}/jira/webhook"

    async def login_cloud(self, user_id: str, account: FakeAccount, sites: list[FakeSite] | None = None) -> None:
        """Store a JIRA Cloud login for the Matrix user, as the OAuth callback would."""
        from hookshot_py.jira.models import TokenGrant

        access, refresh = self.world.state.grant(account, CLIENT_ID, sites or [self.world.site])
        accounts = self.integration.accounts
        grant = TokenGrant(access, self.world.state.expires_in, refresh)
        await accounts.put(user_id, accounts.grant_login(grant, account.display_name))

    async def rest(self, method: str, path: str, user_id: str | None = None, body: Any = None,
                   **query: str) -> tuple[int, Any]:
        """A provisioning API call with the Bearer secret (`path` after `/v1`)."""
        params = {**({"userId": user_id} if user_id else {}), **query}
        url = f"{self.harness.base_url}/v1{quote(path)}" + (f"?{urlencode(params)}" if params else "")
        return await http(method, url, json=body, headers={"Authorization": f"Bearer {PROVISIONING_SECRET}"})


def jira_section(world: World, listener: str, *, on_prem: bool = False, oauth: bool = True) -> dict[str, Any]:
    section: dict[str, Any] = {"webhook": {"secret": WEBHOOK_SECRET}}
    if on_prem:
        section["url"] = world.base_url
    else:
        section["oauthUrl"] = world.base_url
        section["apiUrl"] = world.base_url
        if oauth:
            section["oauth"] = {
                "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uri": f"{listener}/jira/oauth",
            }
    return section


@pytest_asyncio.fixture
async def start_jira_bridge(bridge_factory: Any, world: World, server: TestServer) -> Any:
    """`await start_jira_bridge(on_prem=False, oauth=True)` → JiraBridge."""

    async def start(*, on_prem: bool = False, oauth: bool = True) -> JiraBridge:
        harness = await bridge_factory(start=False)
        section = jira_section(world, harness.base_url, on_prem=on_prem, oauth=oauth)
        world.state.add_client(CLIENT_ID, CLIENT_SECRET, f"{harness.base_url}/jira/oauth")
        harness.overrides = {"jira": section}
        await harness.start()
        return JiraBridge(harness, world)

    return start


@pytest_asyncio.fixture
async def jira_bridge(start_jira_bridge: Any) -> JiraBridge:
    return await start_jira_bridge()
