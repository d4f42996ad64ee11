"""The event router on the in-memory homeserver: invites (accepted or refused by permission), DMs,
ghost invites, the bot leaving, members of permission rooms, connection state, messages."""

from __future__ import annotations

import pytest

from hookshot_py.generic.connection import EVENT_TYPE as HOOK
from hookshot_py.matrix.events import WELCOME, join_permission_rooms
from support.core import BOT, SERVER_NAME

ALICE = f"@alice:{SERVER_NAME}"
BOB = f"@bob:{SERVER_NAME}"
MALLORY = "@mallory:elsewhere.test"
GHOST = f"@_webhooks_ci:{SERVER_NAME}"
PERMISSION_ROOM = f"!staff:{SERVER_NAME}"


@pytest.fixture
async def core(core_factory):
    return await core_factory(
        {
            "permissions": [
                {"actor": SERVER_NAME, "services": [{"service": "*", "level": "admin"}]},
                {"actor": PERMISSION_ROOM, "services": [{"service": "generic", "level": "manageConnections"}]},
            ]
        }
    )


def _membership(core, room: str, user: str) -> str | None:
    return core.hs.room(room).membership(user)


async def test_an_invite_from_a_permitted_user_is_accepted_and_the_rooms_connections_loaded(core):
    room = core.hs.create_room(ALICE, power_users={BOT: 50})
    core.hs.send_state(room, ALICE, HOOK, "already-here", {"name": "already-here"})
    core.hs.invite(room, ALICE, BOT)
    await core.settle()
    assert _membership(core, room, BOT) == "join"
    assert core.manager.find(room, HOOK, "already-here") is not None
    assert core.hs.sent == []  # no welcome in a plain room
    # The bot's membership is known: checking access does not ask the homeserver about it.
    calls = len(core.gateway.calls)
    await core.manager.access.ensure_bot_in_room(room)
    assert len(core.gateway.calls) == calls


async def test_an_invite_from_a_user_without_permission_is_rejected(core):
    room = core.hs.create_room(MALLORY)
    core.hs.invite(room, MALLORY, BOT)
    await core.settle()
    assert _membership(core, room, BOT) == "leave"
    leave = core.hs.room(room).state[("m.room.member", BOT)]
    assert leave["sender"] == BOT and leave["content"]["reason"] == "You are not allowed to use this bridge."
    assert core.gateway.called("room_state") == []


async def test_a_failed_join_after_an_invite_is_survived(core):
    room = core.hs.create_room(ALICE)
    core.hs.fail("join", status=403, errcode="M_FORBIDDEN", error="server notices only")
    core.hs.invite(room, ALICE, BOT)
    await core.settle()
    assert _membership(core, room, BOT) == "invite" and core.hs.sent == []


async def test_a_direct_invite_opens_a_dm_with_a_welcome(core):
    dm = core.hs.create_room(ALICE, invite=[BOT], is_direct=True)
    await core.settle()
    assert _membership(core, dm, BOT) == "join"
    assert core.services.dms.user_of(dm) == ALICE
    assert await core.db.fetchval("SELECT room_id FROM dm_rooms WHERE user_id = $1", ALICE) == dm
    assert core.hs.bodies(dm) == [WELCOME]
    # From now on the room is the DM: commands need no prefix, and secrets go there.
    core.hs.send_text(dm, ALICE, "help")
    await core.settle()
    assert core.hs.bodies(dm)[1].startswith("**Commands in this chat**")
    assert await core.services.dms.room_for(ALICE) == dm


async def test_invites_of_the_bridges_ghosts_are_rejected_unless_the_bridge_made_them(core):
    room = core.hs.create_room(ALICE, invite=[BOT])
    core.hs.join(room, BOT)
    core.hs.invite(room, ALICE, GHOST)
    await core.settle()
    assert _membership(core, room, GHOST) == "leave"
    assert core.hs.room(room).state[("m.room.member", GHOST)]["content"]["reason"] == "This user cannot be invited."
    other = f"@_webhooks_cd:{SERVER_NAME}"
    core.hs.invite(room, BOT, other)
    await core.settle()
    assert _membership(core, room, other) == "invite"


