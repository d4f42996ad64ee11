"""jsonsafe: parsing strangers' JSON with a depth bound checked on the text, structured errors
that routes word their own way, and the characters Postgres cannot store."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hookshot_py import jsonsafe

# Strings full of what could confuse a scan of the text: brackets, quotes, backslashes.
_TRICKY = st.text(alphabet=st.sampled_from(list('[]{}"\\\\:,aé\u0000\ud800')), max_size=12)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | _TRICKY,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_TRICKY, children, max_size=4),
    max_leaves=40,
)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSON, st.integers(min_value=0, max_value=8), st.sampled_from(["utf-8", "utf-16", "str"]), st.booleans())
def test_the_text_scan_agrees_with_the_parsed_depth(value: Any, limit: int, encoding: str, indent: bool) -> None:
    text = json.dumps(value, indent=1 if indent else None, ensure_ascii=False)
    raw: bytes | str = text if encoding == "str" else text.encode(encoding, "surrogatepass")
    assert jsonsafe.nesting_exceeds(raw, limit) is (_depth(value) > limit)


def test_depth_limit_and_structured_errors() -> None:
    assert jsonsafe.loads(b"[" * 64 + b"]" * 64, max_depth=64)
    with pytest.raises(jsonsafe.JsonError) as info:
        jsonsafe.loads(b'{"a":' * 65 + b"1" + b"}" * 65, max_depth=64)
    assert info.value.kind == "depth" and str(info.value) == "the JSON nests deeper than 64 levels"
    with pytest.raises(jsonsafe.JsonError) as info:
        jsonsafe.loads(b"[" * 100_000 + b"]" * 100_000)
    assert info.value.kind == "depth"
    with pytest.raises(jsonsafe.JsonError) as info:
        jsonsafe.loads(b'{\n "a": tru\n}')
    assert (info.value.kind, info.value.detail, info.value.line, info.value.column) == ("syntax", "Expecting value", 2, 7)
    with pytest.raises(jsonsafe.JsonError) as info:
        jsonsafe.loads(b'{"a": NaN}')
    assert (info.value.kind, info.value.detail) == ("constant", "NaN is not a JSON value")
    with pytest.raises(jsonsafe.JsonError) as info:
        jsonsafe.loads(b'"\xff"')
    assert info.value.kind == "utf8" and str(info.value) == "the body is not valid UTF-8: invalid start byte at byte 1"
    with pytest.raises(jsonsafe.JsonError) as info:
        jsonsafe.loads(b"[" + b"9" * 5000 + b"]")
    assert info.value.kind == "number"


def test_a_megabyte_of_small_objects_is_checked_without_walking_it() -> None:
    raw = b"[" + b"{}," * 350_000 + b"{}]"
    assert len(jsonsafe.loads(raw)) == 350_001
    assert not jsonsafe.nesting_exceeds(raw, 2) and jsonsafe.nesting_exceeds(raw, 1)


def test_unstorable_characters() -> None:
    value = {"k\u0000": ["a\ud800", {"n": "\u0000"}], "ok": 1}
    assert jsonsafe.find_unstorable(value) is not None
    assert jsonsafe.storable(value) == {"k\ufffd": ["a\ufffd", {"n": "\ufffd"}], "ok": 1}
    assert jsonsafe.without_surrogates(value) == {"k\u0000": ["a\ufffd", {"n": "\u0000"}], "ok": 1}
    assert "\\u0000" not in jsonsafe.dumps_storable(value)
