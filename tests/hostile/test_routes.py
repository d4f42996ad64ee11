"""Every route × hostile input: never a 5xx, and `/live` keeps answering while each request is in
flight (see probe.py for how "keeps answering" is measured)."""

from __future__ import annotations

import asyncio
import json

import pytest

from .client import assert_error_shape, assert_not_5xx, request_head, send, send_raw
from .conftest import BODY_TIMEOUT_S, GITHUB_REPO, HostileEnv
from .routes import AS_PING, BODY_ROUTES, MARKDOWN_ROUTES, ROUTES, TRANSACTION, Route, github_payload, github_request

KIB = 1024
MIB = 1024 * KIB

# Hostile bodies: (bytes, Content-Type).
BODIES: dict[str, tuple[bytes, str | None]] = {
    "malformed JSON": (b'{"action": "PUSH", "events": [1, 2', "application/json"),
    "binary garbage": (bytes(range(256)) * 16, "application/octet-stream"),
    "binary garbage without a type": (b"\x89PNG\r\n\x1a\n\x00\xff" * 100, None),
    "JSON that is not UTF-8": (b'{"text": "\xff\xfe\xfd", "events": []}', "application/json"),
    "JSON nested 100,000 deep": (b"[" * 100_000 + b"]" * 100_000, "application/json"),
    "JSON nested 900 deep": (b'{"events":' * 900 + b"[]" + b"}" * 900, "application/json"),
    "NUL escapes": (
        b'{"action": "PUSH\\u0000", "text": "a\\u0000b", "k\\u0000": "\\u0000", "events": [{"type": "\\u0000"}],'
        b' "name": "n\\u0000", "repository": {"full_name": "octo-org/hostile\\u0000"}}',
        "application/json",
    ),
    "raw NUL bytes in JSON": (b'{"text": "a\x00b"}', "application/json"),
    "NUL in text": (b"a\x00b" * 100, "text/plain"),
    "lone surrogates": (b'{"text": "\\ud800", "\\udfff": 1, "name": "\\udc00", "events": []}', "application/json"),
    "NaN and Infinity": (b'{"a": NaN, "b": -Infinity, "events": [NaN]}', "application/json"),
    "an integer of 5,000 digits": (b'{"events": [' + b"9" * 5000 + b"]}", "application/json"),
    "JSON of the wrong shape": (b'{"events": {"a": 1}, "action": 7, "repository": [], "name": {}}', "application/json"),
    "a JSON list": (b"[1, 2, 3]", "application/json"),
    "a JSON string": (b'"just a string"', "application/json"),
    "punycode charset": (b"-" + b"9" * (200 * KIB), "application/json; charset=punycode"),
    "utf-7 charset": (b"+AGEAYgBj-", "text/plain; charset=utf-7"),
    "unknown charset": (b'{"text": "x"}', "application/json; charset=x-no-such-charset"),
    "form with 100,000 fields": (b"&".join(b"a%d=1" % i for i in range(100_000)), "application/x-www-form-urlencoded"),
    "XML with an entity bomb": (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b"<x>&b;</x>",
        "application/xml",
    ),
    "XML nested 10,000 deep": (b"<a>" * 10_000 + b"</a>" * 10_000, "application/xml"),
    # The largest bodies generic webhooks render on the event loop (`cheap_to_render`): 1 KiB, no
    # brackets, 16 markdown delimiters at most (nesting needs brackets or colons, so none is deep).
    "1 KiB of markdown at the on-loop limit": (
        b'{"text": "' + b"*_`<&#~|" + b"a" * 993 + b'*_`<&#~"}', "application/json"
    ),
    "1 KiB of text without a space": (b"x" * 1020, "text/plain"),
}


def _fits(route: Route, body: bytes) -> bool:
    return route.limit is None or len(body) <= route.limit


CASES = [
    pytest.param(route, name, id=f"{route.name} × {name}")
    for route in ROUTES
    for name, (body, _) in BODIES.items()
    if _fits(route, body)
]


@pytest.mark.parametrize(("route", "case"), CASES)
async def test_hostile_bodies(env: HostileEnv, route: Route, case: str) -> None:
    body, content_type = BODIES[case]
    what = f"{route.name} × {case}"
    status, answer = await env.probe.check(lambda: send(env, route.request(env, body, content_type)), what)
    assert_not_5xx(what, status, answer)
    if route.json_errors:
        assert_error_shape(what, status, answer)


@pytest.mark.parametrize("route", BODY_ROUTES, ids=lambda r: r.name)
async def test_bodies_over_the_limit_are_refused_unread(env: HostileEnv, route: Route) -> None:
    assert route.limit is not None
    body = b"x" * (route.limit + 1)
    what = f"{route.name} × {route.limit + 1} bytes"
    status, answer = await env.probe.check(lambda: send(env, route.request(env, body)), what)
    assert_not_5xx(what, status, answer)
    assert 400 <= status < 500, (what, status, answer[:200])


def _small_objects(size: int) -> bytes:
    count = (size - 64) // 3
    return b'{"events": [' + b"{}," * (count - 1) + b'{}], "action": "PUSH"}'


