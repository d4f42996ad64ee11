"""Outbound webhooks end to end: real Synapse, real Postgres, the bridge in-process, a local
receiver that fails, then recovers. The bridge may reach 127.0.0.1 only (`outboundUrls`)."""

from __future__ import annotations

import os
import re
from typing import Any

from fakes.receiver import Receiver, verify
from support.bridge import PROVISIONING_SECRET, BridgeHarness
from support.fixtures import BOT, room_with_bot
from support.helpers import eventually, http, is_notice_with, wait_state

from hookshot_py.outbound.connection import EVENT_TYPE
from hookshot_py.outbound.request import SIGNATURE_HEADER

AUTH = {"Authorization": f"Bearer {PROVISIONING_SECRET}"}
OUTBOUND = {
    "generic": {"outbound": True, "outboundDelivery": {"timeoutSeconds": 5}},
    "outboundUrls": {"allowedIpRanges": ["127.0.0.1/32"]},
}
TOKEN_RE = re.compile(r"`(hs-ob-[0-9a-f-]{36})`")


async def api(harness: BridgeHarness, method: str, path: str, user: Any, body: Any = None,
              **query: str) -> tuple[int, Any]:  # fmt: skip
    params = "&".join(f"{k}={v}" for k, v in {"userId": user.user_id, **query}.items())
    return await http(method, f"{harness.base_url}/v1/{path}?{params}", json=body, headers=AUTH)


async def dm_token(client: Any, name: str) -> str:
    dm = await client.wait_for_invite()
    await client.join(dm)
    event = await client.wait_for_message(dm, is_notice_with(f"**{name}**"))
    match = TOKEN_RE.search(event["content"]["body"])
    assert match, event
    return match.group(1)


async def upload(client: Any, data: bytes, content_type: str) -> str:
    async with client.session.post(f"{client.base_url}/_matrix/media/v3/upload", data=data,
                                   headers={"Content-Type": content_type}) as resp:  # fmt: skip
        assert resp.status == 200, await resp.text()
        return str((await resp.json())["content_uri"])


