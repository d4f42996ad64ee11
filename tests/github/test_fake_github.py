"""The fake's own delivery helper, which other tests rely on to look like GitHub."""

import json

from fakes.github import deliver
from hookshot_py.forges.inbound import verify_signature

from .conftest import Receiver


async def test_deliver_signs_and_labels_like_github(receiver: Receiver) -> None:
    record = await deliver(receiver.url, "push", {"ref": "refs/heads/main"}, "s", "guid-1", hook_id=9)
    assert record.status == 200 and record.error is None
    got = receiver.received[0]
    assert json.loads(got.body) == {"ref": "refs/heads/main"}
    assert got.headers["X-GitHub-Delivery"] == "guid-1"
    assert got.headers["X-GitHub-Event"] == "push"
    assert got.headers["X-GitHub-Hook-ID"] == "9"
    assert got.headers["Content-Type"] == "application/json"
    assert verify_signature("s", got.body, got.headers["X-Hub-Signature-256"], None)
    assert verify_signature("s", got.body, None, got.headers["X-Hub-Signature"])


async def test_deliver_without_secret_sends_no_signature(receiver: Receiver) -> None:
    record = await deliver(receiver.url, "ping", {"zen": "z"}, None)
    assert record.status == 200
    headers = receiver.received[0].headers
    assert "X-Hub-Signature-256" not in headers and "X-Hub-Signature" not in headers
    assert len(headers["X-GitHub-Delivery"]) == 36  # a GUID


async def test_deliver_reports_connection_errors() -> None:
    record = await deliver("http://127.0.0.1:1/github/webhook", "ping", {}, "s")
    assert record.status is None and record.error is not None
