"""The queue and the sender against a real Postgres and a local receiver that fails, then
recovers: nothing lost, order kept per hook, signatures verifiable, bounded retries with one
clear failure notice, and several bridge processes sharing the work without double deliveries."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from fakes.receiver import Receiver, verify
from support.helpers import eventually

from hookshot_py.config import OutboundDeliveryConfig
from hookshot_py.db.database import Database
from hookshot_py.matrix.outbox import Outbox
from hookshot_py.metrics import Metrics
from hookshot_py.net.guard import UrlPolicy, guarded_session
from hookshot_py.outbound.queue import LostLease, OutboundQueue
from hookshot_py.outbound.request import SIGNATURE_HEADER, OutboundClient
from hookshot_py.outbound.sender import OutboundSender
from hookshot_py.tokens import SecretBox

LOCAL = UrlPolicy.create(allowed_ranges=["127.0.0.1/32"])
ROOM = "!room:hookshot.test"
BOX = SecretBox(os.urandom(32))


def event(n: int, hook: str = "") -> dict[str, Any]:
    return {"type": "m.room.message", "event_id": f"${hook}{n}", "room_id": ROOM, "sender": "@alice:hookshot.test",
            "content": {"msgtype": "m.text", "body": f"message {n}"}}  # fmt: skip


async def no_media(mxc: str, max_bytes: int, timeout: float) -> tuple[bytes, str | None]:
    raise AssertionError("no media in these tests")


@dataclass
class Rig:
    db: Database
    base: str
    receiver: Receiver
    senders: list[OutboundSender] = field(default_factory=list)
    sessions: list[aiohttp.ClientSession] = field(default_factory=list)
    outbox: Outbox | None = None

    def process(self, owner: str, **config: Any) -> tuple[OutboundQueue, OutboundSender]:
        """What one bridge process runs: its own queue (lease owner), session and sender."""
        queue = OutboundQueue(self.db, BOX, owner)
        session = guarded_session(LOCAL)
        self.sessions.append(session)
        cfg = OutboundDeliveryConfig(**{"timeout_seconds": 2, **config})
        client = OutboundClient(session, no_media, max_media_bytes=1024, timeout_s=cfg.timeout_seconds)
        self.outbox = Outbox(self.db, SimpleNamespace(bot_mxid="@hookshot:hookshot.test"), None, Metrics())  # type: ignore[arg-type]
        sender = OutboundSender(queue, client, self.outbox, Metrics(), cfg, lease_s=5, poll_s=0.1,
                                base_backoff_s=0.02, max_backoff_s=0.1)  # fmt: skip
        self.senders.append(sender)
        return queue, sender

    async def hook(self, queue: OutboundQueue, name: str, token: str | None = None) -> str:
        conn_id = f"conn-{name}"
        await queue.save_hook(conn_id, ROOM, name, f"{self.base}/{name}", "POST", token or f"hs-ob-token-{name}")
        return conn_id

    async def notices(self) -> list[str]:
        rows = await self.db.fetch("SELECT content FROM outbox WHERE room_id = $1 ORDER BY id", ROOM)
        return [r["content"]["body"] for r in rows]

    async def statuses(self, conn_id: str) -> list[tuple[str, str, int]]:
        rows = await self.db.fetch(
            "SELECT event_id, status, attempts FROM outbound_deliveries WHERE connection_id = $1 ORDER BY id", conn_id
        )
        return [(r["event_id"], r["status"], r["attempts"]) for r in rows]


@pytest.fixture
async def rig(db: Database, aiohttp_server: Any) -> AsyncIterator[Rig]:
    receiver = Receiver()
    server = await aiohttp_server(receiver.app(), host="127.0.0.1")
    rig = Rig(db, f"http://127.0.0.1:{server.port}", receiver)
    yield rig
    for sender in rig.senders:
        await sender.stop()
    for session in rig.sessions:
        await session.close()


async def test_receiver_down_then_back_loses_nothing_and_keeps_order(rig: Rig) -> None:
    queue, sender = rig.process("p1")
    conn = await rig.hook(queue, "ci", "hs-ob-secret")
    rig.receiver.fail_status = 503
    for n in range(5):
        assert await queue.enqueue(conn, event(n))
    sender.start()

    async def retried() -> bool:
        return rig.receiver.attempts >= 4

    await eventually(retried)
    # more events while the receiver is down; and the bridge process stops and another takes over
    for n in range(5, 10):
        await queue.enqueue(conn, event(n))
    await sender.stop()
    head = (await rig.statuses(conn))[0]
    assert head[1] == "pending" and head[2] >= 4
    queue2, sender2 = rig.process("p2")
    sender2.start()
    await eventually(retried)
    rig.receiver.fail_status = None
    received = await rig.receiver.wait_for(10)
    assert [r.event["event_id"] for r in received] == [f"${n}" for n in range(10)]
    for r in received:
        assert verify("hs-ob-secret", r.body, r.headers[SIGNATURE_HEADER])
        assert r.headers["X-Matrix-Hookshot-Token"] == "hs-ob-secret"

    async def all_delivered() -> bool:
        return all(s == "delivered" for _, s, _ in await rig.statuses(conn))

    await eventually(all_delivered)
    statuses = await rig.statuses(conn)
    assert statuses[0][2] > 4 and all(a == 1 for _, _, a in statuses[1:])
    assert await rig.notices() == []  # retried, never given up: the room hears nothing
    # the delivery log, newest first
    log = await queue2.log(conn, limit=3, before=None, status=None)
    assert [e["eventId"] for e in log] == ["$9", "$8", "$7"]
    assert log[0]["status"] == "delivered" and log[0]["responseStatus"] == 200 and log[0]["finishedAt"]
    older = await queue2.log(conn, limit=100, before=log[-1]["id"], status="delivered")
    assert [e["eventId"] for e in older] == [f"${n}" for n in range(6, -1, -1)]
    assert older[-1]["error"] == "HTTP 503: receiver says no"  # the last failure, kept after success
    assert await queue2.counts(conn) == {"pending": 0, "delivered": 10, "failed": 0}


async def test_a_repeated_event_is_queued_once(rig: Rig) -> None:
    queue, _ = rig.process("p1")
    conn = await rig.hook(queue, "ci")
    assert await queue.enqueue(conn, event(1))
    assert not await queue.enqueue(conn, event(1))  # the homeserver resent its transaction
    assert len(await rig.statuses(conn)) == 1


async def test_bounded_attempts_then_a_clear_failure_told_once(rig: Rig) -> None:
    queue, sender = rig.process("p1", max_attempts=3)
    conn = await rig.hook(queue, "alerts")
    rig.receiver.fail_status = 500
    for n in range(3):
        await queue.enqueue(conn, event(n))
    sender.start()

    async def settled() -> bool:
        return all(s != "pending" for _, s, _ in await rig.statuses(conn))

    await eventually(settled)
    assert await rig.statuses(conn) == [("$0", "failed", 3), ("$1", "failed", 3), ("$2", "failed", 3)]
    [entry] = await queue.log(conn, limit=1, before=None, status=None)
    assert entry["error"] == "gave up after 3 attempt(s); last error: HTTP 500: receiver says no"
    notices = await rig.notices()
    assert len(notices) == 1 and "**alerts** could not deliver an event ($0)" in notices[0]
    # back: delivered, the notice armed again; a later failure is told again
    rig.receiver.fail_status = None
    await queue.enqueue(conn, event(3))
    sender.wake()
    await rig.receiver.wait_for(1)
    rig.receiver.fail_status = 404
    await queue.enqueue(conn, event(4))
    sender.wake()
    await eventually(settled)
    assert (await rig.statuses(conn))[-1] == ("$4", "failed", 1)  # a 404 is not retried
    notices = await rig.notices()
    assert len(notices) == 2 and "HTTP 404" in notices[1]


async def test_events_older_than_max_age_are_given_up(rig: Rig) -> None:
    queue, sender = rig.process("p1", max_age=60_000)
    conn = await rig.hook(queue, "old")
    # a retry the receiver wants later than the event may live: given up after that attempt
    rig.receiver.fail_status, rig.receiver.retry_after = 503, "3600"
    await queue.enqueue(conn, event(1))
    # an event that waited out a long outage: given up without an attempt
    await queue.enqueue(conn, event(2))
    await rig.db.execute("UPDATE outbound_deliveries SET created_at = now() - interval '1 hour' WHERE event_id = '$2'")
    sender.start()

    async def settled() -> bool:
        return all(s != "pending" for _, s, _ in await rig.statuses(conn))

    await eventually(settled)
    second, first = await queue.log(conn, limit=2, before=None, status="failed")
    assert first["attempts"] == 1 and first["responseStatus"] == 503
    assert first["error"] == "gave up: not delivered within 1 min; last error: HTTP 503: receiver says no"
    assert second["attempts"] == 0 and second["error"] == "gave up: not delivered within 1 min"
    assert rig.receiver.attempts == 1


async def test_a_flooded_queue_is_capped(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("hookshot_py.outbound.queue.MAX_PENDING", 3)
    queue, _ = rig.process("p1")
    conn = await rig.hook(queue, "flood")
    assert [await queue.enqueue(conn, event(n)) for n in range(5)] == [True, True, True, False, False]
    assert await queue.pending(conn) == 3


async def test_several_processes_share_the_hooks_without_double_deliveries(rig: Rig) -> None:
    processes = [rig.process(f"p{i}") for i in range(3)]
    queue = processes[0][0]
    hooks = [await rig.hook(queue, f"hook{i}") for i in range(4)]
    for n in range(15):
        for i, conn in enumerate(hooks):
            await processes[n % 3][0].enqueue(conn, event(n, f"h{i}-"))
    for _, sender in processes:
        sender.start()
    received = await rig.receiver.wait_for(60, timeout=60)
    assert len(received) == 60
    for i in range(4):
        ids = [r.event["event_id"] for r in received if r.path == f"/hook{i}"]
        assert ids == [f"$h{i}-{n}" for n in range(15)]  # once each, in order


async def test_a_process_that_lost_its_lease_stops(rig: Rig) -> None:
    q1, _ = rig.process("p1")
    q2, _ = rig.process("p2")
    conn = await rig.hook(q1, "ci")
    await q1.enqueue(conn, event(1))
    assert await q1.claim(10, 60) == [conn]
    assert await q2.claim(10, 60) == []  # held
    head = await q1.head(conn)
    assert head is not None
    await rig.db.execute("UPDATE outbound_hooks SET lease_until = now() - interval '1 second'")
    assert await q2.claim(10, 60) == [conn]  # ran out: taken over
    with pytest.raises(LostLease):
        await q1.renew(conn, 60)
    with pytest.raises(LostLease):
        await q1.record(head, status="delivered", attempts=1, response_status=200, error=None)
    await q2.record(head, status="delivered", attempts=1, response_status=200, error=None)
    await q1.release(conn)  # not ours: changes nothing
    assert await rig.db.fetchval("SELECT lease_owner FROM outbound_hooks") == "p2"


def test_the_default_retry_budget_outlasts_an_hour_long_outage() -> None:
    """With the defaults, the first event of an outage is retried for hours (even with the
    shortest jitter) before it is given up."""
    cfg = OutboundDeliveryConfig()
    sender = OutboundSender(None, None, None, None, cfg)  # type: ignore[arg-type]
    shortest = sum(min(sender.max_backoff_s, sender.base_backoff_s * 2 ** (n - 1)) * 0.8
                   for n in range(1, cfg.max_attempts))  # fmt: skip
    assert shortest > 3600 and cfg.max_age >= 3_600_000


async def test_the_first_stored_token_wins_unless_replaced(rig: Rig) -> None:
    """Two processes finding a hook without a token both make one: they end up with the same."""
    q1, _ = rig.process("p1")
    q2, _ = rig.process("p2")
    url = f"{rig.base}/ci"
    assert await q1.save_hook("c", ROOM, "ci", url, "PUT", "hs-ob-first", replace=False) == "hs-ob-first"
    assert await q2.save_hook("c", ROOM, "ci", url, "POST", "hs-ob-second", replace=False) == "hs-ob-first"
    assert await q2.tokens(["c"]) == {"c": "hs-ob-first"}
    assert await q1.save_hook("c", ROOM, "ci", url, "PUT", "hs-ob-new") == "hs-ob-new"  # a new hook of that name
    assert await q1.save_hook("c", ROOM, "ci", f"{url}2", "POST", None) is None
    row = await rig.db.fetchrow("SELECT url, method FROM outbound_hooks")
    assert (row["url"], row["method"]) == (f"{url}2", "POST") and await q2.tokens(["c"]) == {"c": "hs-ob-new"}


async def test_stop_returns_even_when_woken_at_the_same_moment(rig: Rig) -> None:
    """(asyncio.wait_for on Python 3.11 loses a cancellation that coincides with the event it
    waits for: a sender stopped right after a wake-up used to run on, and stop() never returned.)"""
    for _ in range(5):
        _, sender = rig.process("p1")
        sender.poll_s = 60
        sender.start()
        await asyncio.sleep(0.2)  # it has claimed nothing and waits to be woken
        sender.wake()
        await asyncio.wait_for(sender.stop(), 5)
