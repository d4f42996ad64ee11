"""Seed 000's JIRA routes on a running bridge against the fake JIRA: `/v1/jira/oauth`,
`/v1/jira/account`, `/v1/jira/instances/{instanceName}/projects` (paged), JiraProject in
`/v1/connectiontypes`, and `PUT /v1/{roomId}/connections/uk.half-shot.matrix-hookshot.jira.project`
with `{url}`, which needs a user who can see the project. Errors in the seed's `HS_*` form."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from hookshot_py.jira.models import EVENT_TYPE
from support.fixtures import BOT, room_with_bot
from support.helpers import wait_state

from .conftest import CLIENT_ID, JiraBridge

ALICE = "@alice:hookshot.test"


async def test_connection_types_and_oauth_link(jira_bridge: JiraBridge) -> None:
    status, types = await jira_bridge.rest("GET", "/connectiontypes")
    assert status == 200
    assert types["JiraProject"] == {"type": "JiraProject", "eventType": EVENT_TYPE, "service": "jira", "botUserId": BOT}

    status, body = await jira_bridge.rest("GET", "/jira/oauth", ALICE)
    assert status == 200 and set(body) == {"url"}
    url = urlsplit(body["url"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{jira_bridge.world.base_url}/authorize"
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert query["client_id"] == CLIENT_ID and query["audience"] == "api.atlassian.com"
    assert "offline_access" in query["scope"].split() and len(query["state"]) >= 32
    assert query["redirect_uri"] == f"{jira_bridge.harness.base_url}/jira/oauth"

    status, body = await jira_bridge.rest("GET", "/jira/oauth", "not-a-user-id")
    assert status == 400 and body["errcode"] == "HS_BAD_VALUE"
    status, body = await jira_bridge.rest("GET", "/jira/oauth")
    assert status == 400 and body["errcode"] == "HS_BAD_VALUE"


async def test_account_and_projects(jira_bridge: JiraBridge) -> None:
    world = jira_bridge.world
    assert await jira_bridge.rest("GET", "/jira/account", ALICE) == (200, {"loggedIn": False})
    status, body = await jira_bridge.rest("GET", f"/jira/instances/{world.site.name}/projects", ALICE)
    assert status == 403 and body["errcode"] == "HS_FORBIDDEN_USER" and "not authenticated with JIRA" in body["error"]

    other = world.state.add_site(world.site.name + "-two")
    world.state.add_project(other, "TWO", "Second site", [world.alice])
    for i in range(23):
        world.state.add_project(world.site, f"Q{i:02d}", f"Quarter {i}", [world.alice])
    await jira_bridge.login_cloud(ALICE, world.alice, [world.site, other])

    status, body = await jira_bridge.rest("GET", "/jira/account", ALICE)
    assert status == 200 and body == {
        "loggedIn": True,
        "instances": [
            {"name": world.site.name, "url": world.site.url, "id": world.site.id},
            {"name": other.name, "url": other.url, "id": other.id},
        ],
    }

    path = f"/jira/instances/{world.site.name}/projects"
    status, projects = await jira_bridge.rest("GET", path, ALICE)
    assert status == 200 and len(projects) == 25
    play = next(p for p in projects if p["key"] == "PLAY")
    assert play == {"key": "PLAY", "name": "Jira Playground", "id": world.play.id,
                    "url": f"{world.site.url}/projects/PLAY"}

    seen: list[str] = []
    for page in (1, 2, 3):
        status, chunk = await jira_bridge.rest("GET", path, ALICE, page=str(page), perPage="10")
        assert status == 200
        seen += [p["key"] for p in chunk]
    assert len(seen) == 25 and seen == sorted(p["key"] for p in projects)
    assert await jira_bridge.rest("GET", path, ALICE, page="4", perPage="10") == (200, [])
    status, found = await jira_bridge.rest("GET", path, ALICE, search="playground")
    assert [p["key"] for p in found] == ["PLAY"]

    status, two = await jira_bridge.rest("GET", f"/jira/instances/{other.id}/projects", ALICE)
    assert status == 200 and [p["key"] for p in two] == ["TWO"]  # the site's id works too
    status, body = await jira_bridge.rest("GET", "/jira/instances/nowhere/projects", ALICE)
    assert (status, body["errcode"], body["error"]) == (
        403, "HS_FORBIDDEN_USER", "Instance not known or not accessible to this user."
    )
    status, body = await jira_bridge.rest("GET", path, ALICE, perPage="1000")
    assert status == 400 and "perPage" in body["error"]


async def test_create_needs_a_user_who_can_see_the_project(jira_bridge: JiraBridge, make_user: Any) -> None:
    world = jira_bridge.world
    alice, bob, carol = await make_user("alice"), await make_user("bob"), await make_user("carol")
    room = await room_with_bot(alice)
    for user in (bob, carol):
        await alice.invite(room, user.user_id)
        await user.join(room)
    await alice.set_power_levels(room, {BOT: 50, bob.user_id: 50, carol.user_id: 50})
    await jira_bridge.login_cloud(alice.user_id, world.alice)
    await jira_bridge.login_cloud(bob.user_id, world.bob)
    create = f"/{room}/connections/{EVENT_TYPE}"

    status, body = await jira_bridge.rest("PUT", create, carol.user_id, {"url": f"{world.site.url}/projects/PLAY"})
    assert status == 403 and body["errcode"] == "HS_FORBIDDEN_USER" and "jira login" in body["error"]
    status, body = await jira_bridge.rest("PUT", create, bob.user_id, {"url": f"{world.site.url}/projects/WEB"})
    assert status == 403 and body["errcode"] == "HS_FORBIDDEN_USER"
    assert body["error"].startswith("Requested project was not found")
    status, body = await jira_bridge.rest("PUT", create, alice.user_id, {"url": "https://elsewhere.atlassian.net/projects/PLAY"})
    assert status == 403 and "not authenticated with this JIRA instance" in body["error"]
    status, body = await jira_bridge.rest("PUT", create, alice.user_id, {"url": "https://x/browse/PLAY-1", "events": ["nope"], "extra": 1})
    assert status == 400 and body["errcode"] == "HS_BAD_VALUE"
    assert {e["path"] for e in body["validationErrors"]} == {"/url", "/events", "/extra"}

    url = f"{world.site.url}/jira/software/c/projects/play/boards/1"
    status, conn = await jira_bridge.rest("PUT", create, alice.user_id, {"url": url, "events": ["issue_created", "comment_created"]})
    assert status == 200, conn
    canonical = f"{world.site.url}/projects/PLAY"
    assert conn["type"] == "JiraProject" and conn["service"] == "jira" and conn["eventType"] == EVENT_TYPE
    assert conn["config"] == {"url": canonical, "events": ["issue_created", "comment_created"], "id": world.play.id}
    assert await wait_state(alice, room, EVENT_TYPE, canonical) == conn["config"]

    status, body = await jira_bridge.rest("PUT", create, alice.user_id, {"url": canonical})
    assert status == 409 and body["errcode"] == "HS_CONFLICTING_CONNECTION"
    # An edit changes nothing on JIRA: carol, who has no JIRA login, may change the events.
    status, patched = await jira_bridge.rest("PATCH", f"/{room}/connections/{conn['id']}", carol.user_id,
                                             {"events": ["issue_updated"], "commandPrefix": "!pl"})
    assert status == 200 and patched["config"]["events"] == ["issue_updated"]
    assert patched["config"]["id"] == world.play.id
    status, listed = await jira_bridge.rest("GET", f"/{room}/connections", alice.user_id)
    assert [c["config"]["url"] for c in listed] == [canonical]
    assert await jira_bridge.rest("DELETE", f"/{room}/connections/{conn['id']}", alice.user_id) == (200, {"ok": True})
    assert await alice.get_state(room, EVENT_TYPE, canonical) in ({"disabled": True},)


async def test_without_oauth_or_on_premise_the_oauth_route_says_how_to_log_in(start_jira_bridge: Any) -> None:
    bridge = await start_jira_bridge(oauth=False)
    status, body = await bridge.rest("GET", "/jira/oauth", ALICE)
    assert status == 404 and body["errcode"] == "HS_DISABLED_FEATURE" and "JIRA OAuth is disabled" in body["error"]
    await bridge.harness.stop()
    on_prem = await start_jira_bridge(on_prem=True)
    status, body = await on_prem.rest("GET", "/jira/oauth", ALICE)
    assert status == 404 and "jira personaltoken" in body["error"]
    token = on_prem.world.state.add_pat(on_prem.world.alice)
    stored, _ = await on_prem.integration.accounts.verify_pat(token)
    await on_prem.integration.accounts.put(ALICE, stored)
    status, body = await on_prem.rest("GET", "/jira/account", ALICE)
    host = urlsplit(on_prem.world.base_url).netloc
    assert body == {"loggedIn": True, "instances": [{"name": host, "url": on_prem.world.base_url, "id": "on-prem"}]}
    status, projects = await on_prem.rest("GET", f"/jira/instances/{host}/projects", ALICE)
    assert status == 200 and projects == [
        {"key": "OPS", "name": "Operations", "id": on_prem.world.ops.id, "url": f"{on_prem.world.base_url}/projects/OPS"}
    ]
