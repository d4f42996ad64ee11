"""WatchStore against a real, migrated Postgres (migration 0003_barkeep)."""

from __future__ import annotations

import pytest

from hookshot_py.barkeep import store as store_module
from hookshot_py.barkeep.models import CommitSnapshot
from hookshot_py.barkeep.store import WatchStore, is_full_sha
from hookshot_py.db.database import Database

from .conftest import SHA_A, SHA_B, SHA_C


def snap(sha: str, approved: bool = False, at: int | None = None, comments: int = 0) -> CommitSnapshot:
    return CommitSnapshot(sha, approved, at, comments)


async def test_watch_reports_only_new_commits_and_keeps_existing_baselines(db: Database) -> None:
    store = WatchStore(db)
    assert await store.watch("main", "repo", [SHA_A, SHA_B, SHA_A]) == [SHA_A, SHA_B]
    assert await store.watched("main", "repo") == {SHA_A: None, SHA_B: None}

    # a baseline fills a commit that has none, but never replaces one the poller saved
    await store.save("main", "repo", {SHA_A: snap(SHA_A, comments=2)})
    added = await store.watch("main", "repo", [SHA_A, SHA_B, SHA_C], {SHA_A: snap(SHA_A), SHA_B: snap(SHA_B, comments=5)})
    assert added == [SHA_C]
    assert await store.watched("main", "repo") == {
        SHA_A: snap(SHA_A, comments=2),
        SHA_B: snap(SHA_B, comments=5),
        SHA_C: None,
    }
    # other instances and repositories are apart
    assert await store.watched("main", "other") == {}
    assert await store.watched("second", "repo") == {}


async def test_watch_refuses_anything_but_full_lower_case_shas(db: Database) -> None:
    store = WatchStore(db)
    for bad in ("abc1234", SHA_A.upper(), SHA_A + "0", "z" * 40):
        with pytest.raises(ValueError, match="full lower-case commit sha"):
            await store.watch("main", "repo", [bad])
    assert await store.watch("main", "repo", []) == []
    assert is_full_sha(SHA_A) and not is_full_sha(SHA_A[:39])


async def test_a_damaged_snapshot_starts_over_with_a_new_baseline(db: Database) -> None:
    store = WatchStore(db)
    await store.watch("main", "repo", [SHA_A])
    await db.execute("UPDATE barkeep_watched_commits SET snapshot = $1", {"sha": SHA_A, "comment_count": -3})
    assert await store.watched("main", "repo") == {SHA_A: None}


async def test_missing_commits_are_forgotten_after_the_grace_period(db: Database) -> None:
    store = WatchStore(db)
    await store.watch("main", "repo", [SHA_A, SHA_B])
    assert await store.mark_missing("main", "repo", [SHA_A]) == []
    assert SHA_A in await store.watched("main", "repo")
    # seen again: no longer missing
    await store.save("main", "repo", {SHA_A: snap(SHA_A)})
    assert await db.fetchval("SELECT missing_since FROM barkeep_watched_commits WHERE sha = $1", SHA_A) is None

    await store.mark_missing("main", "repo", [SHA_A, SHA_B])
    await db.execute("UPDATE barkeep_watched_commits SET missing_since = now() - interval '25 hours' WHERE sha = $1", SHA_B)
    assert await store.mark_missing("main", "repo", [SHA_A, SHA_B]) == [SHA_B]
    assert list(await store.watched("main", "repo")) == [SHA_A]


async def test_prune_drops_old_watches_and_the_oldest_beyond_the_cap(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    store = WatchStore(db)
    await store.watch("main", "repo", [SHA_A, SHA_B, SHA_C])
    await store.watch("main", "small", [SHA_A])
    await db.execute("UPDATE barkeep_watched_commits SET watched_at = now() - interval '91 days' WHERE sha = $1 AND repo = 'repo'", SHA_A)
    await db.execute("UPDATE barkeep_watched_commits SET watched_at = now() - interval '1 day' WHERE sha = $1", SHA_B)
    monkeypatch.setattr(store_module, "MAX_WATCHED_PER_REPO", 1)
    assert await store.prune() == 2  # SHA_A: too old; SHA_B: beyond the cap of "repo"
    assert list(await store.watched("main", "repo")) == [SHA_C]
    assert list(await store.watched("main", "small")) == [SHA_A]


async def test_forget_repo(db: Database) -> None:
    store = WatchStore(db)
    await store.watch("main", "repo", [SHA_A, SHA_B])
    await store.watch("main", "kept", [SHA_A])
    assert await store.forget_repo("main", "repo") == 2
    assert await store.watched("main", "repo") == {}
    assert list(await store.watched("main", "kept")) == [SHA_A]
