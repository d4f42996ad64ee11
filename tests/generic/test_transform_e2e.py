"""Transformation functions end to end: real Synapse, real Postgres, the QuickJS sandbox."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from hookshot_py.generic.connection import EVENT_TYPE
from hookshot_py.generic.transform import FAILURE_TEXT
from support.bridge import PROVISIONING_SECRET
from support.fixtures import room_with_bot
from support.helpers import dm_webhook_url, eventually, http, is_notice_with, wait_state

AUTH = {"Authorization": f"Bearer {PROVISIONING_SECRET}"}
JS = {"generic": {"allowJsTransformationFunctions": True}}
V2 = "result = {version: 'v2', plain: `**${data.who}** did ${data.what}`, mentions: {user_ids: data.ping}}"
LOOP = "while (true) {}"


async def request(method: str, url: str, **kw: Any) -> tuple[int, str, str]:
    """(status, Content-Type, body text)."""
    async with aiohttp.ClientSession() as session, session.request(method, url, **kw) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.text()


async def _at_least(count, n: int) -> bool:  # type: ignore[no-untyped-def]
    return await count() >= n


async def create(harness, room: str, user, state: dict[str, Any]) -> tuple[str, str]:
    """Create a hook over the provisioning API; returns (connection id, URL)."""
    status, body = await http(
        "PUT", f"{harness.base_url}/v1/{room}/connections/{EVENT_TYPE}?userId={user.user_id}", json=state, headers=AUTH
    )
    assert status == 200, body
    return body["id"], body["secrets"]["url"]


async def test_script_from_a_command_renders_the_message(bridge_factory, make_user):
    await bridge_factory(JS)
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    await alice.send_text(room, f"!hookshot webhook deploys\n```js\n{V2}\n```")
    state = await wait_state(alice, room, EVENT_TYPE, "deploys")
    assert state == {"name": "deploys", "transformationFunction": V2}
    url = await dm_webhook_url(alice, "deploys")

    status, body = await http("POST", url, json={"who": "ci", "what": "a deploy", "ping": [alice.user_id]})
    assert (status, body) == (202, {"ok": True})
    msg = await alice.wait_for_message(room, is_notice_with("did a deploy"))
    content = msg["content"]
    assert content["body"] == "**ci** did a deploy"
    assert content["formatted_body"] == "<p><strong>ci</strong> did a deploy</p>"
    assert content["m.mentions"] == {"user_ids": [alice.user_id]}
    assert content["uk.half-shot.hookshot.webhook_data"]["who"] == "ci"

    # the same command with another script changes it; a broken one is refused with the engine's error
    await alice.send_text(room, "!hookshot webhook deploys\n```\nresult = 'v1 style'\n```")
    await alice.wait_for_message(room, is_notice_with("Updated the script of webhook **deploys**"))
    assert (await http("POST", url, json={}))[0] == 202
    await alice.wait_for_message(room, is_notice_with("Received webhook: v1 style"))
    await alice.send_text(room, "!hookshot webhook deploys\n```\nresult = {\n```")
    await alice.wait_for_message(room, is_notice_with("Could not compile transformation function: SyntaxError"))
    assert (await alice.get_state(room, EVENT_TYPE, "deploys"))["transformationFunction"] == "result = 'v1 style'"


async def test_rest_compile_errors_runtime_failures_and_webhook_responses(bridge_factory, make_user):
    harness = await bridge_factory(JS)
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    q = f"?userId={alice.user_id}"

    status, body = await http(
        "PUT", f"{harness.base_url}/v1/{room}/connections/{EVENT_TYPE}{q}",
        json={"name": "broken", "transformationFunction": "bibble bobble"}, headers=AUTH,
    )  # fmt: skip
    assert status == 400 and body["errcode"] == "HS_BAD_VALUE"
    assert body["error"] == "Could not compile transformation function: SyntaxError: expecting ';' (line 1)"
    assert body["validationErrors"] == [{"path": "/transformationFunction", "message": "SyntaxError: expecting ';' (line 1)"}]
    assert await alice.get_state(room, EVENT_TYPE, "broken") is None

    conn_id, url = await create(harness, room, alice, {"name": "responder", "waitForComplete": True})
    script = (
        "if (data.fail) { throw new TypeError('no ' + data.fail) }\n"
        "result = {version: 'v2', plain: 'got ' + data.n, webhookResponse: "
        "{body: JSON.stringify({n: data.n}), contentType: 'application/json', statusCode: 201}}"
    )
    status, body = await http(
        "PATCH", f"{harness.base_url}/v1/{room}/connections/{conn_id}{q}", json={"transformationFunction": script},
        headers=AUTH,
    )  # fmt: skip
    assert status == 200 and body["config"]["transformationFunction"] == script

    status, ctype, text = await request("POST", url, json={"n": 7})
    assert (status, ctype, text) == (201, "application/json", '{"n":7}')
    await alice.wait_for_message(room, is_notice_with("got 7"))

    # a runtime error: hookshot's notice in the room, the error to a caller who waits
    status, body = await http("POST", url, json={"fail": "luck"})
    assert status == 422 and body["ok"] is False and body["errcode"] == "HS_BAD_VALUE"
    assert body["error"] == "The webhook's transformation function failed: TypeError: no luck (line 1)"
    failure = await alice.wait_for_message(room, is_notice_with(FAILURE_TEXT))
    assert failure["content"]["uk.half-shot.hookshot.webhook_data"] == {"fail": "luck"}

    # without waitForComplete the caller gets hookshot's 202; an empty result posts nothing
    _, quiet_url = await create(harness, room, alice, {
        "name": "quiet", "transformationFunction": "if (data.skip) { result = {version: 'v2', empty: true} } "
        "else { throw new Error('x') }",
    })  # fmt: skip
    assert await http("POST", quiet_url, json={"x": 1}) == (202, {"ok": True})

    async def failures() -> int:
        return sum(FAILURE_TEXT in str((e.get("content") or {}).get("body")) for e in await alice.messages(room))

    assert await eventually(lambda: _at_least(failures, 2))
    assert await http("POST", quiet_url, json={"skip": True}) == (202, {"ok": True})

    # scripts may not be set where the sender gets them from the room: a hand edit that does not
    # compile is answered in the room
    await alice.send_state(room, EVENT_TYPE, "quiet", {"name": "quiet", "transformationFunction": "let = ;"})
    await alice.wait_for_message(room, is_notice_with("Could not compile the transformation function of webhook **quiet**"))


async def test_a_looping_hook_never_holds_up_the_others(bridge_factory, make_user):
    harness = await bridge_factory(JS)
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    _, loop_url = await create(harness, room, alice, {"name": "looper", "transformationFunction": LOOP, "waitForComplete": True})
    _, hog_url = await create(harness, room, alice, {
        "name": "hog", "transformationFunction": "const a = []; while (true) a.push(new Array(1e5).fill(1.5))",
        "waitForComplete": True,
    })  # fmt: skip
    _, fine_url = await create(harness, room, alice, {
        "name": "fine", "transformationFunction": "result = {version: 'v2', plain: 'fine ' + data.i}",
    })  # fmt: skip
    _, plain_url = await create(harness, room, alice, {"name": "plain"})

    order: list[str] = []

    async def post(name: str, url: str, payload: dict[str, Any]) -> tuple[int, Any]:
        answer = await http("POST", url, json=payload)
        order.append(name)
        return answer

    looping = asyncio.create_task(post("looper", loop_url, {}))
    await asyncio.sleep(0.1)
    normal = await asyncio.gather(
        *(post("fine", fine_url, {"i": i}) for i in range(5)), post("plain", plain_url, {"text": "plain one"})
    )
    assert all(answer == (202, {"ok": True}) for answer in normal)
    assert not looping.done() or order.index("looper") == len(order) - 1
    status, body = await looping
    assert status == 422 and "ran longer than 500 ms" in body["error"]
    status, body = await http("POST", hog_url, json={})
    assert status == 422 and "too much memory" in body["error"]
    for i in range(5):
        await alice.wait_for_message(room, is_notice_with(f"fine {i}"))
    await alice.wait_for_message(room, is_notice_with("plain one"))


async def test_scripts_are_refused_when_the_bridge_does_not_allow_them(bridge, make_user):
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    status, body = await http(
        "PUT", f"{bridge.base_url}/v1/{room}/connections/{EVENT_TYPE}?userId={alice.user_id}",
        json={"name": "nojs", "transformationFunction": "result = 'x'"}, headers=AUTH,
    )  # fmt: skip
    assert status == 404 and body["errcode"] == "HS_DISABLED_FEATURE"
    # set by hand: the room is told, the hook is not created
    await alice.send_state(room, EVENT_TYPE, "byhand", {"name": "byhand", "transformationFunction": "result = 'x'"})
    await alice.wait_for_message(room, is_notice_with("transformation functions are not allowed on this bridge"))
    assert bridge.bridge.services.manager.find(room, EVENT_TYPE, "byhand") is None
