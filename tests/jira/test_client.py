"""The REST client and Atlassian's OAuth server, against the fake JIRA (cloud v3, on-premise v2)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from hookshot_py.jira.auth import SCOPES, AtlassianAuth, authorize_url
from hookshot_py.jira.client import INVALID, JiraClient, JiraError, adf_paragraphs

from .conftest import CLIENT_ID, CLIENT_SECRET, World

REDIRECT = "https://bridge.example/jira/oauth"


def cloud_client(world: World, session: aiohttp.ClientSession, token: str) -> JiraClient:
    return JiraClient(f"{world.base_url}/ex/jira/{world.site.id}/rest/api/3", token, session, cloud=True)


def on_prem_client(world: World, session: aiohttp.ClientSession, token: str) -> JiraClient:
    return JiraClient(f"{world.base_url}/rest/api/2", token, session, cloud=False)


@pytest.fixture
def auth(world: World, server: TestServer, session: aiohttp.ClientSession) -> AtlassianAuth:
    world.state.add_client(CLIENT_ID, CLIENT_SECRET, REDIRECT)
    return AtlassianAuth(world.base_url, world.base_url, CLIENT_ID, CLIENT_SECRET, REDIRECT, session)


def test_authorize_url_asks_for_a_refresh_token() -> None:
    url = authorize_url("https://auth.atlassian.com", "cid", REDIRECT, "st4te")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://auth.atlassian.com/authorize"
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert q == {
        "audience": "api.atlassian.com", "client_id": "cid", "scope": " ".join(SCOPES), "redirect_uri": REDIRECT,
        "state": "st4te", "response_type": "code", "prompt": "consent",
    }
    assert "offline_access" in q["scope"].split()
    assert "%20" in parts.query  # scopes separated by encoded spaces, as Atlassian documents


async def test_code_exchange_resources_and_rotating_refresh(
    world: World, auth: AtlassianAuth, session: aiohttp.ClientSession
) -> None:
    async with session.get(auth.authorize_url("s1"), allow_redirects=False) as resp:
        assert resp.status == 302
        back = parse_qs(urlsplit(resp.headers["Location"]).query)
    assert back["state"] == ["s1"]
    grant = await auth.exchange(back["code"][0])
    assert grant.refresh_token and grant.expires_in == 3600
    with pytest.raises(JiraError) as reused:
        await auth.exchange(back["code"][0])
    assert reused.value.status == 403 and reused.value.refused

    [site] = await auth.resources(grant.access_token)
    assert (site.id, site.name, site.url) == (world.site.id, world.site.name, world.site.url)
    assert (await auth.me(grant.access_token)).name == "Alice Liddell"

    renewed = await auth.refresh(grant.refresh_token)
    assert renewed.refresh_token not in (None, grant.refresh_token)
    with pytest.raises(JiraError) as spent:
        await auth.refresh(grant.refresh_token)  # rotated: the old one no longer works
    assert spent.value.status == 403 and spent.value.refused and "invalid refresh token" in spent.value.message
    assert (await auth.me(renewed.access_token)).account_id == world.alice.account_id

    world.state.token_outage = 503
    with pytest.raises(JiraError) as outage:
        await auth.refresh(renewed.refresh_token or "")
    assert outage.value.status == 503 and not outage.value.refused


async def test_cloud_rest_v3(world: World, server: TestServer, session: aiohttp.ClientSession) -> None:
    access, _ = world.state.grant(world.alice, CLIENT_ID, [world.site])
    client = cloud_client(world, session, access)
    me = await client.myself()
    assert (me.account_id, me.display_name) == (world.alice.account_id, "Alice Liddell")
    project = await client.project("play")
    assert (project.key, project.id) == ("PLAY", world.play.id)
    assert [t.name for t in project.issue_types if not t.subtask] == ["Task", "Bug"]

    created = await client.create_issue("PLAY", "10002", "It broke", "Line one\nline two\n\nSecond", ["a", "b"])
    assert created.key == "PLAY-1"
    [post] = world.state.requests_to("POST", "/rest/api/3/issue")
    assert post.body["fields"]["description"] == adf_paragraphs("Line one\nline two\n\nSecond")
    assert post.headers["Authorization"] == f"Bearer {access}"

    with pytest.raises(JiraError) as bad:
        await client.create_issue("PLAY", "10001", "x", None, ["has space"])
    assert bad.value.status == 400 and "labels: The label 'has space' contains spaces" in bad.value.describe()

    [bob] = await client.assignable_users("PLAY-1", "bob")
    assert bob.account_id == world.bob.account_id
    await client.assign("PLAY-1", bob)
    assert world.play.issues["PLAY-1"].assignee == world.bob.account_id
    assert (await client.issue("PLAY-1")).fields.summary == "It broke"

    with pytest.raises(JiraError) as hidden:
        await cloud_client(world, session, world.state.grant(world.bob, CLIENT_ID, [world.site])[0]).project("WEB")
    assert hidden.value.status == 404 and "No project could be found with key 'WEB'." in hidden.value.describe()

    with pytest.raises(JiraError) as unknown:
        await cloud_client(world, session, "made-up").myself()
    assert unknown.value.status == 401 and "log in to JIRA again" in unknown.value.describe()


async def test_cloud_project_pages(world: World, server: TestServer, session: aiohttp.ClientSession) -> None:
    for i in range(60):
        world.state.add_project(world.site, f"P{i:02d}", f"Project {i}", [world.alice])
    client = cloud_client(world, session, world.state.grant(world.alice, CLIENT_ID, [world.site])[0])
    first = await client.projects(0, 100)  # JIRA caps a page at 50
    assert len(first.values) == 50 and first.is_last is False and first.total == 62
    last = await client.projects(50, 50)
    assert [p.key for p in last.values][-2:] == ["PLAY", "WEB"] and last.is_last is True
    found = await client.projects(0, 10, "play")
    assert [p.key for p in found.values] == ["PLAY"] and found.is_last


async def test_on_prem_rest_v2(world: World, server: TestServer, session: aiohttp.ClientSession) -> None:
    token = world.state.add_pat(world.alice)
    client = on_prem_client(world, session, token)
    me = await client.myself()
    assert (me.name, me.account_id) == ("alice", None)
    page = await client.projects(0, 10)
    assert [p.key for p in page.values] == ["OPS"] and page.is_last
    assert not world.state.requests_to("GET", "/project/search")  # the whole list, as older servers have it
    created = await client.create_issue("OPS", "10001", "Disk full", "As text", [])
    [post] = world.state.requests_to("POST", "/rest/api/2/issue")
    assert post.body["fields"]["description"] == "As text"
    [bob] = await client.assignable_users(created.key, "bob")
    await client.assign(created.key, bob)
    [put] = world.state.requests_to("PUT", f"/issue/{created.key}/assignee")
    assert put.body == {"name": "bob"}

    with pytest.raises(JiraError) as bad:
        await on_prem_client(world, session, "nope").myself()
    assert bad.value.status == 401


async def test_answers_that_do_not_fit(aiohttp_server: Any, session: aiohttp.ClientSession) -> None:
    from aiohttp import web

    async def myself(_: web.Request) -> web.Response:
        return web.json_response({"accountId": 5})

    async def projects(_: web.Request) -> web.Response:
        return web.Response(text="<html>oops</html>")

    app = web.Application()
    app.router.add_get("/myself", myself)
    app.router.add_get("/project", projects)
    srv = await aiohttp_server(app)
    client = JiraClient(str(srv.make_url("")).rstrip("/"), "t", session, cloud=False)
    with pytest.raises(JiraError) as odd:
        await client.myself()
    assert odd.value.kind == INVALID and "accountId" in odd.value.describe()
    with pytest.raises(JiraError) as html:
        await client.projects(0, 10)
    assert html.value.kind == INVALID and "not understood" in html.value.describe()
