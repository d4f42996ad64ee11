"""/live, /ready and /metrics on the listeners; errors are JSON everywhere."""

from __future__ import annotations

from hookshot_py.generic.connection import EVENT_TYPE
from support.fixtures import room_with_bot
from support.helpers import eventually, http, is_notice_with


async def test_live_and_ready_on_every_listener(bridge):
    as_base = f"http://127.0.0.1:{bridge.as_port}"
    for base in (bridge.base_url, as_base):
        assert await http("GET", f"{base}/live") == (200, {"ok": True})
        status, body = await http("GET", f"{base}/ready")
        assert status == 200 and body["ready"] is True and body["outboxDepth"] == 0
        assert body["homeserver"] == {"status": "ok"}


async def test_metrics_count_webhooks_sends_and_connections(bridge, make_user):
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    _, outcome = await bridge.bridge.services.manager.create(room, EVENT_TYPE, {"name": "metered"}, user_id=alice.user_id)
    assert (await http("POST", outcome.secrets["url"], json={"text": "count me"}))[0] == 202
    await alice.wait_for_message(room, is_notice_with("count me"))
    status, text = await http("GET", f"{bridge.base_url}/metrics")
    assert status == 200
    lines = text.splitlines()
    assert 'hookshot_webhooks_http_request_total{method="POST",path="/webhook/{hook_id}",status="202"} 1.0' in lines

    # the bot may still sit in rooms of earlier tests, whose connections it picks up in the background
    async def gauge_matches_manager() -> bool:
        _, text = await http("GET", f"{bridge.base_url}/metrics")
        webhooks = sum(1 for _ in bridge.bridge.services.manager.all(EVENT_TYPE))
        return webhooks >= 1 and f'hookshot_connections{{type="Webhook"}} {float(webhooks)}' in text.splitlines()

    await eventually(gauge_matches_manager)
    assert any(line.startswith("hookshot_outbox_sent_total ") and float(line.split()[-1]) >= 1 for line in lines)

    async def drained() -> bool:  # the message is seen in the room a moment before its send is recorded
        _, text = await http("GET", f"{bridge.base_url}/metrics")
        return "hookshot_outbox_depth 0.0" in text.splitlines()

    await eventually(drained)
    assert any(line.startswith("process_resident_memory_bytes") for line in lines)


async def test_unknown_routes_are_json_errors(bridge):
    status, body = await http("GET", f"{bridge.base_url}/webhook/")
    assert status == 404 and body["errcode"] == "HS_NOTFOUND"
