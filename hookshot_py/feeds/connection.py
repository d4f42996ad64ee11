"""The feed connection type (`uk.half-shot.matrix-hookshot.feed`, state key = the feed URL).

Adding a feed through the bridge (command or REST) fetches it once and refuses, with the reason,
a URL that is not a feed, cannot be reached, is too large or points at an internal address; the
items present then are recorded as seen (never posted). A feed found in a room's state (written
by hand or by hookshot) is picked up without that check: its first poll records the items.
The subscription ends with the last connection to the URL, and its seen items with it.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hookshot_py.config import FeedsConfig
from hookshot_py.connections.base import Connection, ConnectionType, Outcome
from hookshot_py.errors import ApiError, ErrCode, ValidationIssue
from hookshot_py.feeds.fetch import FeedFetcher, FetchError
from hookshot_py.feeds.parse import FeedParseError, parse_feed
from hookshot_py.feeds.poller import FeedPoller, body_digest, jittered
from hookshot_py.feeds.state import FeedState, normalize_url, validate_state
from hookshot_py.feeds.store import FeedStore, Fetched

log = logging.getLogger(__name__)

EVENT_TYPE = "uk.half-shot.matrix-hookshot.feed"
VALIDATION_TIMEOUT_S = 10.0
STARTUP_SPREAD_S = 60.0  # feeds new to the store at startup are first polled within this


class FeedType(ConnectionType[FeedState]):
    type_name = "Feed"
    event_type = EVENT_TYPE
    service = "feeds"
    display_service = "feeds"
    service_label = "Feeds"

    def __init__(
        self,
        config: FeedsConfig,
        store: FeedStore,
        fetcher: FeedFetcher,
        poller: FeedPoller,
        executor: ThreadPoolExecutor,
    ) -> None:
        self.config = config
        self.store = store
        self.fetcher = fetcher
        self.poller = poller
        self.executor = executor

    def validate(
        self, state: dict[str, Any], *, existing: Connection | None, is_new: bool
    ) -> tuple[dict[str, Any], list[ValidationIssue]]:
        return validate_state(state, min_interval=self.config.min_interval, is_new=is_new)

    def state_key(self, state: dict[str, Any]) -> str:
        return str(state["url"])

    def parse(self, state: dict[str, Any]) -> FeedState:
        return FeedState.from_content(state)

    def label(self, conn: Connection) -> str:
        return self.config_of(conn).label or conn.state_key

    def interval(self, state: FeedState) -> int:
        return state.interval(self.config.poll_interval_seconds, self.config.min_interval)

    def secrets(self, conn: Connection) -> dict[str, Any] | None:
        return {"lastResults": self.store.results.get(normalize_url(conn.state_key), [])}

    # -- lifecycle ----------------------------------------------------------------------------------

    async def prepare(self, conn: Connection, *, existing: Connection | None, user_id: str | None) -> Outcome:
        if existing is not None:
            return Outcome(secrets=self.secrets(conn) or {})
        url = normalize_url(conn.state_key)
        fetched = await self.check(url)
        if await self.store.baseline(url, fetched, jittered(self.interval(self.config_of(conn)))):
            log.info("Feed %s: %d item(s) recorded as already seen", url, len(fetched.items or []))
        return Outcome(secrets=self.secrets(conn) or {})

    async def check(self, url: str) -> Fetched:
        """Fetch and parse `url` once; ApiError (400) with the reason if it is not a usable feed."""
        try:
            limit = min(VALIDATION_TIMEOUT_S, self.config.poll_timeout_seconds)
            result = await self.fetcher.fetch(url, time_limit=limit)
            if result.body is None:
                raise FetchError(f"unexpected HTTP {result.status}", kind="http", transient=False)
            loop = asyncio.get_running_loop()
            parsed = await loop.run_in_executor(self.executor, parse_feed, result.body, result.final_url)
        except FetchError as e:
            raise ApiError(ErrCode.BAD_VALUE, f"Could not read feed from URL: {e}") from e
        except FeedParseError as e:
            raise ApiError(
                ErrCode.BAD_VALUE, f"Could not read feed from URL: it is not an RSS, Atom or JSON feed ({e})"
            ) from e
        return Fetched(parsed.title, result.etag, result.last_modified, body_digest(result.body), parsed.items)

    async def start(self, conns: list[Connection]) -> None:
        spread = min(STARTUP_SPREAD_S, float(self.config.poll_interval_seconds))
        overdue = await self.store.spread_overdue(spread)
        if overdue:
            log.info("%d feed(s) were due while the bridge was down: polled within %.0f s", overdue, spread)
        added = await self.store.ensure([normalize_url(c.state_key) for c in conns], spread)
        if added:
            log.info("%d feed(s) were not polled before: their first poll records their items", added)

    async def on_loaded(self, conn: Connection) -> None:
        spread = min(STARTUP_SPREAD_S, float(self.interval(self.config_of(conn))))
        if await self.store.ensure([normalize_url(conn.state_key)], spread):
            self.poller.wake()

    async def on_unloaded(self, conn: Connection) -> None:
        await self._forget(conn)

    async def on_removed(self, conn: Connection, *, user_id: str | None) -> list[str]:
        await self._forget(conn)
        return []

    async def _forget(self, conn: Connection) -> None:
        url = normalize_url(conn.state_key)
        try:
            if await self.store.forget_unused(url):
                log.info("Feed %s has no subscriber left: no longer polled", url)
        except Exception as e:  # the poller forgets it at its next poll anyway
            log.warning("Could not forget feed %s: %s", url, e)
