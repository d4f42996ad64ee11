"""The ConnectionManager on the in-memory homeserver and a real Postgres: create, update, remove,
refusals, state from the homeserver, loading from the mirror, reconciliation."""

from __future__ import annotations

import hashlib

import pytest

from hookshot_py.connections.base import connection_id
from hookshot_py.errors import ApiError, ErrCode
from hookshot_py.generic.connection import ACCOUNT_DATA_TYPE, LEGACY_EVENT_TYPE
from hookshot_py.generic.connection import EVENT_TYPE as HOOK
from support.core import BOT, SERVER_NAME, URL_PREFIX
from support.widget import EVENT_TYPE as WIDGET
from support.widget import LEGACY_EVENT_TYPE as OLD_WIDGET
from support.widget import WidgetType

ALICE = f"@alice:{SERVER_NAME}"
BOB = f"@bob:{SERVER_NAME}"
OUTSIDER = "@mallory:elsewhere.test"


@pytest.fixture
async def widgets(core_factory):
    """A core with the generic webhooks and the test widget type; returns (core, widget type)."""
    wt = WidgetType()
    return await core_factory(types=[wt]), wt


async def _rows(core, room_id):
    rows = await core.db.fetch(
        "SELECT event_type, state_key, connection_id, content FROM connections WHERE room_id = $1 ORDER BY state_key",
        room_id,
    )
    return [(r["event_type"], r["state_key"], r["connection_id"], r["content"]) for r in rows]


async def _refused(coro, errcode: ErrCode) -> ApiError:
    with pytest.raises(ApiError) as err:
        await coro
    assert err.value.errcode == errcode, err.value.error
    return err.value


# -- create ------------------------------------------------------------------------------------------


async def test_create_writes_state_then_mirror_then_index(core):
    room = core.room_with_bot(ALICE)
    conn, outcome = await core.manager.create(room, HOOK, {"name": "ci-hook", "waitForComplete": None}, user_id=ALICE)

    assert conn.id == hashlib.md5(f"{room}/{HOOK}/ci-hook".encode()).hexdigest()
    # The state event is the truth: written by the bot, normalised (null fields dropped), no secret in it.
    event = core.hs.room(room).state[(HOOK, "ci-hook")]
    assert event["sender"] == BOT and event["content"] == {"name": "ci-hook"}
    assert await _rows(core, room) == [(HOOK, "ci-hook", conn.id, {"name": "ci-hook"})]
    assert core.manager.get(room, conn.id) is conn and core.manager.find(room, HOOK, "ci-hook") is conn
    assert outcome.secrets["url"].startswith(URL_PREFIX)
    hook_id = outcome.secrets["hookId"]
    # The hook id is kept in Postgres and backed up in the bot's room account data, like hookshot.
    assert await core.db.fetchval("SELECT hook_id FROM generic_hooks WHERE room_id = $1", room) == hook_id
    assert core.hs.room_account_data[(BOT, room, ACCOUNT_DATA_TYPE)] == {hook_id: "ci-hook"}
    details = core.manager.details(conn, include_secrets=False)
    assert details == {
        "type": "Webhook",
        "eventType": HOOK,
        "id": conn.id,
        "service": "webhook",
        "botUserId": BOT,
        "config": {"name": "ci-hook"},
    }
    assert core.manager.details(conn, include_secrets=True)["secrets"]["url"] == outcome.secrets["url"]


async def test_create_in_an_older_room_where_the_creator_is_listed(core):
    room = core.room_with_bot(ALICE, version="10")
    assert ":" in room
    conn, _ = await core.manager.create(room, HOOK, {"name": "v10-hook"}, user_id=ALICE)
    assert core.hs.room(room).content(HOOK, "v10-hook") == {"name": "v10-hook"} and conn.room_id == room


