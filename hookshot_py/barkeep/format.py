"""Room messages for Barkeep review state, each as `(plain, html)`, and the rule deciding which
announcements a poll makes due.

Barkeep sends no webhooks: the bridge polls the batch route and compares each commit with the
snapshot it kept from the previous poll (`diff_announcements`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Literal
from urllib.parse import urlsplit

from hookshot_py.barkeep.models import Commit, CommitSnapshot

AnnouncementKind = Literal["comments", "approved", "withdrawn"]


@dataclass(frozen=True)
class Announcement:
    """One message due in the room. `new_comments` is the count for a "comments" one."""

    kind: AnnouncementKind
    sha: str
    plain: str
    html: str
    new_comments: int = 0


def format_approval(commit: Commit) -> tuple[str, str]:
    """"✅ abc1234 approved by Jane Doe" — the name without the email."""
    who = commit.approver_name
    by = f" by {who}" if who else ""
    return (
        f"✅ {commit.short_sha} approved{by}",
        f"✅ {_sha_html(commit)} approved{escape(by, quote=False)}",
    )


def format_withdrawn(commit: Commit) -> tuple[str, str]:
    return (
        f"⚠️ {commit.short_sha} approval withdrawn",
        f"⚠️ {_sha_html(commit)} approval withdrawn",
    )


def format_new_comments(commit: Commit, count: int) -> tuple[str, str]:
    """"💬 2 new comments on abc1234" ("1 new comment" for one)."""
    what = _plural(count, "new comment")
    return f"💬 {what} on {commit.short_sha}", f"💬 {what} on {_sha_html(commit)}"


def format_status(commit: Commit, repo: str | None = None) -> tuple[str, str]:
    """The answer to a status query: approval (by whom, when, in UTC), comment count, link."""
    where_plain = f" in {repo}" if repo else ""
    where_html = f" in <code>{escape(repo)}</code>" if repo else ""
    if commit.approved:
        state = "✅ approved"
        if who := commit.approver_name:
            state += f" by {who}"
        if commit.approved_at is not None:
            state += f" at {format_time(commit.approved_at)}"
    else:
        state = "⏳ not approved yet"
    comments = _plural(commit.comment_count, "comment") if commit.comment_count else "no comments"
    summary = f"{state}, {comments}"
    link = _safe_link(commit.link)
    plain = f"Commit {commit.short_sha}{where_plain}: {summary}"
    if link:
        plain += f" — {link}"
    html = f"Commit {_sha_html(commit)}{where_html}: {escape(summary, quote=False)}"
    return plain, html


def format_comment_posted(commit: Commit) -> tuple[str, str]:
    """The reply after the bridge posted a comment for someone."""
    return f"💬 Comment posted on {commit.short_sha}", f"💬 Comment posted on {_sha_html(commit)}"


def format_time(timestamp: int) -> str:
    """A Unix time as an ISO 8601 UTC date-time, e.g. 2012-04-30T11:38:35Z."""
    try:
        return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"Unix time {timestamp}"


def diff_announcements(previous: CommitSnapshot | None, current: Commit) -> list[Announcement]:
    """The announcements due for `current`, given the snapshot kept from the previous poll.

    Rules:
    - No previous snapshot (the commit was just added to the watch list, or the bridge lost
      its state): nothing is announced. The caller records `CommitSnapshot.of(current)` as the
      baseline; whatever is already there (an approval, old comments) is what `!barkeep status`
      reports, not news.
    - More comments than before: one "comments" announcement carrying the difference. Fewer
      (a comment was deleted): nothing.
    - Not approved → approved: one "approved" announcement. Approved → approved with another
      `approved_at` (withdrawn and approved again between two polls): announced again.
    - Approved → not approved: one "withdrawn" announcement.
    Comments come first, since reviewers usually comment before approving.
    """
    if previous is None:
        return []
    if previous.sha != current.sha:
        raise ValueError(f"snapshot of {previous.sha} compared with commit {current.sha}")
    due: list[Announcement] = []
    added = current.comment_count - previous.comment_count
    if added > 0:
        plain, html = format_new_comments(current, added)
        due.append(Announcement("comments", current.sha, plain, html, added))
    if current.approved and (not previous.approved or previous.approved_at != current.approved_at):
        plain, html = format_approval(current)
        due.append(Announcement("approved", current.sha, plain, html))
    elif previous.approved and not current.approved:
        plain, html = format_withdrawn(current)
        due.append(Announcement("withdrawn", current.sha, plain, html))
    return due


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _safe_link(link: str | None) -> str | None:
    """The commit link, if it is one a room client may render (http or https)."""
    if not link:
        return None
    try:
        scheme = urlsplit(link).scheme.lower()
    except ValueError:
        return None
    return link if scheme in ("http", "https") else None


def _sha_html(commit: Commit) -> str:
    short = escape(commit.short_sha)
    link = _safe_link(commit.link)
    return f'<a href="{escape(link, quote=True)}">{short}</a>' if link else short
