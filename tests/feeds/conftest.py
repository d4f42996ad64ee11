"""The local feed server (tests/fakes/feeds.py) on 127.0.0.1, and a guard policy that lets the
bridge reach it (and nothing else internal)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from fakes.feeds import FakeFeeds

from hookshot_py.net.guard import UrlPolicy

LOCAL = UrlPolicy.create(allowed_ranges=["127.0.0.1/32"])


@pytest.fixture
def feeds() -> FakeFeeds:
    return FakeFeeds()


@pytest.fixture
async def feed_server(feeds: FakeFeeds, aiohttp_server: Any) -> AsyncIterator[Any]:
    server = await aiohttp_server(feeds.app(), host="127.0.0.1")
    yield server


@pytest.fixture
def feed_url(feed_server: Any) -> Any:
    def url(name: str) -> str:
        return f"http://127.0.0.1:{feed_server.port}/feeds/{name}"

    return url
