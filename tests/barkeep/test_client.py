from __future__ import annotations

import asyncio
import socket
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from fakes.barkeep import FakeBarkeepState, make_app
from hookshot_py.barkeep.client import BarkeepClient, BarkeepError, Commit

from .conftest import REPO, SHA_A, SHA_B, SHA_C, Clock, MakeClient

TRICKY_TEXT = "LGTM; but a+b = c & d, 100% «sûr» #1 ✅\nnext line"


# -- reading commits (unsigned) ---------------------------------------------------------------------


async def test_get_commit_by_prefix_returns_the_full_sha(make_client: MakeClient, state: FakeBarkeepState) -> None:
    state.approve(REPO, SHA_B, name="Jane Doe", email="jane@example.org", at=1_699_999_000)
    state.add_comments(REPO, SHA_B, 3)
    commit = await make_client(None, None).get_commit(REPO, "3b42b")
    assert commit == Commit(
        sha=SHA_B,
        approved=True,
        approved_by="Jane Doe <jane@example.org>",
        approved_at=1_699_999_000,
        comment_count=3,
        link=f"http://barkeep.test/commits/{REPO}/{SHA_B}",
    )
    [request] = state.requests
    assert (request.method, request.path) == ("POST", f"/api/commits/{REPO}")
    assert request.form == {"shas": "3b42b"}
    assert request.query == {}  # unsigned: no api_key, timestamp or signature


async def test_get_commit_unapproved(make_client: MakeClient) -> None:
    commit = await make_client().get_commit(REPO, SHA_A.upper())
    assert commit.sha == SHA_A
    assert (commit.approved, commit.approved_by, commit.approved_at, commit.comment_count) == (False, None, None, 0)


async def test_get_commit_with_fields(make_client: MakeClient, state: FakeBarkeepState) -> None:
    state.approve(REPO, SHA_A)
    state.add_comments(REPO, SHA_A, 2)
    commit = await make_client().get_commit(REPO, SHA_A, fields=["approved"])
    assert state.requests[-1].form == {"shas": SHA_A, "fields": "approved"}
    assert commit.approved is True
    assert commit.comment_count == 0 and commit.link is None  # not asked for, so not known


async def test_get_commit_refuses_unknown_fields_before_sending(make_client: MakeClient, state: FakeBarkeepState) -> None:
    with pytest.raises(BarkeepError) as info:
        await make_client().get_commit(REPO, SHA_A, fields=["approval"])
    assert info.value.kind == "bad_request" and "approval" in info.value.message
    assert state.requests == []


async def test_unknown_commit(make_client: MakeClient) -> None:
    with pytest.raises(BarkeepError) as info:
        await make_client().get_commit(REPO, "deadbeef")
    err = info.value
    assert (err.status, err.kind, err.sha, err.repo) == (404, "not_found", "deadbeef", REPO)
    assert err.describe() == f"Barkeep at {err.instance} has no commit deadbeef in {REPO}."
    assert err.instance.startswith("127.0.0.1:")


async def test_unknown_repo(make_client: MakeClient) -> None:
    with pytest.raises(BarkeepError) as info:
        await make_client().get_commit("nope", SHA_A)
    assert info.value.kind == "not_found"
    assert "does not track a repository named nope" in info.value.describe()


async def test_ambiguous_prefix(make_client: MakeClient) -> None:
    with pytest.raises(BarkeepError) as info:
        await make_client().get_commit(REPO, "3b42")
    err = info.value
    assert (err.status, err.kind, err.sha) == (404, "ambiguous", "3b42")
    assert "give more characters" in err.describe()


async def test_get_commits_batch(make_client: MakeClient, state: FakeBarkeepState) -> None:
    state.approve(REPO, SHA_A, name="Ada", email="ada@example.org", at=1_699_000_000)
    state.add_comments(REPO, SHA_C, 1)
    found = await make_client().get_commits(REPO, [SHA_A, "3b42c"])
    assert set(found) == {SHA_A, SHA_C}
    assert found[SHA_A].approved_by == "Ada <ada@example.org>"
    assert found[SHA_C].comment_count == 1 and not found[SHA_C].approved
    assert state.requests[-1].form == {"shas": f"{SHA_A},3b42c"}


