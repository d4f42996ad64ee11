"""Hostile generic webhook bodies through the real route (real Synapse and Postgres, the bridge
in-process): never a 5xx, and the bridge keeps answering while one is being handled.

Responsiveness is asserted by ordering, not by time: the hostile request is seen running in a
render worker, then `/live` must complete while it is still running.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hookshot_py.cpu_pool import CpuPool
from hookshot_py.generic.connection import EVENT_TYPE
from support.fixtures import room_with_bot
from support.helpers import http, is_notice_with

KIB = 1024


async def _hook(bridge: Any, make_user: Any) -> tuple[Any, str, str]:
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    _, outcome = await bridge.bridge.services.manager.create(room, EVENT_TYPE, {"name": "hostile"}, user_id=alice.user_id)
    return alice, room, outcome.secrets["url"]


async def _running(cpu: CpuPool, request: asyncio.Task[Any], count: int = 1) -> None:
    """Wait until `count` calls are running in the render workers (the hostile work started)."""
    while cpu.busy < count:
        assert not request.done(), f"the request ended before its render was seen running: {request.result()}"
        await asyncio.sleep(0.005)


async def _live_while_running(bridge: Any, cpu: CpuPool, hostile: asyncio.Future[Any]) -> None:
    status, body = await asyncio.wait_for(http("GET", f"{bridge.base_url}/live"), 30)
    assert (status, body) == (200, {"ok": True})
    assert cpu.busy >= 1 and not hostile.done(), "/live must answer while the hostile body is rendered"


async def test_pathological_markdown_is_rendered_off_the_loop(bridge, make_user):
    alice, room, url = await _hook(bridge, make_user)
    cpu = bridge.bridge.services.cpu
    for markdown in ("[" * (32 * KIB), "![[" * (11 * KIB)):
        hostile = asyncio.create_task(http("POST", url, json={"text": markdown}))
        await _running(cpu, hostile)
        await _live_while_running(bridge, cpu, hostile)
        assert await hostile == (202, {"ok": True})
        message = await alice.wait_for_message(room, is_notice_with(markdown[:100]))
        assert message["content"]["m.mentions"] == {}


async def test_markdown_past_the_deadline_is_posted_as_plain_text(bridge, make_user):
    alice, room, url = await _hook(bridge, make_user)
    cpu = bridge.bridge.services.cpu
    cpu.deadline = 0.5  # `[` × 200 KiB renders for tens of seconds
    hostile = asyncio.create_task(http("POST", url, json={"text": "[" * (200 * KIB), "username": "ci"}))
    await _running(cpu, hostile)
    await _live_while_running(bridge, cpu, hostile)
    assert await hostile == (202, {"ok": True})
    content = (await alice.wait_for_message(room, is_notice_with("**ci**: [[[[")))["content"]
    assert "formatted_body" not in content and content["body"].endswith("…")
    cpu.deadline = 30.0
    assert (await http("POST", url, json={"text": "back to **normal**"}))[0] == 202
    content = (await alice.wait_for_message(room, is_notice_with("back to **normal**")))["content"]
    assert content["formatted_body"] == "<p>back to <strong>normal</strong></p>"


async def test_six_large_bodies_at_once_leave_the_bridge_answering(bridge, make_user):
    alice, room, url = await _hook(bridge, make_user)
    cpu = bridge.bridge.services.cpu
    text = "Deploy **ok** on _main_, see [the log](https://ci.example/1).\n\n" * (60 * KIB // 64)
    hostile = asyncio.gather(*(http("POST", url, json={"text": f"{i} {text}"}) for i in range(6)))
    while cpu.busy < 1:
        await asyncio.sleep(0.005)
    await _live_while_running(bridge, cpu, hostile)
    assert await hostile == [(202, {"ok": True})] * 6
    for i in range(6):
        await alice.wait_for_message(room, is_notice_with(f"{i} Deploy **ok**"))


async def test_a_megabyte_of_html_is_bounded_and_accepted(bridge, make_user):
    alice, room, url = await _hook(bridge, make_user)
    for markup in ("<b> </b>" * (127 * KIB), "<div>" * (200 * KIB), "<x>" * (300 * KIB)):
        status, body = await http("POST", url, json={"html": "<p>start</p>" + markup})
        assert (status, body) == (202, {"ok": True}), markup[:10]
    for _ in range(3):
        await alice.wait_for_message(room, is_notice_with("start"))


async def test_slow_or_unknown_charsets_are_refused_at_once(bridge, make_user):
    _, _, url = await _hook(bridge, make_user)
    # punycode decodes in quadratic time: this body took 16 s on the loop and then a 500.
    body = b"-" + b"9" * (200 * KIB)
    for charset in ("punycode", "idna", "utf-7", "x-unknown"):
        for content_type in ("text/plain", "application/json", "application/x-www-form-urlencoded"):
            status, answer = await http("POST", url, data=body, headers={"Content-Type": f"{content_type}; charset={charset}"})
            assert status == 400, (charset, content_type, answer)
            assert answer["errcode"] == "HS_BAD_VALUE" and answer["error"] == f"Unsupported charset {charset!r}"
    status, _ = await http("POST", url, data="café".encode("latin-1"), headers={"Content-Type": "text/plain; charset=latin-1"})
    assert status == 202


async def test_relayed_text_pings_no_one(bridge, make_user):
    alice, room, url = await _hook(bridge, make_user)
    text = f"@room {alice.user_id} deploy done ![x](https://tracker.example/p.png)"
    assert (await http("POST", url, json={"text": text}))[0] == 202
    content = (await alice.wait_for_message(room, is_notice_with("deploy done")))["content"]
    assert content["m.mentions"] == {}
    assert "tracker.example" not in content["formatted_body"]
