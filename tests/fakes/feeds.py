"""A feed server for tests and the bench: RSS 2.0, Atom and JSON Feed documents that tests change
between polls, served like a real web server serves them (ETag and Last-Modified with 304s,
gzip when asked, Cache-Control, errors and Retry-After on demand, redirects), recording every
request.

`FakeFeeds.set_items(name, items, kind=...)` publishes a feed at `/feeds/<name>`; items are
dicts with `guid`, `link`, `title`, `date` (datetime), `summary`, `author` (any may be missing).
"""

from __future__ import annotations

import asyncio

import gzip
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from xml.sax.saxutils import escape

from aiohttp import web

BASE_DATE = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def item(n: int, *, guid: bool = True, link: bool = True, **extra: Any) -> dict[str, Any]:
    """Item number `n`, published `n` hours after BASE_DATE."""
    out: dict[str, Any] = {"title": f"Post {n}", "date": BASE_DATE + timedelta(hours=n), "summary": f"<p>Text {n}</p>"}
    if guid:
        out["guid"] = f"urn:post:{n}"
    if link:
        out["link"] = f"https://blog.example.org/posts/{n}"
    out.update(extra)
    return out


def rss(title: str, items: list[dict[str, Any]]) -> bytes:
    parts = []
    for it in items:
        fields = []
        if "title" in it:
            fields.append(f"<title>{escape(it['title'])}</title>")
        if "link" in it:
            fields.append(f"<link>{escape(it['link'])}</link>")
        if "guid" in it:
            fields.append(f'<guid isPermaLink="false">{escape(it["guid"])}</guid>')
        if "date" in it:
            fields.append(f"<pubDate>{format_datetime(it['date'])}</pubDate>")
        if "author" in it:
            fields.append(f"<author>{escape(it['author'])}</author>")
        if "summary" in it:
            fields.append(f"<description>{escape(it['summary'])}</description>")
        if "raw" in it:
            fields.append(it["raw"])
        parts.append(f"<item>{''.join(fields)}</item>")
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
        f"<title>{escape(title)}</title><link>https://blog.example.org/</link><description>A test feed</description>"
        f"{''.join(parts)}</channel></rss>"
    ).encode()


def atom(title: str, items: list[dict[str, Any]]) -> bytes:
    parts = []
    for it in items:
        fields = []
        if "guid" in it:
            fields.append(f"<id>{escape(it['guid'])}</id>")
        if "title" in it:
            fields.append(f"<title>{escape(it['title'])}</title>")
        if "link" in it:
            fields.append(f'<link rel="alternate" type="text/html" href="{escape(it["link"])}"/>')
        if "date" in it:
            fields.append(f"<published>{it['date'].isoformat()}</published><updated>{it['date'].isoformat()}</updated>")
        if "author" in it:
            fields.append(f"<author><name>{escape(it['author'])}</name></author>")
        if "summary" in it:
            fields.append(f'<summary type="html">{escape(it["summary"])}</summary>')
        parts.append(f"<entry>{''.join(fields)}</entry>")
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>{escape(title)}</title><id>urn:feed:{escape(title)}</id><updated>{BASE_DATE.isoformat()}</updated>"
        f"{''.join(parts)}</feed>"
    ).encode()


def json_feed(title: str, items: list[dict[str, Any]]) -> bytes:
    out = []
    for it in items:
        entry: dict[str, Any] = {}
        if "guid" in it:
            entry["id"] = it["guid"]
        if "link" in it:
            entry["url"] = it["link"]
        if "title" in it:
            entry["title"] = it["title"]
        if "date" in it:
            entry["date_published"] = it["date"].isoformat()
        if "author" in it:
            entry["authors"] = [{"name": it["author"]}]
        if "summary" in it:
            entry["summary"] = it["summary"]
            entry["content_html"] = it["summary"]
        out.append(entry)
    doc = {"version": "https://jsonfeed.org/version/1.1", "title": title, "items": out}
    return json.dumps(doc).encode()


RENDER = {"rss": (rss, "application/rss+xml"), "atom": (atom, "application/atom+xml"),
          "json": (json_feed, "application/feed+json")}  # fmt: skip


@dataclass
class Feed:
    body: bytes
    content_type: str
    etag: str
    last_modified: str
    conditional: bool = True  # answer 304 to a matching If-None-Match / If-Modified-Since
    cache_control: str | None = None
    fail: list[int] = field(default_factory=list)  # statuses to answer, one per request, before serving
    retry_after: str | None = None
    redirect_to: str | None = None
    padding: int = 0  # bytes of XML comment appended (oversized bodies)
    delay: float = 0.0  # seconds before answering (a slow server)


@dataclass
class Request:
    name: str
    headers: dict[str, str]
    status: int


class FakeFeeds:
    def __init__(self) -> None:
        self.feeds: dict[str, Feed] = {}
        self.requests: list[Request] = []
        self._version = 0
        self.in_flight = 0
        self.most_in_flight = 0  # the most requests answered at once

    def set_body(self, name: str, body: bytes, content_type: str = "application/rss+xml", **options: Any) -> Feed:
        self._version += 1
        old = self.feeds.get(name)
        feed = Feed(
            body=body,
            content_type=content_type,
            etag=f'"{hashlib.sha1(body).hexdigest()[:16]}"',
            last_modified=format_datetime(BASE_DATE + timedelta(seconds=self._version), usegmt=True),
        )
        if old is not None:  # keep behaviour set on the feed
            feed.conditional, feed.cache_control, feed.fail = old.conditional, old.cache_control, old.fail
            feed.retry_after, feed.redirect_to, feed.padding = old.retry_after, old.redirect_to, old.padding
            feed.delay = old.delay
        for key, value in options.items():
            setattr(feed, key, value)
        self.feeds[name] = feed
        return feed

    def set_items(self, name: str, items: list[dict[str, Any]], *, kind: str = "rss", title: str | None = None,
                  **options: Any) -> Feed:
        render, content_type = RENDER[kind]
        return self.set_body(name, render(title or f"Feed {name}", items), content_type, **options)

    def hits(self, name: str) -> list[Request]:
        return [r for r in self.requests if r.name == name]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/feeds/{name}", self._serve)
        return app

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        feed = self.feeds.get(name)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if feed is not None and feed.delay:
                await asyncio.sleep(feed.delay)
        finally:
            self.in_flight -= 1
        response = self._answer(request, feed)
        self.requests.append(Request(name, dict(request.headers), response.status))
        return response

    def _answer(self, request: web.Request, feed: Feed | None) -> web.Response:
        if feed is None:
            return web.Response(status=404, text="no such feed")
        if feed.fail:
            status = feed.fail.pop(0)
            headers = {"Retry-After": feed.retry_after} if feed.retry_after else {}
            return web.Response(status=status, text="failing on purpose", headers=headers)
        if feed.redirect_to:
            return web.Response(status=302, headers={"Location": feed.redirect_to})
        headers = {"ETag": feed.etag, "Last-Modified": feed.last_modified}
        if feed.cache_control:
            headers["Cache-Control"] = feed.cache_control
        if feed.conditional and (
            request.headers.get("If-None-Match") == feed.etag
            or request.headers.get("If-Modified-Since") == feed.last_modified
        ):
            return web.Response(status=304, headers=headers)
        body = feed.body
        if feed.padding:
            body = body + b"<!--" + b"x" * feed.padding + b"-->"
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body, compresslevel=6)
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers, content_type=feed.content_type.split(";")[0])
