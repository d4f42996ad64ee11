"""The review state of one Barkeep commit, as the API returns it and as the poller remembers it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The keys of a commit object; `fields` may name any of them and nothing else.
COMMIT_FIELDS = ("approved", "approved_by", "approved_at", "comment_count", "link")


@dataclass(frozen=True)
class Commit:
    """One commit's review state. `approved_by` is Barkeep's "Name <email>" string.

    A key the server left out (because `fields` did not ask for it) takes the "nothing known"
    value: not approved, no approver, no comments, no link.
    """

    sha: str
    approved: bool
    approved_by: str | None
    approved_at: int | None
    comment_count: int
    link: str | None

    @classmethod
    def from_json(cls, sha: str, data: Any) -> Commit:
        """Read a commit object; raises ValueError naming the first malformed key."""
        if not isinstance(data, dict):
            raise ValueError(f"commit {sha} is not a JSON object")
        approved = data.get("approved", False)
        if not isinstance(approved, bool):
            raise ValueError(f"commit {sha}: 'approved' is not a boolean")
        approved_by = data.get("approved_by")
        if approved_by is not None and not isinstance(approved_by, str):
            raise ValueError(f"commit {sha}: 'approved_by' is not a string")
        approved_at = data.get("approved_at")
        if approved_at is not None and (not isinstance(approved_at, int) or isinstance(approved_at, bool)):
            raise ValueError(f"commit {sha}: 'approved_at' is not a Unix timestamp")
        comment_count = data.get("comment_count", 0)
        if not isinstance(comment_count, int) or isinstance(comment_count, bool) or comment_count < 0:
            raise ValueError(f"commit {sha}: 'comment_count' is not a count")
        link = data.get("link")
        if link is not None and not isinstance(link, str):
            raise ValueError(f"commit {sha}: 'link' is not a string")
        return cls(sha, approved, approved_by, approved_at, comment_count, link)

    @property
    def short_sha(self) -> str:
        return self.sha[:7]

    @property
    def approver_name(self) -> str | None:
        """The approver without the email part; the email when the name is empty."""
        return approver_name(self.approved_by)


def approver_name(approved_by: str | None) -> str | None:
    """"Jane Doe <jane@example.org>" → "Jane Doe"; " <jane@example.org>" → "jane@example.org"."""
    if approved_by is None:
        return None
    text = approved_by.strip()
    if text.endswith(">") and "<" in text:
        name, _, email = text[:-1].rpartition("<")
        return name.strip() or email.strip() or None
    return text or None


@dataclass(frozen=True)
class CommitSnapshot:
    """What the poller keeps about a commit between polls, to tell what changed.

    `to_json`/`from_json` give a plain dict for storing it (e.g. in a JSON column).
    """

    sha: str
    approved: bool
    approved_at: int | None
    comment_count: int

    @classmethod
    def of(cls, commit: Commit) -> CommitSnapshot:
        return cls(commit.sha, commit.approved, commit.approved_at, commit.comment_count)

    def to_json(self) -> dict[str, Any]:
        return {
            "sha": self.sha,
            "approved": self.approved,
            "approved_at": self.approved_at,
            "comment_count": self.comment_count,
        }

    @classmethod
    def from_json(cls, data: Any) -> CommitSnapshot:
        """Read a stored snapshot; raises ValueError when it is not one."""
        if not isinstance(data, dict) or not isinstance(data.get("sha"), str):
            raise ValueError("a commit snapshot needs a 'sha' string")
        commit = Commit.from_json(data["sha"], data)
        return cls.of(commit)
