"""The project webhook's life on GitFlic (the fake), driven through the real bridge's REST API."""

from __future__ import annotations

from hookshot_py.gitflic.connection import EVENT_TYPE
from hookshot_py.gitflic.models import DEFAULT_EVENTS, SUBSCRIPTION_FLAGS
from support.fixtures import room_with_bot
from support.helpers import eventually

from .conftest import BRIDGE_TOKEN


def flags_on(hook) -> set[str]:  # type: ignore[no-untyped-def]
    return {name for name, on in hook.events.items() if on}


async def test_create_update_share_and_delete_the_hook(gitflic_bridge, make_user):
    env = await gitflic_bridge()
    alice = await make_user("alice")
    room = await room_with_bot(alice)

    status, body = await env.connect(room, alice.user_id, {"ownerAlias": env.owner, "projectAlias": "widgets", "events": ["ISSUE_CREATE", "PUSH"]})
    assert status == 200, body
    assert body["type"] == "GitFlicProject" and body["service"] == "gitflic" and body["eventType"] == EVENT_TYPE
    assert body["config"] == {
        "ownerAlias": env.owner, "projectAlias": "widgets", "instance": "gitflic",
        "events": ["ISSUE_CREATE", "PUSH"], "commandPrefix": "!gf",
    }
    assert "warning" not in body
    hook = env.only_hook()
    assert hook.url == env.webhook_url
    assert flags_on(hook) == {"ISSUE_CREATE", "PUSH"}
    assert set(hook.events) == set(SUBSCRIPTION_FLAGS), "every flag is sent explicitly"
    secret = hook.secret
    assert len(secret) >= 32
    assert body["secrets"] == {"webhookUrl": env.webhook_url, "webhookSecret": secret, "webhookId": hook.id, "webhookEvents": ["ISSUE_CREATE", "PUSH"]}
    posts = env.fake.api_requests("POST")
    assert [r.path for r in posts] == [f"/project/{env.owner}/widgets/setting/webhook"]
    assert posts[0].headers["Authorization"] == f"token {BRIDGE_TOKEN}"

    row = await env.hook_row()
    assert row["hook_id"] == hook.id and row["url"] == env.webhook_url
    assert row["events"] == ["ISSUE_CREATE", "PUSH"]
    assert row["data"] == {"projectId": env.project_id}
    assert secret.encode() not in bytes(row["secret_ciphertext"]), "the secret is encrypted at rest"
    assert (await alice.get_state(room, EVENT_TYPE, env.key))["events"] == ["ISSUE_CREATE", "PUSH"]
    assert secret not in str(await alice.get_room_state(room)), "the secret never goes into room state"

    # events change → the same hook is updated (POST .../{id}), every flag explicit
    conn_id = body["id"]
    status, body = await env.provisioning("PATCH", f"{room}/connections/{conn_id}", alice.user_id, {"events": ["TAG_CREATE"]})
    assert status == 200, body
    assert env.only_hook().id == hook.id and flags_on(env.only_hook()) == {"TAG_CREATE"}
    assert env.fake.api_requests("POST")[-1].path == f"/project/{env.owner}/widgets/setting/webhook/{hook.id}"
    # a change that leaves the events alone does not call GitFlic
    calls = len(env.fake.requests)
    status, _ = await env.provisioning("PATCH", f"{room}/connections/{conn_id}", alice.user_id, {"commandPrefix": "!w"})
    assert status == 200 and len(env.fake.requests) == calls

    # a second room shares the hook: union of events, same secret, no second hook
    room2 = await room_with_bot(alice)
    status, body2 = await env.connect(room2, alice.user_id, {"ownerAlias": env.owner, "projectAlias": "widgets", "events": ["ISSUE_CREATE"]})
    assert status == 200, body2
    hook2 = env.only_hook()
    assert (hook2.id, hook2.secret) == (hook.id, secret)
    assert flags_on(hook2) == {"ISSUE_CREATE", "TAG_CREATE"}

    # removing one room narrows the hook to the other's events; the last one deletes it
    status, _ = await env.provisioning("DELETE", f"{room}/connections/{conn_id}", alice.user_id)
    assert status == 200
    assert flags_on(env.only_hook()) == {"ISSUE_CREATE"}
    status, _ = await env.provisioning("DELETE", f"{room2}/connections/{body2['id']}", alice.user_id)
    assert status == 200
    assert env.hooks() == []
    assert env.fake.api_requests("POST")[-1].path == f"/project/{env.owner}/widgets/setting/webhook/{hook.id}/delete"
    assert await env.hook_row() is None
    # its secret no longer opens the door
    status, _ = await env.deliver(env.payload("issue_create"), secret)
    assert status == 401


