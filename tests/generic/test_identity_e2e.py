"""Per-hook identity, expiry and static connections, end to end (real Synapse and Postgres)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from hookshot_py.generic.connection import EVENT_TYPE
from hookshot_py.generic.expiry import format_expiry, parse_expiry
from hookshot_py.generic.integration import GenericIntegration
from support.bridge import PROVISIONING_SECRET
from support.fixtures import BOT, room_with_bot
from support.helpers import dm_webhook_url, eventually, http, is_notice_with, wait_state

AUTH = {"Authorization": f"Bearer {PROVISIONING_SECRET}"}


def generic(harness) -> GenericIntegration:  # type: ignore[no-untyped-def]
    return next(i for i in harness.bridge.integrations if isinstance(i, GenericIntegration))


async def provision(harness, room: str, user, method: str, path: str, state: Any) -> tuple[int, Any]:  # type: ignore[no-untyped-def]
    return await http(method, f"{harness.base_url}/v1/{room}/connections{path}?userId={user.user_id}", json=state, headers=AUTH)


async def profile(user, user_id: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return dict(await user.request("GET", f"/profile/{quote(user_id)}"))


async def test_display_name_avatar_suffix_and_msgtype(bridge_factory, make_user):
    harness = await bridge_factory({"generic": {"displaynameSuffix": " [hook]"}})
    alice = await make_user("alice")
    room = await room_with_bot(alice)

    await alice.send_text(room, "!hookshot webhook plainname")
    url = await dm_webhook_url(alice, "plainname")
    assert (await http("POST", url, json={"text": "hi"}))[0] == 202
    await alice.wait_for_message(room, is_notice_with("hi"))
    assert (await profile(alice, "@_webhooks_plainname:hookshot.test"))["displayname"] == "plainname [hook]"

    status, body = await provision(harness, room, alice, "PUT", f"/{EVENT_TYPE}", {
        "name": "deploys", "displayName": "Deploy Bot", "avatarUrl": "mxc://hookshot.test/deployavatar",
        "msgtype": "m.emote",
    })  # fmt: skip
    assert status == 200, body
    conn_id, url = body["id"], body["secrets"]["url"]
    ghost = "@_webhooks_deploys:hookshot.test"
    for i in range(3):
        assert (await http("POST", url, json={"text": f"deploys {i}"}))[0] == 202
    msg = await alice.wait_for_message(room, is_notice_with("deploys 2"))
    assert msg["sender"] == ghost and msg["content"]["msgtype"] == "m.emote"
    assert await profile(alice, ghost) == {"displayname": "Deploy Bot", "avatar_url": "mxc://hookshot.test/deployavatar"}

    # a new name is applied when the state changes, without waiting for a message
    status, _ = await provision(harness, room, alice, "PATCH", f"/{conn_id}", {"displayName": "Deploy Bot 2"})
    assert status == 200

    async def renamed() -> bool:
        return (await profile(alice, ghost)).get("displayname") == "Deploy Bot 2"

    await eventually(renamed)
    for i in range(3, 5):
        assert (await http("POST", url, json={"text": f"deploys {i}"}))[0] == 202
    await alice.wait_for_message(room, is_notice_with("deploys 4"))
    # never per message: the ghost's membership changed once for its join, once for the rename
    members = [e for e in await alice.messages(room) if e["type"] == "m.room.member" and e["state_key"] == ghost]
    assert [(e["content"]["membership"], e["content"].get("displayname")) for e in members] == [
        ("invite", "Deploy Bot"), ("join", "Deploy Bot"), ("join", "Deploy Bot 2"),
    ]  # fmt: skip

    for bad in ({"avatarUrl": "https://example.org/a.png"}, {"msgtype": "m.image"}, {"displayName": ""}):
        status, body = await provision(harness, room, alice, "PATCH", f"/{conn_id}", bad)
        assert status == 400 and body["errcode"] == "HS_BAD_VALUE", (bad, body)


async def test_expiring_hooks_notice_once_across_restarts_then_404(bridge_factory, make_user):
    harness = await bridge_factory({"generic": {"sendExpiryNotice": True}})
    alice = await make_user("alice")
    room = await room_with_bot(alice)

    await alice.send_text(room, "!hookshot webhook shortlived 12h")
    state = await wait_state(alice, room, EVENT_TYPE, "shortlived")
    expires = parse_expiry(state["expirationDate"])
    assert expires is not None and timedelta(hours=11) < expires - datetime.now(UTC) <= timedelta(hours=12)
    await dm_webhook_url(alice, "shortlived")

    later = format_expiry(datetime.now(UTC) + timedelta(days=4))
    status, body = await provision(harness, room, alice, "PUT", f"/{EVENT_TYPE}", {"name": "later", "expirationDate": later})
    assert status == 200, body
    assert 3 * 86400_000 < body["secrets"]["timeRemainingMs"] <= 4 * 86400_000
    url = body["secrets"]["url"]

    async def check(days_ahead: float) -> int:
        integration = generic(harness)
        hooks = list(harness.bridge.services.manager.all(EVENT_TYPE))
        return await integration.expiry.check(hooks, integration.hooks.sender_for, datetime.now(UTC) + timedelta(days=days_ahead))

    assert await check(0) == 0, "shortlived was set within the window by its creator: no notice"
    assert await check(1.5) == 1
    assert await check(1.6) == 0
    await harness.restart()
    assert await check(1.7) == 0
    notice = await alice.wait_for_message(room, is_notice_with("The webhook **later** will be expiring in"))
    assert notice["sender"] == "@_webhooks_later:hookshot.test"
    assert notice["content"]["body"] in {f"The webhook **later** will be expiring in {h} hours." for h in (59, 60)}
    notices = [e for e in await alice.messages(room) if "will be expiring" in str(e.get("content"))]
    assert len(notices) == 1

    # expired (edited by hand into the past): the caller is told
    await alice.send_state(room, EVENT_TYPE, "later", {"name": "later", "expirationDate": "2020-01-01T00:00:00.000Z"})

    async def expired() -> bool:
        return (await http("POST", url, json={}))[0] == 404

    await eventually(expired)
    status, body = await http("POST", url, json={})
    assert status == 404 and body["error"] == "This hook has expired" and body["ok"] is False

    await alice.send_text(room, "!hookshot webhook another soon")
    await alice.wait_for_message(room, is_notice_with("'soon' is not a duration"))


async def test_static_connections_from_the_config(bridge_factory, make_user):
    alice = await make_user("alice")
    harness = await bridge_factory(start=False)
    room = await alice.create_room(invite=[BOT], name="static room")
    await alice.set_power_levels(room, {BOT: 50})
    harness.overrides = {
        "generic": {"allowJsTransformationFunctions": True, "waitForComplete": True},
        "connections": [
            {"connectionType": EVENT_TYPE, "stateKey": "static-basic-0123456789", "roomId": room, "state": {"name": "My hook"}},
            {"connectionType": EVENT_TYPE, "stateKey": "static-func-0123456789", "roomId": room,
             "state": {"name": "My func", "transformationFunction": 'result = {plain: "Hello world", version: "v2"};'}},
        ],
    }  # fmt: skip
    await harness.start()
    base = f"{harness.base_url}/webhook"

    status, body = await http("PUT", f"{base}/static-basic-0123456789", data="Hello world")
    assert status == 200 and body["ok"] is True
    msg = await alice.wait_for_message(room, is_notice_with("Received webhook data: Hello world"))
    assert msg["content"]["uk.half-shot.hookshot.webhook_data"] == "Hello world"
    assert msg["sender"] == "@_webhooks_myhook:hookshot.test"
    status, _ = await http("PUT", f"{base}/static-func-0123456789", data="{}")
    assert status == 200
    msg = await alice.wait_for_message(room, lambda e: (e.get("content") or {}).get("body") == "Hello world")
    assert msg["content"]["uk.half-shot.hookshot.webhook_data"] == "{}"

    # never in room state, and immutable from the API and from the room
    assert await alice.get_state(room, EVENT_TYPE, "static-basic-0123456789") is None
    status, listed = await provision(harness, room, alice, "GET", "", None)
    assert status == 200 and sorted(c["config"]["name"] for c in listed) == ["My func", "My hook"]
    conn_id = next(c["id"] for c in listed if c["config"]["name"] == "My hook")
    assert next(c for c in listed if c["id"] == conn_id)["secrets"]["hookId"] == "static-basic-0123456789"
    for method, patch in (("PATCH", {"waitForComplete": False}), ("DELETE", None)):
        status, body = await provision(harness, room, alice, method, f"/{conn_id}", patch)
        assert status == 400 and body["errcode"] == "HS_UNSUPPORTED_OPERATION"
        assert body["error"].startswith("Connection is static and cannot be changed at runtime")
    await alice.send_text(room, "!hookshot webhook list")
    await alice.wait_for_message(room, is_notice_with("- My hook (static)"))
    await alice.send_text(room, "!hookshot webhook remove static-basic-0123456789")
    await alice.wait_for_message(room, is_notice_with("Failed to handle command: Connection is static"))
    # a state event with the same key does not replace it
    await alice.send_state(room, EVENT_TYPE, "static-basic-0123456789", {"name": "hijack", "waitForComplete": False})
    status, body = await http("PUT", f"{base}/static-basic-0123456789", data="still static")
    assert status == 200 and body["ok"] is True
