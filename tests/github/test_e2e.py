"""GitHub end to end: a connection made over REST, the hook the bridge registers on the fake
GitHub, signed deliveries into a real Synapse room, and refused ones posting nothing."""

from __future__ import annotations

import json
import secrets
from typing import Any

from fakes.github import FakeGitHubState, deliver
from hookshot_py.github.state import DEFAULT_HOOKS, EVENT_TYPE, github_events_for_hooks
from hookshot_py.forges.inbound import sign_sha1
from support.fixtures import room_with_bot
from support.helpers import eventually, http, is_notice_with, wait_state

from .conftest import GitHubBridge, payload, rest


def bodies(events: list[dict[str, Any]], part: str) -> list[str]:
    return [
        e["content"]["body"] for e in events
        if e.get("type") == "m.room.message" and part in str(e.get("content", {}).get("body", ""))
    ]


def fresh_repo(gh: FakeGitHubState) -> str:
    """A new repository: alice administers it, bob may write, carol may read."""
    name = f"repo-{secrets.token_hex(4)}"
    gh.add_repo("octo-org", name, permissions={"alice": "admin", "bob": "write", "carol": "read"})
    return name


async def connect(bridge: GitHubBridge, room: str, user_id: str, repo: str, **state: Any) -> tuple[int, Any]:
    body = {"org": "octo-org", "repo": repo, **state}
    return await rest(bridge, "PUT", f"/{room}/connections/{EVENT_TYPE}", user_id, body)


async def test_rest_connection_then_signed_deliveries_reach_the_room(gh_bridge: GitHubBridge, make_user: Any) -> None:
    gh = gh_bridge.gh
    repo = fresh_repo(gh)
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    await gh_bridge.login(alice.user_id, "alice")

    status, body = await connect(gh_bridge, room, alice.user_id, repo)
    assert status == 200, body
    assert body["type"] == "GithubRepo" and body["service"] == "github"
    assert body["config"]["enableHooks"] == list(DEFAULT_HOOKS)
    assert "warning" not in body
    assert await wait_state(alice, room, EVENT_TYPE, f"octo-org/{repo}") == body["config"]

    [hook] = gh.hooks_for("octo-org", repo)
    assert hook.config["url"] == gh_bridge.webhook_url
    assert hook.config["content_type"] == "json" and hook.active
    assert hook.events == github_events_for_hooks(DEFAULT_HOOKS)
    secret = hook.secret
    assert secret and secret not in json.dumps(await alice.get_room_state(room))
    row = await gh_bridge.services.db.fetchrow("SELECT secret_ciphertext, hook_id FROM forge_webhooks")
    assert secret.encode() not in bytes(row["secret_ciphertext"]) and row["hook_id"] == str(hook.id)

    # GitHub pings a new hook at once: the ping is verified and acknowledged in the room.
    await gh.drain()
    assert [d.status for d in gh.deliveries] == [200]
    await alice.wait_for_message(room, is_notice_with(f"🏓 GitHub webhook for octo-org/{repo} is set up"))

    record = await deliver(gh_bridge.webhook_url, "issues", payload("issues.opened", repo), secret, hook_id=hook.id)
    assert record.status == 200
    msg = await alice.wait_for_message(room, is_notice_with("created new issue"))
    content = msg["content"]
    assert content["msgtype"] == "m.notice" and content["format"] == "org.matrix.custom.html"
    assert content["external_url"] == "https://github.com/octo-org/hello-world/issues/42"
    assert "<strong>" in content["formatted_body"]

    # Refused: wrong secret, no signature, a SHA-256 header that does not match even with a
    # valid SHA-1 beside it (no downgrade). Nothing of these may reach the room.
    bad = payload("issues.opened", repo, "FORGED-ISSUE")
    assert (await deliver(gh_bridge.webhook_url, "issues", bad, "not-the-secret")).status == 401
    assert (await deliver(gh_bridge.webhook_url, "issues", bad, None)).status == 401
    raw = json.dumps(bad).encode()
    status, answer = await http(
        "POST", gh_bridge.webhook_url, data=raw,
        headers={"Content-Type": "application/json", "X-GitHub-Event": "issues", "X-GitHub-Delivery": "d-x",
                 "X-Hub-Signature-256": "sha256=" + "0" * 64, "X-Hub-Signature": sign_sha1(secret, raw)},
    )
    assert status == 401 and answer["errcode"] == "HS_BAD_TOKEN"

    # The same delivery twice: both acknowledged, one message.
    dup = payload("issues.opened", repo, "DUPLICATED-ISSUE")
    first = await deliver(gh_bridge.webhook_url, "issues", dup, secret, "delivery-dup-1", hook_id=hook.id)
    again = await deliver(gh_bridge.webhook_url, "issues", dup, secret, "delivery-dup-1", hook_id=hook.id)
    assert (first.status, again.status) == (200, 200)
    sentinel = payload("issues.opened", repo, "SENTINEL-ISSUE")
    assert (await deliver(gh_bridge.webhook_url, "issues", sentinel, secret)).status == 200
    await alice.wait_for_message(room, is_notice_with("SENTINEL-ISSUE"))
    events = await alice.messages(room)
    assert len(bodies(events, "DUPLICATED-ISSUE")) == 1
    assert bodies(events, "FORGED-ISSUE") == []


