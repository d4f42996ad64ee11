"""Feeds end to end: real Synapse, real Postgres, the bridge in-process, the local feed server.

The bridge is allowed to reach 127.0.0.1 only (`outboundUrls`), as an intranet admin would allow
a host; every other internal address stays refused."""

from __future__ import annotations

import asyncio
from typing import Any

from fakes.feeds import FakeFeeds, item
from support.bridge import PROVISIONING_SECRET, BridgeHarness
from support.fixtures import room_with_bot
from support.helpers import eventually, http, is_notice_with, wait_state

from hookshot_py.feeds.connection import EVENT_TYPE
from hookshot_py.feeds.format import ITEM_KEY
from hookshot_py.feeds.integration import FeedsIntegration

FEEDS_CONFIG = {
    "feeds": {"enabled": True, "pollIntervalSeconds": 3600, "pollTimeoutSeconds": 5},
    "outboundUrls": {"allowedIpRanges": ["127.0.0.1/32"]},
}


def integration(harness: BridgeHarness) -> FeedsIntegration:
    assert harness.bridge is not None
    [found] = [i for i in harness.bridge.integrations if isinstance(i, FeedsIntegration)]
    return found


async def poll_now(harness: BridgeHarness) -> None:
    feeds = integration(harness)
    await feeds.store.db.execute("UPDATE feeds SET next_poll_at = now()")
    await feeds.poller.poll_due()


async def feed_notices(client: Any, room: str) -> list[str]:
    events = await client.messages(room)
    return [e["content"]["body"] for e in events if ITEM_KEY in (e.get("content") or {})]


async def test_subscribe_post_restart_list_remove(bridge_factory: Any, make_user: Any, aiohttp_server: Any) -> None:
    fake = FakeFeeds()
    server = await aiohttp_server(fake.app(), host="127.0.0.1")
    url = f"http://127.0.0.1:{server.port}/feeds/blog"
    fake.set_items("blog", [item(2), item(1)], title="The Blog")
    harness = await bridge_factory(FEEDS_CONFIG)
    alice = await make_user("alice")
    room = await room_with_bot(alice)

    await alice.send_text(room, f"!hookshot feed {url} Blog")
    await alice.wait_for_message(room, is_notice_with(f"Room configured to bridge `{url}`"))
    assert await wait_state(alice, room, EVENT_TYPE, url) == {"url": url, "label": "Blog"}

    # What the feed held when the room subscribed is not posted; what comes later is, once.
    fake.set_items("blog", [item(4), item(3), item(2), item(1)], title="The Blog")
    await poll_now(harness)
    first = await alice.wait_for_message(room, is_notice_with("[Post 3]"))
    await alice.wait_for_message(room, is_notice_with("[Post 4]"))
    content = first["content"]
    assert content["body"] == "New post in Blog: [Post 3](https://blog.example.org/posts/3)"
    assert content["formatted_body"] == 'New post in Blog: <a href="https://blog.example.org/posts/3">Post 3</a>'
    assert content["external_url"] == "https://blog.example.org/posts/3"
    assert content[ITEM_KEY]["feed"] == {"title": "The Blog", "url": url}
    assert content[ITEM_KEY]["title"] == "Post 3"

    # A restart remembers what was seen: nothing again, and what was published meanwhile comes.
    await harness.restart()
    fake.set_items("blog", [item(5), item(4), item(3), item(2), item(1)], title="The Blog")
    await poll_now(harness)
    await alice.wait_for_message(room, is_notice_with("[Post 5]"))
    await poll_now(harness)
    assert await feed_notices(alice, room) == [
        f"New post in Blog: [Post {n}](https://blog.example.org/posts/{n})" for n in (3, 4, 5)
    ]

    await alice.send_text(room, "!hookshot feed list")
    await alice.wait_for_message(room, is_notice_with(f"Currently subscribed to these feeds:\n- [Blog]({url})"))

    await alice.send_text(room, "!hookshot feed list yaml")
    await alice.wait_for_message(room, is_notice_with(f"```yaml\n- url: {url}\n  label: Blog\n```"))
    await alice.send_text(room, "!hookshot feed remove https://elsewhere.example.org/feed")
    await alice.wait_for_message(
        room, is_notice_with('Feed "https://elsewhere.example.org/feed" is not currently bridged to this room')
    )

    await alice.send_text(room, f"!hookshot feed remove {url}")
    await alice.wait_for_message(room, is_notice_with(f"Unsubscribed from `{url}`"))
    assert await integration(harness).store.last_results(url) == []  # no subscriber: forgotten


