"""The in-memory homeserver is a faithful stand-in: the real gateway's interface, Synapse's refusals."""

from __future__ import annotations

import inspect
import math

import pytest
from mautrix.appservice.api.intent import IntentError
from mautrix.errors import MatrixRequestError, MForbidden

from fakes.matrix import FakeHomeserver, FakeMatrixGateway
from hookshot_py.matrix.gateway import MatrixGateway, SendError

BOT = "@hookshot:fake.test"
ALICE = "@alice:fake.test"
BOB = "@bob:fake.test"
GHOST = "@_webhooks_ci:fake.test"


def _ours(user_id: str) -> bool:
    return user_id == BOT or user_id.startswith("@_webhooks_")


@pytest.fixture
def hs() -> FakeHomeserver:
    return FakeHomeserver("fake.test", BOT, _ours)


@pytest.fixture
def gw(hs: FakeHomeserver) -> FakeMatrixGateway:
    return FakeMatrixGateway(hs)


def _joined_room(hs: FakeHomeserver, bot_level: int | None = None) -> str:
    room = hs.create_room(ALICE, invite=[BOT])
    hs.join(room, BOT)
    if bot_level is not None:
        hs.set_power_levels(room, ALICE, {BOT: bot_level})
    return room


def _public_members(cls: type) -> dict[str, object]:
    return {name: member for name, member in vars(cls).items() if not name.startswith("_")}


def test_the_fake_has_the_real_gateways_methods_with_the_same_signatures():
    real, fake = _public_members(MatrixGateway), _public_members(FakeMatrixGateway)
    missing = set(real) - set(fake)
    assert not missing, f"FakeMatrixGateway lacks {sorted(missing)}"
    for name, member in real.items():
        if isinstance(member, property):
            assert isinstance(fake[name], property), name
            continue
        assert inspect.iscoroutinefunction(member) == inspect.iscoroutinefunction(fake[name]), name
        assert inspect.signature(member) == inspect.signature(fake[name]), name  # type: ignore[arg-type]


async def test_state_written_without_power_is_refused_like_synapse(hs, gw):
    room = _joined_room(hs)
    with pytest.raises(MForbidden) as err:
        await gw.put_state(room, "uk.half-shot.matrix-hookshot.generic.hook", "x", {"name": "x"})
    assert err.value.http_status == 403 and "user_level (0) < send_level (50)" in err.value.message
    hs.set_power_levels(room, ALICE, {BOT: 50})
    event_id = await gw.put_state(room, "uk.half-shot.matrix-hookshot.generic.hook", "x", {"name": "x"})
    event = await gw.state_event(room, "uk.half-shot.matrix-hookshot.generic.hook", "x")
    assert event["event_id"] == event_id and event["sender"] == BOT and event["content"] == {"name": "x"}


async def test_room_v12_creators_outrank_everyone_and_are_not_listed(hs, gw):
    room = _joined_room(hs)
    assert (await gw.state(room, "m.room.power_levels"))["users"] == {}
    power = await gw.power(room)
    assert power.level_of(ALICE) == math.inf and power.level_of(BOT) == 0
    # Older rooms list the creator at 100.
    old = hs.create_room(ALICE, invite=[BOT], version="10")
    hs.join(old, BOT)
    assert ":" in old and (await gw.power(old)).level_of(ALICE) == 100


async def test_unknown_rooms_and_rooms_without_the_bot(hs, gw):
    with pytest.raises(MatrixRequestError) as err:
        await gw.join("!unknown:fake.test")
    assert err.value.http_status == 404
    with pytest.raises(MatrixRequestError) as err:
        await gw.leave("!unknown:fake.test")
    assert err.value.http_status == 404
    room = hs.create_room(ALICE)
    with pytest.raises(MForbidden, match="not invited"):
        await gw.join(room)
    for read in (gw.state(room, "m.room.create"), gw.room_state(room), gw.joined_members(room)):
        with pytest.raises(MForbidden):
            await read
    assert await gw.joined_rooms() == []


async def test_membership_joins_leaves_and_the_state_seen_after_leaving(hs, gw):
    room = _joined_room(hs)
    assert await gw.membership(room, BOT) == "join" and await gw.joined_rooms() == [room]
    assert await gw.joined_members(room) == {ALICE, BOT}
    assert await gw.state(room, "x.y", "missing") is None
    await gw.leave(room, "bye")
    hs.send_state(room, ALICE, "m.room.name", "", {"name": "renamed after"})
    # Like Synapse, a departed user still reads the state as it was when it left.
    assert await gw.membership(room, BOT) == "leave"
    assert (await gw.state(room, "m.room.name")) is None
    assert await gw.joined_rooms() == []