async def test_invalid_state_is_refused_with_every_problem_and_nothing_written(core):
    room = core.room_with_bot(ALICE)
    err = await _refused(
        core.manager.create(room, HOOK, {"name": "x", "waitForComplete": "yes"}, user_id=ALICE), ErrCode.BAD_VALUE
    )
    assert {e["path"] for e in err.extra["validationErrors"]} == {"/name", "/waitForComplete"}
    await _refused(core.manager.create(room, HOOK, ["not", "an", "object"], user_id=ALICE), ErrCode.BAD_VALUE)
    await _refused(core.manager.create(room, "org.example.unknown", {}, user_id=ALICE), ErrCode.NOT_FOUND)
    assert core.gateway.called("put_state") == [] and await _rows(core, room) == []


async def test_a_second_connection_with_the_same_key_conflicts(core):
    room = core.room_with_bot(ALICE)
    await core.manager.create(room, HOOK, {"name": "twice"}, user_id=ALICE)
    err = await _refused(
        core.manager.create(room, HOOK, {"name": "twice"}, user_id=ALICE), ErrCode.CONFLICTING_CONNECTION
    )
    assert err.status == 409 and err.extra["existingConnection"]["config"] == {"name": "twice"}
    assert "secrets" not in err.extra["existingConnection"]
    assert len(core.gateway.called("put_state")) == 1


async def test_the_user_needs_manage_connections_in_the_bridge_config(core_factory):
    core = await core_factory(
        {"permissions": [{"actor": SERVER_NAME, "services": [{"service": "*", "level": "commands"}]}]}
    )
    room = core.room_with_bot(ALICE)
    err = await _refused(core.manager.create(room, HOOK, {"name": "nope"}, user_id=ALICE), ErrCode.FORBIDDEN_USER)
    assert "manageConnections" in err.error and "generic" in err.error
    assert core.gateway.called("put_state") == []


async def test_the_user_needs_the_power_to_send_the_state_event(core):
    room = core.room_with_bot(ALICE)
    core.hs.invite(room, ALICE, BOB)
    core.hs.join(room, BOB)
    err = await _refused(core.manager.create(room, HOOK, {"name": "bobs"}, user_id=BOB), ErrCode.FORBIDDEN_USER)
    assert "power level of 0 but needs at least 50" in err.error
    # A moderator may; a custom level for the event type counts, not state_default.
    core.hs.set_power_levels(room, ALICE, {BOB: 50}, events={HOOK: 75, "m.room.power_levels": 100})
    err = await _refused(core.manager.create(room, HOOK, {"name": "bobs"}, user_id=BOB), ErrCode.FORBIDDEN_USER)
    assert "needs at least 75" in err.error
    core.hs.set_power_levels(room, ALICE, {BOB: 75, BOT: 75})
    conn, _ = await core.manager.create(room, HOOK, {"name": "bobs"}, user_id=BOB)
    assert core.hs.room(room).state[(HOOK, "bobs")]["sender"] == BOT


async def test_the_bot_needs_the_power_to_send_the_state_event(core):
    room = core.room_with_bot(ALICE, bot_level=None)
    err = await _refused(core.manager.create(room, HOOK, {"name": "weak-bot"}, user_id=ALICE), ErrCode.FORBIDDEN_BOT)
    assert "Bot has a power level of 0 but needs at least 50" in err.error and BOT in err.error
    assert core.gateway.called("put_state") == []


async def test_room_membership_of_the_user_and_the_bot(core):
    room = core.room_with_bot(ALICE)
    err = await _refused(core.manager.create(room, HOOK, {"name": "outsider"}, user_id=BOB), ErrCode.NOT_IN_ROOM)
    assert BOB in err.error
    # The bot joins a room it was invited to (and only then).
    invited = core.hs.create_room(ALICE, invite=[BOT], power_users={BOT: 50})
    conn, _ = await core.manager.create(invited, HOOK, {"name": "joined-now"}, user_id=ALICE)
    assert core.hs.room(invited).membership(BOT) == "join"
    lonely = core.hs.create_room(ALICE)
    err = await _refused(core.manager.create(lonely, HOOK, {"name": "lonely"}, user_id=ALICE), ErrCode.NOT_IN_ROOM)
    assert "Invite the bot" in err.error
    await _refused(
        core.manager.create(f"!unknown:{SERVER_NAME}", HOOK, {"name": "nowhere"}, user_id=ALICE), ErrCode.NOT_FOUND
    )


