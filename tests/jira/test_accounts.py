"""Logins: stored encrypted, refreshed before they expire (the refresh token rotates), one
refresh at a time per user even across processes, and a refused refresh told to the user once."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp.test_utils import TestServer

from hookshot_py.db.database import Database
from hookshot_py.jira.accounts import REFRESH_MARGIN_S, JiraAccounts, StoredLogin
from hookshot_py.jira.client import JiraError
from hookshot_py.jira.models import TokenGrant

from .conftest import CLIENT_ID, CLIENT_SECRET, Told, World, cloud_config, make_accounts

ALICE = "@alice:hookshot.test"


class Clock:
    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def logged_in(world: World, accounts: JiraAccounts) -> tuple[str, str]:
    access, refresh = world.state.grant(world.alice, CLIENT_ID, [world.site])
    await accounts.put(ALICE, accounts.grant_login(TokenGrant(access, 3600, refresh), "Alice Liddell"))
    return access, refresh


def refreshes(world: World) -> list[str]:
    return [r.body["refresh_token"] for r in world.state.requests_to("POST", "/oauth/token")
            if r.body.get("grant_type") == "refresh_token"]


async def test_a_login_is_refreshed_before_it_expires_and_the_refresh_token_rotates(
    world: World, server: TestServer, db: Database, session: aiohttp.ClientSession, told: Told
) -> None:
    world.state.add_client(CLIENT_ID, CLIENT_SECRET, "https://bridge.example/jira/oauth")
    clock = Clock()
    accounts = make_accounts(cloud_config(world.base_url), db, session, told, clock=clock)
    access, refresh = await logged_in(world, accounts)

    login = await accounts.login(ALICE)
    assert login is not None and login.stored.access_token == access and refreshes(world) == []

    clock.now += 3600 - REFRESH_MARGIN_S + 1  # within the margin: refreshed now, before it expires
    login = await accounts.login(ALICE)
    assert login is not None and login.stored.access_token != access
    assert refreshes(world) == [refresh]
    stored = await accounts.stored(ALICE)
    assert stored is not None and stored.refresh_token not in (None, refresh)
    assert refresh in world.state.spent_refresh_tokens
    assert [s.name for s in await login.sites()] == [world.site.name]

    clock.now += 3600 - REFRESH_MARGIN_S + 1
    again = await accounts.login(ALICE)
    assert again is not None and refreshes(world) == [refresh, stored.refresh_token]
    assert told.messages == []

    ciphertext = bytes(await db.fetchval("SELECT ciphertext FROM user_tokens WHERE user_id = $1", ALICE))
    assert again.stored.access_token.encode() not in ciphertext
    assert (again.stored.refresh_token or "").encode() not in ciphertext


async def test_concurrent_uses_spend_the_refresh_token_once_even_across_processes(
    world: World, server: TestServer, db: Database, session: aiohttp.ClientSession, told: Told
) -> None:
    world.state.add_client(CLIENT_ID, CLIENT_SECRET, "https://bridge.example/jira/oauth")
    clock = Clock()
    config = cloud_config(world.base_url)
    # Two JiraAccounts on one database: two bridge processes.
    one = make_accounts(config, db, session, told, clock=clock)
    two = make_accounts(config, db, session, told, clock=clock)
    await logged_in(world, one)
    clock.now += 3600
    logins = await asyncio.gather(*(acc.login(ALICE) for acc in [one, two, one, two, one, two]))
    assert len(refreshes(world)) == 1
    tokens = {login.stored.access_token for login in logins if login is not None}
    assert len(tokens) == 1 and len([x for x in logins if x is not None]) == 6
    assert told.messages == []


async def test_a_refused_refresh_is_told_once_and_a_new_login_works_again(
    world: World, server: TestServer, db: Database, session: aiohttp.ClientSession, told: Told
) -> None:
    world.state.add_client(CLIENT_ID, CLIENT_SECRET, "https://bridge.example/jira/oauth")
    clock = Clock()
    accounts = make_accounts(cloud_config(world.base_url), db, session, told, clock=clock)
    await logged_in(world, accounts)
    world.state.refresh_tokens.clear()  # revoked at Atlassian (or expired after 90 days unused)
    clock.now += 3600
    assert await accounts.login(ALICE) is None
    assert await accounts.login(ALICE) is None
    [(user, text)] = told.messages
    assert user == ALICE and "could not be renewed" in text and "`jira login`" in text
    assert "Unknown or invalid refresh token." in text
    stored = await accounts.stored(ALICE)
    assert stored is not None and stored.broken
    assert len(refreshes(world)) == 1  # not asked again once it was refused

    await logged_in(world, accounts)
    assert await accounts.login(ALICE) is not None


async def test_an_outage_of_the_token_endpoint_is_retried_on_next_use_without_telling(
    world: World, server: TestServer, db: Database, session: aiohttp.ClientSession, told: Told
) -> None:
    world.state.add_client(CLIENT_ID, CLIENT_SECRET, "https://bridge.example/jira/oauth")
    clock = Clock()
    accounts = make_accounts(cloud_config(world.base_url), db, session, told, clock=clock)
    await logged_in(world, accounts)
    clock.now += 3600
    world.state.token_outage = 502
    try:
        await accounts.login(ALICE)
    except JiraError as exc:
        assert exc.status == 502 and not exc.refused
    else:
        raise AssertionError("an outage must not look like a login")
    stored = await accounts.stored(ALICE)
    assert stored is not None and not stored.broken and told.messages == []
    world.state.token_outage = None
    assert await accounts.login(ALICE) is not None


async def test_on_premise_personal_access_tokens(
    world: World, server: TestServer, db: Database, session: aiohttp.ClientSession, told: Told
) -> None:
    from hookshot_py.config.sections import JiraConfig, JiraWebhook

    config = JiraConfig(webhook=JiraWebhook(secret="s"), url=world.base_url)
    accounts = make_accounts(config, db, session, told)
    assert accounts.auth is None and accounts.instance == world.base_url
    token = world.state.add_pat(world.bob)
    stored, me = await accounts.verify_pat(token)
    assert stored == StoredLogin("pat", token, name="Bob") and me.name == "bob"
    await accounts.put(ALICE, stored)
    login = await accounts.login(ALICE)
    assert login is not None
    [site] = await login.sites()
    assert (site.url, site.api) == (world.base_url, f"{world.base_url}/rest/api/2")
    assert await login.site_named(site.name) == site and await login.site_for_host(site.host) == site
    assert [p.key for p in (await login.client(site).projects(0, 10)).values] == ["OPS"]
    # A cloud login is never used for the on-premise instance, and the other way round.
    assert await make_accounts(cloud_config(world.base_url), db, session, told).stored(ALICE) is None
