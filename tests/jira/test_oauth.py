"""The JIRA Cloud OAuth round trip on a running bridge: the link, the fake Atlassian's consent
page, the callback `/jira/oauth`, the grant stored encrypted, the user told in their DM; forged,
replayed and expired states refused before Atlassian is asked; a refresh Atlassian refuses
told to the user once."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp

from hookshot_py.jira.accounts import StoredLogin
from support.fixtures import BOT
from support.helpers import eventually, http, is_notice_with

from .conftest import JiraBridge


def state_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["state"][0]


async def test_oauth_round_trip_stores_the_grant_and_tells_the_user(jira_bridge: JiraBridge, make_user: Any) -> None:
    world = jira_bridge.world
    alice = await make_user("alice")
    status, body = await jira_bridge.rest("GET", "/jira/oauth", alice.user_id)
    assert status == 200

    async with aiohttp.ClientSession() as browser:  # consent, then Atlassian's redirect to the bridge
        async with browser.get(body["url"]) as resp:
            page = await resp.text()
            callback = str(resp.url)
    assert resp.status == 200, page
    assert callback.startswith(f"{jira_bridge.harness.base_url}/jira/oauth?code=") and "Logged in to JIRA" in page

    accounts = jira_bridge.integration.accounts
    stored = await accounts.stored(alice.user_id)
    assert stored is not None and stored.kind == "oauth" and stored.name == "Alice Liddell"
    assert stored.access_token in world.state.access_tokens and stored.refresh_token in world.state.refresh_tokens
    ciphertext = bytes(await jira_bridge.services.db.fetchval("SELECT ciphertext FROM user_tokens"))
    assert stored.access_token.encode() not in ciphertext
    [exchange] = world.state.requests_to("POST", "/oauth/token")
    assert exchange.body["grant_type"] == "authorization_code"
    assert exchange.body["redirect_uri"] == f"{jira_bridge.harness.base_url}/jira/oauth"

    dm = await alice.wait_for_invite()
    await alice.join(dm)
    await alice.wait_for_message(
        dm, is_notice_with(f"You are now logged in to JIRA as **Alice Liddell**. Sites: [{world.site.name}]")
    )
    assert await jira_bridge.rest("GET", "/jira/account", alice.user_id) == (
        200, {"loggedIn": True, "instances": [{"name": world.site.name, "url": world.site.url, "id": world.site.id}]}
    )

    # A state works once: the replayed callback is refused, and Atlassian is not asked again.
    status, page = await http("GET", callback)
    assert status == 400 and "already used or expired" in page
    assert len(world.state.requests_to("POST", "/oauth/token")) == 1


async def test_forged_expired_and_refused_callbacks(jira_bridge: JiraBridge, make_user: Any) -> None:
    world = jira_bridge.world
    base = jira_bridge.harness.base_url
    bob = await make_user("bob")

    status, page = await http("GET", f"{base}/jira/oauth?code=abc&state=forged-by-someone")
    assert status == 400 and "unknown, already used or expired" in page
    status, page = await http("GET", f"{base}/jira/oauth")
    assert status == 400 and "lacks the `code` or `state`" in page
    assert world.state.requests_to("POST", "/oauth/token") == []

    _, body = await jira_bridge.rest("GET", "/jira/oauth", bob.user_id)
    await jira_bridge.services.db.execute("UPDATE oauth_states SET created_at = now() - interval '31 minutes'")
    status, page = await http("GET", f"{base}/jira/oauth?code=abc&state={state_of(body['url'])}")
    assert status == 400 and "expired" in page
    assert world.state.requests_to("POST", "/oauth/token") == []

    # A good state with a code Atlassian refuses: the user hears of it, nothing is stored.
    _, body = await jira_bridge.rest("GET", "/jira/oauth", bob.user_id)
    status, page = await http("GET", f"{base}/jira/oauth?code=invented&state={state_of(body['url'])}")
    assert status == 400 and "Invalid authorization code" in page
    assert await jira_bridge.integration.accounts.stored(bob.user_id) is None
    dm = await bob.wait_for_invite()
    await bob.join(dm)
    await bob.wait_for_message(dm, is_notice_with("Your JIRA login failed: Invalid authorization code"))

    _, body = await jira_bridge.rest("GET", "/jira/oauth", bob.user_id)
    status, page = await http("GET", f"{base}/jira/oauth?error=access_denied&state={state_of(body['url'])}")
    assert status == 400 and "access_denied" in page
    await bob.wait_for_message(dm, is_notice_with("Your JIRA login did not complete: access_denied"))


async def test_a_refused_refresh_is_told_once_in_the_dm(jira_bridge: JiraBridge, make_user: Any) -> None:
    world = jira_bridge.world
    carol = await make_user("carol")
    dm = await carol.create_room(invite=[BOT], is_direct=True)
    await carol.wait_for_message(dm, is_notice_with("Hello!"))
    world.state.expires_in = 30  # shorter than the refresh margin: every use refreshes first
    await jira_bridge.login_cloud(carol.user_id, world.alice)

    await carol.send_text(dm, "jira whoami")
    await carol.wait_for_message(dm, is_notice_with(f"You have access to the following instances:\n - {world.site.name}"))
    assert len(world.state.spent_refresh_tokens) == 1  # refreshed (rotated) before use

    world.state.refresh_tokens.clear()  # Atlassian revoked the grant
    await carol.send_text(dm, "jira whoami")
    await carol.wait_for_message(dm, is_notice_with("You are not logged into JIRA."))
    await carol.send_text(dm, "jira whoami")

    async def replies() -> list[str]:
        return [str(e["content"].get("body")) for e in await carol.messages(dm)
                if e.get("type") == "m.room.message" and e.get("sender") == BOT]

    async def both_answered() -> list[str] | None:
        said = await replies()
        return said if said.count("You are not logged into JIRA.") == 2 else None

    said = await eventually(both_answered)
    assert said.count("You are not logged into JIRA.") == 2
    assert len([s for s in said if "could not be renewed" in s]) == 1
    stored = await jira_bridge.integration.accounts.stored(carol.user_id)
    assert isinstance(stored, StoredLogin) and stored.broken
