"""Provisioning API v1 against a real Synapse: auth, rooms, permissions, CRUD, errors."""

from __future__ import annotations

import hashlib

import pytest

from hookshot_py.generic.connection import EVENT_TYPE
from support.bridge import PROVISIONING_SECRET
from support.fixtures import BOT, room_with_bot
from support.helpers import http, is_notice_with

AUTH = {"Authorization": f"Bearer {PROVISIONING_SECRET}"}


def v1(bridge, path: str) -> str:
    return f"{bridge.base_url}/v1{path}"


async def test_health_and_connection_types(bridge):
    assert await http("GET", v1(bridge, "/health")) == (200, {})
    status, body = await http("GET", v1(bridge, "/connectiontypes"), headers=AUTH)
    assert status == 200
    assert body["Webhook"] == {"type": "Webhook", "eventType": EVENT_TYPE, "service": "webhook", "botUserId": BOT}


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": PROVISIONING_SECRET}, {"Authorization": "Basic x"}],
)
async def test_bad_or_missing_token_is_401(bridge, headers):
    status, body = await http("GET", v1(bridge, "/connectiontypes"), headers=headers)
    assert status == 401 and body["errcode"] == "HS_BAD_TOKEN"


async def test_crud_round_trip_and_secrets_only_for_editors(bridge, make_user):
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    q = f"?userId={alice.user_id}"
    status, created = await http("PUT", v1(bridge, f"/{room}/connections/{EVENT_TYPE}{q}"), json={"name": "rest-hook"}, headers=AUTH)
    assert status == 200, created
    expected_id = hashlib.md5(f"{room}/{EVENT_TYPE}/rest-hook".encode()).hexdigest()
    assert created["id"] == expected_id
    assert created["config"] == {"name": "rest-hook"}
    assert created["secrets"]["url"].startswith(f"{bridge.base_url}/webhook/")
    assert "hookId" not in created["config"] and "url" not in created["config"]

    status, listed = await http("GET", v1(bridge, f"/{room}/connections{q}"), headers=AUTH)
    assert status == 200 and [c["id"] for c in listed] == [expected_id]
    assert listed[0]["secrets"]["url"] == created["secrets"]["url"]

    # visible to bot commands at once
    await alice.send_text(room, "!hookshot webhook list")
    await alice.wait_for_message(room, is_notice_with("- rest-hook"))

    status, patched = await http("PATCH", v1(bridge, f"/{room}/connections/{expected_id}{q}"), json={"waitForComplete": True}, headers=AUTH)
    assert status == 200 and patched["config"] == {"name": "rest-hook", "waitForComplete": True}
    assert await alice.get_state(room, EVENT_TYPE, "rest-hook") == {"name": "rest-hook", "waitForComplete": True}

    # a joined user without power sees the connection but not its secret
    bob = await make_user("bob")
    await alice.invite(room, bob.user_id)
    await bob.join(room)
    status, one = await http("GET", v1(bridge, f"/{room}/connections/{expected_id}?userId={bob.user_id}"), headers=AUTH)
    assert status == 200 and "secrets" not in one
    status, err = await http("DELETE", v1(bridge, f"/{room}/connections/{expected_id}?userId={bob.user_id}"), headers=AUTH)
    assert status == 403 and err["errcode"] == "HS_FORBIDDEN_USER" and "needs at least 50" in err["error"]

    status, ok = await http("DELETE", v1(bridge, f"/{room}/connections/{expected_id}{q}"), headers=AUTH)
    assert (status, ok) == (200, {"ok": True})
    assert (await http("GET", v1(bridge, f"/{room}/connections/{expected_id}{q}"), headers=AUTH))[0] == 404


async def test_connection_made_by_command_is_visible_over_rest(bridge, make_user):
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    await alice.send_text(room, "!hookshot webhook by-command")
    await alice.wait_for_message(room, is_notice_with("Room configured"))
    status, listed = await http("GET", v1(bridge, f"/{room}/connections?userId={alice.user_id}"), headers=AUTH)
    assert status == 200 and [c["config"]["name"] for c in listed] == ["by-command"]
    await bridge.restart()
    status, listed = await http("GET", v1(bridge, f"/{room}/connections?userId={alice.user_id}"), headers=AUTH)
    assert [c["config"]["name"] for c in listed] == ["by-command"]


