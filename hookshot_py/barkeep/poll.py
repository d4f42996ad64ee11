"""One poll of one repository's watched commits: what is new since the last poll.

Barkeep sends no webhooks, so a connection keeps a `CommitSnapshot` per watched commit and
calls `poll_repo` on a timer; it posts the announcements and stores the new snapshots.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from hookshot_py.barkeep.client import BarkeepClient
from hookshot_py.barkeep.errors import BarkeepError
from hookshot_py.barkeep.format import Announcement, diff_announcements
from hookshot_py.barkeep.models import Commit, CommitSnapshot


@dataclass
class PollResult:
    commits: dict[str, Commit] = field(default_factory=dict)  # by full sha
    snapshots: dict[str, CommitSnapshot] = field(default_factory=dict)  # to keep for the next poll
    announcements: list[Announcement] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # watched shas Barkeep no longer knows


async def poll_repo(
    client: BarkeepClient, repo: str, watched: Mapping[str, CommitSnapshot | None]
) -> PollResult:
    """Fetch every watched commit in one batch and diff it with its snapshot.

    `watched` is keyed by full shas as Barkeep spells them (lower-case hex, e.g. the `sha` of a
    `Commit` from `get_commit`, which resolves a prefix).

    A snapshot of None means "first poll": the commit gets a baseline and no announcement.
    Barkeep fails a whole batch with a 404 for one unknown sha (a commit dropped by a force
    push, say); that sha goes to `missing` and the rest is asked again. Any other failure
    (including an unknown repository) raises `BarkeepError`.
    """
    result = PollResult()
    remaining = list(watched)
    while remaining:
        try:
            commits = await client.get_commits(repo, remaining)
        except BarkeepError as e:
            if e.kind != "not_found" or e.sha.lower() not in (s.lower() for s in remaining):
                raise
            result.missing.extend(s for s in remaining if s.lower() == e.sha.lower())
            remaining = [s for s in remaining if s.lower() != e.sha.lower()]
            continue
        for sha in remaining:
            commit = commits.get(sha) or commits.get(sha.lower())
            if commit is None:
                result.missing.append(sha)
                continue
            result.commits[commit.sha] = commit
            result.snapshots[commit.sha] = CommitSnapshot.of(commit)
            result.announcements.extend(diff_announcements(watched[sha], commit))
        break
    return result