async def test_ghosts_are_invited_by_the_bot_and_strangers_cannot_be_puppeted(hs, gw):
    room = _joined_room(hs)
    await gw.ensure_joined(room, GHOST)
    assert hs.room(room).membership(GHOST) == "join"
    with pytest.raises(MForbidden, match="masquerade"):
        await gw.leave(room, user_id=BOB)
    lonely = hs.create_room(ALICE)
    with pytest.raises(IntentError):
        await gw.ensure_joined(lonely, GHOST)


async def test_send_is_idempotent_per_txn_id_and_recorded(hs, gw):
    room = _joined_room(hs)
    first = await gw.send_event(room, BOT, "m.room.message", {"msgtype": "m.notice", "body": "a"}, "t1")
    again = await gw.send_event(room, BOT, "m.room.message", {"msgtype": "m.notice", "body": "b"}, "t1")
    other = await gw.send_event(room, BOT, "m.room.message", {"msgtype": "m.notice", "body": "c"}, "t2")
    assert first == again != other
    assert hs.bodies(room) == ["a", "c"]


async def test_send_failures_carry_what_the_outbox_needs(hs, gw):
    room = _joined_room(hs)
    lonely = hs.create_room(ALICE)
    with pytest.raises(SendError) as err:
        await gw.send_event(lonely, BOT, "m.room.message", {"body": "x"}, "t1")
    assert (err.value.status, err.value.errcode, err.value.permanent) == (403, "M_FORBIDDEN", False)
    hs.fail("send_event", status=429, errcode="M_LIMIT_EXCEEDED", retry_after_ms=20, room_id=room)
    with pytest.raises(SendError) as err:
        await gw.send_event(room, BOT, "m.room.message", {"body": "x"}, "t2")
    assert (err.value.status, err.value.retry_after_ms, err.value.permanent) == (429, 20, False)
    assert await gw.send_event(room, BOT, "m.room.message", {"body": "x"}, "t2")  # only once
    hs.fail("send_event", status=400, errcode="M_BAD_JSON")
    with pytest.raises(SendError) as err:
        await gw.send_event(room, BOT, "m.room.message", {"body": "y"}, "t3")
    assert err.value.permanent


async def test_scripted_failures_of_other_calls_raise_mautrix_errors(hs, gw):
    room = _joined_room(hs, bot_level=50)
    hs.fail("put_state", status=403, errcode="M_FORBIDDEN", error="nope", times=2)
    for _ in range(2):
        with pytest.raises(MForbidden, match="nope"):
            await gw.put_state(room, "a.b", "", {})
    assert await gw.put_state(room, "a.b", "", {})


async def test_account_data_profiles_and_dms(hs, gw):
    room = _joined_room(hs)
    assert await gw.room_account_data(room, "x.y") is None and await gw.account_data("x.y") is None
    await gw.set_room_account_data(room, "x.y", {"a": 1})
    await gw.set_account_data("x.y", {"b": 2})
    assert await gw.room_account_data(room, "x.y") == {"a": 1} and await gw.account_data("x.y") == {"b": 2}

    assert await gw.profile(GHOST) == (None, None)
    await gw.set_profile(GHOST, "CI", None)
    await gw.set_profile(GHOST, None, "mxc://fake.test/a")
    assert await gw.profile(GHOST) == ("CI", "mxc://fake.test/a")

    dm = await gw.create_dm(ALICE, "Hookshot")
    assert hs.room(dm).membership(ALICE) == "invite"
    invite = hs.room(dm).state[("m.room.member", ALICE)]
    assert invite["content"]["is_direct"] is True and invite["sender"] == BOT


async def test_events_are_pushed_only_where_the_appservice_is_interested(hs):
    room = hs.create_room(ALICE)
    hs.send_text(room, ALICE, "nobody of ours is here")
    assert hs.pushed == []
    hs.invite(room, ALICE, BOT)
    hs.join(room, BOT)
    hs.send_text(room, ALICE, "now we listen")
    seen: list[str] = []

    async def handler(event):
        seen.append(event["type"] + ":" + event["content"].get("membership", event["content"].get("body", "")))

    assert await hs.deliver(handler) == 3
    assert seen == ["m.room.member:invite", "m.room.member:join", "m.room.message:now we listen"]
