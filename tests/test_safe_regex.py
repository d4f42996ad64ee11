"""User-set regular expressions run on RE2: linear time, clear errors for what RE2 refuses."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hookshot_py.safe_regex import MAX_PATTERN_LENGTH, PatternError, check_pattern, search


def test_search_is_unanchored_like_javascript_match() -> None:
    assert search("ai", "main")
    assert search("^main$", "main")
    assert not search("^release/", "main")
    assert search(r"^v\d+\.\d+$", "v1.20")
    assert search("(?P<major>[0-9]+)", "v1") and search("(?i)MAIN", "main")


def test_catastrophic_backtracking_pattern_is_linear() -> None:
    # With a backtracking engine this never finishes (2 s at 24 characters, doubling per character).
    assert not search("^(a+)+$", "a" * 100_000 + "!")
    assert search("^(a+)+$", "a" * 100_000)


@pytest.mark.parametrize(
    ("pattern", "hint"),
    [
        ("main(?=-hotfix)", "lookahead and lookbehind are not supported"),
        ("(?<!feature/)main", "lookahead and lookbehind are not supported"),
        (r"(a)\1", "backreferences are not supported"),
        ("release/(v1", "missing )"),
        ("[z-a]", "invalid character class range"),
    ],
)
def test_unsupported_or_invalid_patterns_say_why(pattern: str, hint: str) -> None:
    with pytest.raises(PatternError) as info:
        check_pattern(pattern)
    assert hint in info.value.message
    with pytest.raises(PatternError):
        search(pattern, "main")


def test_overlong_pattern_is_refused() -> None:
    check_pattern("a" * MAX_PATTERN_LENGTH)
    with pytest.raises(PatternError, match="longer than"):
        check_pattern("a" * (MAX_PATTERN_LENGTH + 1))


@given(st.text(max_size=30), st.text(max_size=200))
def test_any_pattern_is_either_refused_cleanly_or_matched(pattern: str, text: str) -> None:
    try:
        check_pattern(pattern)
    except PatternError as e:
        assert e.message
        return
    assert isinstance(search(pattern, text), bool)