async def test_room_events_reach_the_receiver_signed_in_order_across_an_outage(
    bridge_factory: Any, make_user: Any, aiohttp_server: Any
) -> None:
    receiver = Receiver()
    server = await aiohttp_server(receiver.app(), host="127.0.0.1")
    url = f"http://127.0.0.1:{server.port}/matrix"
    harness = await bridge_factory(OUTBOUND)
    alice = await make_user("alice")
    room = await room_with_bot(alice)

    await alice.send_text(room, f"!hookshot outbound-hook relay {url} POST")
    await alice.wait_for_message(room, is_notice_with("Room configured to bridge outbound webhook **relay**"))
    token = await dm_token(alice, "relay")
    assert await wait_state(alice, room, EVENT_TYPE, "relay") == {"name": "relay", "url": url, "method": "POST"}

    # the receiver is down: events wait, in order
    receiver.fail_status = 503
    sent = [await alice.send_text(room, f"message {n}") for n in range(3)]

    async def retried() -> bool:
        return receiver.attempts >= 3

    await eventually(retried, timeout=30)
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(2048)
    mxc = await upload(alice, png, "image/png")
    sent.append(await alice.send_event(room, "m.room.message", {
        "msgtype": "m.image", "body": "cat.png", "url": mxc, "info": {"mimetype": "image/png", "size": len(png)},
    }))  # fmt: skip
    sent.append(await alice.send_event(room, "m.reaction", {
        "m.relates_to": {"rel_type": "m.annotation", "event_id": sent[0], "key": "👍"},
    }))  # fmt: skip
    receiver.fail_status = None

    received = await receiver.wait_for(5, timeout=60)
    assert [r.headers["X-Matrix-Hookshot-EventId"] for r in received] == sent
    for r in received:
        assert r.method == "POST" and r.path == "/matrix"
        assert r.headers["X-Matrix-Hookshot-RoomId"] == room
        assert r.headers["X-Matrix-Hookshot-Token"] == token
        assert verify(token, r.body, r.headers[SIGNATURE_HEADER])
        assert r.event["sender"] == alice.user_id and r.event["room_id"] == room
    assert [r.event["content"].get("body") for r in received[:3]] == ["message 0", "message 1", "message 2"]
    assert received[3].parts["media"] == ("cat.png", "image/png", png)
    assert received[4].event["type"] == "m.reaction" and set(received[4].parts) == {"event"}

    # the bridge's own messages (the bot's replies, a generic webhook's user) are not sent out
    await alice.send_text(room, "!hookshot webhook inbound")
    await alice.wait_for_message(room, is_notice_with("Room configured to bridge webhook **inbound**"))
    status, conns = await api(harness, "GET", f"{room}/connections", alice)
    [inbound] = [c for c in conns if c["type"] == "Webhook"]
    assert (await http("POST", inbound["secrets"]["url"], json={"text": "from the hook's user"}))[0] == 202
    ghost_post = await alice.wait_for_message(room, is_notice_with("from the hook's user"))
    assert ghost_post["sender"].startswith("@_webhooks_inbound")
    await alice.send_text(room, "last")
    last = await receiver.wait_for(7, timeout=30)  # "!hookshot webhook inbound" and "last"
    assert [r.event["content"].get("body") for r in last[5:]] == ["!hookshot webhook inbound", "last"]
    assert all(r.event["sender"] == alice.user_id for r in last)

    # the token was never in the room
    assert token not in str(await alice.messages(room))

    # the delivery log over the provisioning API
    status, conns = await api(harness, "GET", f"{room}/connections", alice)
    assert status == 200, conns
    [hook] = [c for c in conns if c["eventType"] == EVENT_TYPE]
    assert hook["service"] == "genericOutbound" and hook["secrets"] == {"token": token}
    status, log = await api(harness, "GET", f"{room}/connections/{hook['id']}/deliveries", alice, limit="5")
    assert status == 200, log
    assert log["counts"] == {"pending": 0, "delivered": 7, "failed": 0}
    assert [e["eventId"] for e in log["deliveries"]] == [r.headers["X-Matrix-Hookshot-EventId"] for r in last[2:]][::-1]
    status, older = await api(harness, "GET", f"{room}/connections/{hook['id']}/deliveries", alice,
                              before=str(log["next"]))  # fmt: skip
    first = older["deliveries"][-1]
    assert first["eventId"] == sent[0] and first["attempts"] > 1 and first["error"].startswith("HTTP 503")
    assert older["next"] is None
    bob = await make_user("bob")  # in the room, but may not edit its connections
    await alice.invite(room, bob.user_id)
    await bob.join(room)
    status, body = await api(harness, "GET", f"{room}/connections/{hook['id']}/deliveries", bob)
    assert status == 403 and body["errcode"] == "HS_FORBIDDEN_USER", body
    status, body = await api(harness, "GET", f"{room}/connections/{inbound['id']}/deliveries", alice)
    assert status == 400 and body["errcode"] == "HS_UNSUPPORTED_OPERATION"

    # internal addresses are refused when a hook is made
    for bad in ("http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/hook", "http://[::1]:8080/"):
        status, body = await api(harness, "PUT", f"{room}/connections/{EVENT_TYPE}", alice,
                                 {"name": "bad-hook", "url": bad})  # fmt: skip
        assert status == 400 and body["errcode"] == "HS_BAD_VALUE" and "not allowed" in body["error"], body

    # removed: nothing more is sent
    await alice.send_text(room, "!hookshot outbound-hook remove relay")
    await alice.wait_for_message(room, is_notice_with("Removed outbound webhook **relay**"))
    await alice.send_text(room, "after removal")
    await alice.send_text(room, "!hookshot outbound-hook list")
    await alice.wait_for_message(room, is_notice_with("There are no outbound webhooks in this room"))
    assert len(receiver.received) == 8  # the remove command itself went out before the hook was gone


