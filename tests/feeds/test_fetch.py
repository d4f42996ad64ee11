"""Fetching against the local feed server: conditional GET, gzip, size limit, errors, guard."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fakes.feeds import FakeFeeds, item, rss

from hookshot_py.feeds.fetch import FeedFetcher, FetchError, parse_retry_after
from hookshot_py.net.guard import UrlPolicy, guarded_session

from .conftest import LOCAL


@pytest.fixture
async def fetcher() -> AsyncIterator[FeedFetcher]:
    session = guarded_session(LOCAL, auto_decompress=False)
    try:
        yield FeedFetcher(session, LOCAL, max_bytes=256 * 1024)
    finally:
        await session.close()


async def test_fetch_then_304_with_the_validators(fetcher: FeedFetcher, feeds: FakeFeeds, feed_url: Any) -> None:
    feeds.set_items("a", [item(1)])
    first = await fetcher.fetch(feed_url("a"))
    assert first.status == 200 and first.body is not None and b"Post 1" in first.body
    assert first.etag and first.last_modified
    again = await fetcher.fetch(feed_url("a"), etag=first.etag, last_modified=first.last_modified)
    assert again.status == 304 and again.body is None
    request = feeds.hits("a")[-1]
    assert request.headers["If-None-Match"] == first.etag
    assert request.headers["If-Modified-Since"] == first.last_modified
    assert "gzip" in request.headers["Accept-Encoding"]


async def test_gzip_is_decompressed(fetcher: FeedFetcher, feeds: FakeFeeds, feed_url: Any) -> None:
    feeds.set_items("a", [item(n) for n in range(20)])
    result = await fetcher.fetch(feed_url("a"))
    assert result.body == feeds.feeds["a"].body


async def test_oversized_body_is_refused(fetcher: FeedFetcher, feeds: FakeFeeds, feed_url: Any) -> None:
    feeds.set_items("big", [item(1)], padding=300 * 1024)  # gzip makes it tiny on the wire
    with pytest.raises(FetchError) as info:
        await fetcher.fetch(feed_url("big"))
    assert info.value.kind == "too_large" and not info.value.transient


async def test_gzip_bomb_stops_at_the_limit(aiohttp_server: Any) -> None:
    from aiohttp import web

    bomb = gzip.compress(b"<" + b"a" * (50 * 1024 * 1024))

    async def serve(_: web.Request) -> web.Response:
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip", "Content-Type": "application/rss+xml"})

    app = web.Application()
    app.router.add_get("/bomb", serve)
    server = await aiohttp_server(app, host="127.0.0.1")
    async with guarded_session(LOCAL, auto_decompress=False) as session:
        with pytest.raises(FetchError) as info:
            await FeedFetcher(session, LOCAL, max_bytes=1024 * 1024).fetch(f"http://127.0.0.1:{server.port}/bomb")
    assert info.value.kind == "too_large"


@pytest.mark.parametrize("wbits", [15, -15], ids=["zlib", "raw"])
async def test_deflate_is_decompressed_and_bounded(aiohttp_server: Any, wbits: int) -> None:
    """`Content-Encoding: deflate` means zlib-wrapped data; some servers send it raw: both are read,
    and a deflate bomb stops at the limit like a gzip one."""
    import zlib

    from aiohttp import web

    feed = rss("Deflated", [item(n) for n in range(5)])

    def deflate(data: bytes) -> bytes:
        packer = zlib.compressobj(6, zlib.DEFLATED, wbits)
        return packer.compress(data) + packer.flush()

    bodies = {"/feed": deflate(feed), "/bomb": deflate(b"<" + b"a" * (50 * 1024 * 1024))}

    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=bodies[request.path],
                            headers={"Content-Encoding": "deflate", "Content-Type": "application/rss+xml"})

    app = web.Application()
    app.router.add_get("/feed", serve)
    app.router.add_get("/bomb", serve)
    server = await aiohttp_server(app, host="127.0.0.1")
    async with guarded_session(LOCAL, auto_decompress=False) as session:
        fetcher = FeedFetcher(session, LOCAL, max_bytes=1024 * 1024)
        assert (await fetcher.fetch(f"http://127.0.0.1:{server.port}/feed")).body == feed
        with pytest.raises(FetchError) as info:
            await fetcher.fetch(f"http://127.0.0.1:{server.port}/bomb")
    assert info.value.kind == "too_large"


async def test_server_errors_are_transient_client_errors_are_not(
    fetcher: FeedFetcher, feeds: FakeFeeds, feed_url: Any
) -> None:
    feeds.set_items("a", [item(1)], fail=[503, 404], retry_after="120")
    with pytest.raises(FetchError) as info:
        await fetcher.fetch(feed_url("a"))
    assert info.value.transient and info.value.status == 503 and info.value.retry_after == 120
    with pytest.raises(FetchError) as info:
        await fetcher.fetch(feed_url("a"))
    assert not info.value.transient and str(info.value) == "HTTP 404 Not Found"
    assert (await fetcher.fetch(feed_url("a"))).status == 200


async def test_cache_control_max_age(fetcher: FeedFetcher, feeds: FakeFeeds, feed_url: Any) -> None:
    feeds.set_items("a", [item(1)], cache_control="public, max-age=1800")
    assert (await fetcher.fetch(feed_url("a"))).max_age == 1800


async def test_redirect_to_a_private_address_is_refused(fetcher: FeedFetcher, feeds: FakeFeeds, feed_url: Any) -> None:
    # 127.0.0.2 stands for any internal address: only 127.0.0.1 is allowed to the tests.
    feeds.set_items("a", [item(1)], redirect_to=feed_url("b").replace("127.0.0.1", "127.0.0.2"))
    feeds.set_items("b", [item(2)])
    with pytest.raises(FetchError) as info:
        await fetcher.fetch(feed_url("a"))
    assert info.value.kind == "blocked" and "127.0.0.2" in str(info.value)
    assert feeds.hits("b") == []


async def test_redirect_to_an_allowed_address_is_followed(fetcher: FeedFetcher, feeds: FakeFeeds, feed_url: Any) -> None:
    feeds.set_items("a", [item(1)], redirect_to=feed_url("b"))
    feeds.set_items("b", [item(2)])
    result = await fetcher.fetch(feed_url("a"))
    assert result.final_url == feed_url("b") and result.body is not None and b"Post 2" in result.body


async def test_the_default_policy_refuses_the_local_server(feeds: FakeFeeds, feed_url: Any) -> None:
    feeds.set_items("a", [item(1)])
    async with guarded_session(UrlPolicy(), auto_decompress=False) as session:
        with pytest.raises(FetchError) as info:
            await FeedFetcher(session, UrlPolicy(), max_bytes=1024).fetch(feed_url("a"))
    assert info.value.kind == "blocked" and "loopback" in str(info.value)


async def test_unreachable_and_slow_servers(fetcher: FeedFetcher, aiohttp_server: Any) -> None:
    import asyncio

    from aiohttp import web

    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="late")

    app = web.Application()
    app.router.add_get("/slow", slow)
    server = await aiohttp_server(app, host="127.0.0.1")
    with pytest.raises(FetchError) as info:
        await fetcher.fetch(f"http://127.0.0.1:{server.port}/slow", time_limit=0.2)
    assert info.value.kind == "timeout" and info.value.transient
    port = server.port
    await server.close()
    with pytest.raises(FetchError) as info:
        await fetcher.fetch(f"http://127.0.0.1:{port}/gone")
    assert info.value.kind == "network" and info.value.transient


def test_retry_after_forms() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("30") == 30
    assert parse_retry_after("Thu, 01 Jan 2026 00:02:00 GMT", now) == 120
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None

