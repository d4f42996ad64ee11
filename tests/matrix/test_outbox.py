"""The outbox's retry rules, against a real Postgres and a scripted gateway (no HTTP)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


from hookshot_py.matrix.gateway import SendError
from hookshot_py.matrix.outbox import Outbox, OutgoingEvent, backoff_seconds
from hookshot_py.metrics import Metrics

BOT = "@bot:test"


@dataclass
class ScriptedGateway:
    """Answers sends from a script of errors, then succeeds; records what was sent."""

    script: dict[str, list[SendError]] = field(default_factory=dict)
    sent: list[tuple[str, str, str]] = field(default_factory=list)
    txn_ids: list[str] = field(default_factory=list)
    bot_mxid: str = BOT

    async def ensure_joined(self, room_id: str, user_id: str | None = None, *, recheck: bool = False) -> None:
        return None

    async def send_event(self, room_id, sender, event_type, content, txn_id) -> str:  # type: ignore[no-untyped-def]
        self.txn_ids.append(txn_id)
        errors = self.script.get(content["body"], [])
        if errors:
            raise errors.pop(0)
        self.sent.append((room_id, sender, content["body"]))
        return f"$event{len(self.sent)}"


class NoProfiles:
    async def ensure_applied(self, user_id: str) -> None:
        return None


async def _outbox(db, gateway) -> Outbox:
    outbox = Outbox(db, gateway, NoProfiles(), Metrics())  # type: ignore[arg-type]
    await outbox.start()
    return outbox


def _msg(room: str, body: str, **kw) -> OutgoingEvent:  # type: ignore[no-untyped-def]
    return OutgoingEvent(room, {"msgtype": "m.notice", "body": body}, **kw)


async def test_429_waits_retry_after_and_keeps_room_order(db):
    gw = ScriptedGateway(script={"b": [SendError("429", status=429, retry_after_ms=300)]})
    outbox = await _outbox(db, gw)
    ids = await outbox.enqueue([_msg("!r", "a"), _msg("!r", "b"), _msg("!r", "c"), _msg("!other", "x")])
    loop = asyncio.get_running_loop()
    start = loop.time()
    results = await outbox.wait_sent(ids, timeout=10)
    assert all(r and r.startswith("$") for r in results)
    assert [b for r, _, b in gw.sent if r == "!r"] == ["a", "b", "c"]
    assert loop.time() - start >= 0.3
    # five attempts in all, four distinct txn ids: the retry of "b" reused its id
    assert len(gw.txn_ids) == 5 and len(set(gw.txn_ids)) == 4
    row = await db.fetchrow("SELECT attempts, last_error FROM outbox WHERE id = $1", ids[1])
    assert row["attempts"] == 2 and "429" in row["last_error"]
    await outbox.stop()


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
    stopped = Outbox(db, gw, NoProfiles(), Metrics())  # type: ignore[arg-type]
    ids = await stopped.enqueue([_msg("!r", "queued before start")])
    outbox = await _outbox(db, gw)
    await outbox.wait_sent(ids, timeout=10)
    assert gw.sent == [("!r", BOT, "queued before start")]
    await outbox.stop()


def test_backoff_grows_and_is_capped():
    assert 0.4 <= backoff_seconds(1) <= 0.6
    assert 3.2 <= backoff_seconds(4) <= 4.8
    assert backoff_seconds(50) <= 360


async def test_every_message_carries_explicit_mentions_and_other_events_are_untouched(db):
    gw = ScriptedGateway()
    stopped = Outbox(db, gw, NoProfiles(), Metrics())  # type: ignore[arg-type]
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


async def test_rows_are_sealed_at_send_time_each_attempt_with_the_rows_txn_id(db):
    gw = ScriptedGateway(script={"b": [SendError("502", status=502)]})
    sealer = CountingSealer(fail=1)
    outbox = Outbox(db, gw, NoProfiles(), Metrics(), sealer=sealer)  # type: ignore[arg-type]
    ids = await outbox.enqueue([_msg("!enc", "a"), _msg("!enc", "b"), _msg("!plain", "p")])
    # Queued rows are plaintext: sealing waits for the send.
    assert sealer.calls == 0
    assert [r["body"] for r in await db.fetch("SELECT content->>'body' AS body FROM outbox ORDER BY id")] == ["a", "b", "p"]
    await outbox.start()
    assert all(await outbox.wait_sent(ids, timeout=20))
    assert [b for r, _, b in gw.sent if r == "!enc"] == ["a", "b"]
    # One failed seal, "b" sealed twice (its send failed once): every attempt re-encrypts, same txn id.
    assert sealer.calls == 5
    assert len(gw.txn_ids) == 4 and len(set(gw.txn_ids)) == 3
    assert await db.fetchval("SELECT content->>'body' FROM outbox WHERE id = $1", ids[1]) == "b"
    await outbox.stop()
