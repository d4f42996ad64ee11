"""The fake Barkeep itself behaves like the real server, checked with hand-made requests."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from fakes.barkeep import FakeBarkeepState, make_app

from .conftest import REPO, SHA_A, SHA_B

SEED_TIME = 1335785915
SEED_SIGNATURE = "7a1f453b23b38a31956b1eeea9d876b8603c39c6"


@pytest.fixture
async def seed_server(aiohttp_server: Any) -> tuple[TestServer, FakeBarkeepState]:
    """The situation of the seed's worked example: its clock, key, secret, repo and sha."""
    state = FakeBarkeepState(clock=lambda: SEED_TIME + 10)
    state.add_user("APIKEY", "APISECRET")
    state.add_commit("project51", "9df81d")
    return await aiohttp_server(make_app(state)), state


async def post(session: aiohttp.ClientSession, server: TestServer, path: str, **kwargs: Any) -> tuple[int, Any]:
    """(status, JSON body, or the text when it is not JSON, or None when empty)."""
    async with session.post(server.make_url(path), **kwargs) as resp:
        text = await resp.text()
    try:
        return resp.status, json.loads(text) if text else None
    except ValueError:
        return resp.status, text


def hand_signed(canonical: str, secret: str) -> str:
    return hmac.new(secret.encode(), canonical.encode(), hashlib.sha1).hexdigest()


async def test_the_seed_request_passes_the_signature_check(
    seed_server: tuple[TestServer, FakeBarkeepState], session: aiohttp.ClientSession
) -> None:
    server, _ = seed_server
    query = {"timestamp": str(SEED_TIME), "api_key": "APIKEY", "signature": SEED_SIGNATURE}
    form = {"repo_name": "project51", "sha": "9df81d"}
    # Signed correctly, so the next check speaks: the example has no comment text.
    assert await post(session, server, "/api/comment", params=query, data=form) == (
        400,
        {"error": "Missing required parameter 'text'."},
    )
    # Everything in the query string is signed the same.
    assert (await post(session, server, "/api/comment", params={**query, **form}))[1] == {
        "error": "Missing required parameter 'text'."
    }
    tampered = {**query, "signature": SEED_SIGNATURE[:-1] + "7"}
    assert await post(session, server, "/api/comment", params=tampered, data=form) == (400, {"error": "Bad signature."})
    # A parameter the signature does not cover.
    assert (await post(session, server, "/api/comment", params=query, data={**form, "text": "x"}))[1] == {
        "error": "Bad signature."
    }


async def test_a_hand_signed_comment_is_stored(
    seed_server: tuple[TestServer, FakeBarkeepState], session: aiohttp.ClientSession
) -> None:
    server, state = seed_server
    canonical = (
        "POST /api/comment?api_key=APIKEY&repo_name=project51&sha=9df81d"
        "&text=a+b%20=%20c%20&%20d;%20%C3%A9t%C3%A9&timestamp=1335785915"
    )
    query = {"timestamp": str(SEED_TIME), "api_key": "APIKEY", "signature": hand_signed(canonical, "APISECRET")}
    form = {"repo_name": "project51", "sha": "9df81d", "text": "a+b = c & d; été"}
    assert await post(session, server, "/api/comment", params=query, data=form) == (200, None)
    assert [c.text for c in state.commit("project51", "9df81d").comments] == ["a+b = c & d; été"]


