from __future__ import annotations

import json

import pytest

from hookshot_py.barkeep.errors import BarkeepError, error_from_response


def body(message: str, key: str = "error") -> bytes:
    return json.dumps({key: message}).encode()


@pytest.mark.parametrize(
    ("status", "message", "kind"),
    [
        (400, "No API key provided.", "auth"),
        (400, "Bad API key provided.", "auth"),
        (400, "Bad signature.", "auth"),
        (403, "The demo user is not allowed to make API requests.", "auth"),
        (400, "Bad timestamp.", "clock_skew"),
        (400, "Timestamp too stale.", "stale"),
        (403, "Admin only.", "admin_only"),
        (404, "No such repository: widgets", "not_found"),
        (404, "No such commit in widgets: abc123", "not_found"),
        (404, "Ambiguous commit in widgets: ab", "ambiguous"),
        (400, "Missing required parameter 'text'.", "bad_request"),
        (400, "No such commit.", "bad_request"),
        (500, "boom", "unavailable"),
        (503, "down", "unavailable"),
        (429, "slow down", "unavailable"),
    ],
)
def test_classification(status: int, message: str, kind: str) -> None:
    err = error_from_response(status, body(message))
    assert (err.status, err.message, err.kind) == (status, message, kind)


def test_not_found_and_ambiguous_take_repo_and_sha_from_the_message() -> None:
    err = error_from_response(404, body("Ambiguous commit in my-repo: 3b42"), repo="ignored")
    assert (err.repo, err.sha) == ("my-repo", "3b42")
    err = error_from_response(404, body("No such commit in my-repo: deadbeef"))
    assert (err.repo, err.sha) == ("my-repo", "deadbeef")
    assert err.describe() == "Barkeep has no commit deadbeef in my-repo."
    err = error_from_response(404, body("No such repository: gone"))
    assert err.repo == "gone" and err.describe() == "Barkeep does not track a repository named gone."


def test_older_servers_message_key_is_read() -> None:
    err = error_from_response(404, body("Bad repo name or commit not found.", key="message"))
    assert err.message == "Bad repo name or commit not found." and err.kind == "not_found"
    assert err.describe() == "Barkeep could not find that: Bad repo name or commit not found."


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"<html><body>Internal Server Error</body></html>", "HTTP 500"),
        (b"", "HTTP 500"),
        (b"[]", "HTTP 500"),
        (b'{"error": 5}', "HTTP 500"),
        (b"Missing required parameter 'url'.", "Missing required parameter 'url'."),
        (b"\xff\xfe garbage", "\ufffd\ufffd garbage"),
    ],
)
def test_bodies_of_any_shape(raw: bytes, message: str) -> None:
    assert error_from_response(500, raw).message == message


def test_describe_texts_for_the_clock() -> None:
    future = error_from_response(400, body("Bad timestamp."))
    assert future.describe().startswith(
        "Barkeep refused the request timestamp: this server's clock seems to be ahead of Barkeep's."
    )
    stale = error_from_response(400, body("Timestamp too stale."))
    assert "this server's clock is behind Barkeep's by more than 5 minutes." in stale.describe()
    assert future.is_clock_skew and stale.is_clock_skew
    assert not error_from_response(400, body("Bad signature.")).is_clock_skew


@pytest.mark.parametrize(
    ("err", "text"),
    [
        (BarkeepError(400, "Bad API key provided.", "auth", instance="bk.example.org"),
         "Barkeep at bk.example.org does not know the configured API key"),
        (BarkeepError(400, "Bad signature.", "auth"), "the configured API secret does not match the API key"),
        (BarkeepError(403, "Admin only.", "admin_only"), "Only a Barkeep admin can do that"),
        (BarkeepError(404, "Ambiguous commit in r: ab", "ambiguous", repo="r", sha="ab"),
         "ab matches more than one commit in r: give more characters of the sha."),
        (BarkeepError(400, "No such commit.", "bad_request"), "Barkeep could not do that: No such commit."),
        (BarkeepError(0, "'xyz' is not a commit sha", "bad_request"), "'xyz' is not a commit sha."),
        (BarkeepError(0, "Connection refused", "unavailable", instance="h:1"),
         "Could not reach Barkeep at h:1: Connection refused. Try again later."),
        (BarkeepError(502, "HTTP 502", "unavailable"), "Barkeep failed to answer (HTTP 502). Try again later."),
        (BarkeepError(200, "Barkeep returned a body that is not JSON", "unavailable"),
         "Barkeep gave an answer the bridge does not understand: Barkeep returned a body that is not JSON."),
    ],
)
def test_describe(err: BarkeepError, text: str) -> None:
    assert text in err.describe()


def test_is_an_exception_with_a_readable_str() -> None:
    err = BarkeepError(403, "Admin only.", "admin_only")
    assert isinstance(err, Exception)
    assert str(err) == "admin_only (403): Admin only."
