"""The forge HTTP base against small aiohttp servers: errors, rate limits, Link paging, timeouts."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from hookshot_py.forges.http import ForgeHttp, ForgeHttpError, RateLimits, error_text

from .conftest import Clock

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def serve(aiohttp_server: Any) -> Callable[[Handler], Awaitable[str]]:
    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        return str((await aiohttp_server(app)).make_url("")).rstrip("/")

    return start


class Sleeps:
    """Records the waits instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


async def test_json_in_and_out_with_the_credentials(serve, session) -> None:  # type: ignore[no-untyped-def]
    seen: list[tuple[str, str, Any, str | None]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((request.method, request.path_qs, await request.json(), request.headers.get("Authorization")))
        return web.json_response({"id": 5}, status=201)

    http = ForgeHttp(await serve(handler), session, headers={"Authorization": "token t"})
    resp = await http.request("POST", "/hooks", params={"page": 2}, json={"url": "u"}, expect=(201,))
    assert resp.status == 201 and resp.json() == {"id": 5}
    assert seen == [("POST", "/hooks?page=2", {"url": "u"}, "token t")]


@pytest.mark.parametrize(
    ("status", "body", "message", "details", "from_forge"),
    [
        (422, b'{"message": "Validation Failed", "errors": [{"resource": "Hook", "code": "custom", '
              b'"message": "Hook already exists"}]}', "Validation Failed", ["Hook already exists"], True),
        (422, b'{"errors": [{"field": "url", "defaultMessage": "must be a URL"}]}', "url: must be a URL",
         ["url: must be a URL"], True),
        (400, b'{"message": {"url": ["is blocked"]}}', "url: is blocked", ["url: is blocked"], True),
        (404, b'{"errorMessages": ["No project could be found with key \'X\'."], "errors": {}}',
         "No project could be found with key 'X'.", ["No project could be found with key 'X'."], True),
        (400, b'{"error": "Bad signature."}', "Bad signature.", [], True),
        (500, b"<html>oops</html>", "HTTP 500", [], False),
        (502, b"", "HTTP 502", [], False),
        (503, b"down for maintenance", "down for maintenance", [], False),
    ],
)
async def test_one_error_type_with_the_forges_message(  # type: ignore[no-untyped-def]
    serve, session, status: int, body: bytes, message: str, details: list[str], from_forge: bool
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, body=body, content_type="application/json")

    with pytest.raises(ForgeHttpError) as info:
        await ForgeHttp(await serve(handler), session).request("GET", "/x")
    err = info.value
    assert (err.status, err.message, err.details, err.from_forge, err.kind) == (status, message, details, from_forge,
                                                                               "status")


def test_error_text_of_odd_bodies() -> None:
    assert error_text(b"[1]")[:2] == (None, [])
    assert error_text(b'{"message": 5}')[:2] == (None, [])
    assert error_text(b"\xff plain")[0] == "\ufffd plain"


async def test_timeouts_and_unreachable_hosts_have_no_status(serve, session) -> None:  # type: ignore[no-untyped-def]
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({})

    http = ForgeHttp(await serve(slow), session, timeout=0.2)
    with pytest.raises(ForgeHttpError) as info:
        await http.request("GET", "/x")
    assert (info.value.status, info.value.kind, info.value.message) == (0, "timeout", "the request timed out")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ForgeHttpError) as info:
        await ForgeHttp(f"http://127.0.0.1:{port}", session).request("GET", "/x")
    assert (info.value.status, info.value.kind) == (0, "network")


async def test_an_answer_too_large_is_refused(serve, session) -> None:  # type: ignore[no-untyped-def]
    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 5000)

    with pytest.raises(ForgeHttpError) as info:
        await ForgeHttp(await serve(big), session, max_response_bytes=1000).request("GET", "/x")
    assert info.value.kind == "too_large"


