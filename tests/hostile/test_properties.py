"""Generated hostile input (hypothesis): whatever JSON-ish body, content type or header a route
gets after its authentication, it never answers 5xx. (Stalls are the business of test_routes.py,
whose inputs are built to be the costliest; here the inputs are many and varied.)"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .client import assert_error_shape, assert_not_5xx, send
from .conftest import HostileEnv
from .routes import BODY_ROUTES, Route

# Strings with what breaks naive code: NUL, lone surrogates, markdown and HTML, huge code points.
TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("\x00\ud800\udfff[]()!*_`<>&#@:/\\\"'\n\r\t\u202e\ufeff")),
        st.characters(codec="utf-8"),
    ),
    max_size=40,
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | TEXT,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(TEXT, children, max_size=5),
    max_leaves=30,
)
# Keys the routes look at, so that generated documents get past their first checks.
SHAPED = st.fixed_dictionaries(
    {},
    optional={
        "text": JSON, "html": JSON, "username": JSON, "events": JSON, "action": JSON, "repository": JSON,
        "project": JSON, "project_id": JSON, "name": JSON, "transaction_id": JSON, "note": JSON, "issue": JSON,
    },
)  # fmt: skip
CONTENT_TYPES = st.sampled_from(
    [
        None, "application/json", "application/json; charset=utf-16", "text/plain", "text/plain; charset=latin-1",
        "application/x-www-form-urlencoded", "application/xml", "multipart/form-data; boundary=x",
        "application/json; charset=punycode", "text/plain; charset=utf-8; charset=punycode",
        "application/json; charset=\"\"", "application/vnd.api+json",
    ]
)  # fmt: skip


def _encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass")


BODIES = st.one_of(SHAPED.map(_encode), JSON.map(_encode), st.binary(max_size=300))


@pytest.mark.parametrize("route", BODY_ROUTES, ids=lambda r: r.name)
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=BODIES, content_type=CONTENT_TYPES)
async def test_generated_bodies_never_get_a_5xx(env: HostileEnv, route: Route, body: bytes, content_type: str | None) -> None:
    status, answer = await send(env, route.request(env, body, content_type))
    what = f"{route.name} × {body[:80]!r} as {content_type}"
    assert_not_5xx(what, status, answer)
    if route.json_errors:
        assert_error_shape(what, status, answer)
