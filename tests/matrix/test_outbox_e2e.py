"""Nothing accepted is lost, nothing is posted twice, sequential posts keep their order: SIGKILL,
homeserver outages and restarts, against real Synapse and Postgres."""

from __future__ import annotations

import asyncio

import asyncpg

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
    """The room's messages starting with `prefix`, oldest first."""
    events = await client.messages(room, limit=1000)
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


async def test_sequential_posts_keep_their_order_through_an_outage_and_a_sigkill(bridge_factory, make_user, synapse):
    harness = await bridge_factory(start=False)
    await harness.spawn()
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    url = await _create_hook_over_rest(harness, room, alice.user_id, "durable")

    # Homeserver down: every webhook is still accepted (durably queued), one after the other…
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


async def test_sigkill_mid_window_loses_nothing_doubles_nothing_and_keeps_causal_order(bridge_factory, make_user):
    harness = await bridge_factory({"outbox": {"roomWindow": 8}}, start=False)
    await harness.spawn()
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    url = await _create_hook_over_rest(harness, room, alice.user_id, "racing")

    # A burst of overlapping posts (no order among them), then sequential ones (in order).
    n = 3 * N
    results = await asyncio.gather(*(http("POST", url, json={"text": f"race {i:03d}"}) for i in range(n)))
    assert all(r == (202, {"ok": True}) for r in results)
    for i in range(N):
        assert await http("POST", url, json={"text": f"seq {i:03d}"}) == (202, {"ok": True})
    await _wait_all(alice, room, "race ", 1)
    harness.kill()  # some rows were sent, several maybe in flight, the rest not yet
    await harness.spawn()

    bodies = await _wait_all(alice, room, "race ", n)
    assert sorted(bodies) == sorted(f"race {i:03d}" for i in range(n)), harness.log_tail()
    seq = await _wait_all(alice, room, "seq ", N)
    assert seq == [f"seq {i:03d}" for i in range(N)], harness.log_tail()
    # The sequential posts began after every racing post was answered: they come after all of them.
    everything = await _bodies(alice, room, "")
    assert max(everything.index(b) for b in bodies) < everything.index("seq 000")
    await harness.terminate()


async def test_a_send_cut_by_a_crash_and_a_homeserver_restart_is_posted_once(bridge_factory, make_user, synapse):
    """The bridge crashed after the homeserver stored some messages and before it recorded so;
    the homeserver restarted (forgetting transaction ids). The next start finds the messages'
    markers in the room instead of posting them again."""
    harness = await bridge_factory(start=False)
    await harness.spawn()
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    url = await _create_hook_over_rest(harness, room, alice.user_id, "once")
    for i in range(10):
        assert await http("POST", url, json={"text": f"once {i}"}) == (202, {"ok": True})
    assert len(await _wait_all(alice, room, "once ", 10)) == 10
    harness.kill()
    # What a crash between the homeserver's answer and the bookkeeping leaves behind.
    conn = await asyncpg.connect(harness.dsn)
    try:
        await conn.execute(
            "UPDATE outbox SET sent_at = NULL, event_id = NULL WHERE room_id = $1 "
            "AND content->>'body' IN ('once 6', 'once 7', 'once 8', 'once 9')",
            room,
        )
        # (The kill may have come before the bridge recorded the room as released: same state.)
        await conn.execute(
            "INSERT INTO outbox_rooms (room_id, holder) VALUES ($1, 'host:1:crashed') "
            "ON CONFLICT (room_id) DO UPDATE SET holder = excluded.holder",
            room,
        )
    finally:
        await conn.close()
    await synapse.kill()
    await synapse.start()
    await harness.spawn()
    assert await http("POST", url, json={"text": "once after"}) == (202, {"ok": True})
    await _wait_all(alice, room, "once after", 1)
    bodies = await _bodies(alice, room, "once ")
    assert bodies == [f"once {i}" for i in range(10)] + ["once after"], harness.log_tail()
    await harness.terminate()
