"""The poller against the local feed server and a real Postgres: every new item exactly once, in
publication order, across reordering, GUID-less items, 304s, failures, crashes, restarts and
several processes. Messages are read from the outbox table (what would be sent to Matrix)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from fakes.feeds import FakeFeeds, item

from hookshot_py.config import FeedsConfig
from hookshot_py.connections.base import connection_id
from hookshot_py.db.database import Database
from hookshot_py.feeds.fetch import FeedFetcher
from hookshot_py.feeds.poller import FeedPoller
from hookshot_py.feeds.state import normalize_url
from hookshot_py.feeds.store import FeedStore, LostLease
from hookshot_py.matrix.outbox import Outbox
from hookshot_py.metrics import Metrics
from hookshot_py.net.guard import guarded_session

from .conftest import LOCAL

EVENT_TYPE = "uk.half-shot.matrix-hookshot.feed"
ROOM, OTHER_ROOM = "!room-a", "!room-b"


@dataclass
class Rig:
    db: Database
    feeds: FakeFeeds
    base: str
    executor: ThreadPoolExecutor
    pollers: list[FeedPoller] = field(default_factory=list)

    def url(self, name: str) -> str:
        return f"{self.base}/feeds/{name}"

    def poller(self, **config: Any) -> FeedPoller:
        """A poller as one bridge process has it (its own outbox, store, session and lease owner)."""
        outbox = Outbox(self.db, SimpleNamespace(bot_mxid="@hookshot:test"), None, Metrics())  # type: ignore[arg-type]
        store = FeedStore(self.db, outbox, EVENT_TYPE)
        session = guarded_session(LOCAL, auto_decompress=False)
        fetcher = FeedFetcher(session, LOCAL, max_bytes=config.pop("max_bytes", 512 * 1024))
        cfg = FeedsConfig(enabled=True, poll_interval_seconds=600, **config)
        poller = FeedPoller(store, fetcher, cfg, self.executor, Metrics())
        poller.session = session  # type: ignore[attr-defined]
        self.pollers.append(poller)
        return poller

    async def subscribe(self, room: str, url: str, **state: Any) -> None:
        content = {"url": url, **state}
        await self.db.execute(
            "INSERT INTO connections (room_id, event_type, state_key, connection_id, content) VALUES ($1, $2, $3, $4, $5)",
            room, EVENT_TYPE, url, connection_id(room, EVENT_TYPE, url), content,
        )
        await self.pollers[0].store.ensure([normalize_url(url)], 0)

    async def unsubscribe(self, room: str, url: str) -> None:
        await self.db.execute("DELETE FROM connections WHERE room_id = $1 AND state_key = $2", room, url)

    async def poll(self, poller: FeedPoller | None = None) -> None:
        await self.db.execute("UPDATE feeds SET next_poll_at = now()")
        await (poller or self.pollers[0]).poll_due()

    async def posted(self, room: str = ROOM) -> list[str]:
        rows = await self.db.fetch("SELECT content FROM outbox WHERE room_id = $1 ORDER BY id", room)
        return [r["content"]["body"] for r in rows]

    async def feed_row(self, name: str) -> Any:
        return await self.db.fetchrow(
            "SELECT *, EXTRACT(EPOCH FROM next_poll_at - now())::float AS due_in FROM feeds WHERE url = $1",
            self.url(name),
        )


@pytest.fixture
async def rig(db: Database, feeds: FakeFeeds, feed_server: Any) -> AsyncIterator[Rig]:
    with ThreadPoolExecutor(max_workers=1) as executor:
        r = Rig(db, feeds, f"http://127.0.0.1:{feed_server.port}", executor)
        r.poller()
        try:
            yield r
        finally:
            for p in r.pollers:
                await p.stop()
                await p.session.close()  # type: ignore[attr-defined]


def new_post(n: int) -> str:
    return f"New post in Feed a: [Post {n}](https://blog.example.org/posts/{n})"


@pytest.mark.parametrize("kind", ["rss", "atom", "json"])
async def test_first_poll_records_then_new_items_are_posted_once_in_order(rig: Rig, kind: str) -> None:
    rig.feeds.set_items("a", [item(2), item(1)], kind=kind)
    await rig.subscribe(ROOM, rig.url("a"))
    await rig.poll()
    assert await rig.posted() == []  # the first poll only records what is there
    rig.feeds.set_items("a", [item(5), item(4), item(3), item(2), item(1)], kind=kind)
    await rig.poll()
    assert await rig.posted() == [new_post(3), new_post(4), new_post(5)]
    await rig.poll()
    await rig.poll()
    assert await rig.posted() == [new_post(3), new_post(4), new_post(5)]


async def test_reordered_and_edited_items_are_not_posted_again(rig: Rig) -> None:
    rig.feeds.set_items("a", [item(3), item(2), item(1)])
    await rig.subscribe(ROOM, rig.url("a"))
    await rig.poll()
    rig.feeds.set_items("a", [item(1), item(3, title="Post 3 (edited)"), item(2)])
    await rig.poll()
    rig.feeds.set_items("a", [item(2)])  # items dropped out...
    await rig.poll()
    rig.feeds.set_items("a", [item(4), item(3), item(2), item(1)])  # ...and came back, with one new
    await rig.poll()
    assert await rig.posted() == [new_post(4)]


async def test_rewritten_guids_post_nothing_again_but_a_new_title_at_an_old_link_is_new(rig: Rig) -> None:
    rig.feeds.set_items("a", [item(2), item(1)])
    await rig.subscribe(ROOM, rig.url("a"))
    await rig.poll()
    # The blog moved to another engine: every GUID changed, links and titles kept.
    rig.feeds.set_items("a", [{**item(n), "guid": f"tag:new-engine,{n}"} for n in (3, 2, 1)])
    await rig.poll()
    assert await rig.posted() == [new_post(3)]
    # A one-item status feed: the same page, a new entry (new GUID, new title) is posted.
    rig.feeds.set_items("a", [{**item(4), "guid": "tag:new-engine,4", "title": "Post 3 update", "link": item(3)["link"]}])
    await rig.poll()
    assert (await rig.posted())[1:] == ["New post in Feed a: [Post 3 update](https://blog.example.org/posts/3)"]


async def test_guid_less_items_are_identified_by_link_then_title_and_date(rig: Rig) -> None:
    rig.feeds.set_items("a", [item(1, guid=False), item(0, guid=False, link=False)])
    await rig.subscribe(ROOM, rig.url("a"))
    await rig.poll()
    rig.feeds.set_items("a", [item(3, guid=False, link=False), item(2, guid=False), item(1, guid=False),
                              item(0, guid=False, link=False)])  # fmt: skip
    await rig.poll()
    await rig.poll()
    assert await rig.posted() == [new_post(2), "New post in Feed a: Post 3"]


async def test_304_posts_nothing_and_keeps_the_validators(rig: Rig) -> None:
    rig.feeds.set_items("a", [item(1)])
    await rig.subscribe(ROOM, rig.url("a"))
    await rig.poll()
    await rig.poll()
    await rig.poll()
    statuses = [r.status for r in rig.feeds.hits("a")]
    assert statuses == [200, 304, 304]
    assert rig.feeds.hits("a")[-1].headers["If-None-Match"] == rig.feeds.feeds["a"].etag
    rig.feeds.set_items("a", [item(2), item(1)])
    await rig.poll()
    assert await rig.posted() == [new_post(2)]


async def test_an_unchanged_body_is_not_parsed_again(rig: Rig) -> None:
    rig.feeds.set_items("a", [item(1)], conditional=False)  # a server that ignores validators
    await rig.subscribe(ROOM, rig.url("a"))
    poller = rig.pollers[0]
    parsed: list[str] = []
    real_parse = poller.parse

    async def counting_parse(result: Any) -> Any:
        parsed.append(result.final_url)
        return await real_parse(result)

    poller.parse = counting_parse  # type: ignore[method-assign]
    for _ in range(3):
        await rig.poll()
    assert len(parsed) == 1 and [r.status for r in rig.feeds.hits("a")] == [200, 200, 200]


async def test_burst_is_capped_newest_posted_oldest_first(rig: Rig) -> None:
    rig.pollers.clear()
    rig.poller(max_items_per_poll=3)
    rig.feeds.set_items("a", [item(0)])
    await rig.subscribe(ROOM, rig.url("a"))
    await rig.poll()
    rig.feeds.set_items("a", [item(n) for n in range(8, -1, -1)])
    await rig.poll()
    assert await rig.posted() == [
        new_post(6), new_post(7), new_post(8), f"… and 5 more new items in Feed a: {rig.url('a')}",
    ]  # fmt: skip


async def test_two_rooms_one_fetch_each_room_its_template(rig: Rig) -> None:
    rig.feeds.set_items("a", [item(1)])
    await rig.subscribe(ROOM, rig.url("a"))
    await rig.subscribe(OTHER_ROOM, rig.url("a") + "#mine", label="Mine", template="$TITLE by $AUTHOR")
    await rig.poll()
    rig.feeds.set_items("a", [item(2, author="Ann"), item(1)])
    await rig.poll()
    assert len(rig.feeds.hits("a")) == 2  # once per poll, not once per room
    assert await rig.posted(ROOM) == [new_post(2)]
    assert await rig.posted(OTHER_ROOM) == ["Post 2 by Ann"]


async def test_failing_then_recovering_tells_rooms_once_each_way(rig: Rig) -> None:
    rig.feeds.set_items("a", [item(1)])
    await rig.subscribe(ROOM, rig.url("a"), notifyOnFailure=True)
    await rig.subscribe(OTHER_ROOM, rig.url("a"))
    await rig.poll()
    rig.feeds.feeds["a"].fail = [503, 503, 503, 404]
    await rig.poll()
    assert await rig.posted() == []  # one 503 may be a blip
    first_delay = (await rig.feed_row("a"))["due_in"]
    await rig.poll()
    second_delay = (await rig.feed_row("a"))["due_in"]
    assert await rig.posted() == [f"Error fetching {rig.url('a')}: HTTP 503 Service Unavailable"]
    assert second_delay > first_delay * 1.5  # exponential backoff
    await rig.poll()
    await rig.poll()
    assert len(await rig.posted()) == 1  # told once, however long it fails
    rig.feeds.set_items("a", [item(2), item(1)])
    await rig.poll()
    assert await rig.posted() == [
        f"Error fetching {rig.url('a')}: HTTP 503 Service Unavailable",
        new_post(2),
        f"Fetching {rig.url('a')} works again.",
    ]
    assert await rig.posted(OTHER_ROOM) == [new_post(2)]  # no notifyOnFailure: no notices
    row = await rig.feed_row("a")
    assert row["failures"] == 0 and not row["failure_notified"]
    assert [r["ok"] for r in row["last_results"]] == [True, False, False, False, False]


async def test_a_definite_failure_is_told_at_once(rig: Rig) -> None:
    rig.feeds.set_items("a", [item(1)])
    await rig.subscribe(ROOM, rig.url("a"), notifyOnFailure=True)
    await rig.poll()
    rig.feeds.feeds["a"].fail = [404]
    await rig.poll()
    assert await rig.posted() == [f"Error fetching {rig.url('a')}: HTTP 404 Not Found"]


async def test_retry_after_and_cache_control_are_honoured(rig: Rig) -> None:
    rig.feeds.set_items("a", [item(1)], cache_control="max-age=3600")
    rig.feeds.set_items("b", [item(1)], fail=[429], retry_after="7200")
    await rig.subscribe(ROOM, rig.url("a"))
    await rig.subscribe(ROOM, rig.url("b"))
    await rig.poll()
    assert 3500 < (await rig.feed_row("a"))["due_in"] <= 3600
    assert 7100 < (await rig.feed_row("b"))["due_in"] <= 7200


async def test_interval_per_feed_bounded_by_the_minimum(rig: Rig) -> None:
    rig.pollers.clear()
    rig.poller(min_poll_interval_seconds=60)
    for name in ("a", "b", "c"):
        rig.feeds.set_items(name, [item(1)])
    await rig.subscribe(ROOM, rig.url("a"))
    await rig.subscribe(ROOM, rig.url("b"), pollIntervalSeconds=120)
    await rig.subscribe(ROOM, rig.url("c"), pollIntervalSeconds=5)
    await rig.poll()
    assert 540 <= (await rig.feed_row("a"))["due_in"] <= 660
    assert 108 <= (await rig.feed_row("b"))["due_in"] <= 132
    assert 54 <= (await rig.feed_row("c"))["due_in"] <= 66


async def test_redirect_to_a_private_address_is_a_failure(rig: Rig) -> None:
    rig.feeds.set_items("a", [item(1)], redirect_to=rig.url("b").replace("127.0.0.1", "127.0.0.2"))
    rig.feeds.set_items("b", [item(1)])
    await rig.subscribe(ROOM, rig.url("a"), notifyOnFailure=True)
    await rig.poll()
    [notice] = await rig.posted()
    assert notice.startswith(f"Error fetching {rig.url('a')}: refused: 127.0.0.2 is a loopback address")
    assert rig.feeds.hits("b") == []


async def test_oversized_feed_is_a_failure(rig: Rig) -> None:
    rig.feeds.set_items("a", [item(1)], padding=600 * 1024)
    await rig.subscribe(ROOM, rig.url("a"), notifyOnFailure=True)
    await rig.poll()
    assert await rig.posted() == [f"Error fetching {rig.url('a')}: the feed is larger than 524288 bytes"]


async def test_broken_items_are_skipped_and_the_rest_posted(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    rig.feeds.set_items("a", [item(1)])
    await rig.subscribe(ROOM, rig.url("a"))
    await rig.poll()
    rig.feeds.set_items("a", [item(3), {"raw": "<description></description>"}, item(2), item(1)])
    await rig.poll()
    assert await rig.posted() == [new_post(2), new_post(3)]
    assert "broken item(s) skipped" in caplog.text


async def test_a_crash_before_the_commit_posts_everything_on_the_next_poll(rig: Rig) -> None:
    rig.feeds.set_items("a", [item(1)])
    await rig.subscribe(ROOM, rig.url("a"))
    await rig.poll()
    rig.feeds.set_items("a", [item(3), item(2), item(1)])
    poller = rig.pollers[0]
    real = poller.store.outbox.enqueue_in

    async def crash(*args: Any) -> Any:
        raise ConnectionError("the process died here")

    poller.store.outbox.enqueue_in = crash  # type: ignore[method-assign]
    await rig.poll()  # items inserted as seen, then the transaction dies
    assert await rig.posted() == []
    poller.store.outbox.enqueue_in = real  # type: ignore[method-assign]
    await rig.db.execute("UPDATE feeds SET lease_owner = NULL, lease_until = NULL")  # the lease ran out
    await rig.poll()
    assert await rig.posted() == [new_post(2), new_post(3)]


async def test_restart_mid_burst_misses_nothing_and_doubles_nothing(rig: Rig) -> None:
    """A new process (new poller, new lease owner) after one that committed a burst, with the
    outbox rows still unsent: the burst is not queued again, and later items still come."""
    rig.feeds.set_items("a", [item(1)])
    await rig.subscribe(ROOM, rig.url("a"))
    await rig.poll()
    rig.feeds.set_items("a", [item(n) for n in range(6, 0, -1)])
    await rig.poll()
    unsent = await rig.db.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
    assert unsent == 5
    await rig.pollers[0].stop()
    restarted = rig.poller()
    await rig.poll(restarted)
    rig.feeds.set_items("a", [item(n) for n in range(7, 0, -1)])
    await rig.poll(restarted)
    assert await rig.posted() == [new_post(n) for n in range(2, 8)]


async def test_two_processes_poll_each_feed_once(rig: Rig) -> None:
    second = rig.poller()
    for name in "abcdef":
        rig.feeds.set_items(name, [item(1)])
        await rig.subscribe(ROOM, rig.url(name))
    await rig.db.execute("UPDATE feeds SET next_poll_at = now()")
    await asyncio.gather(rig.pollers[0].poll_due(), second.poll_due())
    assert sorted(r.name for r in rig.feeds.requests) == list("abcdef")
    assert rig.pollers[0].stats.polled + second.stats.polled == 6


async def test_a_poll_whose_lease_was_taken_over_is_dropped(rig: Rig) -> None:
    rig.feeds.set_items("a", [item(1)])
    await rig.subscribe(ROOM, rig.url("a"))
    await rig.poll()
    rig.feeds.set_items("a", [item(2), item(1)])
    slow, fast = rig.pollers[0], rig.poller()
    await rig.db.execute("UPDATE feeds SET next_poll_at = now()")
    [row] = await slow.store.claim_due(slow.owner, 1, 60)
    fetched = await slow.fetch(row)
    await rig.db.execute("UPDATE feeds SET lease_until = now() - interval '1 second'")  # slow stalled
    await fast.poll_due()
    with pytest.raises(LostLease):  # poll() logs it and drops the outcome
        await slow._succeeded(row, fetched)
    assert await rig.posted() == [new_post(2)]


async def test_polls_of_one_process_are_bounded_by_poll_concurrency(rig: Rig) -> None:
    poller = rig.poller(poll_concurrency=2)
    for n in range(6):
        rig.feeds.set_items(f"slow{n}", [item(1)], delay=0.2)
        await rig.subscribe(ROOM, rig.url(f"slow{n}"))
    await rig.poll(poller)
    assert len([r for r in rig.feeds.requests if r.name.startswith("slow")]) == 6
    assert rig.feeds.most_in_flight == 2


async def test_unsubscribed_feed_is_forgotten(rig: Rig) -> None:
    rig.feeds.set_items("a", [item(1)])
    await rig.subscribe(ROOM, rig.url("a"))
    await rig.poll()
    store = rig.pollers[0].store
    assert await store.seen_count(rig.url("a")) == 1
    assert not await store.forget_unused(rig.url("a"))  # still subscribed
    await rig.unsubscribe(ROOM, rig.url("a"))
    assert await store.forget_unused(rig.url("a"))
    assert await rig.feed_row("a") is None and await store.seen_count(rig.url("a")) == 0


async def test_background_loop_polls_due_feeds(rig: Rig) -> None:
    rig.feeds.set_items("a", [item(1)])
    await rig.subscribe(ROOM, rig.url("a"))
    poller = rig.pollers[0]
    poller.start()
    for _ in range(100):
        if rig.feeds.hits("a"):
            break
        await asyncio.sleep(0.05)
    assert [r.status for r in rig.feeds.hits("a")] == [200]
    await poller.stop()
    metrics = poller.metrics
    assert metrics is not None
    await poller.store.overview()
    poller._gauges(await poller.store.overview())
    assert metrics.feeds_count._value.get() == 1
    assert metrics.feeds_failing.labels(reason="http")._value.get() == 0
