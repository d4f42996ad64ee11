"""The outbox against a real Postgres and a scripted gateway (no homeserver): retry rules, causal
order (with the listeners' middleware that marks requests), the per-room window, group commit, and
exactly once when the homeserver may have forgotten."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from hookshot_py.listeners.http import causal_middleware
from hookshot_py.matrix import outbox_sender
from hookshot_py.matrix.gateway import SendError
from hookshot_py.matrix.outbox import CONCURRENT_COMMITS, MARKER, Outbox, OutgoingEvent, SenderSettings, backoff_seconds
from hookshot_py.metrics import Metrics

BOT = "@bot:test"


@dataclass
class ScriptedGateway:
    """Answers sends from a script of errors, then succeeds; records what was sent, what was in
    flight at once, and a room history the outbox can search for its markers."""

    script: dict[str, list[SendError]] = field(default_factory=dict)
    sent: list[tuple[str, str, str]] = field(default_factory=list)
    txn_ids: list[str] = field(default_factory=list)
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    bot_mxid: str = BOT
    # Sends wait until this many are in flight (or `hold_s` passed): shows what may overlap.
    gather: int = 0
    hold_s: float = 0.0
    in_flight: dict[str, int] = field(default_factory=dict)
    max_in_flight: dict[str, int] = field(default_factory=dict)
    # Bodies that reach the room although the answer is lost (the homeserver stored, then died).
    store_then_fail: set[str] = field(default_factory=set)
    _released: asyncio.Event = field(default_factory=asyncio.Event)

    async def ensure_joined(self, room_id: str, user_id: str | None = None, *, recheck: bool = False) -> None:
        return None

    async def send_event(self, room_id, sender, event_type, content, txn_id, *, timeout=None) -> str:  # type: ignore[no-untyped-def]
        self.txn_ids.append(txn_id)
        if isinstance(content, bytes):
            content = json.loads(content)
        body = content["body"]
        self.in_flight[room_id] = self.in_flight.get(room_id, 0) + 1
        self.max_in_flight[room_id] = max(self.max_in_flight.get(room_id, 0), self.in_flight[room_id])
        try:
            if self.gather:
                if self.in_flight[room_id] >= self.gather:
                    self._released.set()
                try:
                    await asyncio.wait_for(self._released.wait(), 2.0)
                except TimeoutError:
                    pass
            if self.hold_s:
                await asyncio.sleep(self.hold_s)
        finally:
            self.in_flight[room_id] -= 1
        errors = self.script.get(body, [])
        if errors:
            raise errors.pop(0)
        event_id = f"$event{len(self.txn_ids)}"
        self.history.setdefault(room_id, []).append(
            {"event_id": event_id, "content": content, "origin_server_ts": 10**13}
        )
        if body in self.store_then_fail:
            self.store_then_fail.discard(body)
            raise SendError("ServerDisconnectedError: the homeserver went away")
        self.sent.append((room_id, sender, body))
        return event_id

    async def find_markers(self, room_id, key, wanted, oldest_ts, *, max_pages=20):  # type: ignore[no-untyped-def]
        return {e["content"][key]: e["event_id"] for e in self.history.get(room_id, []) if e["content"].get(key) in wanted}

    def bodies(self, room_id: str) -> list[str]:
        return [b for r, _, b in self.sent if r == room_id]


class NoProfiles:
    async def ensure_applied(self, user_id: str) -> None:
        return None


async def _outbox(db, gateway, window: int = 16, start: bool = True) -> Outbox:  # type: ignore[no-untyped-def]
    outbox = Outbox(db, gateway, NoProfiles(), Metrics(), settings=SenderSettings(window=window))  # type: ignore[arg-type]
    if start:
        await outbox.start()
    return outbox


def _msg(room: str, body: str, **kw) -> OutgoingEvent:  # type: ignore[no-untyped-def]
    return OutgoingEvent(room, {"msgtype": "m.notice", "body": body}, **kw)


async def _request(outbox: Outbox, events: list[OutgoingEvent]) -> list[int]:
    """What a listener does for one request: mark its start, then queue."""
    outbox.begin_request()
    return await outbox.enqueue(events)


async def test_429_waits_retry_after_and_keeps_the_order_of_one_call(db):
    gw = ScriptedGateway(script={"b": [SendError("429", status=429, retry_after_ms=300)]})
    outbox = await _outbox(db, gw)
    ids = await outbox.enqueue([_msg("!r", "a"), _msg("!r", "b"), _msg("!r", "c"), _msg("!other", "x")])
    loop = asyncio.get_running_loop()
    start = loop.time()
    results = await outbox.wait_sent(ids, timeout=10)
    assert all(r and r.startswith("$") for r in results)
    assert gw.bodies("!r") == ["a", "b", "c"]
    assert loop.time() - start >= 0.3
    # five attempts in all, four distinct txn ids: the retry of "b" reused its id
    assert len(gw.txn_ids) == 5 and len(set(gw.txn_ids)) == 4
    await outbox.stop()
    row = await db.fetchrow("SELECT attempts, last_error, sent_at IS NOT NULL AS sent FROM outbox WHERE id = $1", ids[1])
    assert row["attempts"] == 2 and "429" in row["last_error"] and row["sent"]


async def test_permanent_error_is_given_up_and_the_room_moves_on(db):
    gw = ScriptedGateway(script={"bad": [SendError("400 M_BAD_JSON", status=400, permanent=True)]})
    outbox = await _outbox(db, gw)
    ids = await outbox.enqueue([_msg("!r", "bad"), _msg("!r", "good")])
    results = await outbox.wait_sent(ids, timeout=10)
    assert results[0] is None and results[1] is not None
    assert await db.fetchval("SELECT failed_at IS NOT NULL FROM outbox WHERE id = $1", ids[0])
    assert outbox.depth == 0
    await outbox.stop()


async def test_dedupe_key_queues_once_per_room(db):
    gw = ScriptedGateway()
    outbox = await _outbox(db, gw)
    first = await outbox.enqueue([_msg("!r", "once", dedupe_key="delivery-1"), _msg("!s", "once", dedupe_key="delivery-1")])
    again = await outbox.enqueue([_msg("!r", "once", dedupe_key="delivery-1")])
    assert len(first) == 2 and again == []
    await outbox.wait_sent(first, timeout=10)
    assert sorted(r for r, _, _ in gw.sent) == ["!r", "!s"]
    await outbox.stop()


async def test_rows_queued_while_stopped_are_sent_after_start(db):
    gw = ScriptedGateway()
    stopped = await _outbox(db, gw, start=False)
    ids = await stopped.enqueue([_msg("!r", "queued before start")])
    outbox = await _outbox(db, gw)
    await outbox.wait_sent(ids, timeout=10)
    assert gw.sent == [("!r", BOT, "queued before start")]
    await outbox.stop()


async def test_sequential_requests_keep_their_order_one_at_a_time(db):
    """Each request starts after the previous one was answered: each row waits for the one before,
    though the window would allow 16 in flight and a slow homeserver backs them up."""
    gw = ScriptedGateway(hold_s=0.01, script={"seq 05": [SendError("502", status=502)]})
    outbox = await _outbox(db, gw)
    ids = [i for n in range(20) for i in await _request(outbox, [_msg("!r", f"seq {n:02d}")])]
    await outbox.wait_sent(ids, timeout=20)
    assert gw.bodies("!r") == [f"seq {n:02d}" for n in range(20)]
    assert gw.max_in_flight["!r"] == 1
    await outbox.stop()


async def test_overlapping_requests_go_out_together_within_the_window(db):
    gw = ScriptedGateway(gather=4)
    outbox = await _outbox(db, gw, window=4)
    results = await asyncio.gather(*(_request(outbox, [_msg("!r", f"burst {n:02d}")]) for n in range(24)))
    ids = [i for r in results for i in r]
    await outbox.wait_sent(ids, timeout=20)
    assert sorted(gw.bodies("!r")) == [f"burst {n:02d}" for n in range(24)]  # all, once
    assert gw.max_in_flight["!r"] == 4  # the window, and no more
    await outbox.stop()


async def test_a_request_after_an_answer_waits_even_behind_a_retry(db):
    """A's row is retried after a 429; B started after A was answered, so B waits for it; C
    overlapped A, so it need not."""
    gw = ScriptedGateway(script={"A": [SendError("429", status=429, retry_after_ms=400)]})
    outbox = await _outbox(db, gw)
    outbox.begin_request()
    c_started = asyncio.get_running_loop().create_future()

    async def request_c() -> list[int]:
        outbox.begin_request()  # C's request starts before A is answered
        c_started.set_result(None)
        await asyncio.sleep(0.05)
        return await outbox.enqueue([_msg("!r", "C")])

    c_task = asyncio.create_task(request_c())
    await c_started
    a = await outbox.enqueue([_msg("!r", "A")])
    b = await _request(outbox, [_msg("!r", "B")])
    c = await c_task
    await outbox.wait_sent(a + b + c, timeout=10)
    order = gw.bodies("!r")
    assert order.index("A") < order.index("B")
    assert order.index("C") < order.index("A")  # C went while A waited out its 429
    await outbox.stop()


async def test_over_http_a_request_waiting_for_its_delivery_holds_back_only_later_requests(db):
    """Through the listeners' causal middleware: A's handler queues A and waits (as a
    `waitForComplete` webhook waits for its delivery), and A's send is slow. B, which begins
    while A is unanswered, goes before A; C, which begins after A's answer, goes after it.
    (Counting commits instead of answers queued B behind A: every `waitForComplete` request
    waited for all those before it, one send at a time.)"""
    gw = ScriptedGateway(script={"A": [SendError("429", status=429, retry_after_ms=300)]})
    outbox = await _outbox(db, gw)
    a_queued, release_a = asyncio.Event(), asyncio.Event()
    ids: dict[str, list[int]] = {}

    async def handler(request: web.Request) -> web.Response:
        body = request.match_info["body"]
        ids[body] = await outbox.enqueue([_msg("!r", body)])
        if body == "A":
            a_queued.set()
            await release_a.wait()
        return web.json_response({})

    app = web.Application(middlewares=[causal_middleware(outbox)])
    app.router.add_post("/{body}", handler)
    async with TestServer(app) as server, aiohttp.ClientSession() as session:

        async def post(body: str) -> None:
            async with session.post(server.make_url(f"/{body}")) as resp:
                assert resp.status == 200

        a = asyncio.create_task(post("A"))
        await a_queued.wait()
        await post("B")
        release_a.set()
        await a
        await post("C")
    await outbox.wait_sent(ids["A"] + ids["B"] + ids["C"], timeout=10)
    order = gw.bodies("!r")
    assert order.index("B") < order.index("A") < order.index("C")
    await outbox.stop()


async def test_a_request_follows_what_was_answered_before_it_began_not_what_was_only_committed(db):
    """A is committed but its request is still waiting to be answered when B's request begins: B
    may go before A. C begins after A was answered: C goes after A."""
    gw = ScriptedGateway(script={"A": [SendError("429", status=429, retry_after_ms=300)]})
    outbox = await _outbox(db, gw)
    a_mark = outbox.begin_request(until_answered=True)
    a = await outbox.enqueue([_msg("!r", "A")])

    async def request(body: str) -> list[int]:
        mark = outbox.begin_request(until_answered=True)
        try:
            return await outbox.enqueue([_msg("!r", body)])
        finally:
            outbox.answered(mark)

    b = await asyncio.create_task(request("B"))  # its own context, like an aiohttp handler's task
    outbox.answered(a_mark)
    c = await asyncio.create_task(request("C"))
    await outbox.wait_sent(a + b + c, timeout=10)
    order = gw.bodies("!r")
    assert order.index("B") < order.index("A") < order.index("C")  # B went while A waited out its 429
    await outbox.stop()


async def test_concurrent_enqueues_share_one_commit(db):
    gw = ScriptedGateway()
    outbox = await _outbox(db, gw)
    inserts = 0
    insert = outbox.store.insert

    async def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal inserts
        inserts += 1
        return await insert(*args, **kwargs)

    outbox.store.insert = counting  # type: ignore[method-assign]
    results = await asyncio.gather(*(_request(outbox, [_msg("!r", f"g {n}"), _msg("!s", f"g {n}")]) for n in range(50)))
    assert inserts == 1
    assert all(len(r) == 2 for r in results) and len({i for r in results for i in r}) == 100
    stored = await db.fetch("SELECT id, room_id, content->>'body' AS body FROM outbox ORDER BY id")
    by_id = {r["id"]: (r["room_id"], r["body"]) for r in stored}
    for n, (first, second) in enumerate(results):
        assert by_id[first] == ("!r", f"g {n}") and by_id[second] == ("!s", f"g {n}")
    await outbox.wait_sent([i for r in results for i in r], timeout=10)
    await outbox.stop()


async def test_a_request_queued_as_every_commit_fails_at_once_is_still_committed(db):
    """Every commit in flight fails in the same loop step (the database went away) and a request
    arrives in that very step: it must start a commit of its own, not wait for ever."""
    outbox = await _outbox(db, ScriptedGateway())
    insert = outbox.store.insert
    gate = asyncio.Event()
    failing = True

    async def gated(*args, **kwargs):  # type: ignore[no-untyped-def]
        if failing:
            await gate.wait()
            raise ConnectionError("the database went away")
        return await insert(*args, **kwargs)

    outbox.store.insert = gated  # type: ignore[method-assign]
    doomed = []
    for n in range(CONCURRENT_COMMITS):  # one commit each: every earlier one is already inserting
        doomed.append(asyncio.create_task(_request(outbox, [_msg("!r", f"doomed {n}")])))
        await asyncio.sleep(0)

    async def right_after_the_failures() -> list[int]:
        nonlocal failing
        await gate.wait()  # woken after the commits, in the same loop step
        failing = False
        return await _request(outbox, [_msg("!r", "survivor")])

    survivor = asyncio.create_task(right_after_the_failures())
    await asyncio.sleep(0)
    gate.set()
    assert len(await asyncio.wait_for(survivor, 5)) == 1
    for task in doomed:
        with pytest.raises(ConnectionError):
            await task
    await outbox.stop()


async def test_a_row_that_reached_the_homeserver_before_a_crash_is_not_sent_again(db):
    """The process delivering the room died after the homeserver stored #1 and before it recorded
    that; the homeserver restarted since (its transaction ids are forgotten). The successor finds
    #1's marker in the room and sends only #2."""
    gw = ScriptedGateway()
    stopped = await _outbox(db, gw, start=False)
    ids = await stopped.enqueue([_msg("!r", "one"), _msg("!r", "two")])
    await db.execute("INSERT INTO outbox_rooms (room_id, holder) VALUES ('!r', 'gone:1:dead')")
    install = await db.fetchval("SELECT value FROM bridge_meta WHERE key = 'install_id'")
    marker = f"hookshot_py.{install}.{ids[0]}"
    gw.history["!r"] = [{"event_id": "$before-crash", "content": {"body": "one", MARKER: marker}, "origin_server_ts": 1}]
    outbox = await _outbox(db, gw)
    results = await outbox.wait_sent(ids, timeout=10)
    assert results == ["$before-crash", results[1]] and results[1] != "$before-crash"
    assert gw.bodies("!r") == ["two"]
    await outbox.stop()
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0
    assert await db.fetchval("SELECT count(*) FROM outbox_rooms") == 0