async def test_command_prefixes_are_unique_in_a_room(widgets):
    core, _ = widgets
    room = core.room_with_bot(ALICE)
    await core.manager.create(room, WIDGET, {"name": "first"}, user_id=ALICE)
    err = await _refused(
        core.manager.create(room, WIDGET, {"name": "second"}, user_id=ALICE), ErrCode.CONFLICTING_CONNECTION
    )
    assert "!wd" in err.error and err.extra["existingConnection"]["config"] == {"name": "first"}
    second, _ = await core.manager.create(room, WIDGET, {"name": "second", "commandPrefix": "!wd2"}, user_id=ALICE)
    await _refused(
        core.manager.update(room, second.id, {"commandPrefix": "!wd"}, user_id=ALICE), ErrCode.CONFLICTING_CONNECTION
    )
    # The same prefix in another room is fine.
    other = core.room_with_bot(ALICE)
    await core.manager.create(other, WIDGET, {"name": "first"}, user_id=ALICE)
    err = await _refused(
        core.manager.create(room, WIDGET, {"name": "bad", "commandPrefix": "bad prefix"}, user_id=ALICE),
        ErrCode.BAD_VALUE,
    )
    assert [e["path"] for e in err.extra["validationErrors"]] == ["/commandPrefix"]


async def test_prepare_is_undone_when_the_state_write_fails(widgets):
    core, wt = widgets
    room = core.room_with_bot(ALICE)
    core.hs.fail("put_state", status=403, errcode="M_FORBIDDEN", error="server says no", room_id=room)
    err = await _refused(core.manager.create(room, WIDGET, {"name": "doomed"}, user_id=ALICE), ErrCode.FORBIDDEN_BOT)
    assert "server says no" in err.error
    assert wt.calls("prepare") == ["doomed"] and wt.calls("on_removed") == ["doomed"]
    assert core.manager.connections(room) == [] and await _rows(core, room) == []
    assert (WIDGET, "doomed") not in core.hs.room(room).state


async def test_a_webhook_whose_state_write_failed_leaves_no_secret_behind(core):
    room = core.room_with_bot(ALICE)
    core.hs.fail("put_state", status=403, errcode="M_FORBIDDEN", room_id=room)
    await _refused(core.manager.create(room, HOOK, {"name": "doomed"}, user_id=ALICE), ErrCode.FORBIDDEN_BOT)
    assert await core.db.fetchval("SELECT count(*) FROM generic_hooks") == 0
    assert core.hs.room_account_data.get((BOT, room, ACCOUNT_DATA_TYPE), {}) == {}


async def test_a_refusing_prepare_writes_nothing(widgets):
    core, wt = widgets
    room = core.room_with_bot(ALICE)
    await _refused(
        core.manager.create(room, WIDGET, {"name": "refused", "refuse": True}, user_id=ALICE), ErrCode.FORBIDDEN_USER
    )
    assert core.gateway.called("put_state") == [] and wt.calls("on_loaded") == []


# -- update and remove --------------------------------------------------------------------------------


