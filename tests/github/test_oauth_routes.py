"""The OAuth round trip: a link from the bridge, the fake GitHub's authorize page, the callback
on the bridge, the token stored encrypted, and the user told in their DM."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp

from hookshot_py.github.accounts import StoredToken
from support.helpers import http, is_notice_with

from .conftest import OAUTH_CLIENT, GitHubBridge, rest


async def test_oauth_round_trip_stores_the_token_and_tells_the_user(gh_bridge: GitHubBridge, make_user: Any) -> None:
    gh = gh_bridge.gh
    alice = await make_user("alice")
    status, body = await rest(gh_bridge, "GET", "/github/oauth", alice.user_id)
    assert status == 200, body
    [links] = body
    user_url = urlsplit(links["user_url"])
    query = parse_qs(user_url.query)
    assert f"{user_url.scheme}://{user_url.netloc}{user_url.path}" == f"{gh_bridge.api}/login/oauth/authorize"
    assert query["client_id"] == [OAUTH_CLIENT[0]]
    assert query["redirect_uri"] == [f"{gh_bridge.harness.base_url}/github/oauth"]
    state = query["state"][0]
    assert len(state) >= 32
    assert links["org_url"] == f"{gh_bridge.api}/settings/connections/applications/{OAUTH_CLIENT[0]}"

    # The browser: GitHub's authorize page redirects back to the bridge's callback.
    async with aiohttp.ClientSession() as browser:
        async with browser.get(links["user_url"] + "&login=alice") as resp:
            page = await resp.text()
            callback = str(resp.url)
            assert resp.status == 200, page
    assert callback.startswith(f"{gh_bridge.harness.base_url}/github/oauth?code=")
    assert "logged in as alice" in page

    stored = StoredToken.from_json(await gh_bridge.services.tokens.get(alice.user_id, "github"))
    assert stored is not None and stored.login == "alice" and stored.kind == "oauth"
    assert gh.tokens[stored.token] == "alice"
    ciphertext = await gh_bridge.services.db.fetchval("SELECT ciphertext FROM user_tokens")
    assert stored.token.encode() not in bytes(ciphertext)
    [exchange] = gh.requests_to("POST", "/login/oauth/access_token")
    assert "client_secret=" + OAUTH_CLIENT[1] in exchange.body

    dm = await alice.wait_for_invite()
    await alice.join(dm)
    await alice.wait_for_message(dm, is_notice_with("You are now logged in to GitHub as **alice**"))

    # The state is single use: replaying the callback is refused, nothing changes.
    status, page = await http("GET", callback)
    assert status == 400 and "already used or expired" in page
    status, page = await http("GET", f"{gh_bridge.harness.base_url}/oauth?code=abc&state=made-up")
    assert status == 400 and "unknown" in page


async def test_callback_refusals_and_failed_exchange(gh_bridge: GitHubBridge, make_user: Any) -> None:
    base = gh_bridge.harness.base_url
    bob = await make_user("bob")
    status, page = await http("GET", f"{base}/github/oauth")
    assert status == 400 and "lacks the `code` or `state`" in page

    # GitHub refuses the code (an invented one): the user hears about it, no token is stored.
    status, [links] = await rest(gh_bridge, "GET", "/github/oauth", bob.user_id)
    state = parse_qs(urlsplit(links["user_url"]).query)["state"][0]
    status, page = await http("GET", f"{base}/oauth?code=not-a-code&state={state}")
    assert status == 400 and "bad_verification_code" in page
    assert await gh_bridge.services.tokens.get(bob.user_id, "github") is None
    dm = await bob.wait_for_invite()
    await bob.join(dm)
    await bob.wait_for_message(dm, is_notice_with("Your GitHub login failed"))

    # The user denied access on GitHub.
    status, [links] = await rest(gh_bridge, "GET", "/github/oauth", bob.user_id)
    state = parse_qs(urlsplit(links["user_url"]).query)["state"][0]
    status, page = await http("GET", f"{base}/github/oauth?error=access_denied&state={state}")
    assert status == 400 and "access_denied" in page
    await bob.wait_for_message(dm, is_notice_with("did not complete: access_denied"))

    status, page = await http("GET", f"{base}/github/oauth?installation_id=5&setup_action=install")
    assert status == 200 and "installed" in page

    status, body = await rest(gh_bridge, "GET", "/github/oauth", "not-a-user")
    assert status == 400 and body["errcode"] == "HS_BAD_VALUE"


async def test_without_oauth_config_links_are_refused(start_github_bridge: Any) -> None:
    bridge = await start_github_bridge(oauth=None)
    status, body = await rest(bridge, "GET", "/github/oauth", "@someone:hookshot.test")
    assert status == 404 and body["errcode"] == "HS_DISABLED_FEATURE"
    assert "setpersonaltoken" in body["error"]
    status, page = await http("GET", f"{bridge.harness.base_url}/github/oauth?code=a&state=b")
    assert status == 404