async def test_a_short_retry_after_is_waited_for_once(serve, session) -> None:  # type: ignore[no-untyped-def]
    calls: list[int] = []

    async def handler(request: web.Request) -> web.Response:
        calls.append(1)
        if len(calls) == 1:
            return web.json_response({"message": "slow down"}, status=429, headers={"Retry-After": "3"})
        return web.json_response({"ok": True})

    sleeps = Sleeps()
    http = ForgeHttp(await serve(handler), session, limits=RateLimits(sleep=sleeps))
    assert (await http.request("GET", "/x")).json() == {"ok": True}
    assert sleeps.waits == [3.0] and len(calls) == 2


async def test_a_long_retry_after_fails_with_when_to_come_back(serve, session) -> None:  # type: ignore[no-untyped-def]
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"message": "secondary rate limit"}, status=403, headers={"Retry-After": "120"})

    sleeps = Sleeps()
    with pytest.raises(ForgeHttpError) as info:
        await ForgeHttp(await serve(handler), session, limits=RateLimits(sleep=sleeps)).request("GET", "/x")
    assert (info.value.status, info.value.retry_after, info.value.message) == (403, 120.0, "secondary rate limit")
    assert sleeps.waits == []


@pytest.mark.parametrize(("remaining", "reset"), [("X-RateLimit-Remaining", "X-RateLimit-Reset"),
                                                 ("RateLimit-Remaining", "RateLimit-Reset")])
async def test_a_spent_limit_is_waited_for_or_refused_without_sending(  # type: ignore[no-untyped-def]
    serve, session, remaining: str, reset: str
) -> None:
    clock = Clock()
    resets_at = {"value": clock.now + 5}
    calls: list[int] = []

    async def handler(request: web.Request) -> web.Response:
        calls.append(1)
        return web.json_response({}, headers={remaining: "0", reset: str(int(resets_at["value"]))})

    sleeps = Sleeps()
    limits = RateLimits(clock=clock, sleep=sleeps)
    url = await serve(handler)
    http = ForgeHttp(url, session, headers={"Authorization": "Bearer a"}, limits=limits)
    await http.request("GET", "/x")
    await http.request("GET", "/x")  # the reset is near: wait for it, then send
    assert sleeps.waits == [5.0] and len(calls) == 2

    resets_at["value"] = clock.now + 3600
    await http.request("GET", "/x")  # wait_before saw the old (near) reset; this answer moves it away
    with pytest.raises(ForgeHttpError) as info:
        await http.request("GET", "/x")
    assert info.value.kind == "rate_limited" and info.value.status == 429 and info.value.rate_limited
    assert info.value.retry_after is not None and 3500 < info.value.retry_after <= 3600
    assert len(calls) == 3, "refused without sending"
    # another token has its own budget
    other = ForgeHttp(url, session, headers={"Authorization": "Bearer b"}, limits=limits)
    await other.request("GET", "/x")
    assert len(calls) == 4


async def test_link_paging_follows_next_on_the_same_origin_only(serve, session) -> None:  # type: ignore[no-untyped-def]
    async def handler(request: web.Request) -> web.Response:
        page = int(request.query.get("page", "1"))
        links = []
        if page < 3:
            links.append(f'<{request.scheme}://{request.host}/items?page={page + 1}>; rel="next"')
        links.append('<https://elsewhere.example/items?page=1>; rel="first"')
        return web.json_response([page], headers={"Link": ", ".join(links)})

    http = ForgeHttp(await serve(handler), session)
    assert [r.json() async for r in http.pages("/items")] == [[1], [2], [3]]
    assert [r.json() async for r in http.pages("/items", max_pages=2)] == [[1], [2]]

    async def elsewhere(request: web.Request) -> web.Response:
        return web.json_response([1], headers={"Link": '<https://elsewhere.example/items?page=2>; rel="next"'})

    http = ForgeHttp(await serve(elsewhere), session, headers={"Authorization": "token secret"})
    assert [r.json() async for r in http.pages("/items")] == [[1]], "the token never leaves for another host"
