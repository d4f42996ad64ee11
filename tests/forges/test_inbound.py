"""What forge routes do before trusting a body: signatures and tokens over the raw bytes, names
found without parsing, bounded JSON. And the declared models' errors."""

from __future__ import annotations

import json
from typing import Annotated
from urllib.parse import urlencode

import msgspec
import pytest

from hookshot_py.errors import ApiError
from hookshot_py.forges.inbound import (
    MAX_JSON_DEPTH,
    form_payload,
    hub_signature,
    parse_json_object,
    string_values,
    token_matches,
    verify_hub_signature,
    verify_off_loop,
    verify_signature,
)
from hookshot_py.forges.models import Model, ModelError, convert, decode, field_description

# CONTRACTS.md: JIRA's admin webhooks sign with `X-Hub-Signature: sha256=...` (no `-256`).
JIRA_SECRET = "hookshot-test-secret"
JIRA_BODY = b'{"timestamp":1740820500123,"webhookEvent":"jira:issue_created","issue":{"id":"10042","key":"WID-42"}}'
JIRA_SIG = "sha256=4e89d5e58c49465df54bbc1cd10cea7baca68f96e6255a2f89492fb3e56c7328"


def test_the_jira_vector() -> None:
    assert hub_signature(JIRA_SECRET, JIRA_BODY) == JIRA_SIG
    assert verify_hub_signature(JIRA_SECRET, JIRA_BODY, JIRA_SIG)
    assert not verify_hub_signature(JIRA_SECRET, JIRA_BODY + b" ", JIRA_SIG)
    assert not verify_hub_signature(JIRA_SECRET, JIRA_BODY, JIRA_SIG, algorithms=("sha1",))
    assert not verify_hub_signature("", JIRA_BODY, hub_signature("", JIRA_BODY))


async def test_large_bodies_are_hashed_off_the_loop_and_every_secret_is_tried() -> None:
    body = b"x" * (2 * 1024 * 1024)
    sig = hub_signature("second", body)
    assert await verify_off_loop(["first", "second"], body, sig, None) == "second"
    assert await verify_off_loop(["first"], body, sig, None) is None
    assert verify_signature("second", body, None, hub_signature("second", body, "sha1"))


def test_tokens_compare_exactly() -> None:
    assert token_matches("s3cret", "s3cret")
    assert not token_matches("s3cre", "s3cret") and not token_matches(None, "s3cret")
    assert not token_matches("", "")


def test_names_are_found_without_parsing() -> None:
    body = json.dumps(
        {"pull_request": {"head": {"repo": {"full_name": "fork/x"}}}, "repository": {"full_name": 'o/r"q'}}
    ).encode()
    assert string_values(body, "full_name") == ["fork/x", 'o/r"q']
    assert string_values(body, "full_name", limit=1) == ["fork/x"]
    form = urlencode({"payload": json.dumps({"repository": {"full_name": "Octo/Repo"}})}).encode()
    assert string_values(form, "full_name", form=True) == ["Octo/Repo"]
    assert string_values(b'{"full_name": 5, "x": "full_name"}', "full_name") == []
    assert string_values(b'"full_name":"' + b"a" * 400 + b'"', "full_name") == [], "too long to be a name"


def test_form_payloads() -> None:
    assert form_payload(urlencode({"payload": "{}"}).encode()) == b"{}"
    with pytest.raises(ApiError, match="`payload` field"):
        form_payload(b"payload=")


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"{nope", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1]", "must be a JSON object"),
        (b'{"a": NaN}', "not valid JSON"),
        (b'{"a": ' + b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1) + b"}", "nested deeper"),
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper"),
    ],
)
def test_bounded_json_refuses_with_400(raw: bytes, problem: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_json_object(raw)
    assert info.value.status == 400 and problem in info.value.error


def test_bounded_json_accepts_deep_enough() -> None:
    nested = b'{"a": ' + b"[" * (MAX_JSON_DEPTH - 1) + b"]" * (MAX_JSON_DEPTH - 1) + b"}"
    assert "a" in parse_json_object(nested)


class Config(Model, frozen=True):
    url: str = ""


class Hook(Model, frozen=True):
    what = "hook"
    id: int
    count: Annotated[int, msgspec.Meta(ge=0, description="a count")] = 0
    config: Config = Config()


def test_model_errors_name_the_field() -> None:
    assert convert({"id": 1, "extra": [1, 2]}, Hook) == Hook(1)
    cases = [
        ([], "", "Expected `object`, got `array`"),
        ({}, "id", "missing"),
        ({"id": "1"}, "id", "Expected `int`, got `str`"),
        ({"id": True}, "id", "Expected `int`, got `bool`"),
        ({"id": 1, "config": {"url": 5}}, "config.url", "Expected `str`, got `int`"),
        ({"id": 1, "count": -1}, "count", "Expected `int` >= 0"),
    ]
    for data, path, problem in cases:
        with pytest.raises(ModelError) as info:
            convert(data, Hook)
        assert (info.value.path, info.value.problem) == (path, problem), data
    with pytest.raises(ModelError) as info:
        convert([{"id": 1}, {"id": "x"}], list[Hook])
    assert info.value.path == "[1].id" and info.value.field == "id"
    assert decode(b'{"id": 2}', Hook).id == 2
    with pytest.raises(ModelError, match="not JSON"):
        decode(b"<html>", Hook)
    assert field_description(Hook, "count") == "a count" and field_description(Hook, "id") is None