async def test_a_hook_already_pointing_at_the_bridge_is_reused(gitflic_bridge, make_user):
    env = await gitflic_bridge()
    stale = env.fake.add_webhook(env.owner, "widgets", env.webhook_url + "/", secret="old", events=("PUSH",))
    other = env.fake.add_webhook(env.owner, "widgets", "https://ci.example/hook", secret="ci", events=("PUSH",))
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    status, body = await env.connect(room, alice.user_id, {"ownerAlias": env.owner, "projectAlias": "widgets"})
    assert status == 200, body
    hooks = {h.id: h for h in env.hooks()}
    assert set(hooks) == {stale.id, other.id}, "no duplicate hook"
    assert hooks[stale.id].url == env.webhook_url
    assert hooks[stale.id].secret == body["secrets"]["webhookSecret"] != "old"
    assert flags_on(hooks[stale.id]) == set(DEFAULT_EVENTS)
    assert flags_on(hooks[other.id]) == {"PUSH"} and hooks[other.id].secret == "ci", "other hooks are left alone"


async def test_hook_deleted_on_gitflic_meanwhile_is_created_again(gitflic_bridge, make_user):
    env = await gitflic_bridge()
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    status, body = await env.connect(room, alice.user_id, {"ownerAlias": env.owner, "projectAlias": "widgets", "events": ["PUSH"]})
    assert status == 200
    env.fake.project(env.owner, "widgets").webhooks.clear()  # someone removed it in GitFlic's settings
    status, body = await env.provisioning("PATCH", f"{room}/connections/{body['id']}", alice.user_id, {"events": ["ISSUE_CREATE"]})
    assert status == 200, body
    assert flags_on(env.only_hook()) == {"ISSUE_CREATE"}
    # and deleting a hook that is already gone is not an error
    env.fake.project(env.owner, "widgets").webhooks.clear()
    status, _ = await env.provisioning("DELETE", f"{room}/connections/{body['id']}", alice.user_id)
    assert status == 200 and await env.hook_row() is None


async def test_without_a_token_the_answer_says_what_to_enter_by_hand(gitflic_bridge, make_user):
    env = await gitflic_bridge(token=None)
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    status, body = await env.connect(room, alice.user_id, {"ownerAlias": env.owner, "projectAlias": "widgets", "events": ["ISSUE_CREATE", "PUSH"]})
    assert status == 200, body
    assert env.fake.requests == [] and env.hooks() == []
    secret = body["secrets"]["webhookSecret"]
    message = body["warning"]["message"]
    assert f"URL `{env.webhook_url}`" in message
    assert f"secret `{secret}`" in message
    assert "ISSUE_CREATE, PUSH" in message
    assert "gitflic settoken" in message
    row = await env.hook_row()
    assert row["hook_id"] is None
    # the hook entered by hand works: its first delivery may name only the project id
    test = {"action": "TEST_WEBHOOK", "project_id": "0a0b0c0d-0000-4000-8000-000000000001"}
    assert (await env.deliver(test, secret))[0] == 200
    assert len(await env.outbox(room)) == 1
    assert (await env.hook_row())["data"] == {"projectId": test["project_id"]}
    # removing it reminds the user to remove the hook they added
    status, _ = await env.provisioning("DELETE", f"{room}/connections/{body['id']}", alice.user_id)
    assert status == 200 and await env.hook_row() is None


async def test_without_public_url_the_admin_is_pointed_at_the_config(gitflic_bridge, make_user):
    env = await gitflic_bridge(public_url=False)
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    status, body = await env.connect(room, alice.user_id, {"ownerAlias": env.owner, "projectAlias": "widgets"})
    assert status == 200, body
    assert "gitflic.webhook.publicUrl" in body["warning"]["message"]
    assert body["secrets"]["webhookSecret"] in body["warning"]["message"]
    assert env.fake.requests == []


