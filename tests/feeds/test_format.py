"""Messages for feed items: hookshot's templates and wording (its FeedTest.spec.ts cases, ported)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from hookshot_py.feeds.format import ITEM_KEY, FeedInfo, failure_message, item_message, more_message
from hookshot_py.feeds.parse import FeedItem
from hookshot_py.feeds.state import FeedState

FEED_URL = "https://example.com/feed.xml"
FEED = FeedInfo(FEED_URL, "Test feed")
ITEM = FeedItem(
    id="x", guid="g", link="foo/bar", title="Foo", author="Me!", summary="fibble fobble",
    published=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
)  # fmt: skip
STATE = FeedState(url=FEED_URL)


def test_simple_item() -> None:
    content = item_message(STATE, FEED, ITEM, "k")
    assert content["body"] == "New post in Test feed: [Foo](foo/bar)"
    assert content["external_url"] == "foo/bar"
    assert content["msgtype"] == "m.notice" and content["format"] == "org.matrix.custom.html"
    absolute = item_message(STATE, FEED, replace(ITEM, link="https://example.com/foo"), "k")
    assert absolute["formatted_body"] == 'New post in Test feed: <a href="https://example.com/foo">Foo</a>'


def test_without_title_and_link() -> None:
    content = item_message(STATE, FEED, replace(ITEM, title=None, link=None), "k")
    assert content["body"] == "New post in Test feed"
    assert "external_url" not in content


def test_without_title() -> None:
    assert item_message(STATE, FEED, replace(ITEM, title=None), "k")["body"] == "New post in Test feed: [foo/bar](foo/bar)"


def test_without_link() -> None:
    assert item_message(STATE, FEED, replace(ITEM, link=None), "k")["body"] == "New post in Test feed: Foo"


def test_every_token() -> None:
    state = replace(STATE, template="$FEEDNAME $FEEDURL $FEEDTITLE $TITLE $LINK $AUTHOR $DATE $SUMMARY $URL $UNKNOWN")
    assert item_message(state, FEED, ITEM, "k")["body"] == (
        "Test feed https://example.com/feed.xml Test feed Foo [Foo](foo/bar) Me! Fri, 02 Jan 2026 03:04:05 +0000 "
        "fibble fobble foo/bar $UNKNOWN"
    )


def test_feed_name_is_label_then_title_then_url() -> None:
    assert item_message(replace(STATE, label="Mine"), FEED, ITEM, "k")["body"].startswith("New post in Mine:")
    assert item_message(STATE, FeedInfo(FEED_URL, None), ITEM, "k")["body"].startswith(f"New post in {FEED_URL}:")


def test_html_in_the_summary_is_sanitised() -> None:
    state = replace(STATE, template="$FEEDNAME $SUMMARY")
    summary = (
        "<p> Some HTML with <disallowed-elements> which should be ignored </disallowed-elements> and an "
        "<img src='mxc://fibble/fobble'></img> </p>"
    )
    content = item_message(state, FEED, replace(ITEM, summary=summary), "k")
    assert content["body"] == 'Test feed <p> Some HTML with  which should be ignored  and an <img src="mxc://fibble/fobble"> </p>'
    assert "<script" not in item_message(state, FEED, replace(ITEM, summary="<script>alert(1)</script>hi"), "k")[
        "formatted_body"
    ]


def test_long_summary_is_cut_at_512_characters() -> None:
    state = replace(STATE, template="$SUMMARY")
    body = item_message(state, FEED, replace(ITEM, summary="a" * 600), "k")["body"]
    assert body == "a" * 512 + "…"


def test_the_item_rides_along() -> None:
    content = item_message(STATE, FEED, ITEM, "fetch-1")
    assert content[ITEM_KEY] == {
        "feed": {"title": "Test feed", "url": FEED_URL},
        "title": "Foo",
        "link": "foo/bar",
        "pubdate": "Fri, 02 Jan 2026 03:04:05 +0000",
        "summary": "fibble fobble",
        "author": "Me!",
        "fetchKey": "fetch-1",
    }


def test_url_previews_off() -> None:
    assert "com.beeper.linkpreviews" not in item_message(STATE, FEED, ITEM, "k")
    assert item_message(replace(STATE, show_url_previews=False), FEED, ITEM, "k")["com.beeper.linkpreviews"] == []


def test_more_and_failure_notices() -> None:
    more = more_message(STATE, FEED, 7)
    assert more["body"] == f"… and 7 more new items in Test feed: {FEED_URL}"
    assert more["formatted_body"] == f'… and 7 more new items in <a href="{FEED_URL}">Test feed</a>'
    assert failure_message(FEED_URL, "HTTP 500")["body"] == f"Error fetching {FEED_URL}: HTTP 500"
