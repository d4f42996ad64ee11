"""Feed poll state and seen items in Postgres (tables `feeds` and `feed_items`, migration 0005).

One `feeds` row per fetched URL, shared by every room subscribed to it and by every bridge process:
a process claims due feeds with `FOR UPDATE SKIP LOCKED` and a lease, so each feed is polled once
per interval however many processes run. A poll's outcome is committed in one transaction that
(1) checks the lease is still ours, (2) marks the new items seen, (3) queues their messages in
the outbox and (4) moves the feed's schedule: a crash before the commit leaves the items unseen
(the next poll posts them), a crash after it leaves them queued (the outbox sends them); nothing
is missed, nothing is posted twice. The rooms to post to are read from the connection mirror
inside that transaction, so a process sees the subscriptions of every other process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from hookshot_py.db.database import Database
from hookshot_py.feeds.identity import ALIAS_PREFIX
from hookshot_py.feeds.parse import FeedItem
from hookshot_py.feeds.state import FeedState
from hookshot_py.matrix.outbox import Outbox, OutgoingEvent

log = logging.getLogger(__name__)

MAX_LAST_RESULTS = 5  # hookshot's `lastResults`
# Seen items kept per feed beyond those still in it: a feed that re-publishes an old item within
# this many newer ones does not post it again.
KEEP_SEEN = 1000


class LostLease(Exception):
    """Another process took the feed over (our lease ran out): this poll's outcome is dropped."""


@dataclass(frozen=True)
class FeedRow:
    url: str
    title: str | None
    etag: str | None
    last_modified: str | None
    body_hash: str | None
    initialized: bool
    failures: int
    failure_notified: bool
    last_results: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_record(cls, r: Any) -> FeedRow:
        results = r["last_results"]
        return cls(
            r["url"], r["title"], r["etag"], r["last_modified"], r["body_hash"], r["initialized"],
            r["failures"], r["failure_notified"], list(results) if isinstance(results, list) else [],
        )


@dataclass(frozen=True)
class Subscription:
    room_id: str
    state_key: str
    state: FeedState


@dataclass
class Plan:
    """What a poll's commit does besides bookkeeping: the messages to queue and the next poll."""

    events: list[OutgoingEvent]
    next_in: float  # seconds


@dataclass(frozen=True)
class Fetched:
    """A successful fetch. `items` is None when the feed did not change (304, same body)."""

    title: str | None
    etag: str | None
    last_modified: str | None
    body_hash: str | None
    items: list[FeedItem] | None
    max_age: float | None = None  # the server's Cache-Control max-age, seconds


@dataclass(frozen=True)
class Overview:
    due_in: float | None  # seconds; None without feeds
    feeds: int
    failing_http: int
    failing_parsing: int


SuccessPlanner = Callable[[FeedRow, list[Subscription], list[FeedItem]], Plan]
FailurePlanner = Callable[[FeedRow, list[Subscription]], Plan]

_COLUMNS = "url, title, etag, last_modified, body_hash, initialized, failures, failure_notified, last_results"


def _result(ok: bool, error: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"ok": ok, "timestamp": int(time.time() * 1000)}
    if error is not None:
        out["error"] = error
    return out


