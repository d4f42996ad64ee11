from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from multidict import CIMultiDict

from fakes.gitflic import deliver
from hookshot_py.gitflic.delivery import DeliveryError, parse_delivery, project_key_of
from hookshot_py.gitflic.inbound import verify_secret

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize(
    "headers",
    [
        {"Gitflic-Webhook-Secret": "s3cret"},
        {"gitflic-webhook-secret": "s3cret"},
        CIMultiDict({"GITFLIC-WEBHOOK-SECRET": "s3cret"}),
        {"Authorization": "token s3cret"},
        {"Authorization": "Bearer s3cret"},
        {"Authorization": "s3cret"},
        {"Gitflic-Webhook-Secret": "wrong", "Authorization": "token s3cret"},
    ],
)
def test_secret_accepted(headers: Any) -> None:
    assert verify_secret(headers, "s3cret") is True


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Gitflic-Webhook-Secret": ""},
        {"Gitflic-Webhook-Secret": "s3cre"},
        {"Gitflic-Webhook-Secret": "s3cret2"},
        {"Gitflic-Webhook-Secret": "S3CRET"},
        {"Authorization": "token wrong"},
        {"X-Gitlab-Token": "s3cret"},
    ],
)
def test_secret_refused(headers: Any) -> None:
    assert verify_secret(headers, "s3cret") is False


def test_empty_expected_secret_matches_nothing() -> None:
    assert verify_secret({"Gitflic-Webhook-Secret": ""}, "") is False


def test_non_ascii_secret() -> None:
    assert verify_secret({"Gitflic-Webhook-Secret": "секрет"}, "секрет") is True
    assert verify_secret({"Gitflic-Webhook-Secret": "секрот"}, "секрет") is False


def test_parse_fixture() -> None:
    delivery = parse_delivery((FIXTURES / "issue_create.json").read_bytes())
    assert delivery.action == "ISSUE_CREATE"
    assert delivery.project_key == "acme/widgets"
    assert delivery.project_id == "5f0c2b7e-1d3a-4c8e-9b61-2a7d4e9f0c13"
    assert delivery.raw["issue"]["local_id"] == 12


def test_parse_documented_test_webhook_has_only_a_project_id() -> None:
    delivery = parse_delivery(b'{"action": "TEST_WEBHOOK", "project_id": "a34c945a-aaaa-aaaa-aaaa-78e5ae992ef4"}')
    assert delivery.action == "TEST_WEBHOOK"
    assert delivery.project_key is None
    assert delivery.project_id == "a34c945a-aaaa-aaaa-aaaa-78e5ae992ef4"


def test_project_key_is_lower_cased_and_found_in_other_places() -> None:
    assert project_key_of({"project": {"owner_alias": "ACME", "alias": "Widgets"}}) == "acme/widgets"
    assert project_key_of({"project": {"ownerAlias": "acme", "alias": "w"}}) == "acme/w"
    assert (
        project_key_of({"project": {"http_transport_url": "https://git.example.org/project/Team/App.git"}})
        == "team/app"
    )
    assert project_key_of({"owner_alias": "a", "project_alias": "b"}) == "a/b"
    assert project_key_of({"project": {"alias": "only-alias"}}) is None
    assert project_key_of({"project": "acme/widgets"}) is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"project_id": "x"}', "no `action`"),
        (b'{"action": "", "project_id": "x"}', "no `action`"),
        (b'{"action": 5, "project_id": "x"}', "no `action`"),
        (b'{"action": "ISSUE_CREATE"}', "does not identify a project"),
        (b'{"action": "ISSUE_CREATE", "project": {"title": "no alias"}}', "does not identify a project"),
    ],
)
def test_parse_refuses(raw: bytes, message: str) -> None:
    with pytest.raises(DeliveryError, match=message):
        parse_delivery(raw)


def test_action_is_normalised() -> None:
    assert parse_delivery(b'{"action": " issue_create ", "project_id": "p"}').action == "ISSUE_CREATE"


async def test_deliver_round_trip_through_aiohttp_headers(aiohttp_server: Any) -> None:
    """deliver() posts like GitFlic; a receiver built on verify_secret/parse_delivery reads it."""
    received: list[Any] = []

    async def receive(request: web.Request) -> web.Response:
        raw = await request.read()
        if not verify_secret(request.headers, "hook-secret"):
            return web.json_response({"ok": False}, status=401)
        received.append(parse_delivery(raw))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/gitflic/webhook", receive)
    server = await aiohttp_server(app)
    url = str(server.make_url("/gitflic/webhook"))
    payload = json.loads((FIXTURES / "merge.json").read_text())

    assert (await deliver(url, "MERGE", payload, "hook-secret"))[0] == 200
    assert (await deliver(url, "MERGE", payload, "wrong"))[0] == 401
    assert (await deliver(url, "MERGE", payload, None))[0] == 401
    assert [d.action for d in received] == ["MERGE"]
    assert received[0].project_key == "acme/widgets"
