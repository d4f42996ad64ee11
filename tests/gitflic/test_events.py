from __future__ import annotations

import re
from pathlib import Path

import pytest

from hookshot_py.errors import ValidationIssue
from hookshot_py.gitflic.models import (
    ACTION_FLAGS,
    DEFAULT_EVENTS,
    DELIVERED_ACTIONS,
    SUBSCRIPTION_FLAGS,
    events_body,
    flags_for_action,
    is_wanted,
    validate_events,
)

# shared/ sits beside the checkout (as in CI)
SEED = Path(__file__).resolve().parents[3] / "shared" / "seeds" / "002_ba3013e5eeb3b1a4.txt"
# The delivered actions as CONTRACTS.md lists them.
CONTRACT_ACTIONS = {
    "TEST_WEBHOOK", "ISSUE_CREATE", "ISSUE_UPDATE", "NEW_ISSUE_NOTE", "MERGE_REQUEST_CREATE",
    "MERGE_REQUEST_UPDATE", "MERGE_REQUEST_ACCEPT", "MERGE_REQUEST_CLOSE", "MERGE_REQUEST_CANCEL",
    "MERGE", "DISCUSSION_CREATE", "TAG_CREATE", "TAG_DELETE", "BRANCH_CREATE", "BRANCH_UPDATE",
    "BRANCH_DELETE", "COLLABORATOR_ADD", "COLLABORATOR_UPDATE", "COLLABORATOR_DELETE",
    "PIPELINE_NEW", "PIPELINE_SUCCESS", "PIPELINE_FAIL", "PIPELINE_WARNING",
}  # fmt: skip


def test_flags_are_the_sixteen_of_the_seed() -> None:
    assert len(SUBSCRIPTION_FLAGS) == 16 == len(set(SUBSCRIPTION_FLAGS))
    if SEED.exists():
        table = re.findall(r"^([A-Z_]+) boolean ", SEED.read_text(), flags=re.MULTILINE)
        assert tuple(table) == SUBSCRIPTION_FLAGS


def test_defaults_are_valid_flags_and_cover_the_work() -> None:
    assert validate_events(list(DEFAULT_EVENTS)) == []
    for flag in ("ISSUE_CREATE", "MERGE_REQUEST_CREATE", "PUSH", "BRANCH_UPDATE"):
        assert flag in DEFAULT_EVENTS
    assert "COLLABORATOR_ADD" not in DEFAULT_EVENTS


def test_every_documented_action_is_mapped_to_known_flags() -> None:
    assert set(DELIVERED_ACTIONS) == CONTRACT_ACTIONS
    for action, flags in ACTION_FLAGS.items():
        assert set(flags) <= set(SUBSCRIPTION_FLAGS), action


@pytest.mark.parametrize(
    ("action", "events", "wanted"),
    [
        ("ISSUE_CREATE", ["ISSUE_CREATE"], True),
        ("ISSUE_CREATE", ["ISSUE_UPDATE"], False),
        ("NEW_ISSUE_NOTE", ["ISSUE_UPDATE"], True),
        ("NEW_ISSUE_NOTE", ["ISSUE_CREATE"], False),
        ("MERGE", ["MERGE_REQUEST_UPDATE"], True),
        ("MERGE_REQUEST_CANCEL", ["MERGE_REQUEST_CREATE"], False),
        ("DISCUSSION_CREATE", ["DISCUSSION_COMMENT_CREATE"], True),
        ("BRANCH_UPDATE", ["PUSH"], True),
        ("BRANCH_UPDATE", ["BRANCH_CREATE"], False),
        ("TEST_WEBHOOK", [], True),
        ("PIPELINE_FAIL", [], True),
        ("SOMETHING_NEW", [], True),
    ],
)
def test_is_wanted(action: str, events: list[str], wanted: bool) -> None:
    assert is_wanted(action, events) is wanted


def test_unknown_action_has_no_flags() -> None:
    assert flags_for_action("RELEASE_CREATE") == ()


def test_validate_events_reports_each_bad_item_with_its_path() -> None:
    issues = validate_events(["PUSH", "push", 3, "PUSH", "TAG_CREATE"])
    assert [i.path for i in issues] == ["/events/1", "/events/2", "/events/3"]
    assert "unknown GitFlic event 'push'" in issues[0].message
    assert issues[1] == ValidationIssue("/events/2", "must be a string")
    assert issues[2].message == "duplicate event 'PUSH'"


def test_validate_events_needs_a_list() -> None:
    assert validate_events("PUSH") == [ValidationIssue("/events", "must be a list of GitFlic event names")]
    assert validate_events(None, "/x") == [ValidationIssue("/x", "must be a list of GitFlic event names")]
    assert validate_events([]) == []


def test_events_body_names_every_flag() -> None:
    body = events_body(["PUSH", "ISSUE_CREATE"])
    assert list(body) == list(SUBSCRIPTION_FLAGS)
    assert {k for k, v in body.items() if v} == {"PUSH", "ISSUE_CREATE"}
    with pytest.raises(ValueError, match="NOPE"):
        events_body(["NOPE"])