class FeedStore:
    def __init__(self, db: Database, outbox: Outbox, event_type: str) -> None:
        self.db = db
        self.outbox = outbox
        self.event_type = event_type
        # `lastResults` of the feeds this process polled (hookshot keeps them in memory too);
        # the provisioning API shows them as a connection's secrets.
        self.results: dict[str, list[dict[str, Any]]] = {}

    # -- subscriptions ------------------------------------------------------------------------------

    async def ensure(self, urls: Sequence[str], spread_s: float) -> int:
        """Make sure these feeds are polled; new ones start within `spread_s` seconds (spread out,
        so a bridge starting with many feeds does not fetch them all at once). Returns how many
        were new: their first poll records the items present without posting them."""
        if not urls:
            return 0
        result = await self.db.execute(
            "INSERT INTO feeds (url, next_poll_at) "
            "SELECT u, now() + make_interval(secs => random() * $2) FROM unnest($1::text[]) AS u "
            "ON CONFLICT (url) DO NOTHING",
            list(dict.fromkeys(urls)),
            spread_s,
        )
        return int(result.rsplit(" ", 1)[-1])

    async def spread_overdue(self, spread_s: float) -> int:
        """Feeds whose time passed while no bridge ran are spread over `spread_s` seconds rather
        than all fetched at once (and kept clustered ever after)."""
        result = await self.db.execute(
            "UPDATE feeds SET next_poll_at = now() + make_interval(secs => random() * $1) "
            "WHERE next_poll_at < now() AND (lease_until IS NULL OR lease_until < now())",
            spread_s,
        )
        return int(result.rsplit(" ", 1)[-1])

    async def baseline(self, url: str, fetched: Fetched, next_in: float) -> bool:
        """A feed fetched when a room subscribed: if nobody polled it yet, its current items are
        recorded as seen (never posted) and its first poll is scheduled. False if it was known."""
        items = fetched.items or []
        async with self.db.acquire() as conn, conn.transaction():
            inserted = await conn.fetchval(
                "INSERT INTO feeds (url, title, etag, last_modified, body_hash, initialized, next_poll_at, "
                "last_polled_at, last_ok_at, last_results) "
                "VALUES ($1, $2, $3, $4, $5, true, now() + make_interval(secs => $6), now(), now(), $7::jsonb) "
                "ON CONFLICT (url) DO NOTHING RETURNING true",
                url, fetched.title, fetched.etag, fetched.last_modified, fetched.body_hash, next_in,
                [_result(True)],
            )
            if inserted and items:
                await conn.execute(
                    "INSERT INTO feed_items (url, item_id) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
                    url, _all_ids(items),
                )
        return bool(inserted)

    async def forget_unused(self, url: str) -> bool:
        """Drop a feed (and its seen items) no connection subscribes to any more. A later
        subscription starts afresh: what the feed holds then is not posted."""
        result = await self.db.execute(
            f"DELETE FROM feeds f WHERE f.url = $1 AND NOT EXISTS ({_SUBSCRIBED})", url, self.event_type
        )
        return result.endswith(" 1")

    async def subscriptions(self, conn: asyncpg.Connection | Database, url: str) -> list[Subscription]:
        rows = await conn.fetch(
            "SELECT room_id, state_key, content FROM connections c WHERE c.event_type = $2 AND "
            "(c.state_key = $1 OR (left(c.state_key, length($1) + 1) = $1 || '#')) ORDER BY room_id",
            url, self.event_type,
        )
        return [Subscription(r["room_id"], r["state_key"], FeedState.from_content(r["content"])) for r in rows]

    # -- scheduling ---------------------------------------------------------------------------------

    async def claim_due(self, owner: str, limit: int, lease_s: float) -> list[FeedRow]:
        """Lease up to `limit` feeds whose time has come, the most overdue first."""
        rows = await self.db.fetch(
            f"""
            WITH due AS (
                SELECT url FROM feeds
                 WHERE next_poll_at <= now() AND (lease_until IS NULL OR lease_until < now())
                 ORDER BY next_poll_at LIMIT $1 FOR UPDATE SKIP LOCKED
            )
            UPDATE feeds f SET lease_owner = $2, lease_until = now() + make_interval(secs => $3)
              FROM due WHERE f.url = due.url
            RETURNING {', '.join('f.' + c.strip() for c in _COLUMNS.split(','))}
            """,
            limit, owner, lease_s,
        )
        return [FeedRow.from_record(r) for r in rows]

    async def overview(self) -> Overview:
        """When the next feed is due (or its lease runs out), and how many feeds are failing."""
        row = await self.db.fetchrow(
            "SELECT EXTRACT(EPOCH FROM min(GREATEST(next_poll_at, COALESCE(lease_until, next_poll_at))) - now()) "
            "AS due_in, count(*) AS feeds, "
            "count(*) FILTER (WHERE failures > 0 AND last_error LIKE 'not a feed:%') AS failing_parsing, "
            "count(*) FILTER (WHERE failures > 0 AND last_error NOT LIKE 'not a feed:%') AS failing_http "
            "FROM feeds"
        )
        assert row is not None
        due_in = row["due_in"]
        return Overview(
            None if due_in is None else float(due_in), row["feeds"], row["failing_http"], row["failing_parsing"]
        )

    async def release(self, owner: str, urls: Sequence[str]) -> None:
        """Give back leases (a stopping poller): another process may poll them at once."""
        await self.db.execute(
            "UPDATE feeds SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1 AND url = ANY($2::text[])",
            owner, list(urls),
        )

    async def make_due(self, url: str) -> None:
        await self.db.execute("UPDATE feeds SET next_poll_at = now() WHERE url = $1", url)

    # -- outcomes -----------------------------------------------------------------------------------

    async def commit_success(self, owner: str, url: str, fetched: Fetched, planner: SuccessPlanner) -> Plan | None:
        """Mark new items seen, queue what `planner` decides, schedule the next poll: one
        transaction. Returns the plan, or None when the feed is no longer subscribed (dropped)."""
        queued: list[Any] = []
        async with self.db.acquire() as conn, conn.transaction():
            if (locked := await self._lock(conn, owner, url)) is None:
                return None
            row, subs = locked
            new: list[FeedItem] = []
            if fetched.items:
                inserted = await conn.fetch(
                    "INSERT INTO feed_items (url, item_id) SELECT $1, unnest($2::text[]) "
                    "ON CONFLICT DO NOTHING RETURNING item_id",
                    url, _all_ids(fetched.items),
                )
                fresh = {r["item_id"] for r in inserted}
                # New: its identity never seen, nor its alias (a GUID rewritten, link and title kept).
                new = [i for i in fetched.items if all(k in fresh for k in i.ids)]
            plan = planner(row, subs, new)
            queued = await self.outbox.enqueue_in(conn, plan.events)
            results = [_result(True), *row.last_results][:MAX_LAST_RESULTS]
            await conn.execute(
                """
                UPDATE feeds SET title = COALESCE($2, title), etag = COALESCE($3, etag),
                       last_modified = COALESCE($4, last_modified), body_hash = COALESCE($5, body_hash),
                       initialized = true, failures = 0, failing_since = NULL, last_error = NULL,
                       failure_notified = false, next_poll_at = now() + make_interval(secs => $6),
                       lease_owner = NULL, lease_until = NULL, last_polled_at = now(), last_ok_at = now(),
                       last_results = $7::jsonb
                 WHERE url = $1
                """,
                url, fetched.title, fetched.etag, fetched.last_modified, fetched.body_hash, plan.next_in,
                results,
            )
            if new and fetched.items:
                await self._prune(conn, url, _all_ids(fetched.items))
        self.outbox.queued(queued)
        self.results[url] = results
        return plan

    async def commit_failure(self, owner: str, url: str, error: str, planner: FailurePlanner) -> Plan | None:
        """Count a failed poll, queue what `planner` decides (a notice), schedule the retry."""
        queued: list[Any] = []
        async with self.db.acquire() as conn, conn.transaction():
            if (locked := await self._lock(conn, owner, url)) is None:
                return None
            row, subs = locked
            failed = FeedRow(
                row.url, row.title, row.etag, row.last_modified, row.body_hash, row.initialized,
                row.failures + 1, row.failure_notified, row.last_results,
            )
            plan = planner(failed, subs)
            queued = await self.outbox.enqueue_in(conn, plan.events)
            results = [_result(False, error), *row.last_results][:MAX_LAST_RESULTS]
            await conn.execute(
                """
                UPDATE feeds SET failures = failures + 1, failing_since = COALESCE(failing_since, now()),
                       last_error = $2, failure_notified = failure_notified OR $3,
                       next_poll_at = now() + make_interval(secs => $4), lease_owner = NULL, lease_until = NULL,
                       last_polled_at = now(), last_results = $5::jsonb
                 WHERE url = $1
                """,
                url, error, bool(plan.events) or row.failure_notified, plan.next_in, results,
            )
        self.outbox.queued(queued)
        self.results[url] = results
        return plan

    async def _lock(
        self, conn: asyncpg.Connection, owner: str, url: str
    ) -> tuple[FeedRow, list[Subscription]] | None:
        """The leased feed, locked, with its subscriptions; None (and the feed dropped) when no
        room subscribes to it any more. Raises `LostLease` when the lease went to another."""
        record = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM feeds WHERE url = $1 AND lease_owner = $2 FOR UPDATE", url, owner
        )
        if record is None:
            raise LostLease(url)
        subs = await self.subscriptions(conn, url)
        if not subs:
            await conn.execute("DELETE FROM feeds WHERE url = $1", url)
            self.results.pop(url, None)
            return None
        return FeedRow.from_record(record), subs

    async def _prune(self, conn: asyncpg.Connection, url: str, current: list[str]) -> None:
        await conn.execute(
            """
            DELETE FROM feed_items WHERE url = $1 AND item_id IN (
                SELECT item_id FROM feed_items WHERE url = $1 AND NOT (item_id = ANY($2::text[]))
                 ORDER BY seen_at DESC OFFSET $3)
            """,
            url, current, KEEP_SEEN,
        )

    # -- reading ------------------------------------------------------------------------------------

    async def last_results(self, url: str) -> list[dict[str, Any]]:
        value = await self.db.fetchval("SELECT last_results FROM feeds WHERE url = $1", url)
        return list(value) if isinstance(value, list) else []

    async def seen_count(self, url: str) -> int:
        count = await self.db.fetchval(
            "SELECT count(*) FROM feed_items WHERE url = $1 AND item_id NOT LIKE $2", url, ALIAS_PREFIX + "%"
        )
        return count if isinstance(count, int) else 0


def _all_ids(items: Sequence[FeedItem]) -> list[str]:
    return list(dict.fromkeys(k for i in items for k in i.ids))


_SUBSCRIBED = (
    "SELECT 1 FROM connections c WHERE c.event_type = $2 AND "
    "(c.state_key = f.url OR (left(c.state_key, length(f.url) + 1) = f.url || '#'))"
)