async def test_gitflic_refusals_become_clear_rest_errors(gitflic_bridge, make_user):
    env = await gitflic_bridge(token="viewer-token")
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    status, body = await env.connect(room, alice.user_id, {"ownerAlias": env.owner, "projectAlias": "widgets"})
    assert status == 403 and body["errcode"] == "HS_FORBIDDEN_USER"
    assert f"no admin rights on {env.key}" in body["error"] and "the bridge's GitFlic token" in body["error"]
    status, body = await env.connect(room, alice.user_id, {"ownerAlias": env.owner, "projectAlias": "nope"})
    assert status == 404 and body["errcode"] == "HS_NOTFOUND" and f"Project {env.owner}/nope not found" in body["error"]
    status, body = await env.connect(room, alice.user_id, {"ownerAlias": env.owner, "projectAlias": "w", "events": ["BOGUS"]})
    assert status == 400 and body["validationErrors"][0]["path"] == "/events/0"
    env.fake.fail_with = 503
    try:
        status, body = await env.connect(room, alice.user_id, {"ownerAlias": env.owner, "projectAlias": "widgets"})
    finally:
        env.fake.fail_with = None
    assert status == 502 and "answered 503" in body["error"]
    assert await alice.get_state(room, EVENT_TYPE, env.key) is None, "nothing written after a refusal"
    assert env.services.manager.connections(room) == []


async def test_connection_type_is_listed(gitflic_bridge, make_user):
    env = await gitflic_bridge()
    alice = await make_user("alice")
    status, body = await env.provisioning("GET", "connectiontypes", alice.user_id)
    assert status == 200
    assert body["GitFlicProject"]["eventType"] == EVENT_TYPE and body["GitFlicProject"]["service"] == "gitflic"


async def test_connections_edited_in_room_state_by_hand(gitflic_bridge, make_user):
    env = await gitflic_bridge()
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    # written by a client, not through the bridge: it gets a secret but nothing is registered
    await alice.send_state(room, EVENT_TYPE, f"{env.owner}/secret", {"ownerAlias": env.owner, "projectAlias": "secret"})
    await eventually(lambda: _found(env, room, f"{env.owner}/secret"))
    status, listed = await env.provisioning("GET", f"{room}/connections", alice.user_id)
    assert status == 200
    secret = listed[0]["secrets"]["webhookSecret"]
    assert listed[0]["secrets"]["webhookId"] is None and env.hooks("secret") == []
    payload = env.payload("tag_create")
    payload["project"]["alias"] = "secret"
    assert (await env.deliver(payload, secret))[0] == 200
    assert len(await env.outbox(room)) == 1

    # a connection the bridge registered, then removed by hand: the bridge's token deletes the hook
    status, body = await env.connect(room, alice.user_id, {"ownerAlias": env.owner, "projectAlias": "widgets", "commandPrefix": "!w"})
    assert status == 200, body
    assert len(env.hooks()) == 1
    # events edited by hand: the hook follows, with the bridge's token
    edited = {**body["config"], "events": ["PUSH", "TAG_CREATE"]}
    await alice.send_state(room, EVENT_TYPE, env.key, edited)
    await eventually(lambda: _flags(env, {"PUSH", "TAG_CREATE"}))
    await alice.send_state(room, EVENT_TYPE, env.key, {})
    await eventually(lambda: _gone(env))
    assert await env.hook_row() is None


async def _found(env, room, key):  # type: ignore[no-untyped-def]
    return env.services.manager.find(room, EVENT_TYPE, key) is not None


async def _gone(env):  # type: ignore[no-untyped-def]
    return env.hooks() == []


async def _flags(env, wanted):  # type: ignore[no-untyped-def]
    return [flags_on(h) for h in env.hooks()] == [wanted]


async def test_a_second_project_with_the_same_prefix_is_a_conflict(gitflic_bridge, make_user):
    env = await gitflic_bridge()
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    status, first = await env.connect(room, alice.user_id, {"ownerAlias": env.owner, "projectAlias": "widgets"})
    assert status == 200, first
    status, body = await env.connect(room, alice.user_id, {"ownerAlias": env.owner, "projectAlias": "gadgets"})
    assert status == 409 and body["errcode"] == "HS_CONFLICTING_CONNECTION"
    assert "!gf" in body["error"] and body["existingConnection"]["id"] == first["id"]


async def test_the_project_secret_survives_a_wiped_database(gitflic_bridge, make_user):
    import asyncpg

    env = await gitflic_bridge()
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    status, body = await env.connect(room, alice.user_id, {"ownerAlias": env.owner, "projectAlias": "widgets", "events": ["ISSUE_CREATE"]})
    assert status == 200, body
    secret = env.only_hook().secret
    await env.harness.stop()
    conn = await asyncpg.connect(env.harness.dsn)
    await conn.execute("TRUNCATE forge_webhooks, connections")
    await conn.close()
    await env.harness.start()
    status, _ = await env.deliver(env.payload("issue_create"), secret)
    assert status == 200
    assert (await env.deliver(env.payload("issue_create"), "not-the-secret"))[0] == 401
