"""Homeserver transactions: deduplicated by id and content, each event handled in isolation,
hostile bodies refused with 4xx — against a real Postgres, no homeserver."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from hookshot_py import jsonsafe
from hookshot_py.db.database import Database
from hookshot_py.matrix.appservice import HookshotAppService

HS_TOKEN = "hs-secret"


class Recorder:
    def __init__(self) -> None:
        self.seen: list[str] = []
        self.fail: dict[str, BaseException] = {}

    async def __call__(self, event: dict[str, Any]) -> None:
        event_id = event["event_id"]
        if event_id in self.fail:
            raise self.fail.pop(event_id)
        self.seen.append(event_id)


@pytest.fixture
async def client(db):
    appservice = HookshotAppService(
        db=db, server="http://127.0.0.1:1", domain="test", as_token="as", hs_token=HS_TOKEN,
        bot_localpart="bot", id="test",
    )
    recorder = Recorder()
    appservice.on_event = recorder
    async with TestClient(TestServer(appservice.app)) as c:
        c.recorder = recorder  # type: ignore[attr-defined]
        c.app_service = appservice  # type: ignore[attr-defined]
        yield c


def _event(event_id: str) -> dict[str, Any]:
    return {"event_id": event_id, "type": "m.room.message", "room_id": "!r:test", "content": {"body": "x"}}


async def _put(client: TestClient, txn: str, body: Any) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    resp = await client.put(
        f"/_matrix/app/v1/transactions/{txn}", data=data,
        headers={"Authorization": f"Bearer {HS_TOKEN}", "Content-Type": "application/json"},
    )
    return resp.status, await resp.json()


async def test_a_repeated_transaction_is_handled_once(client):
    body = {"events": [_event("$a"), _event("$b")]}
    assert (await _put(client, "1", body))[0] == 200
    assert (await _put(client, "1", body))[0] == 200
    assert client.recorder.seen == ["$a", "$b"]


async def test_a_restarted_homeserver_reusing_ids_is_not_ignored(client):
    """Synapse on SQLite numbers transactions from 1 again after a restart."""
    assert (await _put(client, "1", {"events": [_event("$before")]}))[0] == 200
    assert (await _put(client, "1", {"events": [_event("$after")]}))[0] == 200
    assert client.recorder.seen == ["$before", "$after"]


async def test_a_retry_the_homeserver_rebuilt_is_still_the_same_transaction(client):
    """Synapse re-reads a transaction's events for each retry: `unsigned.age` changes."""
    first = {"events": [_event("$r1") | {"unsigned": {"age": 10}}, _event("$r2")]}
    again = {"events": [_event("$r1") | {"unsigned": {"age": 5010}}, _event("$r2")]}
    assert (await _put(client, "r", first))[0] == 200
    client.app_service._recent.clear()  # as a retry reaching another process would find it
    assert (await _put(client, "r", again))[0] == 200
    assert client.recorder.seen == ["$r1", "$r2"]


async def test_one_bad_event_is_skipped_and_the_rest_flow(client):
    client.recorder.fail["$bad"] = ValueError("unstorable")
    status, _ = await _put(client, "7", {"events": [_event("$ok1"), _event("$bad"), _event("$ok2")]})
    assert status == 200
    assert client.recorder.seen == ["$ok1", "$ok2"]


async def test_an_event_nested_too_deep_is_skipped_and_the_rest_flow(client):
    """Any room member can send one: refusing the transaction would wedge the homeserver's
    stream (it retries a refused transaction for ever)."""
    deep: dict = {}
    inner = deep
    for _ in range(200):
        inner["x"] = {}
        inner = inner["x"]
    for n, body in enumerate([deep, _nested(jsonsafe.MAX_DEPTH)]):
        client.recorder.seen.clear()
        events = [_event(f"$ok{n}a"), {**_event(f"$deep{n}"), "content": body}, _event(f"$ok{n}b")]
        status, answer = await _put(client, f"deep-{n}", {"events": events})
        assert status == 200, answer
        assert client.recorder.seen == [f"$ok{n}a", f"$ok{n}b"]
    client.recorder.seen.clear()
    assert (await _put(client, "at-limit", {"events": [{**_event("$fine"), "content": _nested(50)}]}))[0] == 200
    assert client.recorder.seen == ["$fine"]


def _nested(levels: int) -> dict:
    node: dict = {"leaf": 1}
    for _ in range(levels):
        node = {"x": node}
    return node


async def test_a_transient_failure_is_retried_without_repeating_handled_events(client):
    client.recorder.fail["$second"] = ConnectionError("database down")
    body = {"events": [_event("$first"), _event("$second")]}
    status, answer = await _put(client, "9", body)
    assert status == 500 and answer["errcode"] == "M_UNKNOWN"
    assert (await _put(client, "9", body))[0] == 200
    assert client.recorder.seen == ["$first", "$second"]


@pytest.mark.parametrize(
    "body",
    [
        b"{" * 100_000,
        b"[" * 5_000 + b"]" * 5_000,
        b'{"events": [' + b"[" * 5_000 + b"]" * 5_000 + b"]}",
        b"\xff\xfe not utf-8",
        b"not json",
    ],
)
async def test_hostile_bodies_get_4xx(client, body):
    status, answer = await _put(client, "h", body)
    assert 400 <= status < 500, answer
    assert client.recorder.seen == []


