from __future__ import annotations

from typing import Any

import pytest

from hookshot_py.barkeep.models import Commit, CommitSnapshot, approver_name

SHA = "7504a2ace8fff8f9eded99e5ea633bd7be40285d"


def test_from_json_full_object() -> None:
    commit = Commit.from_json(
        SHA,
        {
            "approved": True,
            "approved_by": "Jane Doe <jane@example.org>",
            "approved_at": 1335785915,
            "comment_count": 4,
            "link": f"http://barkeep.test/commits/r/{SHA}",
        },
    )
    link = f"http://barkeep.test/commits/r/{SHA}"
    assert commit == Commit(SHA, True, "Jane Doe <jane@example.org>", 1335785915, 4, link)
    assert commit.short_sha == "7504a2a"
    assert commit.approver_name == "Jane Doe"


def test_from_json_with_fields_left_out() -> None:
    assert Commit.from_json(SHA, {"comment_count": 2}) == Commit(SHA, False, None, None, 2, None)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ([], "not a JSON object"),
        ({"approved": 1}, "'approved' is not a boolean"),
        ({"approved_by": ["x"]}, "'approved_by' is not a string"),
        ({"approved_at": "yesterday"}, "'approved_at' is not a Unix timestamp"),
        ({"approved_at": True}, "'approved_at' is not a Unix timestamp"),
        ({"comment_count": 1.5}, "'comment_count' is not a count"),
        ({"comment_count": -1}, "'comment_count' is not a count"),
        ({"link": 7}, "'link' is not a string"),
    ],
)
def test_from_json_rejects_malformed_values(data: Any, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Commit.from_json(SHA, data)


@pytest.mark.parametrize(
    ("approved_by", "name"),
    [
        ("Jane Doe <jane@example.org>", "Jane Doe"),
        (" <jane@example.org>", "jane@example.org"),
        ("Jane <Doe> <jane@example.org>", "Jane <Doe>"),
        ("Just A Name", "Just A Name"),
        ("", None),
        (None, None),
    ],
)
def test_approver_name(approved_by: str | None, name: str | None) -> None:
    assert approver_name(approved_by) == name


def test_snapshot_round_trip() -> None:
    commit = Commit(SHA, True, "Jane <j@x>", 100, 3, None)
    snapshot = CommitSnapshot.of(commit)
    assert snapshot == CommitSnapshot(SHA, True, 100, 3)
    assert CommitSnapshot.from_json(snapshot.to_json()) == snapshot


@pytest.mark.parametrize("data", [None, {}, {"sha": 5}, {"sha": SHA, "comment_count": "3"}])
def test_snapshot_from_bad_json(data: Any) -> None:
    with pytest.raises(ValueError):
        CommitSnapshot.from_json(data)
