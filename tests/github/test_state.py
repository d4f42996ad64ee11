from typing import Any

import pytest

from hookshot_py.errors import ValidationIssue
from hookshot_py.github.state import (
    ALLOWED_EVENTS,
    ALWAYS_SUBSCRIBED_EVENTS,
    DEFAULT_HOOKS,
    HookFilter,
    RepoSettings,
    github_events_for_hooks,
    state_key,
    storable_state,
    validate_repo_state,
)

BASE = {"org": "Octo-Org", "repo": "Hello-World"}


def valid(raw: dict[str, Any], *, is_new: bool = True, **kw: Any) -> dict[str, Any]:
    state, issues = validate_repo_state(raw, is_new=is_new, **kw)
    assert issues == []
    return state


def issues_of(raw: Any, *, is_new: bool = True) -> list[ValidationIssue]:
    _, issues = validate_repo_state(raw, is_new=is_new)
    assert issues, "expected validation issues"
    return issues


# --- defaults -------------------------------------------------------------------------------


def test_defaults_for_minimal_state() -> None:
    state = valid(dict(BASE))
    assert state["enableHooks"] == list(DEFAULT_HOOKS)
    assert state["commandPrefix"] == "!gh"
    assert state["showIssueRoomLink"] is False
    assert state["hotlinkIssues"] == {"prefix": "#"}
    assert state["org"] == "Octo-Org" and state["repo"] == "Hello-World"


def test_default_hooks_are_hookshots() -> None:
    assert "push" not in DEFAULT_HOOKS
    assert "release.drafted" not in DEFAULT_HOOKS
    assert "issue.comment" not in DEFAULT_HOOKS
    assert not any(h.startswith("workflow") for h in DEFAULT_HOOKS)
    assert {"issue.created", "pull_request.merged", "release.created"} <= set(DEFAULT_HOOKS)
    assert set(DEFAULT_HOOKS) <= set(ALLOWED_EVENTS)


def test_additional_properties_are_kept() -> None:
    state = valid({**BASE, "priority": 5, "somethingNew": {"x": 1}})
    assert state["somethingNew"] == {"x": 1} and state["priority"] == 5


def test_config_defaults() -> None:
    defaults = {"showIssueRoomLink": True, "hotlinkIssues": {"prefix": "GH-"}}
    state = valid(dict(BASE), default_options=defaults)
    assert state["showIssueRoomLink"] is True
    assert state["hotlinkIssues"] == {"prefix": "GH-"}
    # The room's showIssueRoomLink wins over the config's...
    assert valid({**BASE, "showIssueRoomLink": False}, default_options=defaults)["showIssueRoomLink"] is False
    # ...but a truthy config hotlinkIssues overrides the room's (hookshot's `||`).
    assert valid({**BASE, "hotlinkIssues": False}, default_options=defaults)["hotlinkIssues"] == {"prefix": "GH-"}
    assert valid({**BASE, "hotlinkIssues": False})["hotlinkIssues"] is False
    assert valid({**BASE, "hotlinkIssues": True})["hotlinkIssues"] == {"prefix": "#"}


def test_pr_diff_max_lines_default() -> None:
    assert valid({**BASE, "prDiff": {"enabled": True}})["prDiff"] == {"enabled": True, "maxLines": 30}
    assert valid({**BASE, "prDiff": {"enabled": True, "maxLines": 5}})["prDiff"]["maxLines"] == 5


def test_storable_state_keeps_defaults_out_of_the_room() -> None:
    raw = {**BASE, "hotlinkIssues": False, "prDiff": {"enabled": True}, "x": 1}
    state = valid(raw, default_options={"hotlinkIssues": {"prefix": "GH-"}})
    stored = storable_state(state, raw)
    assert stored == {**BASE, "hotlinkIssues": False, "prDiff": {"enabled": True}, "x": 1,
                      "enableHooks": list(DEFAULT_HOOKS)}
    # Validating the stored content again gives the same effective state.
    assert valid(stored, is_new=False, default_options={"hotlinkIssues": {"prefix": "GH-"}}) == state