async def test_a_send_whose_answer_was_lost_is_looked_up_before_it_is_retried(db):
    gw = ScriptedGateway(store_then_fail={"lost answer"})
    outbox = await _outbox(db, gw)
    ids = await outbox.enqueue([_msg("!r", "lost answer"), _msg("!r", "next")])
    results = await outbox.wait_sent(ids, timeout=15)
    assert all(results)
    assert [e["content"]["body"] for e in gw.history["!r"]] == ["lost answer", "next"]  # once each
    assert gw.bodies("!r") == ["next"]
    await outbox.stop()


def test_backoff_grows_and_is_capped():
    assert 0.4 <= backoff_seconds(1) <= 0.6
    assert 3.2 <= backoff_seconds(4) <= 4.8
    assert backoff_seconds(50) <= 360


async def test_clients_sending_one_after_the_other_keep_their_order_through_a_backlog(db, monkeypatch):
    """Eight clients, each posting its next message once the previous one was answered, into one
    room with a slow homeserver and slow reads of the queue: a backlog beyond what the sender
    reads at once (made small here), commits racing with reads. Each client's messages arrive
    in its order."""
    monkeypatch.setattr(outbox_sender, "LOAD_LIMIT", 8)
    gw = ScriptedGateway(hold_s=0.005)
    outbox = await _outbox(db, gw, window=4)
    head = outbox.store.head

    async def slow_head(*args, **kwargs):  # type: ignore[no-untyped-def]
        rows = await head(*args, **kwargs)
        await asyncio.sleep(0.005)  # rows committed meanwhile are not in what this read returns
        return rows

    outbox.store.head = slow_head  # type: ignore[method-assign]

    async def client(c: int) -> list[int]:
        return [i for n in range(30) for i in await _request(outbox, [_msg("!r", f"c{c} {n:02d}")])]

    ids = [i for r in await asyncio.gather(*(client(c) for c in range(8))) for i in r]
    await outbox.wait_sent(ids, timeout=60)
    for c in range(8):
        assert [b for b in gw.bodies("!r") if b.startswith(f"c{c} ")] == [f"c{c} {n:02d}" for n in range(30)]
    await outbox.stop()


