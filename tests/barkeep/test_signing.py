from __future__ import annotations

import hashlib
import hmac

import pytest

from fakes.barkeep import ruby_uri_encode as fake_ruby_uri_encode
from hookshot_py.barkeep.signing import canonical_string, ruby_uri_encode, sign, signed_params

# The worked example of seed 004 (Barkeep's REST API wiki page).
SEED_PARAMS = {"repo_name": "project51", "sha": "9df81d"}
SEED_CANONICAL = "POST /api/comment?api_key=APIKEY&repo_name=project51&sha=9df81d&timestamp=1335785915"
SEED_SIGNATURE = "7a1f453b23b38a31956b1eeea9d876b8603c39c6"


def hmac_sha1(secret: str, text: str) -> str:
    return hmac.new(secret.encode(), text.encode(), hashlib.sha1).hexdigest()


def test_seed_worked_example_canonical_string() -> None:
    params = {**SEED_PARAMS, "timestamp": "1335785915", "api_key": "APIKEY"}
    assert canonical_string("POST", "/api/comment", params) == SEED_CANONICAL


def test_seed_worked_example_signature() -> None:
    params = {**SEED_PARAMS, "timestamp": "1335785915", "api_key": "APIKEY"}
    assert sign("POST", "/api/comment", params, "APISECRET") == SEED_SIGNATURE


def test_seed_worked_example_signed_params() -> None:
    out = signed_params("POST", "/api/comment", SEED_PARAMS, "APIKEY", "APISECRET", 1335785915)
    assert out == {
        "repo_name": "project51",
        "sha": "9df81d",
        "timestamp": "1335785915",
        "api_key": "APIKEY",
        "signature": SEED_SIGNATURE,
    }
    assert SEED_PARAMS == {"repo_name": "project51", "sha": "9df81d"}  # the input is left alone


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("project51", "project51"),
        ("hello world", "hello%20world"),
        ("a&b=c+d", "a&b=c+d"),
        ("x;y/z?q:r@s$t,u[v]w", "x;y/z?q:r@s$t,u[v]w"),
        ("-_.!~*'()", "-_.!~*'()"),
        ("100%", "100%25"),
        ("already%20encoded", "already%2520encoded"),
        ('#"<>\\^`{|}', "%23%22%3C%3E%5C%5E%60%7B%7C%7D"),
        ("line\nbreak\ttab", "line%0Abreak%09tab"),
        ("café", "caf%C3%A9"),
        ("日本", "%E6%97%A5%E6%9C%AC"),
        ("👍", "%F0%9F%91%8D"),
        ("", ""),
    ],
)
def test_ruby_uri_encode(value: str, escaped: str) -> None:
    assert ruby_uri_encode(value) == escaped


def test_ruby_uri_encode_agrees_with_the_fake_on_every_latin1_character() -> None:
    # Two implementations written separately (urllib's quote vs a byte table).
    text = "".join(chr(c) for c in range(256))
    assert ruby_uri_encode(text) == fake_ruby_uri_encode(text)


def test_ruby_uri_encode_keeps_exactly_the_contract_set() -> None:
    kept = {chr(c) for c in range(128) if ruby_uri_encode(chr(c)) == chr(c)}
    contract = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!~*'();/?:@&=+$,[]")
    assert kept == contract


def test_ruby_uri_encode_refuses_lone_surrogates() -> None:
    with pytest.raises(ValueError, match="not valid Unicode"):
        ruby_uri_encode("bad \ud800 text")


def test_canonical_string_escapes_values_not_keys_and_sorts_bytewise() -> None:
    params = {
        "text": "LGTM, but: a+b = c & d; 100% «sûr»",
        "b": "2",
        "B": "1",
        "a_b": "3",
        "a": "0",
    }
    assert canonical_string("post", "/api/comment", params) == (
        "POST /api/comment?B=1&a=0&a_b=3&b=2"
        "&text=LGTM,%20but:%20a+b%20=%20c%20&%20d;%20100%25%20%C2%ABs%C3%BBr%C2%BB"
    )


def test_canonical_string_leaves_out_the_signature() -> None:
    params = {"api_key": "k", "signature": "whatever", "timestamp": "1"}
    assert canonical_string("POST", "/api/add_repo", params) == "POST /api/add_repo?api_key=k&timestamp=1"


def test_canonical_string_without_parameters_has_no_question_mark() -> None:
    assert canonical_string("get", "/api/commits/r/abc", {}) == "GET /api/commits/r/abc"


def test_sign_is_hmac_sha1_of_the_canonical_string_with_form_fields() -> None:
    # Form fields and query parameters are signed alike: a comment with a file and line.
    params = {
        "repo_name": "project51",
        "sha": "9df81d",
        "text": "needs a test",
        "filename": "lib/app.rb",
        "line_number": "12",
        "api_key": "APIKEY",
        "timestamp": "1335785915",
    }
    canonical = (
        "POST /api/comment?api_key=APIKEY&filename=lib/app.rb&line_number=12&repo_name=project51"
        "&sha=9df81d&text=needs%20a%20test&timestamp=1335785915"
    )
    assert canonical_string("POST", "/api/comment", params) == canonical
    signature = sign("POST", "/api/comment", params, "APISECRET")
    assert signature == hmac_sha1("APISECRET", canonical)
    assert signature == signature.lower() and len(signature) == 40


def test_signed_params_replaces_a_stale_signature_and_timestamp() -> None:
    first = signed_params("POST", "/api/comment", SEED_PARAMS, "APIKEY", "APISECRET", 1335785915)
    again = signed_params("POST", "/api/comment", {**first, "timestamp": "1"}, "APIKEY", "APISECRET", 1335785915)
    assert again == first


def test_sign_uses_utf8_for_a_non_ascii_secret() -> None:
    params = {"api_key": "k", "timestamp": "5"}
    assert sign("POST", "/x", params, "sécret") == hmac_sha1("sécret", "POST /x?api_key=k&timestamp=5")
