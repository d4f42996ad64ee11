"""The generic hook state: validation of hookshot's fields and ours, static hooks, identity, durations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hookshot_py.commands.context import split_code_block
from hookshot_py.config import ConfigError, GenericConfig, StaticConnection
from hookshot_py.connections.base import Connection
from hookshot_py.errors import ApiError
from hookshot_py.generic.connection import EVENT_TYPE, GenericHookType, ghost_user_id
from hookshot_py.generic.expiry import format_expiry, hours_text, parse_duration, parse_expiry


def hooks(static: list[StaticConnection] | None = None, **config: Any) -> GenericHookType:
    cfg = GenericConfig(url_prefix="https://hooks.example/webhook/", **config)
    return GenericHookType(cfg, None, None, None, None, domain="example.org", static=static)  # type: ignore[arg-type]


def problems(t: GenericHookType, state: dict[str, Any], *, is_new: bool = True) -> list[str]:
    return [f"{i.path}: {i.message}" for i in t.validate(state, existing=None, is_new=is_new)[1]]


def test_identity_fields() -> None:
    t = hooks(user_id_prefix="_webhooks_")
    state = {"name": "ci-builds", "displayName": "CI", "avatarUrl": "mxc://example.org/abc_D-1", "msgtype": "m.emote"}
    assert t.validate(state, existing=None, is_new=True) == (state, [])
    assert problems(t, {"name": "ci-builds", "avatarUrl": "https://example.org/a.png"}) == [
        "/avatarUrl: must be an mxc:// URI (upload the image to Matrix first)"
    ]
    assert problems(t, {"name": "ci-builds", "msgtype": "m.image"}) == ["/msgtype: must be one of m.notice, m.text, m.emote"]
    assert problems(t, {"name": "ci-builds", "displayName": " "}) == ["/displayName: must be a string of 1 to 256 characters"]
    conn = Connection("!r", EVENT_TYPE, "ci", {"name": "CI Builds!"})
    assert t.sender_for(conn) == "@_webhooks_cibuilds:example.org"
    assert t.profile_for(conn) == ("CI Builds! (Webhook)", None)
    assert hooks(user_id_prefix="w_", displayname_suffix="").profile_for(conn) == ("CI Builds!", None)
    assert t.profile_for(Connection("!r", EVENT_TYPE, "ci", state)) == ("CI", "mxc://example.org/abc_D-1")


def test_identity_needs_a_user_per_hook() -> None:
    t = hooks()
    assert t.sender_for(Connection("!r", EVENT_TYPE, "ci", {"name": "ci-builds"})) is None
    assert problems(t, {"name": "ci-builds", "displayName": "CI"}) == [
        "/displayName: needs generic.userIdPrefix in the bridge config: without it webhooks post as the bridge bot"
    ]
    assert problems(t, {"name": "ci-builds", "displayName": "CI"}, is_new=False) == []  # state found in a room: kept


def test_scripts_only_when_allowed() -> None:
    with pytest.raises(ApiError) as info:
        hooks().validate({"name": "ci-builds", "transformationFunction": "result = 1"}, existing=None, is_new=True)
    assert (info.value.errcode.value, info.value.error) == ("HS_DISABLED_FEATURE", "Transformation functions are not allowed")
    assert problems(hooks(), {"name": "ci-builds", "transformationFunction": "result = 1"}, is_new=False) == [
        "/transformationFunction: transformation functions are not allowed on this bridge "
        "(generic.allowJsTransformationFunctions is off)"
    ]
    allowed = hooks(allow_js_transformation_functions=True)
    assert allowed.validate({"name": "ci-builds", "transformationFunction": ""}, existing=None, is_new=True) == (
        {"name": "ci-builds"}, [],
    )  # fmt: skip
    assert problems(allowed, {"name": "ci-builds", "transformationFunction": 1}) == ["/transformationFunction: must be a string"]


def test_static_hooks_are_validated_and_keyed_by_their_state_key() -> None:
    declared = [StaticConnection(EVENT_TYPE, "id-1", "!room:x", {"name": "My hook", "priority": 3})]
    [conn] = hooks(static=declared).static_connections()
    assert (conn.room_id, conn.state_key, conn.state, conn.static) == ("!room:x", "id-1", {"name": "My hook"}, True)
    bad = [StaticConnection(EVENT_TYPE, "id-1", "!room:x", {"name": "x"})]
    with pytest.raises(ConfigError) as info:
        hooks(static=bad).static_connections()
    assert str(info.value) == (
        "connections[0].state: connection state did not validate: /name: must be between 3 and 64 characters long"
    )


def test_ghost_ids_as_hookshot_makes_them() -> None:
    assert ghost_user_id("_webhooks_", "My Hook", "x") == "@_webhooks_myhook:x"
    assert ghost_user_id("_webhooks_", "!!!", "x") == "@_webhooks_bot:x"


def test_durations_and_dates() -> None:
    assert parse_duration("30d") == timedelta(days=30)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("12") is None and parse_duration("soon") is None
    when = datetime(2026, 1, 31, 12, 0, 5, 123456, tzinfo=UTC)
    assert format_expiry(when) == "2026-01-31T12:00:05.123Z"
    assert parse_expiry(format_expiry(when)) == when.replace(microsecond=123000)
    assert [hours_text(timedelta(minutes=m)) for m in (20, 61, 150)] == ["less than an hour", "1 hour", "2 hours"]


def test_code_blocks_are_taken_whole() -> None:
    assert split_code_block(" webhook ci 30d\n```js\nresult = \"it's\";\n```") == ("webhook ci 30d", "result = \"it's\";")
    assert split_code_block(" webhook ci\n```\n```") == ("webhook ci", "")
    assert split_code_block(" webhook ci ```result = 1```") == ("webhook ci", "result = 1")
    assert split_code_block(" webhook ci\n~~~\na\nb\n~~~") == ("webhook ci", "a\nb")
    assert split_code_block(" webhook list") == (" webhook list", None)
