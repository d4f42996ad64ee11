"""Fetching a feed politely and safely: conditional GET, compression, a size limit, timeouts.

Every request goes through the outbound-URL guard (net/guard.py): feed URLs come from room users.
The body is decompressed here, not by aiohttp, so that the size limit holds for what a compressed
body expands to (a small gzip bomb stops at the limit). Failures are classified: transient ones
(5xx, 429, timeouts, connection errors) are retried quietly with backoff; the others (4xx, a
refused address, a body too large) are reported at once.
"""

from __future__ import annotations

import asyncio
import re
import zlib
from dataclasses import dataclass
from datetime import datetime

import aiohttp
from multidict import CIMultiDictProxy

from hookshot_py.net.guard import BlockedUrl, UrlPolicy
from hookshot_py.net.retry_after import retry_after_seconds

ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/rdf+xml;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.5"
)
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)", re.IGNORECASE)
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class FetchResult:
    status: int  # 200, or 304 (not modified: no body)
    body: bytes | None
    etag: str | None
    last_modified: str | None
    max_age: float | None  # Cache-Control max-age, seconds
    final_url: str


class FetchError(Exception):
    """A fetch that failed; `transient` failures are expected to go away by themselves."""

    def __init__(
        self, message: str, *, kind: str, transient: bool, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.kind = kind  # "http", "network", "timeout", "too_large", "blocked"
        self.transient = transient
        self.status = status
        self.retry_after = retry_after


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (`retry_after_seconds`)."""
    return retry_after_seconds(value, None if now is None else now.timestamp())


def parse_max_age(headers: CIMultiDictProxy[str]) -> float | None:
    values = headers.getall("Cache-Control", [])
    for value in values:
        if match := _MAX_AGE.search(value):
            return float(match.group(1))
    return None


class _Decoder:
    """Content-Encoding undone chunk by chunk, refusing output beyond `limit` bytes."""

    def __init__(self, encoding: str, limit: int) -> None:
        self.limit = limit
        self.size = 0
        encoding = encoding.strip().lower()
        if encoding in ("", "identity"):
            self._z: zlib._Decompress | None = None
        elif encoding in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._z = zlib.decompressobj()
        else:
            raise FetchError(f"unsupported Content-Encoding {encoding!r}", kind="http", transient=False)
        self._deflate_raw = encoding == "deflate"
        self._parts: list[bytes] = []

    def feed(self, chunk: bytes) -> None:
        if self._z is None:
            self._add(chunk)
            return
        try:
            out = self._z.decompress(chunk, self.limit - self.size + 1)
        except zlib.error as e:
            if self._deflate_raw and self.size == 0 and not self._parts:
                # Some servers send raw deflate (no zlib header) as "deflate".
                self._deflate_raw = False
                self._z = zlib.decompressobj(-zlib.MAX_WBITS)
                self.feed(chunk)
                return
            raise FetchError(f"the compressed body is corrupt ({e})", kind="http", transient=False) from e
        self._deflate_raw = False
        self._add(out)
        if self._z.unconsumed_tail:
            self._too_large()

    def finish(self) -> bytes:
        if self._z is not None:
            self._add(self._z.flush())
        return b"".join(self._parts)

    def _add(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            self._too_large()
        if data:
            self._parts.append(data)

    def _too_large(self) -> None:
        raise FetchError(f"the feed is larger than {self.limit} bytes", kind="too_large", transient=False)


class FeedFetcher:
    """Fetches feeds with one guarded session (aiohttp's own decompression off: see above)."""

    def __init__(self, session: aiohttp.ClientSession, policy: UrlPolicy, *, max_bytes: int) -> None:
        self.session = session
        self.policy = policy
        self.max_bytes = max_bytes

    async def fetch(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None, time_limit: float = 30.0
    ) -> FetchResult:
        try:
            self.policy.check_url(url)
        except BlockedUrl as e:
            raise FetchError(f"refused: {e.reason}", kind="blocked", transient=False) from e
        headers = {"Accept": ACCEPT, "Accept-Encoding": "gzip, deflate"}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        try:
            async with asyncio.timeout(time_limit):
                async with self.session.get(url, headers=headers, max_redirects=5) as resp:
                    return await self._read(resp)
        except FetchError:
            raise
        except BlockedUrl as e:
            raise FetchError(f"refused: {e.reason}", kind="blocked", transient=False) from e
        except TimeoutError as e:
            raise FetchError(f"no answer within {time_limit:g} s", kind="timeout", transient=True) from e
        except aiohttp.TooManyRedirects as e:
            raise FetchError("too many redirects", kind="http", transient=False) from e
        except aiohttp.InvalidURL as e:
            raise FetchError(f"invalid URL ({e})", kind="http", transient=False) from e
        except aiohttp.ClientError as e:
            raise FetchError(_describe(e), kind="network", transient=True) from e

    async def _read(self, resp: aiohttp.ClientResponse) -> FetchResult:
        if resp.status == 304:
            return FetchResult(
                304, None, resp.headers.get("ETag"), resp.headers.get("Last-Modified"),
                parse_max_age(resp.headers), str(resp.url),
            )
        if resp.status != 200:
            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            transient = resp.status >= 500 or resp.status in (408, 425, 429)
            raise FetchError(
                f"HTTP {resp.status} {resp.reason or ''}".strip(),
                kind="http", transient=transient, status=resp.status, retry_after=retry_after,
            )
        length = resp.content_length
        encoding = resp.headers.get("Content-Encoding", "")
        if length is not None and length > self.max_bytes:
            raise FetchError(f"the feed is larger than {self.max_bytes} bytes", kind="too_large", transient=False)
        decoder = _Decoder(encoding, self.max_bytes)
        async for chunk in resp.content.iter_chunked(_CHUNK):
            decoder.feed(chunk)
        return FetchResult(
            200, decoder.finish(), resp.headers.get("ETag"), resp.headers.get("Last-Modified"),
            parse_max_age(resp.headers), str(resp.url),
        )


def _describe(e: aiohttp.ClientError) -> str:
    if isinstance(e, aiohttp.ClientConnectorError):
        return f"cannot connect to {e.host}:{e.port} ({e.strerror or e.os_error})"
    text = str(e) or type(e).__name__
    return text[:300]