async def test_a_hand_set_hook_to_an_internal_host_is_refused_at_delivery(
    bridge_factory: Any, make_user: Any, aiohttp_server: Any
) -> None:
    """Room state set by hand is checked for literal addresses only; a name is checked when the
    connection is made, after DNS: `localhost` resolves to 127.0.0.1, which this bridge refuses."""
    receiver = Receiver()
    server = await aiohttp_server(receiver.app(), host="127.0.0.1")
    await bridge_factory({"generic": {"outbound": True}})
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    await alice.send_state(room, EVENT_TYPE, "sneaky", {"name": "sneaky", "url": f"http://localhost:{server.port}/"})
    await alice.send_state(room, EVENT_TYPE, "literal", {"name": "literal", "url": f"http://127.0.0.1:{server.port}/"})
    # (the bridge handled `sneaky` before `literal`, whose refusal it posts)
    await alice.wait_for_message(room, is_notice_with("Ignoring the OutboundWebhook connection `literal`"))
    await alice.send_text(room, "secret stuff")
    notice = await alice.wait_for_message(room, is_notice_with("**sneaky** could not deliver"), timeout=30)
    assert "refused by the outbound URL guard: localhost resolves to" in notice["content"]["body"]
    assert "loopback" in notice["content"]["body"]
    assert receiver.attempts == 0


async def test_unsupported_connections_are_reported_once_and_listed(bridge_factory: Any, make_user: Any) -> None:
    harness = await bridge_factory()  # no gitlab, no outbound webhooks
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    gitlab = "uk.half-shot.matrix-github.gitlab.repository"  # hookshot's legacy alias
    await alice.send_state(room, gitlab, "org/repo", {"instance": "gitlab.com", "path": "org/repo"})
    await alice.send_state(room, "uk.half-shot.matrix-hookshot.figma.file", "f1", {"fileId": "f1"})
    await alice.send_state(room, EVENT_TYPE, "relay", {"name": "relay", "url": "https://example.org/in"})
    await alice.wait_for_message(room, is_notice_with("GitLab project `org/repo`: The GitLab service is not enabled "
                                                      "on this bridge: enable `gitlab` in the config."))  # fmt: skip
    await alice.wait_for_message(room, is_notice_with("Figma file `f1`: Figma file connections are not supported"))
    await alice.wait_for_message(room, is_notice_with("enable `generic.outbound: true` in the config"))

    status, conns = await api(harness, "GET", f"{room}/connections", alice)
    assert status == 200
    by_type = {c["type"]: c for c in conns}
    assert set(by_type) == {"GitLabRepo", "FigmaFile", "OutboundWebhook"}
    gl = by_type["GitLabRepo"]
    assert gl["eventType"] == "uk.half-shot.matrix-hookshot.gitlab.repository" and gl["service"] == "gitlab"
    assert gl["config"] == {"instance": "gitlab.com", "path": "org/repo"} and gl["botUserId"] == BOT
    assert gl["unsupported"]["reason"].startswith("The GitLab service is not enabled")
    status, one = await api(harness, "GET", f"{room}/connections/{gl['id']}", alice)
    assert (status, one) == (200, gl)
    for method, body in (("PATCH", {"path": "x/y"}), ("DELETE", None)):
        status, err = await api(harness, method, f"{room}/connections/{gl['id']}", alice, body)
        assert status == 400 and err["errcode"] == "HS_UNSUPPORTED_OPERATION", err
        assert "kept as it is" in err["error"]
    assert await alice.get_state(room, gitlab, "org/repo") == {"instance": "gitlab.com", "path": "org/repo"}

    def unsupported_notices(events: list[dict[str, Any]]) -> int:
        return sum("does not serve" in str((e.get("content") or {}).get("body", "")) for e in events)

    assert unsupported_notices(await alice.messages(room)) == 3
    # a restart reads the room again: listed, not reported again
    bridge = await harness.restart()

    async def reconciled() -> bool:
        return not any(t.get_name() == "after-start" for t in bridge._tasks)

    await eventually(reconciled, timeout=30)
    await alice.send_text(room, "!hookshot help")
    await alice.wait_for_message(room, lambda e: e.get("sender") == BOT and "help" in str(e.get("content", {})).lower()
                                 and e["origin_server_ts"] > 0, timeout=20)  # fmt: skip
    assert unsupported_notices(await alice.messages(room)) == 3
    status, conns = await api(harness, "GET", f"{room}/connections", alice)
    assert {c["type"] for c in conns} == {"GitLabRepo", "FigmaFile", "OutboundWebhook"}
    # removed by hand: no longer listed
    await alice.send_state(room, "uk.half-shot.matrix-hookshot.figma.file", "f1", {})

    async def gone() -> bool:
        _, now = await api(harness, "GET", f"{room}/connections", alice)
        return {c["type"] for c in now} == {"GitLabRepo", "OutboundWebhook"}

    await eventually(gone)
