"""GithubRepoType without a bridge: what it stores, its effective state, names it refuses."""

from __future__ import annotations

from typing import Any

import pytest

from hookshot_py.connections.base import Connection
from hookshot_py.github.accounts import StoredToken
from hookshot_py.github.connection import GithubRepoType
from hookshot_py.github.state import DEFAULT_HOOKS, EVENT_TYPE


def make_type(default_options: dict[str, Any] | None = None) -> GithubRepoType:
    # validate/effective_state/command_prefix touch neither accounts nor hooks.
    return GithubRepoType(None, None, default_options)  # type: ignore[arg-type]


def test_stores_what_the_user_gave_and_keeps_config_defaults_live() -> None:
    ctype = make_type({"showIssueRoomLink": True})
    stored, issues = ctype.validate({"org": "octo-org", "repo": "hello-world"}, existing=None, is_new=True)
    assert issues == []
    assert stored == {"org": "octo-org", "repo": "hello-world", "enableHooks": list(DEFAULT_HOOKS)}
    conn = Connection("!r", EVENT_TYPE, ctype.state_key(stored), stored)
    assert conn.state_key == "octo-org/hello-world"
    effective = ctype.effective_state(conn)
    assert effective["showIssueRoomLink"] is True and effective["commandPrefix"] == "!gh"
    assert ctype.command_prefix(conn) == "!gh"
    custom = Connection("!r", EVENT_TYPE, "o/r", {**stored, "commandPrefix": "!octo"})
    assert ctype.command_prefix(custom) == "!octo"


def test_legacy_ignore_hooks_load_from_room_state_but_not_new() -> None:
    ctype = make_type()
    state = {"org": "o", "repo": "r", "ignoreHooks": ["pull_request"]}
    stored, issues = ctype.validate(state, existing=None, is_new=False)
    assert issues == [] and "ignoreHooks" not in stored
    assert not any(h.startswith("pull_request") for h in stored["enableHooks"])
    _, issues = ctype.validate(state, existing=None, is_new=True)
    assert [i.path for i in issues] == ["/ignoreHooks"]


@pytest.mark.parametrize(
    "org, repo, path",
    [("octo org", "r", "/org"), ("-octo", "r", "/org"), ("o", "../etc", "/repo"), ("o", "..", "/repo"), ("o", "a/b", "/repo")],
)
def test_new_connections_need_github_names(org: str, repo: str, path: str) -> None:
    _, issues = make_type().validate({"org": org, "repo": repo}, existing=None, is_new=True)
    assert [i.path for i in issues] == [path]


def test_stored_token_round_trip_and_bad_values() -> None:
    token = StoredToken("t", "alice", "pat")
    assert StoredToken.from_json(token.to_json()) == token
    assert StoredToken.from_json("bare") == StoredToken("bare")
    for bad in (None, "", 3, {"token": ""}, {"login": "x"}, ["t"]):
        assert StoredToken.from_json(bad) is None