def test_input_is_not_mutated() -> None:
    raw = {**BASE, "ignoreHooks": ["push"], "prDiff": {"enabled": True}}
    snapshot = {**raw, "prDiff": {"enabled": True}}
    valid(raw, is_new=False)
    assert raw == snapshot


def test_repo_settings() -> None:
    settings = RepoSettings.from_state(
        {**BASE, "commandPrefix": "!hello", "newIssue": {"labels": ["triage"]}, "prDiff": {"enabled": True, "maxLines": 3}}
    )
    assert settings.command_prefix == "!hello"
    assert settings.new_issue_labels == ("triage",)
    assert settings.pr_diff_enabled and settings.pr_diff_max_lines == 3
    assert settings.hotlink_prefix == "#"


# --- enableHooks / ignoreHooks --------------------------------------------------------------


def test_unknown_enable_hooks_rejected_for_new_connections() -> None:
    issues = issues_of({**BASE, "enableHooks": ["push", "issue.bogus", "nope"]})
    assert issues == [
        ValidationIssue(
            "/enableHooks",
            "'enableHooks' must only contain allowed values. Found invalid values issue.bogus,nope",
        )
    ]


def test_unknown_enable_hooks_tolerated_for_existing_state() -> None:
    state = valid({**BASE, "enableHooks": ["push", "something.old"]}, is_new=False)
    assert state["enableHooks"] == ["push", "something.old"]


def test_ignore_hooks_rejected_for_new_connections() -> None:
    assert issues_of({**BASE, "ignoreHooks": ["push"]}) == [
        ValidationIssue("/ignoreHooks", "`ignoreHooks` cannot be used with new connections")
    ]


def test_ignore_hooks_converted_for_existing_state() -> None:
    state = valid({**BASE, "ignoreHooks": ["issue", "release.created"], "enableHooks": ["push"]}, is_new=False)
    assert "ignoreHooks" not in state
    assert state["enableHooks"] == [
        "push",
        "pull_request.closed",
        "pull_request.merged",
        "pull_request.opened",
        "pull_request.ready_for_review",
        "pull_request.reviewed",
        "pull_request",
    ]


def test_hook_filter_semantics() -> None:
    f = HookFilter(["issue.created"])
    assert not f.should_skip("issue.created", "issue")
    assert f.should_skip("issue.changed", "issue")
    assert not HookFilter(["issue"]).should_skip("issue.changed", "issue")
    assert HookFilter([]).should_skip("push")


# --- schema errors --------------------------------------------------------------------------


def test_required_fields() -> None:
    assert issues_of({}) == [
        ValidationIssue("", "must have required property 'org'"),
        ValidationIssue("", "must have required property 'repo'"),
    ]
    assert issues_of({"org": 3, "repo": " "}) == [
        ValidationIssue("/org", "must be string, not number"),
        ValidationIssue("/repo", "must not be empty"),
    ]
    assert issues_of(["not", "an", "object"]) == [ValidationIssue("", "must be object, not array")]


@pytest.mark.parametrize(
    "prefix, message",
    [
        ("!", "must NOT have fewer than 2 characters"),
        ("!" + "x" * 24, "must NOT have more than 24 characters"),
        (12, "must be string, not number"),
    ],
)
def test_bad_command_prefix(prefix: Any, message: str) -> None:
    assert issues_of({**BASE, "commandPrefix": prefix}) == [ValidationIssue("/commandPrefix", message)]


def test_command_prefix_bounds_accepted() -> None:
    assert valid({**BASE, "commandPrefix": "!x"})["commandPrefix"] == "!x"
    assert valid({**BASE, "commandPrefix": "!" + "x" * 23})["commandPrefix"] == "!" + "x" * 23


def test_bad_regex_reports_its_path() -> None:
    issues = issues_of({**BASE, "workflowRun": {"matchingBranch": "release/(v1"}})
    assert len(issues) == 1
    assert issues[0].path == "/workflowRun/matchingBranch"
    assert issues[0].message.startswith("must be a valid regular expression")


