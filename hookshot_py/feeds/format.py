"""Feed items as Matrix messages, exactly as hookshot words them (FeedConnection.ts).

Templates use hookshot's tokens: `$FEEDNAME` (the label, else the feed's title, else its URL),
`$FEEDURL`, `$FEEDTITLE`, `$TITLE`, `$URL`, `$LINK` (`[title](url)`), `$AUTHOR`, `$DATE` and
`$SUMMARY` (at most 512 characters of the item's summary, sanitised HTML). Without a template:
"New post in $FEEDNAME: $LINK", or "…: $TITLE" when the item has no link, or "New post in
$FEEDNAME". The body is the filled template; the HTML is its inline markdown rendering (raw HTML
allowed, as hookshot does, then cut down to the Matrix subset). The item itself rides along under
`uk.half-shot.matrix-hookshot.feeds.item`.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

from markdown_it import MarkdownIt

from hookshot_py.feeds.parse import FeedItem
from hookshot_py.feeds.state import FeedState
from hookshot_py.markdown import sanitize_html

ITEM_KEY = "uk.half-shot.matrix-hookshot.feeds.item"
MAX_SUMMARY_LENGTH = 512
DEFAULT_TEMPLATE = "New post in $FEEDNAME"
DEFAULT_TEMPLATE_WITH_CONTENT = "New post in $FEEDNAME: $LINK"
DEFAULT_TEMPLATE_WITH_ONLY_TITLE = "New post in $FEEDNAME: $TITLE"

_TOKEN = re.compile(r"\$[A-Z]+")
# hookshot renders feed messages with `new markdown({html: true})`: summaries carry HTML.
_md = MarkdownIt("js-default", {"html": True})


@dataclass(frozen=True)
class FeedInfo:
    url: str  # the feed URL fetched (fragment removed)
    title: str | None  # the feed's own title


def _summary(item: FeedItem) -> str | None:
    if not item.summary:
        return None
    summary = item.summary
    if len(summary) > MAX_SUMMARY_LENGTH:
        summary = summary[:MAX_SUMMARY_LENGTH] + "…"
    return sanitize_html(summary)


def fill_template(template: str, state: FeedState, feed: FeedInfo, item: FeedItem, summary: str | None) -> str:
    def token(match: re.Match[str]) -> str:
        name = match.group(0)
        if name == "$FEEDNAME":
            return state.label or feed.title or feed.url or ""
        if name == "$FEEDURL":
            return feed.url
        if name == "$FEEDTITLE":
            return feed.title or ""
        if name == "$TITLE":
            return item.title or ""
        if name == "$LINK":
            return f"[{item.title or item.link}]({item.link})" if item.link else ""
        if name == "$URL":
            return item.link or ""
        if name == "$AUTHOR":
            return item.author or ""
        if name == "$DATE":
            return item.pubdate or ""
        if name == "$SUMMARY":
            return summary or ""
        return name

    return _TOKEN.sub(token, template)


def item_message(state: FeedState, feed: FeedInfo, item: FeedItem, fetch_key: str) -> dict[str, Any]:
    """The `m.notice` for one new item in a room subscribed with `state`."""
    summary = _summary(item)
    if state.template:
        template = state.template
    elif item.link:
        template = DEFAULT_TEMPLATE_WITH_CONTENT
    elif item.title:
        template = DEFAULT_TEMPLATE_WITH_ONLY_TITLE
    else:
        template = DEFAULT_TEMPLATE
    message = fill_template(template, state, feed, item, summary)
    content: dict[str, Any] = {
        "msgtype": "m.notice",
        "format": "org.matrix.custom.html",
        "formatted_body": sanitize_html(_md.renderInline(message)),
        "body": message,
    }
    if item.link:
        content["external_url"] = item.link
    content[ITEM_KEY] = {
        "feed": {"title": feed.title, "url": feed.url},
        "title": item.title,
        "link": item.link,
        "pubdate": item.pubdate,
        "summary": summary,
        "author": item.author,
        "fetchKey": fetch_key,
    }
    if not state.show_url_previews:
        content["com.beeper.linkpreviews"] = []
    return content


def more_message(state: FeedState, feed: FeedInfo, count: int) -> dict[str, Any]:
    """The summary after a capped burst: the newest items were posted, `count` earlier ones not."""
    name = state.label or feed.title or feed.url
    noun = "item" if count == 1 else "items"
    return {
        "msgtype": "m.notice",
        "format": "org.matrix.custom.html",
        "formatted_body": f'… and {count} more new {noun} in <a href="{html.escape(feed.url)}">{html.escape(name)}</a>',
        "body": f"… and {count} more new {noun} in {name}: {feed.url}",
    }


def failure_message(url: str, error: str) -> dict[str, Any]:
    """hookshot's notice when a feed with `notifyOnFailure` starts failing."""
    return {"msgtype": "m.notice", "body": f"Error fetching {url}: {error}"}


def recovery_message(url: str) -> dict[str, Any]:
    return {"msgtype": "m.notice", "body": f"Fetching {url} works again."}

