"""Feed documents into items: RSS 2.0, Atom and JSON Feed fixtures, broken items, hostile input."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from hookshot_py.feeds.identity import identity_key, item_id
from hookshot_py.feeds.parse import FeedParseError, parse_feed

FIXTURES = Path(__file__).parent / "fixtures"
URL = "https://blog.example.org/feed.xml"


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_rss2() -> None:
    feed = parse_feed(load("rss2.xml"), URL)
    assert feed.title == "The Example Blog"  # tags stripped, as hookshot does
    first, no_guid, status = feed.items
    assert first.guid == "blog-post-202"
    assert first.title == "Release 2.0 & what's next"
    assert first.link == "https://blog.example.org/2026/02/release-2"
    assert first.author == "Jane Doe"
    assert first.published == datetime(2026, 2, 2, 10, 30, tzinfo=UTC)
    assert first.pubdate == "Mon, 02 Feb 2026 10:30:00 +0000"
    assert first.summary is not None and "<b>2.0</b>" in first.summary
    assert no_guid.title == "A post without a guid" and no_guid.link == "https://blog.example.org/2026/01/no-guid"
    assert status.title is None and status.summary is not None and status.summary.startswith("A status update")
    assert feed.skipped == 1  # the empty <item/>


def test_atom() -> None:
    feed = parse_feed(load("atom.xml"), "https://code.example.org/example/project/releases.atom")
    assert feed.title == "Releases of example/project"
    latest, older = feed.items
    assert latest.guid == "tag:code.example.org,2026:Repository/1/v1.2.0"
    assert latest.published == datetime(2026, 3, 1, 9, 0, tzinfo=UTC)  # no <published>: <updated>
    assert latest.author == "release-bot" and latest.summary == "<p>Bug fixes</p>"
    assert older.title == "v1.1.0 beta"
    assert older.published == datetime(2026, 2, 1, 8, 0, tzinfo=UTC)
    assert older.link == "https://code.example.org/example/project/releases/tag/v1.1.0"  # relative link resolved
    assert older.summary == "New features"  # from <content> when there is no <summary>


def test_json_feed() -> None:
    feed = parse_feed(load("feed.json"), "https://json.example.org/feed.json")
    assert feed.title == "JSON Example"
    second, first = feed.items
    assert (second.guid, second.title, second.author, second.summary) == ("2", "Second", "Ann", "The second post")
    assert first.title is None and first.link == "https://json.example.org/1"
    assert first.published == datetime(2026, 4, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "body",
    [b"", b"\x00\x01 not xml", b"<!doctype html><html><head><title>x</title></head><body>hi</body></html>",
     b'{"not": "a feed"}'],
)  # fmt: skip
def test_what_is_not_a_feed_is_refused(body: bytes) -> None:
    with pytest.raises(FeedParseError):
        parse_feed(body, URL)


def test_entities_are_never_expanded_or_fetched() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<rss version="2.0"><channel><title>&c;</title><item><title>t &x;</title><guid>g</guid></item>'
        b"</channel></rss>"
    )
    feed = parse_feed(bomb, URL)
    assert [i.guid for i in feed.items] == ["g"]
    assert "root:" not in (feed.items[0].title or "") and "aaaaaaaaaa" not in (feed.title or "")


def test_broken_items_are_skipped_not_the_feed() -> None:
    body = (
        b'<rss version="2.0"><channel><title>T</title>'
        b"<item></item>"
        b"<item><title>good one</title><guid>g1</guid><pubDate>not a date</pubDate></item>"
        b"<item><title>bad link</title><link>javascript:alert(1)</link></item>"
        b"<item><title>second good</title><guid>g2</guid></item>"
        b"</channel></rss>"
    )
    feed = parse_feed(body, URL)
    assert [i.title for i in feed.items] == ["good one", "bad link", "second good"]
    assert feed.items[0].published is None  # an unreadable date is no date
    assert feed.items[1].link is None  # only http(s) links are kept
    assert feed.skipped == 1  # the empty item


def test_truncated_document_keeps_the_items_before_the_break() -> None:
    body = b'<rss version="2.0"><channel><title>T</title><item><title>one</title><guid>1</guid></item><item><tit'
    assert [i.guid for i in parse_feed(body, URL).items] == ["1"]


def test_latin1_feed() -> None:
    body = (
        '<?xml version="1.0" encoding="iso-8859-1"?><rss version="2.0"><channel><title>Café</title>'
        "<item><title>Brüder</title><guid>x</guid></item></channel></rss>"
    ).encode("latin-1")
    feed = parse_feed(body, URL)
    assert feed.title == "Café" and feed.items[0].title == "Brüder"


def test_fields_are_bounded() -> None:
    body = (
        f'<rss version="2.0"><channel><title>T</title><item><title>{"t" * 100_000}</title><guid>g</guid>'
        f"<description>{'d' * 100_000}</description></item></channel></rss>"
    ).encode()
    [item] = parse_feed(body, URL).items
    assert item.title is not None and len(item.title) == 1000
    assert item.summary is not None and len(item.summary) == 1024


def test_duplicate_items_in_one_document_count_once() -> None:
    body = (
        b'<rss version="2.0"><channel><title>T</title><item><title>a</title><guid>same</guid></item>'
        b"<item><title>b</title><guid>same</guid></item></channel></rss>"
    )
    assert len(parse_feed(body, URL).items) == 1


# -- identity -----------------------------------------------------------------------------------------


def test_identity_prefers_guid_then_link_then_title_and_date() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    assert identity_key("g", "https://x/1", "T", when, "s") == "guid:g"
    assert identity_key(None, "https://x/1", "T", when, "s") == "link:https://x/1"
    assert identity_key(None, None, "T", when, "s") == "title:T|2026-01-01T00:00:00+00:00"
    assert identity_key(None, None, None, None, "s") == "summary:s"
    assert identity_key(None, None, None, when, None) is None


def test_identity_survives_edits_and_reordering() -> None:
    a = parse_feed(b'<rss version="2.0"><channel><title>T</title><item><title>Old title</title><guid>g1</guid>'
                   b"</item><item><title>x</title><guid>g2</guid></item></channel></rss>", URL)
    b = parse_feed(b'<rss version="2.0"><channel><title>T</title><item><title>x</title><guid>g2</guid></item>'
                   b"<item><title>New title</title><guid>g1</guid></item></channel></rss>", URL)
    assert {i.id for i in a.items} == {i.id for i in b.items}
    assert len(item_id("guid:g1")) == 40