async def test_hook_is_shared_edited_narrowed_and_deleted_with_the_last_connection(
    gh_bridge: GitHubBridge, make_user: Any
) -> None:
    gh = gh_bridge.gh
    repo = fresh_repo(gh)
    alice = await make_user("alice")
    room1, room2 = await room_with_bot(alice), await room_with_bot(alice, name="second")
    await gh_bridge.login(alice.user_id, "alice")

    status, conn1 = await connect(gh_bridge, room1, alice.user_id, repo, enableHooks=["issue"])
    assert status == 200, conn1
    [hook] = gh.hooks_for("octo-org", repo)
    secret = hook.secret
    assert hook.events == github_events_for_hooks(["issue"])

    # Enabling push edits the hook: add_events, with the secret sent again.
    status, patched = await rest(gh_bridge, "PATCH", f"/{room1}/connections/{conn1['id']}", alice.user_id,
                                 {"enableHooks": ["issue", "push"]})
    assert status == 200, patched
    [edit] = gh.requests_to("PATCH", f"/hooks/{hook.id}")
    assert edit.body["add_events"] == ["push"] and "remove_events" not in edit.body
    assert edit.body["config"]["secret"] == secret and gh.secret_drops == []
    assert "push" in hook.events

    # A second room on the same repository (another case) shares the hook: events are the union.
    status, conn2 = await rest(gh_bridge, "PUT", f"/{room2}/connections/{EVENT_TYPE}", alice.user_id,
                               {"org": "Octo-Org", "repo": repo.upper(), "enableHooks": ["issue.comment"]})
    assert status == 200, conn2
    assert len(gh.hooks_for("octo-org", repo)) == 1
    assert hook.events == github_events_for_hooks(["issue", "push", "issue.comment"])
    assert hook.secret == secret

    # One delivery reaches both rooms, each filtered by its own enableHooks.
    await gh.drain()
    comment = payload("issue_comment.created", repo)
    assert (await deliver(gh_bridge.webhook_url, "issue_comment", comment, secret)).status == 200
    await alice.wait_for_message(room2, is_notice_with("[commented]("))
    push = payload("push", repo)
    assert (await deliver(gh_bridge.webhook_url, "push", push, secret)).status == 200
    await alice.wait_for_message(room1, is_notice_with("** pushed "))
    assert bodies(await alice.messages(room1), "[commented](") == []
    assert bodies(await alice.messages(room2), "** pushed ") == []

    # Removing room 1's connection narrows the hook to what room 2 still needs.
    status, _ = await rest(gh_bridge, "DELETE", f"/{room1}/connections/{conn1['id']}", alice.user_id)
    assert status == 200
    assert hook.events == github_events_for_hooks(["issue.comment"])
    assert gh.hooks_for("octo-org", repo) == [hook]

    # Removing the last connection deletes the hook and forgets its secret.
    status, _ = await rest(gh_bridge, "DELETE", f"/{room2}/connections/{conn2['id']}", alice.user_id)
    assert status == 200
    assert gh.hooks_for("octo-org", repo) == []
    assert gh.requests_to("DELETE", f"/hooks/{hook.id}")
    assert await gh_bridge.services.db.fetchval("SELECT count(*) FROM forge_webhooks") == 0
    assert (await deliver(gh_bridge.webhook_url, "push", push, secret)).status == 401


async def test_state_removed_by_hand_deletes_the_hook_with_the_registrants_token(
    gh_bridge: GitHubBridge, make_user: Any
) -> None:
    gh = gh_bridge.gh
    repo = fresh_repo(gh)
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    await gh_bridge.login(alice.user_id, "alice")
    status, body = await connect(gh_bridge, room, alice.user_id, repo)
    assert status == 200, body
    assert len(gh.hooks_for("octo-org", repo)) == 1
    await alice.send_state(room, EVENT_TYPE, f"octo-org/{repo}", {})

    async def hook_gone() -> bool:
        return gh.hooks_for("octo-org", repo) == []

    await eventually(hook_gone)


