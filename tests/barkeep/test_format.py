from __future__ import annotations

import pytest
from msgspec.structs import replace

from hookshot_py.barkeep.format import (
    Announcement,
    diff_announcements,
    format_approval,
    format_comment_posted,
    format_new_comments,
    format_status,
    format_time,
    format_withdrawn,
)
from hookshot_py.barkeep.models import Commit, CommitSnapshot

SHA = "abc1234def5678900000000000000000000000ff"
LINK = f"http://barkeep.test/commits/project51/{SHA}"
PLAIN = Commit(SHA, False, None, None, 0, LINK)
APPROVED = Commit(SHA, True, "Jane Doe <jane@example.org>", 1335785915, 2, LINK)


def test_approval() -> None:
    plain, html = format_approval(APPROVED)
    assert plain == "✅ abc1234 approved by Jane Doe"
    assert html == f'✅ <a href="{LINK}">abc1234</a> approved by Jane Doe'
    assert "jane@example.org" not in plain + html


def test_approval_escapes_html_and_skips_unsafe_links() -> None:
    commit = replace(APPROVED, approved_by="<b>Mallory</b> & co <m@x>", link="javascript:alert(1)")
    plain, html = format_approval(commit)
    assert plain == "✅ abc1234 approved by <b>Mallory</b> & co"
    assert html == "✅ abc1234 approved by &lt;b&gt;Mallory&lt;/b&gt; &amp; co"


def test_approval_without_an_approver_name() -> None:
    assert format_approval(replace(APPROVED, approved_by=None))[0] == "✅ abc1234 approved"


def test_link_is_attribute_escaped() -> None:
    _, html = format_approval(replace(APPROVED, link='http://x/"onmouseover="a'))
    assert 'href="http://x/&quot;onmouseover=&quot;a"' in html


def test_withdrawn() -> None:
    assert format_withdrawn(PLAIN) == (
        "⚠️ abc1234 approval withdrawn",
        f'⚠️ <a href="{LINK}">abc1234</a> approval withdrawn',
    )


@pytest.mark.parametrize(("count", "text"), [(1, "💬 1 new comment on abc1234"), (2, "💬 2 new comments on abc1234")])
def test_new_comments(count: int, text: str) -> None:
    plain, html = format_new_comments(PLAIN, count)
    assert plain == text
    assert html == text.replace("abc1234", f'<a href="{LINK}">abc1234</a>')


def test_status_approved() -> None:
    plain, html = format_status(APPROVED, "project51")
    assert plain == (
        "Commit abc1234 in project51: ✅ approved by Jane Doe at 2012-04-30T11:38:35Z, 2 comments — " + LINK
    )
    assert html == (
        f'Commit <a href="{LINK}">abc1234</a> in <code>project51</code>: '
        "✅ approved by Jane Doe at 2012-04-30T11:38:35Z, 2 comments"
    )


def test_status_not_approved() -> None:
    plain, html = format_status(PLAIN)
    assert plain == f"Commit abc1234: ⏳ not approved yet, no comments — {LINK}"
    assert html == f'Commit <a href="{LINK}">abc1234</a>: ⏳ not approved yet, no comments'
    one = format_status(replace(PLAIN, comment_count=1, link=None))
    assert one == ("Commit abc1234: ⏳ not approved yet, 1 comment", "Commit abc1234: ⏳ not approved yet, 1 comment")


def test_status_escapes_the_repo_name() -> None:
    _, html = format_status(PLAIN, "<repo>")
    assert "<code>&lt;repo&gt;</code>" in html


def test_comment_posted() -> None:
    assert format_comment_posted(PLAIN)[0] == "💬 Comment posted on abc1234"


def test_format_time() -> None:
    assert format_time(0) == "1970-01-01T00:00:00Z"
    assert format_time(10**20) == f"Unix time {10**20}"


# -- diff_announcements -----------------------------------------------------------------------------


def snap(commit: Commit) -> CommitSnapshot:
    return CommitSnapshot.of(commit)


def test_first_sight_is_only_a_baseline() -> None:
    assert diff_announcements(None, APPROVED) == []
    assert diff_announcements(None, PLAIN) == []


def test_nothing_changed() -> None:
    assert diff_announcements(snap(APPROVED), APPROVED) == []
    assert diff_announcements(snap(PLAIN), PLAIN) == []


def test_newly_approved() -> None:
    [announcement] = diff_announcements(snap(PLAIN), replace(APPROVED, comment_count=0))
    assert announcement == Announcement("approved", SHA, *format_approval(APPROVED))


def test_approval_withdrawn() -> None:
    [announcement] = diff_announcements(snap(APPROVED), replace(PLAIN, comment_count=2))
    assert (announcement.kind, announcement.plain) == ("withdrawn", "⚠️ abc1234 approval withdrawn")


def test_approved_again_between_two_polls() -> None:
    again = replace(APPROVED, approved_by="Ada <ada@x>", approved_at=APPROVED.approved_at + 60)
    [announcement] = diff_announcements(snap(APPROVED), again)
    assert (announcement.kind, announcement.plain) == ("approved", "✅ abc1234 approved by Ada")


def test_new_comments_carry_the_difference() -> None:
    [announcement] = diff_announcements(snap(replace(PLAIN, comment_count=3)), replace(PLAIN, comment_count=5))
    assert (announcement.kind, announcement.new_comments, announcement.plain) == (
        "comments",
        2,
        "💬 2 new comments on abc1234",
    )


def test_deleted_comments_are_not_announced() -> None:
    assert diff_announcements(snap(replace(PLAIN, comment_count=3)), replace(PLAIN, comment_count=1)) == []


def test_comments_then_approval_in_one_poll() -> None:
    due = diff_announcements(snap(PLAIN), replace(APPROVED, comment_count=1))
    assert [(a.kind, a.plain) for a in due] == [
        ("comments", "💬 1 new comment on abc1234"),
        ("approved", "✅ abc1234 approved by Jane Doe"),
    ]


def test_snapshot_of_another_commit_is_a_bug() -> None:
    with pytest.raises(ValueError, match="snapshot of"):
        diff_announcements(CommitSnapshot("f" * 40, False, None, 0), PLAIN)