async def test_update_merges_revalidates_and_rewrites_the_state(core):
    room = core.room_with_bot(ALICE)
    conn, created = await core.manager.create(room, HOOK, {"name": "patch-me"}, user_id=ALICE)
    updated, outcome = await core.manager.update(room, conn.id, {"waitForComplete": True}, user_id=ALICE)
    assert updated.id == conn.id and updated.state == {"name": "patch-me", "waitForComplete": True}
    assert core.hs.room(room).content(HOOK, "patch-me") == {"name": "patch-me", "waitForComplete": True}
    assert await _rows(core, room) == [(HOOK, "patch-me", conn.id, updated.state)]
    assert core.manager.get(room, conn.id).state == updated.state
    # The secret stays the same across an update.
    assert outcome.secrets["url"] == created.secrets["url"]

    err = await _refused(core.manager.update(room, conn.id, {"waitForComplete": 1}, user_id=ALICE), ErrCode.BAD_VALUE)
    assert err.extra["validationErrors"][0]["path"] == "/waitForComplete"
    err = await _refused(core.manager.update(room, conn.id, {"name": "renamed"}, user_id=ALICE), ErrCode.BAD_VALUE)
    assert "identity" in err.error
    await _refused(core.manager.update(room, conn.id, "not an object", user_id=ALICE), ErrCode.BAD_VALUE)
    await _refused(core.manager.update(room, "0" * 32, {}, user_id=ALICE), ErrCode.NOT_FOUND)
    core.hs.invite(room, ALICE, BOB)
    core.hs.join(room, BOB)
    await _refused(core.manager.update(room, conn.id, {"waitForComplete": False}, user_id=BOB), ErrCode.FORBIDDEN_USER)
    assert core.hs.room(room).content(HOOK, "patch-me") == {"name": "patch-me", "waitForComplete": True}


async def test_remove_disables_the_state_and_cleans_up(widgets):
    core, wt = widgets
    room = core.room_with_bot(ALICE)
    hook, _ = await core.manager.create(room, HOOK, {"name": "gone-soon"}, user_id=ALICE)
    widget, _ = await core.manager.create(room, WIDGET, {"name": "widget"}, user_id=ALICE)

    core.hs.invite(room, ALICE, BOB)
    core.hs.join(room, BOB)
    await _refused(core.manager.remove(room, hook.id, user_id=BOB), ErrCode.FORBIDDEN_USER)

    assert await core.manager.remove(room, hook.id, user_id=ALICE) == []
    assert core.hs.room(room).content(HOOK, "gone-soon") == {"disabled": True}
    assert await core.db.fetchval("SELECT count(*) FROM generic_hooks") == 0
    assert core.hs.room_account_data[(BOT, room, ACCOUNT_DATA_TYPE)] == {}
    assert [c.id for c in core.manager.connections(room)] == [widget.id]
    await _refused(core.manager.remove(room, hook.id, user_id=ALICE), ErrCode.NOT_FOUND)

    assert await core.manager.remove(room, widget.id, user_id=ALICE) == ["the widget's remote side was left in place"]
    assert wt.calls("on_unloaded") == ["widget"] and wt.calls("on_removed") == ["widget"]
    assert await _rows(core, room) == []


# -- state from the homeserver ---------------------------------------------------------------------------


async def test_state_written_by_hand_is_picked_up_edited_and_removed(core):
    room = core.room_with_bot(ALICE)
    core.hs.send_state(room, ALICE, HOOK, "handmade", {"name": "handmade"})
    await core.settle()
    conn = core.manager.find(room, HOOK, "handmade")
    assert conn is not None and conn.id == connection_id(room, HOOK, "handmade")
    generic = core.manager.type_of(conn)
    url = generic.secrets(conn)["url"]
    assert url.startswith(URL_PREFIX)

    core.hs.send_state(room, ALICE, HOOK, "handmade", {"name": "handmade", "includeHookBody": False})
    await core.settle()
    assert core.manager.find(room, HOOK, "handmade").state == {"name": "handmade", "includeHookBody": False}
    assert (await _rows(core, room))[0][3] == {"name": "handmade", "includeHookBody": False}
    assert generic.secrets(core.manager.find(room, HOOK, "handmade"))["url"] == url  # same hook id

    core.hs.send_state(room, ALICE, HOOK, "handmade", {})
    await core.settle()
    assert core.manager.find(room, HOOK, "handmade") is None and await _rows(core, room) == []
    assert await core.db.fetchval("SELECT count(*) FROM generic_hooks") == 0
    assert core.hs.bodies(room) == []  # all of it silently


