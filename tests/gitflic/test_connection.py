"""Validation of GitFlic project connection state (the hook's life is tested in test_hooks.py)."""

from __future__ import annotations

from typing import Any

import pytest

from hookshot_py.config import GitFlicConfig, GitFlicInstance
from hookshot_py.connections.base import Connection
from hookshot_py.gitflic.connection import EVENT_TYPE, GitFlicProjectType, events_of
from hookshot_py.gitflic.models import DEFAULT_EVENTS


def make_type() -> GitFlicProjectType:
    config = GitFlicConfig(
        instances={
            "gitflic": GitFlicInstance(url="https://gitflic.ru", api_url="https://api.gitflic.ru"),
            "corp": GitFlicInstance(url="https://git.corp.example", api_url="https://git.corp.example/rest-api"),
        }
    )
    # validate() does not need the hooks.
    return GitFlicProjectType(config, hooks=None)  # type: ignore[arg-type]


def validate(state: dict[str, Any], *, is_new: bool = True, existing: Connection | None = None) -> tuple[dict[str, Any], list[str]]:
    normalized, issues = make_type().validate(state, existing=existing, is_new=is_new)
    return normalized, [f"{i.path}: {i.message}" for i in issues]


def test_defaults() -> None:
    state, issues = validate({"ownerAlias": "acme", "projectAlias": "widgets"})
    assert issues == []
    assert state == {
        "ownerAlias": "acme",
        "projectAlias": "widgets",
        "instance": "gitflic",
        "events": list(DEFAULT_EVENTS),
        "commandPrefix": "!gf",
    }
    assert make_type().state_key(state) == "acme/widgets"


def test_every_field_given() -> None:
    given = {
        "ownerAlias": "team",
        "projectAlias": "lib",
        "instance": "corp",
        "events": ["PUSH", "ISSUE_CREATE"],
        "commandPrefix": "!lib",
    }
    assert validate(given) == (given, [])


@pytest.mark.parametrize(
    ("state", "problem"),
    [
        ({"projectAlias": "w"}, "/ownerAlias: is required"),
        ({"ownerAlias": "acme"}, "/projectAlias: is required"),
        ({"ownerAlias": "a/b", "projectAlias": "w"}, "/ownerAlias: must be a GitFlic alias"),
        ({"ownerAlias": "acme", "projectAlias": 5}, "/projectAlias: must be a GitFlic alias"),
        ({"ownerAlias": "acme", "projectAlias": "w", "instance": "nope"}, "/instance: must be a configured GitFlic instance: gitflic, corp"),
        ({"ownerAlias": "acme", "projectAlias": "w", "events": "PUSH"}, "/events: must be a list"),
        ({"ownerAlias": "acme", "projectAlias": "w", "events": ["PUSH", "NOPE"]}, "/events/1: unknown GitFlic event 'NOPE'"),
        ({"ownerAlias": "acme", "projectAlias": "w", "commandPrefix": ""}, "/commandPrefix: must be a word"),
        ({"ownerAlias": "acme", "projectAlias": "w", "commandPrefix": "!g f"}, "/commandPrefix: must be a word"),
        ({"ownerAlias": "acme", "projectAlias": "w", "commandPrefix": 3}, "/commandPrefix: must be a word"),
        ({"ownerAlias": "acme", "projectAlias": "w", "url": "x"}, "/url: unknown field"),
    ],
)
def test_refused(state: dict[str, Any], problem: str) -> None:
    _, issues = validate(state)
    assert any(i.startswith(problem) for i in issues), issues


def test_instance_cannot_change_on_update() -> None:
    existing = Connection("!r", EVENT_TYPE, "acme/w", {"ownerAlias": "acme", "projectAlias": "w", "instance": "gitflic"})
    _, issues = validate({"ownerAlias": "acme", "projectAlias": "w", "instance": "corp"}, existing=existing)
    assert issues == ["/instance: cannot be changed; remove the connection and create a new one"]


def test_state_from_the_room_is_read_leniently() -> None:
    state, issues = validate(
        {"ownerAlias": "acme", "projectAlias": "w", "events": ["PUSH", "FUTURE_EVENT", "PUSH"], "extra": 1},
        is_new=False,
    )
    assert issues == []
    assert state["events"] == ["PUSH"]
    assert "extra" not in state
    state, issues = validate({"ownerAlias": "acme", "projectAlias": "w", "events": None}, is_new=False)
    assert issues == [] and state["events"] == list(DEFAULT_EVENTS)


def test_events_of_tolerates_odd_state() -> None:
    conn = Connection("!r", EVENT_TYPE, "a/b", {"ownerAlias": "a", "projectAlias": "b", "events": ["PUSH", 3]})
    assert events_of(conn) == ["PUSH"]
    conn.state["events"] = "PUSH"
    assert events_of(conn) == list(DEFAULT_EVENTS)
