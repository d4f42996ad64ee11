"""Connections survive restarts, hand edits, a wiped database, and come over from hookshot."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from hookshot_py.config import load_registration
from hookshot_py.generic.connection import ACCOUNT_DATA_TYPE, EVENT_TYPE
from support.fixtures import BOT, room_with_bot
from support.helpers import eventually, http, is_notice_with


def _generic(harness):
    return next(t for t in harness.bridge.services.manager.types if t.event_type == EVENT_TYPE)


async def test_restart_loads_from_the_database_before_reading_room_state(bridge, make_user):
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    conn, outcome = await bridge.bridge.services.manager.create(room, EVENT_TYPE, {"name": "keep"}, user_id=alice.user_id)
    url = outcome.secrets["url"]
    await bridge.stop()
    # Start without reconciliation having run yet: the mirror alone must be enough.
    await bridge.start()
    assert [c.state_key for c in bridge.bridge.services.manager.connections(room)] == ["keep"]
    assert (await http("POST", url, json={"text": "after restart"}))[0] == 202
    await alice.wait_for_message(room, is_notice_with("after restart"))


async def test_mirror_follows_state_edited_and_removed_by_hand(bridge, make_user):
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    manager = bridge.bridge.services.manager
    await alice.send_state(room, EVENT_TYPE, "handmade", {"name": "handmade"})
    conn = await eventually(lambda: _find(manager, room, "handmade"))
    url = _generic(bridge).secrets(conn)["url"]
    assert (await http("POST", url, json={"text": "hand made"}))[0] == 202
    await alice.wait_for_message(room, is_notice_with("hand made"))

    await alice.send_state(room, EVENT_TYPE, "handmade", {"name": "handmade", "includeHookBody": False})
    await eventually(lambda: _state_is(manager, room, "handmade", {"name": "handmade", "includeHookBody": False}))
    rows = await bridge.bridge.services.db.fetch("SELECT content FROM connections WHERE room_id = $1", room)
    assert [r["content"] for r in rows] == [{"name": "handmade", "includeHookBody": False}]

    await alice.send_state(room, EVENT_TYPE, "handmade", {})
    await eventually(lambda: _gone(manager, room, "handmade"))
    assert await bridge.bridge.services.db.fetchval("SELECT count(*) FROM connections WHERE room_id = $1", room) == 0
    assert (await http("POST", url, json={"text": "x"}))[0] == 404

    # Invalid state is refused with a notice, not half-applied.
    await alice.send_state(room, EVENT_TYPE, "x", {"name": "x"})
    await alice.wait_for_message(room, is_notice_with("Ignoring the Webhook connection `x`"))
    assert await _find(manager, room, "x") is None


async def test_wiped_database_is_rebuilt_from_room_state_with_the_same_urls(bridge, make_user):
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    _, outcome = await bridge.bridge.services.manager.create(room, EVENT_TYPE, {"name": "survivor"}, user_id=alice.user_id)
    url = outcome.secrets["url"]
    await bridge.stop()
    conn = await asyncpg.connect(bridge.dsn)
    await conn.execute("TRUNCATE connections, generic_hooks")
    await conn.close()
    await bridge.start()
    await eventually(lambda: _find(bridge.bridge.services.manager, room, "survivor"))
    assert (await http("POST", url, json={"text": "rebuilt"}))[0] == 202
    await alice.wait_for_message(room, is_notice_with("rebuilt"))


async def test_state_written_by_hookshot_is_picked_up(bridge, make_user):
    """hookshot keeps the hook id in the bot's room account data; its state may use legacy names."""
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    await bridge.stop()
    hook_id = str(uuid.uuid4())
    reg = load_registration(bridge.registration_path)
    status, _ = await _put_bot_account_data(bridge, reg.as_token, room, {hook_id: "from-hookshot"})
    assert status == 200
    await alice.send_state(room, "uk.half-shot.matrix-github.generic.hook", "from-hookshot", {"name": "from-hookshot"})
    await bridge.start()
    conn = await eventually(lambda: _find(bridge.bridge.services.manager, room, "from-hookshot"))
    assert conn.event_type == EVENT_TYPE
    url = f"{bridge.base_url}/webhook/{hook_id}"
    assert (await http("POST", url, json={"text": "hello from the old hook"}))[0] == 202
    await alice.wait_for_message(room, is_notice_with("hello from the old hook"))


async def _put_bot_account_data(bridge, as_token, room, content):
    from urllib.parse import quote

    url = (
        f"{bridge.synapse.base_url}/_matrix/client/v3/user/{quote(BOT)}/rooms/{quote(room)}"
        f"/account_data/{ACCOUNT_DATA_TYPE}"
    )
    return await http("PUT", url, json=content, headers={"Authorization": f"Bearer {as_token}"})


async def _find(manager, room, key):
    return manager.find(room, EVENT_TYPE, key)


async def _gone(manager, room, key):
    return manager.find(room, EVENT_TYPE, key) is None


async def _state_is(manager, room, key, state):
    conn = manager.find(room, EVENT_TYPE, key)
    return conn is not None and conn.state == state


async def test_unstorable_state_is_refused_and_never_wedges_the_homeserver_link(bridge, make_user):
    """A NUL character or deep nesting in a connection state event used to fail the mirror,
    answer 500 to the whole transaction, and have the homeserver retry it for ever."""
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    await alice.send_state(room, EVENT_TYPE, "nul", {"name": "nul", "note": "a\u0000b"})
    await alice.wait_for_message(room, is_notice_with("Ignoring the Webhook connection `nul`: /note: contains a NUL"))
    deep: dict = {"name": "deep"}
    node = deep
    for _ in range(40):
        node["x"] = {}
        node = node["x"]
    await alice.send_state(room, EVENT_TYPE, "deep", deep)
    await alice.wait_for_message(room, is_notice_with("Ignoring the Webhook connection `deep`: /: nests deeper"))
    # A message nested deeper than the bridge handles is skipped on its own, not the transaction.
    deeper: Any = deep
    for _ in range(40):
        deeper = [deeper]
    await alice.send_event(room, "org.example.deep", {"x": deeper})
    # The stream keeps flowing: a command right after is answered, a good hook is picked up.
    await alice.send_text(room, "!hookshot webhook list")
    await alice.wait_for_message(room, is_notice_with("There are no webhooks in this room"))
    await alice.send_state(room, EVENT_TYPE, "fine", {"name": "fine"})
    assert (await eventually(lambda: _find(bridge.bridge.services.manager, room, "fine"))) is not None
    assert await _find(bridge.bridge.services.manager, room, "nul") is None
