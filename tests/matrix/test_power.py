import math

from hookshot_py.matrix.power import RoomPower


def test_v12_creators_outrank_everyone_and_are_not_in_users():
    create = {"sender": "@creator:x", "content": {"room_version": "12", "additional_creators": ["@co:x"]}}
    pl = {"users": {"@bot:x": 50}, "state_default": 50, "events": {"ev.type": 100}}
    power = RoomPower.from_state(pl, create)
    assert power.level_of("@creator:x") == math.inf
    assert power.level_of("@co:x") == math.inf
    assert power.can_send_state("@creator:x", "ev.type")
    assert not power.can_send_state("@bot:x", "ev.type")
    assert power.can_send_state("@bot:x", "other.type")
    assert power.describe_level("@creator:x") == "creator"


def test_old_rooms_use_power_levels_only():
    create = {"sender": "@creator:x", "content": {"room_version": "10"}}
    power = RoomPower.from_state({"users": {"@creator:x": 100}, "users_default": 5}, create)
    assert power.level_of("@creator:x") == 100
    assert power.level_of("@nobody:x") == 5
    assert power.required_for_state("anything") == 50


def test_garbage_levels_fall_back_to_defaults():
    power = RoomPower.from_state({"users": {"@a:x": "75", "@b:x": True}, "state_default": "x"}, None)
    assert power.level_of("@a:x") == 75
    assert power.level_of("@b:x") == 0
    assert power.required_for_state("t") == 50


def test_no_power_levels_event_gives_creator_100():
    power = RoomPower.from_state(None, {"sender": "@c:x", "content": {"room_version": "10"}})
    assert power.level_of("@c:x") == 100
    assert power.can_send_state("@someone:x", "t")  # state_default is 0 without a PL event
