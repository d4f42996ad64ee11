"""`m.mentions`: explicit, empty by default, only well-formed values kept."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from hookshot_py.matrix.mentions import MAX_MENTIONED_USERS, MENTIONS_KEY, mentions, with_mentions


def test_no_mentions_by_default() -> None:
    assert with_mentions({"body": "@room hi"}) == {"body": "@room hi", MENTIONS_KEY: {}}


def test_explicit_mentions_are_kept() -> None:
    content = {"body": "hi", MENTIONS_KEY: {"user_ids": ["@a:x"], "room": True}}
    assert with_mentions(content) is content


def test_mentions_builder_keeps_only_distinct_user_ids() -> None:
    assert mentions(["@a:x", "a:x", "@nocolon", 5, "@a:x", "@b:y"]) == {"user_ids": ["@a:x", "@b:y"]}
    assert mentions(room=True) == {"room": True}
    assert mentions() == {}
    many = [f"@u{i}:x" for i in range(MAX_MENTIONED_USERS + 10)]
    assert mentions(many)["user_ids"] == many[:MAX_MENTIONED_USERS]


def test_malformed_mentions_are_replaced() -> None:
    assert with_mentions({MENTIONS_KEY: {"room": "yes", "user_ids": "@a:x"}}) == {MENTIONS_KEY: {}}
    assert with_mentions({MENTIONS_KEY: None}) == {MENTIONS_KEY: {}}


def test_the_given_content_is_not_changed() -> None:
    content: dict[str, Any] = {"body": "x", MENTIONS_KEY: {"user_ids": ["bad"]}}
    assert with_mentions(content)[MENTIONS_KEY] == {}
    assert content[MENTIONS_KEY] == {"user_ids": ["bad"]}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(st.dictionaries(st.sampled_from(["user_ids", "room", "other"]), json_values, max_size=3) | json_values)
def test_any_mentions_value_becomes_a_valid_one(given_value: object) -> None:
    result = with_mentions({"body": "b", MENTIONS_KEY: given_value})[MENTIONS_KEY]
    assert set(result) <= {"user_ids", "room"}
    assert result.get("room", True) is True
    users = result.get("user_ids", ["@a:b"])
    assert users and len(users) <= MAX_MENTIONED_USERS
    assert all(isinstance(u, str) and u.startswith("@") and ":" in u for u in users)