async def test_every_message_carries_explicit_mentions_and_other_events_are_untouched(db):
    gw = ScriptedGateway()
    stopped = await _outbox(db, gw, start=False)
    asked = {"user_ids": ["@alice:test", "not a user", "@alice:test"], "room": True}
    ids = await stopped.enqueue(
        [
            _msg("!r", "@room deploy finished"),
            OutgoingEvent("!r", {"msgtype": "m.notice", "body": "ping", "m.mentions": asked}),
            OutgoingEvent("!r", {"msgtype": "m.notice", "body": "bad", "m.mentions": "everyone"}),
            OutgoingEvent("!r", {"name": "x"}, event_type="m.room.name"),
        ]
    )
    stored = [await db.fetchval("SELECT content FROM outbox WHERE id = $1", i) for i in ids]
    assert stored[0]["m.mentions"] == {}, "no ping from relayed text unless asked"
    assert stored[1]["m.mentions"] == {"user_ids": ["@alice:test"], "room": True}
    assert stored[2]["m.mentions"] == {}
    assert stored[3] == {"name": "x"}


@dataclass
class CountingSealer:
    """Encrypts only room "!enc"; fails its first `fail` calls (keys could not be shared yet)."""

    fail: int = 0
    calls: int = 0

    async def seal(self, room_id, event_type, content):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls <= self.fail:
            raise RuntimeError("could not share the room key")
        if room_id != "!enc":
            return event_type, content
        return "m.room.encrypted", {"body": content["body"], "ciphertext": f"sealed#{self.calls}"}

    async def may_deliver(self, room_id: str) -> bool:
        return True


