"""`/gitflic/webhook` through the real bridge: secret checks, routing, filtering, deduplication."""

from __future__ import annotations

import json
from typing import Any

from hookshot_py.gitflic.models import DELIVERED_ACTIONS, SUBSCRIPTION_FLAGS
from hookshot_py.gitflic.format import format_delivery
from hookshot_py.gitflic.delivery import dedupe_key
from hookshot_py.gitflic.delivery import parse_delivery
from support.fixtures import room_with_bot
from support.helpers import http

from .conftest import GitFlicBridge, fixture_names


async def connected(env: GitFlicBridge, make_user: Any, *rooms_events: list[str]) -> tuple[list[str], str]:
    """Rooms connected to the test's project with these events; returns (rooms, secret)."""
    alice = await make_user("alice")
    rooms = []
    for events in rooms_events:
        room = await room_with_bot(alice)
        status, body = await env.connect(room, alice.user_id, {"ownerAlias": env.owner, "projectAlias": "widgets", "events": events})
        assert status == 200, body
        rooms.append(room)
    return rooms, env.only_hook().secret


def expected(env: GitFlicBridge, payload: dict[str, Any]) -> str:
    delivery = parse_delivery(json.dumps(payload).encode())
    return format_delivery(delivery, instance_url="https://gitflic.ru", project=env.key)[0]


async def test_every_fixture_action_is_posted(gitflic_bridge, make_user):
    env = await gitflic_bridge()
    (room,), secret = await connected(env, make_user, list(SUBSCRIPTION_FLAGS))
    names = fixture_names()
    assert {env.payload(n)["action"] for n in names} == set(DELIVERED_ACTIONS)
    for name in names:
        payload = env.payload(name)
        status, text = await env.deliver(payload, secret)
        assert (status, json.loads(text)) == (200, {"ok": True, "rooms": 1}), name
    rows = await env.outbox(room)
    assert [r["content"]["body"] for r in rows] == [expected(env, env.payload(n)) for n in names]
    for name, row in zip(names, rows):
        content = row["content"]
        assert content["msgtype"] == "m.notice" and content["format"] == "org.matrix.custom.html", name
        assert "GitFlic event `" not in content["body"], f"{name} fell back to the generic message"
        assert f"/project/{env.owner}/widgets" in content["formatted_body"], f"{name} has no link to the project"
    # TEST_WEBHOOK names only the project id: routed through the id GitFlic gave the hook
    test_row = rows[names.index("test_webhook")]
    assert "GitFlic test delivery" in test_row["content"]["body"] and test_row["dedupe_key"] is None


async def test_rooms_get_only_the_events_they_asked_for(gitflic_bridge, make_user):
    env = await gitflic_bridge()
    (issues_room, push_room), secret = await connected(env, make_user, ["ISSUE_CREATE"], ["PUSH"])
    assert {n for n, on in env.only_hook().events.items() if on} == {"ISSUE_CREATE", "PUSH"}
    for name in ("issue_create", "issue_update", "branch_update", "merge", "pipeline_fail", "test_webhook"):
        assert (await env.deliver(env.payload(name), secret))[0] == 200
    unknown = {"action": "RELEASE_PUBLISH", "project": env.payload("issue_create")["project"], "release": {"tag": "v1"}}
    assert (await env.deliver(unknown, secret))[0] == 200

    issues = [r["content"]["body"] for r in await env.outbox(issues_room)]
    pushes = [r["content"]["body"] for r in await env.outbox(push_room)]
    # actions no flag governs (pipelines, tests, unknown ones) reach every room
    assert issues == [expected(env, env.payload(n)) for n in ("issue_create", "pipeline_fail", "test_webhook")] + [
        expected(env, unknown)
    ]
    assert pushes == [expected(env, env.payload(n)) for n in ("branch_update", "pipeline_fail", "test_webhook")] + [
        expected(env, unknown)
    ]
    assert "RELEASE_PUBLISH" in pushes[-1]


# (headers, body or None for a valid delivery, status, errcode); "{secret}" is the project's secret.
REFUSALS: list[tuple[dict[str, str], bytes | None, int, str]] = [
    ({}, None, 401, "HS_BAD_TOKEN"),
    ({"Gitflic-Webhook-Secret": "wrong"}, None, 401, "HS_BAD_TOKEN"),
    ({"Gitflic-Webhook-Secret": ""}, None, 401, "HS_BAD_TOKEN"),
    ({"Gitflic-Webhook-Secret": "{secret}x"}, None, 401, "HS_BAD_TOKEN"),
    ({"Authorization": "token wrong"}, None, 401, "HS_BAD_TOKEN"),
    ({"Gitflic-Webhook-Secret": "{secret}"}, b"{not json", 400, "HS_BAD_VALUE"),
    ({"Gitflic-Webhook-Secret": "{secret}"}, b'{"project_id": "x"}', 400, "HS_BAD_VALUE"),
    ({"Gitflic-Webhook-Secret": "{secret}"}, b'{"action": "PUSH"}', 400, "HS_BAD_VALUE"),
    # the right secret on another project's delivery opens nothing
    (
        {"Gitflic-Webhook-Secret": "{secret}"},
        b'{"action": "ISSUE_CREATE", "project": {"owner_alias": "other", "alias": "x"}}',
        401,
        "HS_BAD_TOKEN",
    ),
]


