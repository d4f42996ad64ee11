"""`/github/webhook` answers: the config-wide secret as a fallback, refusals before anything is
posted, form-encoded deliveries, and events we do not format."""

from __future__ import annotations

import json
import secrets
from typing import Any
from urllib.parse import urlencode

from fakes.github import deliver, signature_headers
from hookshot_py.github.state import EVENT_TYPE
from support.fixtures import room_with_bot
from support.helpers import eventually, http, is_notice_with

from .conftest import CONFIG_SECRET, GitHubBridge, payload


async def post(bridge: GitHubBridge, body: bytes, event: str, secret: str | None, content_type: str = "application/json",
               **headers: str) -> tuple[int, Any]:
    all_headers = {"Content-Type": content_type, "X-GitHub-Event": event,
                   "X-GitHub-Delivery": secrets.token_hex(8), **signature_headers(secret, body), **headers}
    return await http("POST", bridge.webhook_url, data=body, headers=all_headers)


async def test_config_secret_verifies_hand_made_connections(start_github_bridge: Any, make_user: Any) -> None:
    bridge = await start_github_bridge(webhook_secret=CONFIG_SECRET)
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    repo = f"hand-{secrets.token_hex(4)}"
    # Written by hand in a client: no hook registered, so only the config secret can verify.
    await alice.send_state(room, EVENT_TYPE, f"octo-org/{repo}", {"org": "octo-org", "repo": repo, "enableHooks": ["push", "issue"]})
    await alice.wait_for_message(room, lambda e: e.get("type") == EVENT_TYPE)

    async def connected() -> bool:
        return bool(bridge.integration.repo_type.connections_for(f"octo-org/{repo}"))

    await eventually(connected)
    assert (await deliver(bridge.webhook_url, "push", payload("push", repo), "wrong")).status == 401
    assert (await deliver(bridge.webhook_url, "push", payload("push", repo), CONFIG_SECRET)).status == 200
    await alice.wait_for_message(room, is_notice_with(f"for octo-org/{repo}"))

    # Form-encoded deliveries (a hook set up with that content type) are read too.
    body = urlencode({"payload": json.dumps(payload("push", repo))}).encode()
    status, answer = await post(bridge, body, "push", CONFIG_SECRET, "application/x-www-form-urlencoded")
    assert status == 200 and answer["posted"] == 1

    # A verified payload lacking what the message needs is a precise 400, and posts nothing.
    broken = payload("issues.opened", repo, "BROKEN-ISSUE")
    broken["issue"]["number"] = "forty-two"
    status, answer = await post(bridge, json.dumps(broken).encode(), "issues", CONFIG_SECRET)
    assert status == 400 and "issue.number: expected integer" in answer["error"]
    assert "BROKEN-ISSUE" not in str(await alice.messages(room))


async def test_refusals_and_events_we_do_not_post(start_github_bridge: Any) -> None:
    bridge = await start_github_bridge(webhook_secret=CONFIG_SECRET)
    repo = "not-connected"
    push = json.dumps(payload("push", repo)).encode()

    status, body = await post(bridge, push, "push", CONFIG_SECRET, **{"X-GitHub-Event": ""})
    assert status == 400 and "X-GitHub-Event" in body["error"]
    status, body = await post(bridge, b"{nope", "push", CONFIG_SECRET)
    assert status == 400 and "not valid JSON" in body["error"]
    status, body = await post(bridge, b"[1]", "push", CONFIG_SECRET)
    assert status == 400 and "JSON object" in body["error"]
    status, body = await post(bridge, b"payload=", "push", CONFIG_SECRET, "application/x-www-form-urlencoded")
    assert status == 400 and "`payload` field" in body["error"]

    # Verified, but for no connected room (even if malformed), not an event we format, or with
    # no repository.
    broken = payload("issues.opened", repo)
    broken["issue"]["number"] = "forty-two"
    status, body = await post(bridge, json.dumps(broken).encode(), "issues", CONFIG_SECRET)
    assert (status, body["posted"]) == (200, 0)
    status, body = await post(bridge, push, "push", CONFIG_SECRET)
    assert (status, body["posted"]) == (200, 0)
    deployment = json.dumps({"action": "created", "repository": {"full_name": f"octo-org/{repo}"}}).encode()
    status, body = await post(bridge, deployment, "deployment", CONFIG_SECRET)
    assert (status, body) == (200, {"ok": True, "handled": False})
    installation = json.dumps({"action": "created", "installation": {"id": 1}}).encode()
    status, body = await post(bridge, installation, "installation", CONFIG_SECRET)
    assert (status, body) == (200, {"ok": True, "handled": False})
    status, body = await post(bridge, installation, "installation", "wrong")
    assert status == 401


async def test_without_any_secret_every_delivery_is_refused(gh_bridge: GitHubBridge) -> None:
    push = json.dumps(payload("push", "unknown-repo")).encode()
    status, body = await post(gh_bridge, push, "push", "anything")
    assert status == 401 and body["errcode"] == "HS_BAD_TOKEN" and "No webhook secret" in body["error"]
