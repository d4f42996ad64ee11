"""The review state of one Barkeep commit, as the API returns it and as the poller remembers it."""

from __future__ import annotations

from typing import Annotated, Any

from msgspec import Meta

from hookshot_py.forges.models import Model, ModelError, convert, field_description, to_builtins

# The keys of a commit object; `fields` may name any of them and nothing else.
COMMIT_FIELDS = ("approved", "approved_by", "approved_at", "comment_count", "link")


class Commit(Model, frozen=True):
    """One commit's review state. `approved_by` is Barkeep's "Name <email>" string.

    A key the server left out (because `fields` did not ask for it) takes the "nothing known"
    value: not approved, no approver, no comments, no link. Each field says in words what it
    must be, for the error naming a malformed one.
    """

    what = "commit"
    sha: str
    approved: Annotated[bool, Meta(description="a boolean")] = False
    approved_by: Annotated[str | None, Meta(description="a string")] = None
    approved_at: Annotated[int | None, Meta(description="a Unix timestamp")] = None
    comment_count: Annotated[int, Meta(ge=0, description="a count")] = 0
    link: Annotated[str | None, Meta(description="a string")] = None

    @classmethod
    def from_json(cls, sha: str, data: Any) -> Commit:
        """Read a commit object (the batch answer keys it by sha); raises ValueError naming the
        first malformed key."""
        if not isinstance(data, dict):
            raise ValueError(f"commit {sha} is not a JSON object")
        try:
            return convert({**data, "sha": sha}, cls)
        except ModelError as e:
            raise ValueError(f"commit {sha}: '{e.field}' is not {field_description(cls, e.field)}") from None

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


class CommitSnapshot(Model, frozen=True):
    """What the poller keeps about a commit between polls, to tell what changed.

    `to_json`/`from_json` give a plain dict for storing it (e.g. in a JSON column).
    """

    what = "commit snapshot"
    sha: str
    approved: bool
    approved_at: int | None
    comment_count: Annotated[int, Meta(ge=0)]

    @classmethod
    def of(cls, commit: Commit) -> CommitSnapshot:
        return cls(commit.sha, commit.approved, commit.approved_at, commit.comment_count)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = to_builtins(self)
        return data

    @classmethod
    def from_json(cls, data: Any) -> CommitSnapshot:
        """Read a stored snapshot; raises ValueError (ModelError) when it is not one."""
        return convert(data, cls)
