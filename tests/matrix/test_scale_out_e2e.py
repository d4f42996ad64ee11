"""Two bridge processes on one Postgres, one Synapse, a load balancer in front (docs/scale-out.md).

The balancer *mirrors* the homeserver's transactions to both processes, the harshest case: each
must still be handled once. Webhooks go to either process. Then the process delivering the room
is SIGKILLed mid-delivery: the survivor takes over the room and the leases, and every accepted
webhook is posted once, in causal order."""

from __future__ import annotations

import asyncio
import time

import asyncpg
from support.bridge import PROVISIONING_SECRET, create_database, process_harnesses
from support.fixtures import room_with_bot
from support.helpers import dm_webhook_url, http, is_notice_with

from hookshot_py.devenv.balancer import Balancer
from hookshot_py.generic.connection import EVENT_TYPE

from .test_outbox_e2e import _bodies, _wait_all


async def _until(check, timeout: float = 30.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached after {timeout:.0f} s")
        await asyncio.sleep(0.2)


async def _empty(db: asyncpg.Connection, query: str) -> bool:
    return not await db.fetch(query)


async def _post_status(url: str, text: str) -> int:
    try:
        return (await http("POST", url, json={"text": text}))[0]
    except OSError:
        return 0


def _answers(url: str, text: str, status: int):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return await _post_status(url, text) == status

    return check


async def test_two_processes_commands_once_changes_everywhere_causal_order_and_failover(
    synapse, registration_path, bridge_as_port, pg_admin_dsn, tmp_path, make_user
):
    dsn = await create_database(pg_admin_dsn)
    harnesses = process_harnesses(synapse, registration_path, tmp_path, dsn, {"outbox": {"roomWindow": 8}})
    a, b = harnesses
    balancer = Balancer(bridge_as_port, [f"http://127.0.0.1:{h.as_port}" for h in harnesses], mirror=True)
    await balancer.start()
    db = await asyncpg.connect(dsn)
    try:
        await a.spawn()
        await b.spawn()
        alice = await make_user("alice")
        room = await room_with_bot(alice)

        # A command reaches both processes: it runs once, one reply, one DM.
        await alice.send_text(room, "!hookshot webhook shared")
        url = await dm_webhook_url(alice, "shared")
        hook_path = "/webhook/" + url.rsplit("/", 1)[1]
        await alice.wait_for_message(room, is_notice_with("Room configured to bridge webhook"))
        # The connection made by one process works on the other within moments.
        for h in harnesses:
            await _until(_answers(h.base_url + hook_path, "sentinel", 202), 10, f"the new hook on {h.base_url}")
        await _wait_all(alice, room, "sentinel", 2)
        replies = await _bodies(alice, room, "Room configured to bridge webhook")
        assert len(replies) == 1, replies
        assert await db.fetchval("SELECT count(*) FROM command_runs") == 1

        # Made over REST on one process, removed over REST on the other: both follow.
        status, made = await http(
            "PUT", f"{a.base_url}/v1/{room}/connections/{EVENT_TYPE}?userId={alice.user_id}", json={"name": "brief"},
            headers={"Authorization": f"Bearer {PROVISIONING_SECRET}"},
        )
        assert status == 200, made
        brief_path = "/webhook/" + made["secrets"]["url"].rsplit("/", 1)[1]
        await _until(_answers(b.base_url + brief_path, "brief", 202), 10, "REST creation seen by B")
        status, _ = await http(
            "DELETE", f"{b.base_url}/v1/{room}/connections/{made['id']}?userId={alice.user_id}",
            headers={"Authorization": f"Bearer {PROVISIONING_SECRET}"},
        )
        assert status == 200
        await _until(_answers(a.base_url + brief_path, "late", 404), 10, "REST removal seen by A")

        # Sequential webhooks alternating between the processes keep their order.
        for i in range(20):
            h = harnesses[i % 2]
            assert await _post_status(h.base_url + hook_path, f"alt {i:02d}") == 202
        assert await _wait_all(alice, room, "alt ", 20) == [f"alt {i:02d}" for i in range(20)]

        # Fail-over: A queues a backlog and delivers it; A dies mid-delivery; B carries on.
        a_pid = a.process.pid
        assert any(f":{a_pid}:" in owner for owner in await db.fetchval("SELECT array_agg(owner) FROM leases"))
        for i in range(40):
            assert await _post_status(a.base_url + hook_path, f"burst {i:02d}") == 202
        holder = await db.fetchval("SELECT holder FROM outbox_rooms WHERE room_id = $1", room)
        a.kill()
        for i in range(40, 60):
            assert await _post_status(b.base_url + hook_path, f"burst {i:02d}") == 202
        bodies = await _wait_all(alice, room, "burst ", 60, timeout=120)
        assert bodies == [f"burst {i:02d}" for i in range(60)], (holder, b.log_tail())
        # A's leases passed to B.
        b_pid = b.process.pid

        async def leases_moved() -> bool:
            owners = await db.fetch("SELECT owner FROM leases WHERE expires_at > now()")
            return bool(owners) and all(f":{b_pid}:" in r["owner"] for r in owners)

        await _until(leases_moved, 30, "leases handed over to the survivor")
        # Rows outside the burst (a retried reply, a DM) may still be in flight: they too drain.
        unsent = "SELECT * FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL"
        try:
            await _until(lambda: _empty(db, unsent), 30, "the outbox drained by the survivor")
        except AssertionError:
            raise AssertionError((await db.fetch(unsent), b.log_tail())) from None
        await b.terminate()
    finally:
        await db.close()
        for h in harnesses:
            if h.process is not None:
                h.kill()
        await balancer.stop()