async def test_provisioning_and_refusals(bridge_factory: Any, make_user: Any, aiohttp_server: Any) -> None:
    fake = FakeFeeds()
    server = await aiohttp_server(fake.app(), host="127.0.0.1")
    base = f"http://127.0.0.1:{server.port}/feeds"
    fake.set_items("news", [item(1)], kind="json", title="News")
    fake.set_body("page", b"<!doctype html><html><head><title>x</title></head><body>not a feed</body></html>",
                  "text/html")
    harness = await bridge_factory(FEEDS_CONFIG)
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    api = f"{harness.base_url}/v1/{room}/connections/{EVENT_TYPE}?userId={alice.user_id}"
    auth = {"Authorization": f"Bearer {PROVISIONING_SECRET}"}

    status, body = await http("PUT", api, json={"url": f"{base}/news", "notifyOnFailure": True}, headers=auth)
    assert status == 200, body
    assert body["type"] == "Feed" and body["service"] == "feeds" and body["config"]["url"] == f"{base}/news"
    assert body["secrets"]["lastResults"] == []

    for url, reason in [
        (f"{base}/page", "it is not an RSS, Atom or JSON feed"),
        (f"{base}/missing", "HTTP 404"),
        (f"http://127.0.0.2:{server.port}/feeds/news", "127.0.0.2 is a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("file:///etc/passwd", "must be an http(s) URL"),
    ]:
        status, body = await http("PUT", api, json={"url": url}, headers=auth)
        assert status == 400 and body["errcode"] == "HS_BAD_VALUE", (url, body)
        assert reason in str(body), (url, body)

    await alice.send_text(room, f"!hookshot feed {base}/page")
    await alice.wait_for_message(room, is_notice_with("Failed to handle command: Could not read feed from URL"))

    # The feed breaks, then recovers: notifyOnFailure tells the room once each way.
    fake.feeds["news"].fail = [404]
    await poll_now(harness)
    await alice.wait_for_message(room, is_notice_with(f"Error fetching {base}/news: HTTP 404 Not Found"))
    fake.set_items("news", [item(2), item(1)], kind="json", title="News")
    await poll_now(harness)
    await alice.wait_for_message(room, is_notice_with(f"Fetching {base}/news works again."))
    await alice.wait_for_message(room, is_notice_with("New post in News: [Post 2]"))

    conns = await eventually(lambda: _connections(harness, room, alice.user_id))
    [feed] = [c for c in conns if c["eventType"] == EVENT_TYPE]
    assert [r["ok"] for r in feed["secrets"]["lastResults"]][:2] == [True, False]


async def _connections(harness: BridgeHarness, room: str, user_id: str) -> list[dict[str, Any]]:
    status, body = await http(
        "GET", f"{harness.base_url}/v1/{room}/connections?userId={user_id}",
        headers={"Authorization": f"Bearer {PROVISIONING_SECRET}"},
    )
    assert status == 200
    return list(body)


async def test_sigkill_mid_burst_misses_nothing_and_doubles_nothing(
    bridge_factory: Any, make_user: Any, aiohttp_server: Any
) -> None:
    """The bridge as its own process is killed while a burst of new items is being posted, and
    again while the next poll may be running; after the restarts every item is in the room once."""
    import asyncpg

    fake = FakeFeeds()
    server = await aiohttp_server(fake.app(), host="127.0.0.1")
    url = f"http://127.0.0.1:{server.port}/feeds/burst"
    fake.set_items("burst", [item(0)], title="Burst")
    harness = await bridge_factory({**FEEDS_CONFIG, "feeds": {**FEEDS_CONFIG["feeds"], "maxItemsPerPoll": 50}},
                                   start=False)
    await harness.spawn()
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    status, body = await http(
        "PUT", f"{harness.base_url}/v1/{room}/connections/{EVENT_TYPE}?userId={alice.user_id}",
        json={"url": url, "template": "item $TITLE"}, headers={"Authorization": f"Bearer {PROVISIONING_SECRET}"},
    )
    assert status == 200, body

    async def make_due() -> None:
        conn = await asyncpg.connect(harness.dsn)
        try:
            await conn.execute("UPDATE feeds SET next_poll_at = now()")
        finally:
            await conn.close()

    async def posted() -> list[str]:
        events = await alice.messages(room, limit=200)
        return [e["content"]["body"] for e in events if str((e.get("content") or {}).get("body", "")).startswith("item ")]

    n = 30
    fake.set_items("burst", [item(i) for i in range(n, -1, -1)], title="Burst")
    await make_due()
    await eventually(posted, timeout=30, interval=0.05)  # the first items of the burst are in the room
    harness.kill()
    await harness.spawn()
    fake.set_items("burst", [item(i) for i in range(n + 5, -1, -1)], title="Burst")
    await make_due()
    await asyncio.sleep(5.5)  # the restarted poller notices feeds made due behind its back within 5 s
    harness.kill()
    await harness.spawn()
    await make_due()

    async def all_posted() -> list[str] | None:
        bodies = await posted()
        return bodies if len(bodies) >= n + 5 else None

    bodies = await eventually(all_posted, timeout=60, interval=0.5)
    await asyncio.sleep(1)
    bodies = await posted()
    assert bodies == [f"item Post {i}" for i in range(1, n + 6)], harness.log_tail()
    await harness.terminate()