async def test_refused_deliveries_post_nothing(gitflic_bridge, make_user):
    env = await gitflic_bridge()
    (room,), secret = await connected(env, make_user, list(SUBSCRIPTION_FLAGS))
    valid = json.dumps(env.payload("issue_create")).encode()
    for headers, body, status, errcode in REFUSALS:
        sent = {k: v.replace("{secret}", secret) for k, v in headers.items()}
        got, answer = await http(
            "POST", env.webhook_url, data=body or valid, headers={"Content-Type": "application/json", **sent}
        )
        assert (got, answer["errcode"]) == (status, errcode), (headers, body, answer)
    assert await env.outbox(room) == []
    # and the right secret does go through
    assert (await env.deliver(env.payload("issue_create"), secret))[0] == 200
    assert len(await env.outbox(room)) == 1


async def test_secret_in_authorization_and_trailing_slash_accepted(gitflic_bridge, make_user):
    env = await gitflic_bridge()
    (room,), secret = await connected(env, make_user, list(SUBSCRIPTION_FLAGS))
    data = json.dumps(env.payload("tag_create")).encode()
    status, _ = await http("POST", env.webhook_url + "/", data=data, headers={"Authorization": f"token {secret}"})
    assert status == 200
    assert len(await env.outbox(room)) == 1


async def test_a_retried_delivery_is_posted_once(gitflic_bridge, make_user):
    env = await gitflic_bridge()
    (room,), secret = await connected(env, make_user, list(SUBSCRIPTION_FLAGS))
    for name in ("issue_create", "issue_create", "branch_update", "branch_update", "test_webhook", "test_webhook"):
        assert (await env.deliver(env.payload(name), secret))[0] == 200
    bodies = [r["content"]["body"] for r in await env.outbox(room)]
    assert bodies == [expected(env, env.payload(n)) for n in ("issue_create", "branch_update", "test_webhook", "test_webhook")]
    # a later update of the same issue is another occurrence
    later = env.payload("issue_update")
    assert (await env.deliver(later, secret))[0] == 200
    later["issue"]["updated_at"] = "2024-03-15T08:00:00Z"
    assert (await env.deliver(later, secret))[0] == 200
    assert len(await env.outbox(room)) == 6


def test_dedupe_key_needs_something_that_names_the_occurrence() -> None:
    def key(payload: dict[str, Any]) -> str | None:
        return dedupe_key(parse_delivery(json.dumps(payload).encode()))

    project = {"owner_alias": "acme", "alias": "w"}
    assert key({"action": "TEST_WEBHOOK", "project_id": "p"}) is None
    assert key({"action": "TAG_DELETE", "project": project, "tag": {"name": "v1"}}) is None
    assert key({"action": "COLLABORATOR_ADD", "project": project, "sender": {"created_at": "t"}}) is None
    issue = {"action": "ISSUE_CREATE", "project": project, "issue": {"id": "i", "created_at": "2024-01-01T00:00:00Z"}}
    assert key(issue) == key(json.loads(json.dumps(issue, indent=2))) is not None
    assert key(issue) != key({**issue, "action": "ISSUE_UPDATE"})
    assert key({"action": "BRANCH_UPDATE", "project": project, "push": {"before": "a", "after": "b"}}) is not None


async def test_pushes_are_announced_to_push_listeners(gitflic_bridge, make_user):
    env = await gitflic_bridge()
    (room,), secret = await connected(env, make_user, ["ISSUE_CREATE"])
    seen: list[tuple[str, str]] = []

    async def listener(room_id: str, name: str, body: dict[str, Any]) -> None:
        seen.append((room_id, name))

    env.services.push_listeners.append(listener)
    assert (await env.deliver(env.payload("branch_update"), secret))[0] == 200
    assert seen == [(room, env.key)], "the room's events decide what is posted, not what is seen"
    assert (await env.deliver(env.payload("issue_create"), secret))[0] == 200
    assert (await env.deliver(env.payload("branch_update"), "wrong-secret"))[0] == 401
    assert len(seen) == 1