def test_regex_needing_backtracking_is_refused_with_the_reason() -> None:
    issues = issues_of({**BASE, "workflowRun": {"matchingBranch": "^main(?!-old)"}})
    assert [i.path for i in issues] == ["/workflowRun/matchingBranch"]
    assert "lookahead and lookbehind are not supported" in issues[0].message


def test_many_errors_with_paths() -> None:
    issues = issues_of(
        {
            **BASE,
            "enableHooks": ["push", 3],
            "includingLabels": "bug",
            "excludingLabels": ["ok", None],
            "showIssueRoomLink": "yes",
            "prDiff": {"maxLines": 0},
            "hotlinkIssues": {"prefix": 1},
            "newIssue": {"labels": [True]},
            "workflowRun": {"includingWorkflows": "CI", "excludingWorkflows": [1]},
            "priority": "high",
        }
    )
    assert {(i.path, i.message) for i in issues} == {
        ("/priority", "must be number, not string"),
        ("/enableHooks/1", "must be string, not number"),
        ("/showIssueRoomLink", "must be boolean, not string"),
        ("/includingLabels", "must be array, not string"),
        ("/excludingLabels/1", "must be string, not null"),
        ("/prDiff", "must have required property 'enabled'"),
        ("/prDiff/maxLines", "must be >= 1"),
        ("/newIssue/labels/0", "must be string, not boolean"),
        ("/hotlinkIssues/prefix", "must be string, not number"),
        ("/workflowRun/includingWorkflows", "must be array, not string"),
        ("/workflowRun/excludingWorkflows/0", "must be string, not number"),
    }


def test_hotlink_and_new_issue_shapes() -> None:
    assert issues_of({**BASE, "hotlinkIssues": "#"}) == [
        ValidationIssue("/hotlinkIssues", "must be boolean or object, not string")
    ]
    assert issues_of({**BASE, "hotlinkIssues": {}}) == [
        ValidationIssue("/hotlinkIssues", "must have required property 'prefix'")
    ]
    assert issues_of({**BASE, "newIssue": {}}) == [
        ValidationIssue("/newIssue", "must have required property 'labels'")
    ]


def test_nulls_are_allowed_like_ajv_nullable() -> None:
    state = valid({**BASE, "enableHooks": None, "prDiff": None, "workflowRun": None, "commandPrefix": None})
    assert state["enableHooks"] == list(DEFAULT_HOOKS)
    assert state["commandPrefix"] == "!gh"


def test_state_key_keeps_case() -> None:
    assert state_key(valid(dict(BASE))) == "Octo-Org/Hello-World"


# --- webhook subscription -------------------------------------------------------------------


def test_events_for_default_hooks() -> None:
    assert github_events_for_hooks(DEFAULT_HOOKS) == sorted(
        {"issues", "pull_request", "pull_request_review", "release", *ALWAYS_SUBSCRIBED_EVENTS}
    )


@pytest.mark.parametrize(
    "hooks, expected",
    [
        (["issue.comment"], {"issue_comment"}),
        (["issue"], {"issues"}),
        (["issue.labeled"], {"issues"}),
        (["pull_request.reviewed"], {"pull_request_review"}),
        (["pull_request.merged"], {"pull_request"}),
        (["push"], {"push"}),
        (["release.drafted"], {"release"}),
        (["workflow.run.failure"], {"workflow_run"}),
        (["unknown.name"], set()),
        ([], set()),
    ],
)
def test_events_for_single_hooks(hooks: list[str], expected: set[str]) -> None:
    assert github_events_for_hooks(hooks) == sorted(expected | set(ALWAYS_SUBSCRIBED_EVENTS))


def test_stars_subscribed_once() -> None:
    events = github_events_for_hooks([])
    assert "star" in events and "watch" not in events


def test_every_allowed_event_maps_somewhere() -> None:
    for name in ALLOWED_EVENTS:
        assert set(github_events_for_hooks([name])) - set(ALWAYS_SUBSCRIBED_EVENTS), name
