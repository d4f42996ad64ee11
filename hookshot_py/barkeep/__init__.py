"""Barkeep (seed 004): a signing REST client, review-state models and room messages.

Barkeep sends no webhooks, so a Barkeep connection calls `poll_repo` on a timer: it fetches the
watched commits in one batch and asks `diff_announcements` what changed since each commit's last
`CommitSnapshot`.
"""

from hookshot_py.barkeep.client import BarkeepClient
from hookshot_py.barkeep.errors import BarkeepError
from hookshot_py.barkeep.format import Announcement, diff_announcements
from hookshot_py.barkeep.models import COMMIT_FIELDS, Commit, CommitSnapshot
from hookshot_py.barkeep.poll import PollResult, poll_repo

__all__ = [
    "COMMIT_FIELDS",
    "Announcement",
    "BarkeepClient",
    "BarkeepError",
    "Commit",
    "CommitSnapshot",
    "PollResult",
    "diff_announcements",
    "poll_repo",
]
