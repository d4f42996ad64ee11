"""Generic webhooks end to end: real Synapse, real Postgres, the bridge in-process."""

from __future__ import annotations

import pytest

from hookshot_py.generic.connection import EVENT_TYPE
from support.fixtures import BOT, room_with_bot
from support.helpers import dm_webhook_url, eventually, http, is_notice_with, wait_state


async def test_command_creates_hook_url_goes_to_dm_and_posts_reach_the_room(bridge, make_user):
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    await alice.send_text(room, "!hookshot webhook ci-builds")
    assert await wait_state(alice, room, EVENT_TYPE, "ci-builds") == {"name": "ci-builds"}
    url = await dm_webhook_url(alice, "ci-builds")
    reply = await alice.wait_for_message(room, is_notice_with("Room configured to bridge webhook"))
    assert url not in str(reply["content"])
    state_events = await alice.get_room_state(room)
    assert url.rsplit("/", 1)[1] not in str(state_events), "the hook id must never be in room state"

    status, body = await http("POST", url, json={"text": "Build **passed**"})
    assert (status, body) == (202, {"ok": True})
    msg = await alice.wait_for_message(room, is_notice_with("Build **passed**"))
    content = msg["content"]
    assert content["msgtype"] == "m.notice"
    assert "<strong>passed</strong>" in content["formatted_body"]
    assert content["uk.half-shot.hookshot.webhook_data"] == {"text": "Build **passed**"}
    assert msg["sender"] == "@_webhooks_ci-builds:hookshot.test"


async def test_bodies_and_error_answers(bridge, make_user):
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    conn, outcome = await bridge.bridge.services.manager.create(room, EVENT_TYPE, {"name": "kinds"}, user_id=alice.user_id)
    url = outcome.secrets["url"]

    assert (await http("PUT", url, data="k=v&k2=v2", headers={"Content-Type": "application/x-www-form-urlencoded"}))[0] == 202
    await alice.wait_for_message(room, lambda e: (e.get("content") or {}).get("uk.half-shot.hookshot.webhook_data") == {"k": "v", "k2": "v2"})
    assert (await http("POST", url, data="plain words", headers={"Content-Type": "text/plain"}))[0] == 202
    await alice.wait_for_message(room, is_notice_with("plain words"))
    assert (await http("POST", url, json={"username": "ci", "text": "done"}))[0] == 202
    await alice.wait_for_message(room, is_notice_with("**ci**: done"))
    assert (await http("POST", url, json={"deploy": {"env": "prod"}}))[0] == 202
    await alice.wait_for_message(room, is_notice_with('"env": "prod"'))

    status, body = await http("POST", url, data="{not json", headers={"Content-Type": "application/json"})
    assert status == 400 and body["errcode"] == "HS_BAD_VALUE" and "JSON" in body["error"]
    status, body = await http("DELETE", url)
    assert status == 405 and body["errcode"] == "HS_METHOD_NOT_ALLOWED"
    status, body = await http("GET", url)
    assert status == 405, "GET is off unless generic.enableHttpGet"
    status, body = await http("POST", url.rsplit("/", 1)[0] + "/00000000-0000-4000-8000-000000000000", json={})
    assert status == 404 and body["errcode"] == "HS_NOTFOUND"
    status, body = await http("POST", url, data=b"x" * (1024 * 1024 + 10), headers={"Content-Type": "text/plain"})
    assert status == 413 and body["errcode"] == "HS_TOO_LARGE"


@pytest.mark.parametrize("legacy_path", [False, True])
async def test_wait_for_complete_answers_200_after_sending_and_get_when_enabled(bridge_factory, make_user, legacy_path):
    harness = await bridge_factory({"generic": {"waitForComplete": True, "enableHttpGet": True}})
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    _, outcome = await harness.bridge.services.manager.create(room, EVENT_TYPE, {"name": "sync"}, user_id=alice.user_id)
    url = outcome.secrets["url"]
    if legacy_path:
        url = url.replace("/webhook/", "/")
    status, body = await http("POST", url, json={"text": "synchronous"})
    assert status == 200 and body["ok"] is True and body["eventId"].startswith("$")
    # already sent: visible right away
    events = await alice.messages(room)
    assert any(e["event_id"] == body["eventId"] for e in events)
    status, _ = await http("GET", url + "?text=from+get")
    assert status == 200
    await alice.wait_for_message(room, is_notice_with("from get"))


async def test_list_remove_help_usage_and_refusals(bridge, make_user):
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    await alice.send_text(room, "!hookshot webhook")
    await alice.wait_for_message(room, is_notice_with("Usage: `!hookshot webhook <name> [duration]"))
    await alice.send_text(room, "!hookshot webhook ab")
    await alice.wait_for_message(room, is_notice_with("between 3 and 64"))
    await alice.send_text(room, "!hookshot webhook one")
    await wait_state(alice, room, EVENT_TYPE, "one")
    await alice.send_text(room, "!hookshot webhook one")
    await alice.wait_for_message(room, is_notice_with("already exists"))
    await alice.send_text(room, "!hookshot webhook list")
    await alice.wait_for_message(room, is_notice_with("- one"))
    await alice.send_text(room, "!hookshot help")
    await alice.wait_for_message(room, is_notice_with("!hookshot webhook remove <name>"))
    await alice.send_text(room, "!hookshot webhok x")
    await alice.wait_for_message(room, is_notice_with("Did you mean `!hookshot webhook`?"))
    await alice.send_text(room, '!hookshot webhook "unclosed')
    await alice.wait_for_message(room, is_notice_with("quote is not closed"))

    # bob is in the room but has power level 0: refused with the level he needs
    bob = await make_user("bob")
    await alice.invite(room, bob.user_id)
    await bob.join(room)
    await bob.send_text(room, "!hookshot webhook bobs")
    await alice.wait_for_message(room, is_notice_with("needs at least 50"))

    await alice.send_text(room, "!hookshot webhook remove nope")
    await alice.wait_for_message(room, is_notice_with("There is no webhook named 'nope'"))
    await alice.send_text(room, "!hookshot webhook remove one")
    await alice.wait_for_message(room, is_notice_with("Removed webhook **one**"))
    assert (await alice.get_state(room, EVENT_TYPE, "one")) in (None, {"disabled": True})
    assert bridge.bridge.services.manager.connections(room) == []


async def test_bot_without_power_says_what_it_needs(bridge, make_user):
    alice = await make_user("alice")
    room = await room_with_bot(alice, bot_level=None)
    await alice.send_text(room, "!hookshot webhook nopower")
    await alice.wait_for_message(room, is_notice_with("Bot has a power level of 0 but needs at least 50"))


async def test_invite_from_user_without_permission_is_refused(bridge_factory, make_user):
    await bridge_factory({"permissions": [{"actor": "@nobody:hookshot.test", "services": [{"service": "*", "level": "admin"}]}]})
    alice = await make_user("alice")
    room = await alice.create_room(invite=[BOT])

    async def bot_left():
        state = await alice.get_state(room, "m.room.member", BOT)
        return state and state.get("membership") == "leave"

    await eventually(bot_left)