async def test_state_under_a_legacy_type_becomes_the_canonical_type(core):
    room = core.room_with_bot(ALICE)
    core.hs.send_state(room, ALICE, LEGACY_EVENT_TYPE, "old-style", {"name": "old-style"})
    await core.settle()
    conn = core.manager.find(room, HOOK, "old-style")
    assert conn is not None and conn.event_type == HOOK


async def test_state_from_a_user_without_manage_connections_is_ignored_with_a_notice(core_factory):
    core = await core_factory(
        {
            "permissions": [
                {"actor": ALICE, "services": [{"service": "*", "level": "admin"}]},
                {"actor": BOB, "services": [{"service": "*", "level": "commands"}]},
            ]
        }
    )
    room = core.room_with_bot(ALICE)
    core.hs.invite(room, ALICE, BOB)
    core.hs.join(room, BOB)
    core.hs.set_power_levels(room, ALICE, {BOB: 50})
    await core.manager.create(room, HOOK, {"name": "alices"}, user_id=ALICE)
    core.hs.send_state(room, BOB, HOOK, "alices", {"name": "alices", "waitForComplete": True})
    core.hs.send_state(room, BOB, HOOK, "bobs", {"name": "bobs"})
    await core.settle()
    assert core.manager.find(room, HOOK, "alices").state == {"name": "alices"}
    assert core.manager.find(room, HOOK, "bobs") is None
    notices = core.hs.bodies(room)
    assert len(notices) == 2 and all("lack the manageConnections permission" in n and BOB in n for n in notices)
    assert (await _rows(core, room))[0][3] == {"name": "alices"}


async def test_invalid_state_is_ignored_with_a_notice_and_the_old_state_kept(core):
    room = core.room_with_bot(ALICE)
    await core.manager.create(room, HOOK, {"name": "good"}, user_id=ALICE)
    core.hs.send_state(room, ALICE, HOOK, "good", {"name": "good", "waitForComplete": "maybe"})
    core.hs.send_state(room, ALICE, HOOK, "x", {"name": "x"})
    await core.settle()
    assert core.manager.find(room, HOOK, "good").state == {"name": "good"}
    assert core.manager.find(room, HOOK, "x") is None
    assert core.hs.bodies(room) == [
        "⚠️ Ignoring the Webhook connection `good`: /waitForComplete: must be a boolean",
        "⚠️ Ignoring the Webhook connection `x`: /name: must be between 3 and 64 characters long",
    ]


async def test_our_own_writes_echoing_back_change_nothing(widgets):
    core, wt = widgets
    room = core.room_with_bot(ALICE)
    conn, _ = await core.manager.create(room, WIDGET, {"name": "echo"}, user_id=ALICE)
    assert len(core.hs.pushed) == 1 and core.hs.pushed[0]["sender"] == BOT
    await core.settle()
    assert core.manager.get(room, conn.id) is conn and wt.calls("on_loaded") == ["echo"]
    assert core.hs.bodies(room) == []


async def test_state_of_other_types_and_malformed_events_are_not_connections(core):
    room = core.room_with_bot(ALICE)
    assert await core.manager.apply_state_event({"type": "m.room.topic", "room_id": room, "state_key": ""}) is None
    assert await core.manager.apply_state_event({"type": HOOK, "room_id": room}) is None
    assert await core.manager.apply_state_event({"type": HOOK, "state_key": "k", "content": {"name": "abc"}}) is None
    event = {"type": HOOK, "room_id": room, "state_key": "odd", "content": "not a dict", "sender": ALICE}
    assert await core.manager.apply_state_event(event) is None
    assert core.manager.connections(room) == []


# -- startup: the mirror, then reconciliation ---------------------------------------------------------------