async def test_get_commits_names_the_missing_sha(make_client: MakeClient) -> None:
    missing = "f" * 40
    with pytest.raises(BarkeepError) as info:
        await make_client().get_commits(REPO, [SHA_A, missing, SHA_B])
    assert (info.value.kind, info.value.sha) == ("not_found", missing)


async def test_get_commits_of_nothing_sends_nothing(make_client: MakeClient, state: FakeBarkeepState) -> None:
    assert await make_client().get_commits(REPO, []) == {}
    assert state.requests == []


@pytest.mark.parametrize(
    ("repo", "sha"), [("", SHA_A), ("a/b", SHA_A), ("..", SHA_A), (REPO, "xyz"), (REPO, "3b4%"), (REPO, "")]
)
async def test_bad_repo_or_sha_is_refused_before_sending(
    make_client: MakeClient, state: FakeBarkeepState, repo: str, sha: str
) -> None:
    with pytest.raises(BarkeepError) as info:
        await make_client().get_commits(repo, [sha])
    assert (info.value.status, info.value.kind) == (0, "bad_request")
    assert state.requests == []


# -- comments (signed) ------------------------------------------------------------------------------


async def test_add_comment_signed(make_client: MakeClient, state: FakeBarkeepState) -> None:
    result = await make_client().add_comment(REPO, SHA_A, TRICKY_TEXT)
    assert result == {}
    [comment] = state.commit(REPO, SHA_A).comments
    assert comment.text == TRICKY_TEXT
    assert comment.user == "Jane Doe <jane@example.org>"
    assert (comment.filename, comment.line_number) == (None, None)
    [request] = state.requests
    assert request.status == 200
    assert set(request.query) == {"api_key", "timestamp", "signature"}
    assert request.query["api_key"] == "user-key" and request.query["timestamp"] == "1700000000"
    assert request.form == {"repo_name": REPO, "sha": SHA_A, "text": TRICKY_TEXT}


async def test_add_comment_on_a_file_line(make_client: MakeClient, state: FakeBarkeepState) -> None:
    await make_client().add_comment(REPO, SHA_A, "off by one?", filename="lib/my app.rb", line_number=12)
    [comment] = state.commit(REPO, SHA_A).comments
    assert (comment.filename, comment.line_number, comment.text) == ("lib/my app.rb", 12, "off by one?")
    assert state.requests[-1].form["filename"] == "lib/my app.rb"
    assert state.requests[-1].form["line_number"] == "12"


async def test_add_comment_under_a_path_prefix(
    aiohttp_server: Any, state: FakeBarkeepState, session: aiohttp.ClientSession, clock: Clock
) -> None:
    # Behind a reverse proxy at /barkeep, the server signs /barkeep/api/comment.
    server = await aiohttp_server(make_app(state, prefix="/barkeep"))
    client = BarkeepClient(str(server.make_url("/barkeep/")), session, "user-key", "user-secret", clock)
    await client.add_comment(REPO, SHA_B, "fine")
    assert state.requests[-1].path == "/barkeep/api/comment" and state.requests[-1].status == 200
    assert len(state.commit(REPO, SHA_B).comments) == 1


async def test_add_comment_on_an_unknown_commit(make_client: MakeClient) -> None:
    with pytest.raises(BarkeepError) as info:
        await make_client().add_comment(REPO, "a" * 40, "hello")
    assert (info.value.status, info.value.kind, info.value.message) == (400, "bad_request", "No such commit.")
    assert info.value.describe() == "Barkeep could not do that: No such commit."