async def test_errors_are_precise(bridge, make_user):
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    q = f"?userId={alice.user_id}"

    async def call(method, path, headers=None, **kw):
        return await http(method, v1(bridge, path), headers={**AUTH, **(headers or {})}, **kw)

    status, body = await call("GET", f"/{room}/connections")
    assert status == 400 and body["errcode"] == "HS_BAD_VALUE" and "userId" in body["error"]
    status, body = await call("GET", f"/{room}/connections?userId=notauser")
    assert status == 400 and body["errcode"] == "HS_BAD_VALUE"
    status, body = await call("GET", f"/not-a-room/connections{q}")
    assert status == 400 and "roomId" in body["error"]
    status, body = await call("PUT", f"/{room}/connections/com.example.unknown{q}", json={})
    assert status == 404 and body["errcode"] == "HS_NOTFOUND"
    status, body = await call("PUT", f"/{room}/connections/{EVENT_TYPE}{q}", json=["not", "an", "object"])
    assert status == 400 and body["errcode"] == "HS_BAD_VALUE"
    status, body = await call("PUT", f"/{room}/connections/{EVENT_TYPE}{q}", data=b"{broken", )
    assert status == 400 and "JSON" in body["error"]
    for empty in (b"", b"  \n"):  # as the README promises: no body is not `{}`
        status, body = await call(
            "PUT", f"/{room}/connections/{EVENT_TYPE}{q}", data=empty, headers={"Content-Type": "application/json"}
        )
        assert status == 400 and body["errcode"] == "HS_BAD_VALUE" and "empty" in body["error"], body
    status, body = await call("PUT", f"/{room}/connections/{EVENT_TYPE}{q}", json={"name": "x", "waitForComplete": "yes"})
    assert status == 400 and {e["path"] for e in body["validationErrors"]} == {"/name", "/waitForComplete"}
    status, body = await call("PUT", f"/{room}/connections/{EVENT_TYPE}{q}", json={"name": "dup"})
    assert status == 200
    status, body = await call("PUT", f"/{room}/connections/{EVENT_TYPE}{q}", json={"name": "dup"})
    assert status == 409 and body["errcode"] == "HS_CONFLICTING_CONNECTION" and body["existingConnection"]["config"] == {"name": "dup"}
    status, body = await call("PUT", f"/{room}/connections/{EVENT_TYPE}{q}", data=b"{" + b" " * 70000 + b"}")
    assert status == 413
    status, body = await call("POST", f"/{room}/connections{q}", json={})
    assert status == 405 and body["errcode"] == "HS_METHOD_NOT_ALLOWED"
    status, body = await call("GET", "/nothing/here/at/all")
    assert status == 404 and body["errcode"] == "HS_NOTFOUND"
    status, body = await call("GET", f"/github/oauth{q}")
    assert status == 404 and body["errcode"] == "HS_DISABLED_FEATURE"
    for path in ("/jira/oauth", "/jira/account", "/jira/instances/acme/projects"):
        status, body = await call("GET", f"{path}{q}")
        assert status == 404 and body["errcode"] == "HS_DISABLED_FEATURE", path
    status, body = await call("GET", f"/{room}/connections/0123456789abcdef0123456789abcdef{q}")
    assert status == 404 and body["errcode"] == "HS_NOTFOUND"


async def test_room_access_rules(bridge, make_user):
    alice = await make_user("alice")
    outsider = await make_user("outsider")
    room = await room_with_bot(alice)

    status, body = await http("GET", v1(bridge, f"/{room}/connections?userId={outsider.user_id}"), headers=AUTH)
    assert status == 403 and body["errcode"] == "HS_NOT_IN_ROOM"

    # bot without power
    weak = await room_with_bot(alice, bot_level=None)
    status, body = await http(
        "PUT", v1(bridge, f"/{weak}/connections/{EVENT_TYPE}?userId={alice.user_id}"), json={"name": "weak"}, headers=AUTH
    )
    assert status == 403 and body["errcode"] == "HS_FORBIDDEN_BOT" and "needs at least 50" in body["error"]

    # a room the bot was never invited to, and one that does not exist
    lonely = await alice.create_room()
    status, body = await http("GET", v1(bridge, f"/{lonely}/connections?userId={alice.user_id}"), headers=AUTH)
    assert status == 403 and body["errcode"] == "HS_NOT_IN_ROOM"
    status, body = await http("GET", v1(bridge, f"/!doesnotexist/connections?userId={alice.user_id}"), headers=AUTH)
    # Synapse answers a join of an unknown room like one we were not invited to.
    assert status == 403 and body["errcode"] == "HS_NOT_IN_ROOM"

    # the bot joins a room it is invited to when needed
    invited = await alice.create_room()
    await alice.invite(invited, BOT)
    # (it may already have joined from the invite; either way the API works)
    status, body = await http("GET", v1(bridge, f"/{invited}/connections?userId={alice.user_id}"), headers=AUTH)
    assert (status, body) == (200, [])


async def test_manage_connections_permission_is_required(bridge_factory, make_user):
    harness = await bridge_factory(
        {"permissions": [{"actor": "hookshot.test", "services": [{"service": "*", "level": "commands"}]}]}
    )
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    status, body = await http(
        "PUT", f"{harness.base_url}/v1/{room}/connections/{EVENT_TYPE}?userId={alice.user_id}", json={"name": "nope"}, headers=AUTH
    )
    assert status == 403 and body["errcode"] == "HS_FORBIDDEN_USER" and "manageConnections" in body["error"]