async def test_restart_loads_connections_from_the_mirror_without_reading_room_state(core_factory):
    wt = WidgetType()
    core = await core_factory(types=[wt])
    room = core.room_with_bot(ALICE)
    hook, outcome = await core.manager.create(room, HOOK, {"name": "keep"}, user_id=ALICE)
    await core.manager.create(room, WIDGET, {"name": "keep-too"}, user_id=ALICE)
    await core.manager.create(room, WIDGET, {"name": "broken", "commandPrefix": "!b2"}, user_id=ALICE)
    # A row the type no longer accepts (the config changed) is skipped, and kept.
    await core.db.execute("UPDATE connections SET content = content || '{\"broken\": true}' WHERE state_key = 'broken'")

    again = await core_factory.restart(core)
    assert again.gateway.calls == []  # nothing asked of the homeserver
    assert sorted(c.state_key for c in again.manager.connections(room)) == ["keep", "keep-too"]
    assert wt.log[-1] == ("start", "keep-too")
    generic = again.manager.type_of(again.manager.get(room, hook.id))
    assert generic.secrets(again.manager.get(room, hook.id))["url"] == outcome.secrets["url"]
    assert await again.db.fetchval("SELECT count(*) FROM connections WHERE state_key = 'broken'") == 1


async def test_rows_of_a_type_no_longer_enabled_are_kept_but_not_loaded(core_factory):
    wt = WidgetType()
    core = await core_factory(types=[wt])
    room = core.room_with_bot(ALICE)
    await core.manager.create(room, WIDGET, {"name": "dormant"}, user_id=ALICE)
    core.types = []
    again = await core_factory.restart(core)
    assert again.manager.connections(room) == [] and again.manager.type_for(WIDGET) is None
    assert await again.db.fetchval("SELECT count(*) FROM connections") == 1


async def test_reconcile_brings_the_mirror_in_line_with_room_state(widgets):
    core, wt = widgets
    room = core.room_with_bot(ALICE)
    await core.manager.create(room, WIDGET, {"name": "stale"}, user_id=ALICE)
    await core.manager.create(room, WIDGET, {"name": "kept", "commandPrefix": "!kp"}, user_id=ALICE)
    # While the bridge was away: one connection removed by hand, one added, one disabled, one under the old name.
    room_state = core.hs.room(room).state
    del room_state[(WIDGET, "stale")]
    core.hs.send_state(room, ALICE, WIDGET, "added", {"name": "added", "commandPrefix": "!ad"})
    core.hs.send_state(room, ALICE, WIDGET, "off", {"disabled": True})
    core.hs.send_state(room, ALICE, OLD_WIDGET, "legacy", {"name": "legacy", "commandPrefix": "!lg"})
    core.hs.pushed.clear()  # the bridge missed them

    await core.manager.reconcile()
    assert sorted(c.state_key for c in core.manager.connections(room)) == ["added", "kept", "legacy"]
    assert [r[1] for r in await _rows(core, room)] == ["added", "kept", "legacy"]
    assert "stale" in wt.calls("on_unloaded")
    assert core.hs.bodies(room) == []  # reconciliation is quiet


