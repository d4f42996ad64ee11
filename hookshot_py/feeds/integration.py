"""RSS/Atom/JSON feeds as a bridge integration: the connection type, `!hookshot feed` commands
and the poller, with one guarded HTTP session and one parsing thread."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp

from hookshot_py import __version__
from hookshot_py.commands.registry import Command, commands_of
from hookshot_py.config import FeedsConfig
from hookshot_py.connections.base import ConnectionType
from hookshot_py.feeds.commands import FeedCommands
from hookshot_py.feeds.connection import EVENT_TYPE, FeedType
from hookshot_py.feeds.fetch import FeedFetcher
from hookshot_py.feeds.poller import FeedPoller
from hookshot_py.feeds.store import FeedStore
from hookshot_py.integration import Integration
from hookshot_py.net.guard import guarded_session
from hookshot_py.services import Services


class FeedsIntegration(Integration):
    name = "feeds"

    def __init__(self, services: Services, config: FeedsConfig) -> None:
        self.services = services
        policy = services.url_policy
        # Redirects, time limits and decompression are handled per fetch (fetch.py).
        self.session = guarded_session(
            policy,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=config.poll_timeout_seconds),
            headers={"User-Agent": f"hookshot_py/{__version__} (feeds; +https://github.com/matrix-org/matrix-hookshot)"},
            limit=max(20, 2 * config.poll_concurrency),
            limit_per_host=max(4, config.poll_concurrency),
            auto_decompress=False,
        )
        # Parsing is CPU work on bytes from strangers: one thread, off the event loop.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feed-parse")
        self.store = FeedStore(services.db, services.outbox, EVENT_TYPE)
        self.fetcher = FeedFetcher(self.session, policy, max_bytes=config.max_feed_size)
        self.poller = FeedPoller(self.store, self.fetcher, config, self.executor, services.metrics)
        self.feeds = FeedType(config, self.store, self.fetcher, self.poller, self.executor)

    def connection_types(self) -> list[ConnectionType[Any]]:
        return [self.feeds]

    def room_commands(self) -> list[Command]:
        return commands_of(FeedCommands(self.services.manager))

    async def start(self) -> None:
        self.poller.start()

    async def stop(self) -> None:
        await self.poller.stop()
        await self.session.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