async def test_a_large_transaction_is_cut_into_events_in_a_worker(client):
    from hookshot_py.cpu_pool import CpuPool

    pool = CpuPool(workers=1, heavy_workers=1)
    client.app_service.cpu = pool
    try:
        events = [{**_event(f"$big{i}"), "content": {"body": "x" * 4000, "nested": [{"a": [1]}] * 50}} for i in range(100)]
        assert (await _put(client, "big", {"events": events}))[0] == 200
        assert client.recorder.seen == [f"$big{i}" for i in range(100)]
        client.recorder.seen.clear()
        mixed = [events[0] | {"event_id": "$w1"}, {**_event("$wdeep"), "content": _nested(100)}, _event("$w2")]
        assert (await _put(client, "big-deep", {"events": mixed, "pad": "x" * 300_000}))[0] == 200
        assert client.recorder.seen == ["$w1", "$w2"]
        hostile = b'{"events": [' + b"[" * 5_000 + b"]" * 5_000 + b"], " + b'"pad": "' + b"x" * 300_000 + b'"}'
        status, answer = await _put(client, "big-hostile", hostile)
        assert (status, answer["errcode"]) == (400, "M_NOT_JSON") and "deeper" in answer["error"]
        status, answer = await _put(client, "no-events", b'{"pad": "' + b"x" * 300_000 + b'"}')
        assert (status, answer["errcode"]) == (400, "M_BAD_JSON")
    finally:
        await pool.close()


async def test_the_ping_route_reads_its_body_like_the_transaction_route(client):
    auth = {"Authorization": f"Bearer {HS_TOKEN}"}
    for body, status in [(b'{"transaction_id": "t"}', 200), (b"", 200), (b"[1]", 200), (b"\xff", 400),
                         (b"[" * 5000 + b"]" * 5000, 400), (b"x" * 70_000, 413)]:  # fmt: skip
        resp = await client.post("/_matrix/app/v1/ping", data=body, headers=auth)
        assert resp.status == status, (body[:20], await resp.text())
    resp = await client.post("/_matrix/app/v1/ping", data=b"{}", headers={"Authorization": "Bearer wrong"})
    assert resp.status == 403


async def test_a_nul_in_the_url_is_refused(client):
    resp = await client.get("/_matrix/app/v1/users/%40a%00b%3Atest", headers={"Authorization": f"Bearer {HS_TOKEN}"})
    assert resp.status == 400 and (await resp.json())["errcode"] == "HS_BAD_VALUE"
@contextlib.asynccontextmanager
async def _process(db, process_id: str, handler):  # type: ignore[no-untyped-def]
    """A bridge process of its own: its connections carry its id (how others see it alive)."""
    own = Database(db.dsn)
    await own.start(migrate=False, application_name=f"hookshot_py {process_id}")
    appservice = HookshotAppService(
        db=own, process_id=process_id, server="http://127.0.0.1:1", domain="test", as_token="as", hs_token=HS_TOKEN,
        bot_localpart="bot", id="test",
    )
    appservice.on_event = handler
    client = TestClient(TestServer(appservice.app))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()
        await own.stop()


async def test_a_transaction_retried_to_another_process_is_handled_once(db):
    """Process A is still handling transaction 5 when the homeserver's retry reaches process B:
    B waits for A, then acknowledges without handling anything itself."""
    release = asyncio.Event()
    a_seen: list[str] = []
    b_seen = Recorder()

    async def slow(event: dict[str, Any]) -> None:
        await release.wait()
        a_seen.append(event["event_id"])

    async with _process(db, "host:1:a", slow) as a, _process(db, "host:2:b", b_seen) as b:
        body = {"events": [_event("$once")]}
        first = asyncio.create_task(_put(a, "5", body))
        await asyncio.sleep(0.3)
        retry = asyncio.create_task(_put(b, "5", body))
        await asyncio.sleep(0.5)
        assert not retry.done(), "B must wait while A handles the transaction"
        release.set()
        assert (await first)[0] == 200 and (await retry)[0] == 200
        assert a_seen == ["$once"] and b_seen.seen == []


async def test_a_transaction_whose_claimer_died_is_handled_by_another(db):
    """The claim is fresh, but its owner has no connection to Postgres left: it died."""
    raw = json.dumps({"events": [_event("$orphan")]}).encode()
    await db.execute(
        "INSERT INTO appservice_txns (txn_id, digest, owner, claimed_until, processed_at) "
        "VALUES ('6', $1, 'host:9:dead', now() + interval '1 minute', NULL)",
        hashlib.sha256(b"$orphan").digest(),  # a transaction is known by its events' ids
    )
    recorder = Recorder()
    async with _process(db, "host:2:b", recorder) as b:
        assert (await _put(b, "6", raw))[0] == 200
        assert recorder.seen == ["$orphan"]
        assert await db.fetchval("SELECT owner FROM appservice_txns WHERE txn_id = '6'") == "host:2:b"