def _largest_transaction(env: HostileEnv) -> bytes:
    """The most a room member can make the homeserver send at once: a transaction of 100 events
    (Synapse's maximum) of 64 KiB (the event size limit) of small objects each. A homeserver
    itself may send more (up to `MAX_TRANSACTION_BYTES`): it is trusted with its own volume."""
    content = b'{"a": [' + b"{}," * (60 * KIB // 3) + b"{}]}"
    event = b'{"type": "org.example.hostile", "room_id": "%s", "sender": "%s", "event_id": "$%%d", "content": %s}' % (
        env.room.encode(), env.alice.encode(), content,
    )
    return b'{"events": [' + b",".join(event % i for i in range(100)) + b"]}"


@pytest.mark.parametrize("route", BODY_ROUTES, ids=lambda r: r.name)
async def test_many_small_objects_up_to_the_limit(env: HostileEnv, route: Route) -> None:
    """The costliest JSON to parse per byte: `[{},{},...]`, as large as the route takes."""
    assert route.limit is not None
    body = _largest_transaction(env) if route is TRANSACTION else _small_objects(route.limit)
    what = f"{route.name} × {len(body) // KIB} KiB of small objects"
    status, answer = await env.probe.check(lambda: send(env, route.request(env, body)), what)
    assert_not_5xx(what, status, answer)


@pytest.mark.parametrize("route", MARKDOWN_ROUTES, ids=lambda r: r.name)
@pytest.mark.parametrize(
    "markdown", ["[" * (32 * KIB), "![[" * (11 * KIB), "<b> </b>" * (4 * KIB), "*_" * (16 * KIB), "`" + "![[" * (11 * KIB)]
)
async def test_pathological_markdown(env: HostileEnv, route: Route, markdown: str) -> None:
    assert route.markdown is not None
    make = route.markdown
    what = f"{route.name} × {markdown[:6]!r}…"
    status, answer = await env.probe.check(lambda: send(env, make(env, markdown)), what)
    assert_not_5xx(what, status, answer)


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.name)
async def test_huge_headers(env: HostileEnv, route: Route) -> None:
    request = route.request(env, b"{}")
    for extra in ([("X-Huge", "h" * (100 * KIB))], [(f"X-Many-{i}", "v" * 100) for i in range(500)]):
        what = f"{route.name} × {len(extra)} header(s) of {len(extra[0][1])} bytes"
        status = await env.probe.check(
            lambda extra=extra: send_raw(request.url, request_head(request, extra, content_length=2), b"{}"), what
        )
        assert status == 0 or 400 <= status < 500, (what, status)


async def test_slow_bodies_on_every_route_at_once(env: HostileEnv) -> None:
    """A body announced and never sent: every route that reads one gives up after the body time
    limit (408), the others answer without reading it; none holds the request for long."""

    async def stalled(route: Route) -> int:
        request = route.request(env, b"")
        return await send_raw(request.url, request_head(request, content_length=1000), b'{"a": ', stall=True)

    async def all_routes() -> list[int]:
        return list(await asyncio.gather(*(stalled(r) for r in ROUTES)))

    statuses = await env.probe.check(all_routes, "slow bodies")
    for route, status in zip(ROUTES, statuses, strict=True):
        assert status == 0 or 200 <= status < 500, (route.name, status)
        if route in BODY_ROUTES and route not in (AS_PING,):
            assert status in (0, 401, 408, 413), (route.name, status)
    assert BODY_TIMEOUT_S < 5


async def test_transactions_carrying_hostile_events_are_acknowledged(env: HostileEnv) -> None:
    """What a room member can put in an event reaches the bridge inside a transaction: every one
    is handled (or skipped) in isolation and the transaction acknowledged."""
    events = [
        {"type": "m.room.message", "room_id": env.room, "sender": env.alice, "event_id": "$a",
         "content": {"msgtype": "m.text", "body": "!hookshot " + "[" * 20_000}},
        {"type": "m.room.message", "room_id": env.room, "sender": env.alice, "event_id": "$b",
         "content": {"msgtype": "m.text", "body": "!hookshot webhook \u0000\ud800"}},
        {"type": "uk.half-shot.matrix-hookshot.generic.hook", "room_id": env.room, "sender": env.alice,
         "event_id": "$c", "state_key": "nul\u0000", "content": {"name": "a\u0000b"}},
        {"type": "m.room.member", "room_id": env.room, "sender": "@x:y", "state_key": "@x:y", "event_id": "$d",
         "content": {"membership": ["join"]}},
        {"type": 7, "room_id": None, "content": "not an object"},
        "not an event",
    ]
    raw = json.dumps({"events": events}).encode()
    what = "a transaction of hostile events"
    status, answer = await env.probe.check(lambda: send(env, TRANSACTION.request(env, raw)), what)
    assert (status, json.loads(answer)) == (200, {}), answer


async def test_a_signed_diff_url_elsewhere_is_never_fetched(env: HostileEnv) -> None:
    """Server-side request forgery through a delivery: whoever has the hook's secret names a
    `diff_url` on the bridge's own network. It is not the repository's pull diff on the
    configured GitHub, so it is never fetched, and the PR is posted without a diff."""
    payload = github_payload("pull_request.opened")
    payload["pull_request"]["diff_url"] = f"{env.canary.url}/{GITHUB_REPO}/pull/1.diff"
    payload["pull_request"]["title"] = "SSRF canary"
    status, answer = await send(env, github_request(env, "pull_request", payload))
    assert status == 200, answer
    assert env.canary.hits == []
    rows = await env.services.db.fetch(
        "SELECT content FROM outbox WHERE room_id = $1 AND content->>'body' LIKE '%SSRF canary%'", env.room
    )
    [row] = rows
    assert "diff" not in row["content"]["body"] and "canary content" not in row["content"]["body"]
