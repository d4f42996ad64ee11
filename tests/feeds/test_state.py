"""The feed connection's state: hookshot's fields and validation, and our per-feed interval."""

from __future__ import annotations

from hookshot_py.feeds.state import FeedState, normalize_url, validate_state


def problems(state: dict, *, is_new: bool = True) -> dict[str, str]:
    _, issues = validate_state(state, min_interval=60, is_new=is_new)
    return {i.path: i.message for i in issues}


def test_hookshot_fields_are_kept_and_others_dropped() -> None:
    state = {"url": "https://example.org/feed", "label": "L", "template": "$TITLE", "notifyOnFailure": True,
             "showUrlPreviews": False, "priority": 3, "hookId": "leak"}
    normalized, issues = validate_state(state, min_interval=60, is_new=True)
    assert issues == []
    assert normalized == {"url": "https://example.org/feed", "label": "L", "template": "$TITLE",
                          "notifyOnFailure": True, "showUrlPreviews": False}


def test_refusals() -> None:
    assert problems({}) == {"/url": "is required and must be a string"}
    assert problems({"url": "ftp://example.org/feed"}) == {"/url": "must be an http(s) URL"}
    assert problems({"url": "https://example.org/", "label": 3})["/label"] == "must be a string"
    assert problems({"url": "https://example.org/", "template": "x" * 1025})["/template"] == (
        "should not be longer than 1024 characters"
    )
    assert problems({"url": "https://example.org/", "notifyOnFailure": "yes"})["/notifyOnFailure"] == "must be a boolean"
    assert problems({"url": "https://example.org/", "pollIntervalSeconds": True}) != {}


def test_interval_below_the_minimum_is_refused_when_new_and_raised_when_found_in_a_room() -> None:
    assert problems({"url": "https://example.org/", "pollIntervalSeconds": 10}) == {
        "/pollIntervalSeconds": "must be at least 60 on this bridge"
    }
    assert problems({"url": "https://example.org/", "pollIntervalSeconds": 10}, is_new=False) == {}
    state = FeedState.from_content({"url": "https://example.org/", "pollIntervalSeconds": 10})
    assert state.interval(600, 60) == 60
    assert FeedState.from_content({"url": "https://example.org/"}).interval(600, 60) == 600
    assert FeedState.from_content({"url": "u", "pollIntervalSeconds": 900}).interval(600, 60) == 900


def test_typed_view_defaults() -> None:
    state = FeedState.from_content({"url": "https://example.org/", "label": "", "showUrlPreviews": "no"})
    assert state.label is None and state.show_url_previews and not state.notify_on_failure


def test_fragment_is_not_fetched() -> None:
    assert normalize_url("https://example.org/feed.xml#room-a") == "https://example.org/feed.xml"
    assert normalize_url("https://example.org/feed.xml?x=1") == "https://example.org/feed.xml?x=1"