@dataclass
class DeviceSealer:
    """One process's view of the encryption device: `leader` holds it. `encrypted` rooms are known
    encrypted; a room in `turned` turns out encrypted only when a message is sealed."""

    leader: bool
    encrypted: set[str] = field(default_factory=lambda: {"!enc"})
    turned: set[str] = field(default_factory=set)
    handed_over: int = 0

    async def may_deliver(self, room_id: str) -> bool:
        return self.leader or room_id not in self.encrypted

    async def seal(self, room_id, event_type, content):  # type: ignore[no-untyped-def]
        if room_id not in self.encrypted | self.turned:
            return event_type, content
        if not self.leader:
            self.handed_over += 1
            self.encrypted.add(room_id)  # as the real one, it remembers what it found
            raise outbox_sender.HandOver(f"{room_id} is encrypted")
        return "m.room.encrypted", {"body": content["body"], "ciphertext": "sealed"}


async def test_a_process_without_the_encryption_device_leaves_encrypted_rooms_to_the_one_with_it(db):
    """Rows a follower queues for an encrypted room are delivered, in order, by the process that
    holds the device; a room found encrypted only at send time is handed over without a lost
    attempt. Plain rooms are delivered by whoever takes them."""
    leader_gw, follower_gw = ScriptedGateway(), ScriptedGateway()
    follower_sealer = DeviceSealer(leader=False, turned={"!late"})
    follower = Outbox(db, follower_gw, NoProfiles(), Metrics(), sealer=follower_sealer)  # type: ignore[arg-type]
    sealer = DeviceSealer(leader=True, turned={"!late"})
    leader = Outbox(db, leader_gw, NoProfiles(), Metrics(), sealer=sealer)  # type: ignore[arg-type]
    await follower.start()
    try:
        ids: list[int] = []
        for i in range(6):
            ids += await _request(follower, [_msg("!enc", f"e{i}"), _msg("!late", f"l{i}"), _msg("!plain", f"p{i}")])
        plain = [i for n, i in enumerate(ids) if n % 3 == 2]
        assert all(await follower.wait_sent(plain, timeout=20))
        for _ in range(100):
            if follower_sealer.handed_over:
                break
            await asyncio.sleep(0.05)
        assert follower_sealer.handed_over >= 1  # the rows it had in flight at once
        assert follower_gw.bodies("!plain") == [f"p{i}" for i in range(6)]
        assert not follower_gw.bodies("!enc") and not follower_gw.bodies("!late")
        # The process with the device starts (or takes the device over): it delivers the rest.
        await leader.start()
        assert all(await follower.wait_sent(ids, timeout=20))
        assert leader_gw.bodies("!enc") == [f"e{i}" for i in range(6)] and not follower_gw.bodies("!enc")
        assert leader_gw.bodies("!late") == [f"l{i}" for i in range(6)] and not follower_gw.bodies("!late")
        # Handing over is not a failed attempt: each row went out on its first.
        attempts = await db.fetch("SELECT attempts FROM outbox WHERE room_id = '!late'")
        assert {r["attempts"] for r in attempts} == {1}
    finally:
        await leader.stop()
        await follower.stop()