async def test_the_bot_kicked_or_banned_forgets_the_rooms_connections(core):
    kicked, banned = core.room_with_bot(ALICE), core.room_with_bot(ALICE)
    for room in (kicked, banned):
        await core.manager.create(room, HOOK, {"name": "hook-here"}, user_id=ALICE)
    core.hs.kick(kicked, ALICE, BOT, "go away")
    core.hs.kick(banned, ALICE, BOT, ban=True)
    await core.settle()
    for room in (kicked, banned):
        assert core.manager.connections(room) == []
        assert await core.db.fetchval("SELECT count(*) FROM connections WHERE room_id = $1", room) == 0
        # The room's state keeps the connection: re-inviting the bot brings it back.
        assert core.hs.room(room).content(HOOK, "hook-here") == {"name": "hook-here"}
    core.hs.invite(kicked, ALICE, BOT)
    await core.settle()
    assert [c.state_key for c in core.manager.connections(kicked)] == ["hook-here"]


async def test_the_bot_leaving_a_dm_forgets_it(core):
    dm = await core.services.dms.room_for(ALICE)
    core.hs.join(dm, ALICE)
    core.hs.pushed.clear()
    core.hs.leave(dm, BOT)
    await core.settle()
    assert core.services.dms.user_of(dm) is None
    assert await core.db.fetchval("SELECT count(*) FROM dm_rooms") == 0


async def test_the_owner_leaving_a_dm_closes_it(core):
    dm = await core.services.dms.room_for(ALICE)
    core.hs.join(dm, ALICE)
    core.hs.leave(dm, ALICE)
    await core.settle()
    assert _membership(core, dm, BOT) == "leave"
    assert core.hs.room(dm).state[("m.room.member", BOT)]["content"]["reason"] == "The DM was closed"
    assert core.services.dms.user_of(dm) is None
    fresh = await core.services.dms.room_for(ALICE)
    assert fresh != dm


async def test_members_of_a_permission_room_are_followed(core):
    core.hs.create_room(ALICE, invite=[BOT], room_id=PERMISSION_ROOM, version="10")
    core.hs.invite(PERMISSION_ROOM, ALICE, MALLORY)
    await join_permission_rooms(core.gateway, core.services.permissions.room_actors, core.services.room_members)
    await core.settle()
    permissions = core.services.permissions
    assert core.services.room_members[PERMISSION_ROOM] == {ALICE, BOT}
    assert not permissions.check(MALLORY, "generic", "manageConnections")
    core.hs.join(PERMISSION_ROOM, MALLORY)
    await core.settle()
    assert permissions.check(MALLORY, "generic", "manageConnections")
    assert not permissions.check(MALLORY, "generic", "admin") and not permissions.check(MALLORY, "widget", "commands")
    core.hs.leave(PERMISSION_ROOM, MALLORY)
    await core.settle()
    assert not permissions.check(MALLORY, "generic", "manageConnections")


async def test_a_permission_room_the_bot_cannot_join_is_skipped(core):
    await join_permission_rooms(core.gateway, core.services.permissions.room_actors, core.services.room_members)
    assert core.services.room_members == {}


async def test_connection_state_goes_to_the_manager_and_other_state_does_not(core):
    room = core.room_with_bot(ALICE)
    core.hs.send_state(room, ALICE, "m.room.topic", "", {"topic": "not a connection"})
    core.hs.send_state(room, ALICE, HOOK, "by-hand", {"name": "by-hand"})
    await core.settle()
    assert [c.state_key for c in core.manager.connections(room)] == ["by-hand"]
    # A timeline event of a connection type (no state key) is not state.
    core.hs.send_message(room, ALICE, {"name": "sneaky"}, event_type=HOOK)
    await core.settle()
    assert [c.state_key for c in core.manager.connections(room)] == ["by-hand"]


async def test_messages_go_to_the_dispatcher_in_the_background(core):
    room = core.room_with_bot(ALICE)
    core.hs.send_text(room, ALICE, "!hookshot webhook list")
    [event] = core.hs.pushed
    await core.core.router.on_event(core.hs.pushed.pop())
    assert core.hs.sent == [] and [t.get_name() for t in core.background.tasks] == ["command"]
    await core.settle()
    assert core.hs.reactions(room, event["event_id"]) == ["✅"]


async def test_every_event_is_counted(core):
    room = core.room_with_bot(ALICE)
    core.hs.send_text(room, ALICE, "hello")
    core.hs.send_state(room, ALICE, "m.room.topic", "", {"topic": "t"})
    await core.settle()
    assert "matrix_appservice_events_total 2.0" in core.services.metrics.render().decode()