async def test_writer_without_admin_gets_manual_setup_and_its_secret_verifies(
    gh_bridge: GitHubBridge, make_user: Any
) -> None:
    gh = gh_bridge.gh
    repo = fresh_repo(gh)
    bob = await make_user("bob")
    room = await room_with_bot(bob)
    await gh_bridge.login(bob.user_id, "bob")
    status, body = await connect(gh_bridge, room, bob.user_id, repo, enableHooks=["issue", "push"])
    assert status == 200, body
    assert gh.hooks_for("octo-org", repo) == []
    message = body["warning"]["message"]
    record = await gh_bridge.services.db.fetchrow("SELECT hook_id, events FROM forge_webhooks")
    assert record["hook_id"] is None and record["events"] == github_events_for_hooks(["issue", "push"])
    secret = await gh_bridge.integration.hooks.secret_for(f"octo-org/{repo}")
    assert secret and secret in message and gh_bridge.webhook_url in message
    assert "application/json" in message and "issues, ... " not in message
    for event in github_events_for_hooks(["issue", "push"]):
        assert event in message

    assert (await deliver(gh_bridge.webhook_url, "push", payload("push", repo), secret)).status == 200
    await bob.wait_for_message(room, is_notice_with("** pushed "))


async def test_access_is_checked_against_github(gh_bridge: GitHubBridge, make_user: Any) -> None:
    repo = fresh_repo(gh_bridge.gh)
    carol, dave = await make_user("carol"), await make_user("dave")
    room = await room_with_bot(carol)
    await gh_bridge.login(carol.user_id, "carol")

    status, body = await connect(gh_bridge, room, carol.user_id, repo)
    assert status == 403 and body["errcode"] == "HS_FORBIDDEN_USER"
    assert "write or admin access" in body["error"] and "read" in body["error"]

    room_d = await room_with_bot(dave)
    status, body = await connect(gh_bridge, room_d, dave.user_id, repo)
    assert status == 403 and "not logged in to GitHub" in body["error"]

    await gh_bridge.login(dave.user_id, "dave")
    status, body = await connect(gh_bridge, room_d, dave.user_id, "secret")
    assert status == 403 and "Cannot access octo-org/secret" in body["error"]
    status, body = await connect(gh_bridge, room_d, dave.user_id, "../x")
    assert status == 400 and body["validationErrors"][0]["path"] == "/repo"
    assert gh_bridge.gh.hooks == {}

    status, types = await rest(gh_bridge, "GET", "/connectiontypes")
    assert types["GithubRepo"] == {
        "type": "GithubRepo", "eventType": EVENT_TYPE, "service": "github", "botUserId": "@hookshot:hookshot.test",
    }


async def test_push_deliveries_are_announced_to_push_listeners(gh_bridge: GitHubBridge, make_user: Any) -> None:
    """Other services (Barkeep) learn of pushes to a connected repository, even when the room
    does not post pushes (push is off by default)."""
    gh = gh_bridge.gh
    repo = fresh_repo(gh)
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    await gh_bridge.login(alice.user_id, "alice")
    assert (await connect(gh_bridge, room, alice.user_id, repo))[0] == 200
    [hook] = gh.hooks_for("octo-org", repo)
    seen: list[tuple[str, str, str]] = []

    async def listener(room_id: str, name: str, body: dict[str, Any]) -> None:
        seen.append((room_id, name, body["after"]))

    gh_bridge.services.push_listeners.append(listener)
    push = payload("push", repo)
    assert (await deliver(gh_bridge.webhook_url, "push", push, hook.secret, hook_id=hook.id)).status == 200
    assert seen == [(room, push["repository"]["full_name"], push["after"])]
    assert (await deliver(gh_bridge.webhook_url, "push", push, "wrong", hook_id=hook.id)).status == 401
    assert len(seen) == 1, "an unverified push is nobody's news"


async def test_enable_hooks_edited_by_hand_updates_the_hook(gh_bridge: GitHubBridge, make_user: Any) -> None:
    gh = gh_bridge.gh
    repo = fresh_repo(gh)
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    await gh_bridge.login(alice.user_id, "alice")
    status, body = await connect(gh_bridge, room, alice.user_id, repo)
    assert status == 200, body
    [hook] = gh.hooks_for("octo-org", repo)
    assert "push" not in hook.events
    edited = {**body["config"], "enableHooks": [*body["config"]["enableHooks"], "push"]}
    await alice.send_state(room, EVENT_TYPE, f"octo-org/{repo}", edited)

    async def hook_has_push() -> bool:
        [current] = gh.hooks_for("octo-org", repo)
        return "push" in current.events

    await eventually(hook_has_push)
    [current] = gh.hooks_for("octo-org", repo)
    assert current.secret == hook.secret, "the secret is sent again with every edit"