async def test_rows_are_sealed_at_send_time_each_attempt_with_the_rows_txn_id(db):
    """A 502 on "b" leaves its fate unknown: the room is searched for its marker, then it is sealed
    and sent again with the same transaction id; the marker rides on the encrypted envelope."""
    gw = ScriptedGateway(script={"b": [SendError("502", status=502)]})
    sealer = CountingSealer(fail=1)
    outbox = Outbox(db, gw, NoProfiles(), Metrics(), sealer=sealer)  # type: ignore[arg-type]
    ids = await outbox.enqueue([_msg("!enc", "a"), _msg("!enc", "b"), _msg("!plain", "p")])
    # Queued rows are plaintext: sealing waits for the send.
    assert sealer.calls == 0
    assert [r["body"] for r in await db.fetch("SELECT content->>'body' AS body FROM outbox ORDER BY id")] == ["a", "b", "p"]
    await outbox.start()
    assert all(await outbox.wait_sent(ids, timeout=20))
    assert gw.bodies("!enc") == ["a", "b"]
    # One failed seal, "b" sealed twice (its send failed once): every attempt re-encrypts, same txn id.
    assert sealer.calls == 5
    assert len(gw.txn_ids) == 4 and len(set(gw.txn_ids)) == 3
    assert all(MARKER in e["content"] for e in gw.history["!enc"])
    assert await db.fetchval("SELECT content->>'body' FROM outbox WHERE id = $1", ids[1]) == "b"
    await outbox.stop()