async def test_state_refused_at_start_up_is_told_once_and_listed_until_set_right(core_factory):
    core = await core_factory(
        {
            "permissions": [
                {"actor": ALICE, "services": [{"service": "*", "level": "admin"}]},
                {"actor": BOB, "services": [{"service": "*", "level": "commands"}]},
            ]
        }
    )
    room = core.room_with_bot(ALICE)
    core.hs.invite(room, ALICE, BOB)
    core.hs.join(room, BOB)
    core.hs.set_power_levels(room, ALICE, {BOB: 50})
    core.hs.send_state(room, BOB, HOOK, "sneaky", {"name": "sneaky"})
    # hookshot's state with a script, on a bridge that does not run scripts
    core.hs.send_state(room, ALICE, HOOK, "scripted", {"name": "scripted", "transformationFunction": "result = 1"})
    core.hs.pushed.clear()  # the bridge was away

    await core.manager.reconcile([room])
    await core.settle()
    assert core.manager.connections(room) == []
    [notice] = core.hs.bodies(room)
    assert "`sneaky`" in notice and f"set by {BOB}" in notice and "manageConnections" in notice
    assert "`scripted`" in notice and "transformationFunction" in notice
    listed = {c.state_key: c.reason for c in core.manager.unsupported.in_room(room)}
    assert set(listed) == {"sneaky", "scripted"} and listed["scripted"].startswith("Its settings were refused:")

    again = await core_factory.restart(core)
    await again.manager.reconcile([room])
    await again.settle()
    assert len(again.hs.bodies(room)) == 1, "told once, not at every start"
    assert {c.state_key for c in again.manager.unsupported.in_room(room)} == {"sneaky", "scripted"}

    # Set again by someone allowed to: served, no longer listed.
    again.hs.send_state(room, ALICE, HOOK, "sneaky", {"name": "sneaky"})
    await again.settle()
    assert again.manager.find(room, HOOK, "sneaky") is not None
    assert [c.state_key for c in again.manager.unsupported.in_room(room)] == ["scripted"]


async def test_the_bot_leaving_forgets_the_rooms_connections_but_not_the_state(core):
    room = core.room_with_bot(ALICE)
    await core.manager.create(room, HOOK, {"name": "left-behind"}, user_id=ALICE)
    await core.manager.forget_room(room)
    assert core.manager.connections(room) == [] and await _rows(core, room) == []
    assert core.hs.room(room).content(HOOK, "left-behind") == {"name": "left-behind"}


async def test_the_connections_gauge_follows_the_index(core):
    room = core.room_with_bot(ALICE)

    def gauge() -> float:
        return core.services.metrics.connections.labels(type="Webhook")._value.get()

    conn, _ = await core.manager.create(room, HOOK, {"name": "counted"}, user_id=ALICE)
    await core.manager.create(room, HOOK, {"name": "counted-2"}, user_id=ALICE)
    assert gauge() == 2
    await core.manager.remove(room, conn.id, user_id=ALICE)
    assert gauge() == 1


async def test_a_user_from_another_server_is_refused_by_the_config(core):
    room = core.room_with_bot(ALICE)
    err = await _refused(core.manager.create(room, HOOK, {"name": "foreign"}, user_id=OUTSIDER), ErrCode.FORBIDDEN_USER)
    assert "manageConnections" in err.error


async def test_static_connections_from_the_config_cannot_be_changed_at_runtime(core_factory):
    room = f"!static:{SERVER_NAME}"
    key = "static-basic-0123456789"
    core = await core_factory(
        {"connections": [{"connectionType": HOOK, "stateKey": key, "roomId": room, "state": {"name": "My hook"}}]}
    )
    [conn] = core.manager.connections(room)
    assert conn.static and conn.state == {"name": "My hook"} and conn.state_key == key
    core.hs.create_room(ALICE, room_id=room, invite=[BOT], power_users={BOT: 50})
    core.hs.join(room, BOT)
    for change in (
        core.manager.update(room, conn.id, {"waitForComplete": True}, user_id=ALICE),
        core.manager.remove(room, conn.id, user_id=ALICE),
    ):
        err = await _refused(change, ErrCode.UNSUPPORTED_OPERATION)
        assert err.error.startswith("Connection is static")
    # Room state of the same key, the bot leaving, reconciliation: the declared one stays.
    core.hs.send_state(room, ALICE, HOOK, key, {"name": "hijack"})
    await core.settle()
    await core.manager.forget_room(room)
    await core.manager.reconcile_room(room)
    assert core.manager.connections(room) == [conn] and conn.state == {"name": "My hook"}
    assert core.gateway.called("put_state") == [] and await _rows(core, room) == []
