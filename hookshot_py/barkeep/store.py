"""The watched commits of each Barkeep repository and their last snapshot, in Postgres.

Rows live in `barkeep_watched_commits` (migration 0003_barkeep), keyed by (instance, repo,
sha): a commit is watched once for a repository, whichever room asked, and every room
connected to that repository hears its news. Keeping the snapshots in Postgres is what makes
an announcement happen once across restarts.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from datetime import timedelta

from hookshot_py.barkeep.models import CommitSnapshot
from hookshot_py.db.database import Database

log = logging.getLogger(__name__)

FULL_SHA = re.compile(r"[0-9a-f]{40}")
# A commit nobody re-watched for this long stops being polled.
WATCH_RETENTION = timedelta(days=90)
# Barkeep imports pushed commits on its own schedule; one it still does not know after this
# long (never imported, or dropped by a force push) is forgotten.
MISSING_GRACE = timedelta(days=1)
# Newest commits kept per repository: a poll's cost grows with the watch list.
MAX_WATCHED_PER_REPO = 1000


def is_full_sha(sha: str) -> bool:
    return bool(FULL_SHA.fullmatch(sha))


class WatchStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def watch(
        self, instance: str, repo: str, shas: Iterable[str], snapshots: Mapping[str, CommitSnapshot] | None = None
    ) -> list[str]:
        """Watch full, lower-case shas; returns those that were not watched yet.

        A snapshot given here becomes the commit's baseline unless it already has one (a commit
        watched again keeps what the poller last saw, so nothing is announced twice or lost).
        """
        wanted = list(dict.fromkeys(shas))
        for sha in wanted:
            if not is_full_sha(sha):
                raise ValueError(f"{sha!r} is not a full lower-case commit sha")
        if not wanted:
            return []
        given = snapshots or {}
        rows = await self.db.fetch(
            """
            INSERT INTO barkeep_watched_commits (instance, repo, sha, snapshot)
            SELECT $1, $2, s, j::jsonb FROM unnest($3::text[], $4::text[]) AS u(s, j)
            ON CONFLICT (instance, repo, sha) DO UPDATE SET
                snapshot = COALESCE(barkeep_watched_commits.snapshot, EXCLUDED.snapshot),
                watched_at = now()
            RETURNING sha, (xmax = 0) AS inserted
            """,
            instance,
            repo,
            wanted,
            [_json(given[sha]) if sha in given else None for sha in wanted],
        )
        return [r["sha"] for r in rows if r["inserted"]]

    async def watched(self, instance: str, repo: str) -> dict[str, CommitSnapshot | None]:
        """Every watched commit of the repository with its snapshot (None: no baseline yet),
        longest watched first (so announcements follow the order commits were pushed)."""
        rows = await self.db.fetch(
            "SELECT sha, snapshot FROM barkeep_watched_commits WHERE instance = $1 AND repo = $2 "
            "ORDER BY watched_at, sha",
            instance,
            repo,
        )
        out: dict[str, CommitSnapshot | None] = {}
        for row in rows:
            snapshot: CommitSnapshot | None = None
            if row["snapshot"] is not None:
                try:
                    snapshot = CommitSnapshot.from_json(row["snapshot"])
                except ValueError as e:
                    # A damaged row: start over with a fresh baseline rather than stop polling.
                    log.warning("Ignoring the stored Barkeep snapshot of %s in %s: %s", row["sha"], repo, e)
            out[row["sha"]] = snapshot
        return out

    async def save(self, instance: str, repo: str, snapshots: Mapping[str, CommitSnapshot]) -> None:
        """Store what a poll saw; a commit seen again is no longer missing."""
        if not snapshots:
            return
        await self.db.execute(
            """
            UPDATE barkeep_watched_commits AS w
               SET snapshot = u.j::jsonb, polled_at = now(), missing_since = NULL
              FROM unnest($3::text[], $4::text[]) AS u(s, j)
             WHERE w.instance = $1 AND w.repo = $2 AND w.sha = u.s
            """,
            instance,
            repo,
            list(snapshots),
            [_json(s) for s in snapshots.values()],
        )

    async def mark_missing(self, instance: str, repo: str, shas: Iterable[str]) -> list[str]:
        """Note that Barkeep did not know these commits; forget those missing for too long.
        Returns the shas forgotten."""
        wanted = list(shas)
        if not wanted:
            return []
        await self.db.execute(
            "UPDATE barkeep_watched_commits SET missing_since = COALESCE(missing_since, now()), polled_at = now() "
            "WHERE instance = $1 AND repo = $2 AND sha = ANY($3::text[])",
            instance,
            repo,
            wanted,
        )
        rows = await self.db.fetch(
            "DELETE FROM barkeep_watched_commits WHERE instance = $1 AND repo = $2 AND sha = ANY($3::text[]) "
            "AND missing_since < now() - $4::interval RETURNING sha",
            instance,
            repo,
            wanted,
            MISSING_GRACE,
        )
        return [r["sha"] for r in rows]

    async def prune(self) -> int:
        """Forget commits watched too long ago, and the oldest beyond the per-repository cap."""
        result = await self.db.execute(
            """
            DELETE FROM barkeep_watched_commits AS w
             USING (
                SELECT instance, repo, sha,
                       row_number() OVER (PARTITION BY instance, repo ORDER BY watched_at DESC, sha) AS n,
                       watched_at
                  FROM barkeep_watched_commits
             ) AS ranked
             WHERE w.instance = ranked.instance AND w.repo = ranked.repo AND w.sha = ranked.sha
               AND (ranked.n > $1 OR ranked.watched_at < now() - $2::interval)
            """,
            MAX_WATCHED_PER_REPO,
            WATCH_RETENTION,
        )
        return int(result.rsplit(" ", 1)[-1])

    async def forget_repo(self, instance: str, repo: str) -> int:
        result = await self.db.execute(
            "DELETE FROM barkeep_watched_commits WHERE instance = $1 AND repo = $2", instance, repo
        )
        return int(result.rsplit(" ", 1)[-1])


def _json(snapshot: CommitSnapshot) -> str:
    return json.dumps(snapshot.to_json())
