from __future__ import annotations

import pytest

from fakes.barkeep import FakeBarkeepState
from hookshot_py.barkeep.client import BarkeepError
from hookshot_py.barkeep.models import CommitSnapshot
from hookshot_py.barkeep.poll import poll_repo

from .conftest import REPO, SHA_A, SHA_B, SHA_C, MakeClient


async def test_polls_announce_what_changed_between_them(make_client: MakeClient, state: FakeBarkeepState) -> None:
    client = make_client(None, None)
    state.approve(REPO, SHA_B, name="Old Approval", email="o@x")  # before watching: not news
    first = await poll_repo(client, REPO, {SHA_A: None, SHA_B: None})
    assert first.announcements == [] and first.missing == []
    assert set(first.snapshots) == {SHA_A, SHA_B}
    assert first.snapshots[SHA_B].approved

    state.add_comments(REPO, SHA_A, 2)
    state.approve(REPO, SHA_A, name="Jane Doe", email="jane@example.org")
    state.unapprove(REPO, SHA_B)
    second = await poll_repo(client, REPO, first.snapshots)
    assert [a.plain for a in second.announcements] == [
        "💬 2 new comments on 9df81d0",
        "✅ 9df81d0 approved by Jane Doe",
        "⚠️ 3b42b44 approval withdrawn",
    ]
    assert len(state.requests) == 2  # one batch per poll

    third = await poll_repo(client, REPO, second.snapshots)
    assert third.announcements == []


async def test_a_vanished_commit_is_reported_and_the_rest_polled(
    make_client: MakeClient, state: FakeBarkeepState
) -> None:
    gone = "e" * 40
    watched = {SHA_A: CommitSnapshot(SHA_A, False, None, 0), gone: None, SHA_C: CommitSnapshot(SHA_C, False, None, 0)}
    state.add_comments(REPO, SHA_C, 1)
    result = await poll_repo(make_client(), REPO, watched)
    assert result.missing == [gone]
    assert set(result.commits) == {SHA_A, SHA_C}
    assert [a.plain for a in result.announcements] == ["💬 1 new comment on 3b42c0f"]
    assert len(state.requests) == 2


async def test_nothing_watched_sends_nothing(make_client: MakeClient, state: FakeBarkeepState) -> None:
    result = await poll_repo(make_client(), REPO, {})
    assert (result.commits, result.announcements, result.missing) == ({}, [], [])
    assert state.requests == []


async def test_an_unknown_repository_raises(make_client: MakeClient) -> None:
    with pytest.raises(BarkeepError) as info:
        await poll_repo(make_client(), "gone-repo", {SHA_A: None})
    assert info.value.kind == "not_found" and info.value.repo == "gone-repo"