@pytest.mark.parametrize(
    ("sha", "text", "kwargs"),
    [
        ("9df81d", "hi", {}),  # a prefix: the server wants the full sha
        (SHA_A, "   ", {}),
        (SHA_A, "hi", {"line_number": 3}),  # a line without a file
        (SHA_A, "hi", {"filename": "a.rb", "line_number": 0}),
        (SHA_A, "bad \ud800", {}),
    ],
)
async def test_add_comment_refuses_bad_input_before_sending(
    make_client: MakeClient, state: FakeBarkeepState, sha: str, text: str, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(BarkeepError) as info:
        await make_client().add_comment(REPO, sha, text, **kwargs)
    assert (info.value.status, info.value.kind) == (0, "bad_request")
    assert state.requests == []


async def test_without_credentials_signed_calls_are_refused(make_client: MakeClient, state: FakeBarkeepState) -> None:
    client = make_client(None, None)
    assert not client.can_sign
    with pytest.raises(BarkeepError) as info:
        await client.add_comment(REPO, SHA_A, "hi")
    assert (info.value.status, info.value.kind) == (0, "auth")
    assert "none is configured" in info.value.describe()
    assert state.requests == []


async def test_bad_secret(make_client: MakeClient, state: FakeBarkeepState) -> None:
    with pytest.raises(BarkeepError) as info:
        await make_client(api_secret="wrong-secret").add_comment(REPO, SHA_A, "hi")
    err = info.value
    assert (err.status, err.kind, err.message) == (400, "auth", "Bad signature.")
    assert "API secret" in err.describe()
    assert state.commit(REPO, SHA_A).comments == []


async def test_unknown_api_key(make_client: MakeClient) -> None:
    with pytest.raises(BarkeepError) as info:
        await make_client(api_key="who-am-i").add_comment(REPO, SHA_A, "hi")
    assert (info.value.kind, info.value.message) == ("auth", "Bad API key provided.")
    assert "does not know the configured API key" in info.value.describe()


async def test_clock_six_minutes_behind_is_stale(make_client: MakeClient, clock: Clock) -> None:
    client = make_client(clock=lambda: clock.now - 360)
    with pytest.raises(BarkeepError) as info:
        await client.add_comment(REPO, SHA_A, "hi")
    err = info.value
    assert (err.status, err.kind, err.message) == (400, "stale", "Timestamp too stale.")
    assert err.is_clock_skew
    assert "clock is behind Barkeep's by more than 5 minutes" in err.describe()


async def test_clock_exactly_five_minutes_behind_is_accepted(
    make_client: MakeClient, state: FakeBarkeepState, clock: Clock
) -> None:
    await make_client(clock=lambda: clock.now - 300).add_comment(REPO, SHA_A, "just in time")
    assert len(state.commit(REPO, SHA_A).comments) == 1


@pytest.mark.parametrize("ahead", [1, 120])
async def test_clock_ahead_is_refused(make_client: MakeClient, clock: Clock, ahead: int) -> None:
    with pytest.raises(BarkeepError) as info:
        await make_client(clock=lambda: clock.now + ahead).add_comment(REPO, SHA_A, "hi")
    err = info.value
    assert (err.status, err.kind, err.message) == (400, "clock_skew", "Bad timestamp.")
    assert err.is_clock_skew
    assert err.describe().startswith(
        "Barkeep refused the request timestamp: this server's clock seems to be ahead of Barkeep's"
    )


# -- add_repo (signed, admin) -----------------------------------------------------------------------


async def test_add_repo_needs_an_admin(make_client: MakeClient, state: FakeBarkeepState) -> None:
    with pytest.raises(BarkeepError) as info:
        await make_client().add_repo("https://github.com/acme/widgets.git")
    assert (info.value.status, info.value.kind) == (403, "admin_only")
    assert "Only a Barkeep admin" in info.value.describe()
    assert "widgets" not in state.repos


async def test_add_repo_as_admin(make_client: MakeClient, state: FakeBarkeepState) -> None:
    client = make_client("admin-key", "admin-secret")
    result = await client.add_repo("https://github.com/acme/widgets.git")
    assert result == {"message": "Repo widgets is scheduled to be cloned."}
    assert "widgets" in state.repos
    assert state.requests[-1].status == 202 and state.requests[-1].form == {"url": "https://github.com/acme/widgets.git"}
    with pytest.raises(BarkeepError) as info:
        await client.add_repo("git@example.org:other/widgets")
    assert (info.value.kind, info.value.status) == ("bad_request", 400)
    assert 'already a folder named "widgets"' in info.value.describe()


# -- broken servers and networks --------------------------------------------------------------------


async def test_unreachable_server(session: aiohttp.ClientSession) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = BarkeepClient(f"http://127.0.0.1:{port}", session)
    with pytest.raises(BarkeepError) as info:
        await client.get_commit(REPO, SHA_A)
    assert (info.value.status, info.value.kind) == (0, "unavailable")
    assert info.value.describe().startswith(f"Could not reach Barkeep at 127.0.0.1:{port}:")


async def broken_server(aiohttp_server: Any, status: int, body: bytes, content_type: str, delay: float = 0) -> TestServer:
    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(delay)
        return web.Response(status=status, body=body, content_type=content_type)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return await aiohttp_server(app)


@pytest.mark.parametrize(
    ("status", "body", "content_type", "message"),
    [
        (500, b"<h1>Internal Server Error</h1>", "text/html", "HTTP 500"),
        (502, b"", "text/plain", "HTTP 502"),
        (200, b"not json", "application/json", "not JSON"),
        (200, b"[1, 2]", "application/json", "unexpected commit list"),
        (200, b'{"abc": {"approved": "yes"}}', "application/json", "'approved' is not a boolean"),
        (200, b'{"abc": {"comment_count": -1}}', "application/json", "'comment_count' is not a count"),
        (200, b"{}", "application/json", "0 commits for one sha"),
    ],
)
async def test_broken_answers_are_unavailable(
    aiohttp_server: Any, session: aiohttp.ClientSession, status: int, body: bytes, content_type: str, message: str
) -> None:
    server = await broken_server(aiohttp_server, status, body, content_type)
    with pytest.raises(BarkeepError) as info:
        await BarkeepClient(str(server.make_url("")), session).get_commit(REPO, "abc")
    assert info.value.kind == "unavailable"
    assert message in info.value.message


async def test_timeout_is_unavailable(aiohttp_server: Any, session: aiohttp.ClientSession) -> None:
    server = await broken_server(aiohttp_server, 200, b"{}", "application/json", delay=2)
    client = BarkeepClient(str(server.make_url("")), session, timeout=aiohttp.ClientTimeout(total=0.2))
    with pytest.raises(BarkeepError) as info:
        await client.get_commits(REPO, [SHA_A])
    assert (info.value.status, info.value.kind, info.value.message) == (0, "unavailable", "the request timed out")


@pytest.mark.parametrize("url", ["barkeep.example.org", "ftp://barkeep.example.org", "http://"])
def test_base_url_must_be_http(url: str) -> None:
    with pytest.raises(ValueError, match="http"):
        BarkeepClient(url, session=None)  # type: ignore[arg-type]


# -- checking a key without side effects ------------------------------------------------------------


async def test_check_key_tells_admins_from_users_and_changes_nothing(make_client: MakeClient, state: FakeBarkeepState) -> None:
    assert await make_client("admin-key", "admin-secret").check_key() is True
    assert await make_client("user-key", "user-secret").check_key() is False
    assert set(state.repos) == {REPO}
    assert [r.status for r in state.requests_to("/api/add_repo")] == [400, 403]


async def test_check_key_raises_for_a_refused_key_or_timestamp(make_client: MakeClient, clock: Clock) -> None:
    with pytest.raises(BarkeepError) as info:
        await make_client("user-key", "not-the-secret").check_key()
    assert (info.value.kind, info.value.message) == ("auth", "Bad signature.")
    with pytest.raises(BarkeepError) as info:
        await make_client("user-key", "user-secret", clock=lambda: clock.now - 3600).check_key()
    assert info.value.kind == "stale"
    with pytest.raises(BarkeepError) as info:
        await make_client(None, None).check_key()
    assert info.value.kind == "auth" and info.value.status == 0
