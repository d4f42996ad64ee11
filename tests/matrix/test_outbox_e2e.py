"""Nothing accepted is lost, nothing is posted twice: SIGKILL and homeserver outages."""

from __future__ import annotations

import asyncio

from hookshot_py.generic.connection import EVENT_TYPE
from support.bridge import PROVISIONING_SECRET
from support.fixtures import room_with_bot
from support.helpers import http

N = 40


async def _create_hook_over_rest(harness, room: str, user_id: str, name: str) -> str:
    status, body = await http(
        "PUT",
        f"{harness.base_url}/v1/{room}/connections/{EVENT_TYPE}?userId={user_id}",
        json={"name": name},
        headers={"Authorization": f"Bearer {PROVISIONING_SECRET}"},
    )
    assert status == 200, body
    return body["secrets"]["url"]


async def _bodies(client, room: str, prefix: str) -> list[str]:
    events = await client.messages(room, limit=500)
    return [
        e["content"]["body"]
        for e in events
        if e.get("type") == "m.room.message" and str(e.get("content", {}).get("body", "")).startswith(prefix)
    ]


async def _wait_all(client, room: str, prefix: str, n: int, timeout: float = 90.0) -> list[str]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        bodies = await _bodies(client, room, prefix)
        if len(bodies) >= n or loop.time() > deadline:
            return bodies
        await asyncio.sleep(0.5)


async def test_sigkill_with_homeserver_down_loses_nothing_and_duplicates_nothing(bridge_factory, make_user, synapse):
    harness = await bridge_factory(start=False)
    await harness.spawn()
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    url = await _create_hook_over_rest(harness, room, alice.user_id, "durable")

    # Homeserver down: every webhook is still accepted (durably queued)…
    await synapse.kill()
    for i in range(N):
        status, body = await http("POST", url, json={"text": f"msg {i:03d}"})
        assert (status, body) == (202, {"ok": True})
    # …then the bridge dies hard before it could deliver anything.
    harness.kill()
    await synapse.start()
    await harness.spawn()

    bodies = await _wait_all(alice, room, "msg ", N)
    assert bodies == [f"msg {i:03d}" for i in range(N)], harness.log_tail()
    await harness.terminate()


async def test_sigkill_mid_delivery_resends_without_duplicates(bridge_factory, make_user):
    harness = await bridge_factory(start=False)
    await harness.spawn()
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    url = await _create_hook_over_rest(harness, room, alice.user_id, "racing")

    n = 3 * N
    results = await asyncio.gather(*(http("POST", url, json={"text": f"race {i:03d}"}) for i in range(n)))
    assert all(r == (202, {"ok": True}) for r in results)
    await _wait_all(alice, room, "race ", 1)
    harness.kill()  # some rows were sent, one maybe mid-flight, the rest not yet
    await harness.spawn()

    bodies = await _wait_all(alice, room, "race ", n)
    assert sorted(bodies) == sorted(f"race {i:03d}" for i in range(n)), harness.log_tail()
    assert len(bodies) == len(set(bodies)), "a message was posted twice"
    # Per-room order is the order the rows were committed in.
    bridge_order = await _committed_order(harness, room)
    assert bodies == bridge_order
    await harness.terminate()


async def _committed_order(harness, room: str) -> list[str]:
    import asyncpg

    conn = await asyncpg.connect(harness.dsn)
    try:
        rows = await conn.fetch(
            "SELECT content->>'body' AS body FROM outbox WHERE room_id = $1 AND content->>'body' LIKE 'race %' ORDER BY id",
            room,
        )
    finally:
        await conn.close()
    return [r["body"] for r in rows]