async def test_a_raw_semicolon_splits_parameters_as_in_rack(
    seed_server: tuple[TestServer, FakeBarkeepState], session: aiohttp.ClientSession
) -> None:
    server, state = seed_server
    state.add_user("K", "S")
    body = "repo_name=project51&sha=9df81d&text=one;two=2"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    await post(session, server, "/api/comment", params={"api_key": "K"}, data=body, headers=headers)
    assert state.requests[-1].form == {"repo_name": "project51", "sha": "9df81d", "text": "one", "two": "2"}


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({}, "No API key provided."),
        ({"api_key": ""}, "Bad API key provided."),
        ({"api_key": "nobody"}, "Bad API key provided."),
        ({"api_key": "APIKEY", "signature": "x"}, "Missing required parameter 'timestamp'."),
        ({"api_key": "APIKEY", "timestamp": "1335785915"}, "Missing required parameter 'signature'."),
        ({"api_key": "APIKEY", "timestamp": "-5", "signature": "x"}, "Bad timestamp."),
        ({"api_key": "APIKEY", "timestamp": "1335785926", "signature": "x"}, "Bad timestamp."),
        ({"api_key": "APIKEY", "timestamp": "1335785624", "signature": "x"}, "Timestamp too stale."),
        ({"api_key": "APIKEY", "timestamp": "1335785625", "signature": "x"}, "Bad signature."),
    ],
)
async def test_checks_in_the_servers_order(
    seed_server: tuple[TestServer, FakeBarkeepState], session: aiohttp.ClientSession, query: dict[str, str], error: str
) -> None:
    server, state = seed_server
    assert await post(session, server, "/api/comment", params=query) == (400, {"error": error})
    assert state.requests[-1].status == 400


async def test_admin_only_comes_after_a_good_signature(
    seed_server: tuple[TestServer, FakeBarkeepState], session: aiohttp.ClientSession
) -> None:
    server, state = seed_server
    url = "https://example.org/acme/widgets.git"
    canonical = f"POST /api/add_repo?api_key=APIKEY&timestamp=1335785915&url={url}"
    query = {"api_key": "APIKEY", "timestamp": str(SEED_TIME), "signature": hand_signed(canonical, "APISECRET")}
    forbidden = await post(session, server, "/api/add_repo", params=query, data={"url": url})
    assert forbidden == (403, {"error": "Admin only."})
    state.users["APIKEY"].admin = True
    assert await post(session, server, "/api/add_repo", params=query, data={"url": url}) == (
        202,
        "Repo widgets is scheduled to be cloned.",
    )
    assert "widgets" in state.repos


async def test_get_commit_route(server: TestServer, state: FakeBarkeepState, session: aiohttp.ClientSession) -> None:
    state.approve(REPO, SHA_A, name="Jane Doe", email="jane@example.org", at=1_700_000_000)
    async with session.get(server.make_url(f"/api/commits/{REPO}/9df8")) as resp:
        assert resp.status == 200
        assert await resp.json() == {
            "approved": True,
            "approved_by": "Jane Doe <jane@example.org>",
            "approved_at": 1_700_000_000,
            "comment_count": 0,
            "link": f"http://barkeep.test/commits/{REPO}/{SHA_A}",
        }
    async with session.get(server.make_url(f"/api/commits/{REPO}/{SHA_B}"), params={"fields": "approved,link"}) as resp:
        assert await resp.json() == {"approved": False, "link": f"http://barkeep.test/commits/{REPO}/{SHA_B}"}
    for path, error in [
        (f"/api/commits/{REPO}/3b42", f"Ambiguous commit in {REPO}: 3b42"),
        (f"/api/commits/{REPO}/0000", f"No such commit in {REPO}: 0000"),
        ("/api/commits/nope/0000", "No such repository: nope"),
    ]:
        async with session.get(server.make_url(path)) as resp:
            assert (resp.status, await resp.json()) == (404, {"error": error})


async def test_batch_route(server: TestServer, state: FakeBarkeepState, session: aiohttp.ClientSession) -> None:
    form = {"shas": "9df8,3b42b,", "fields": "comment_count"}  # a trailing comma is dropped, as in Ruby
    status, data = await post(session, server, f"/api/commits/{REPO}", data=form)
    assert (status, data) == (200, {SHA_A: {"comment_count": 0}, SHA_B: {"comment_count": 0}})
    async with session.post(server.make_url(f"/api/commits/{REPO}")) as resp:
        assert resp.status == 500  # `nil.split` on the real server
