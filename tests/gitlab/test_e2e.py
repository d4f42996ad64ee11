"""GitLab end to end, into a real Synapse room: log in by DM, connect a project by command (the
bridge registers its hook on the fake GitLab), events delivered by GitLab's own machinery (the
hook, with its token) reach the room, a review is summed up with its comments in a thread,
`!gl` acts with the sender's token, a restart changes nothing, and the hook goes with the
connection."""

from __future__ import annotations

from typing import Any

from hookshot_py.gitlab.models import EVENT_TYPE
from support.fixtures import BOT, room_with_bot
from support.helpers import eventually, is_notice_with, wait_state

from .conftest import GitLabBridge


def note(env: GitLabBridge, note_id: int, body: str, discussion: str) -> dict[str, Any]:
    data = env.payload("note.merge_request")
    data["object_attributes"].update(id=note_id, note=body, discussion_id=discussion,
                                     url=f"{data['merge_request']['url']}#note_{note_id}")
    return data


async def test_a_gitlab_project_in_a_room(gitlab_bridge, make_user) -> None:
    env: GitLabBridge = await gitlab_bridge(debounce_ms=300)
    gl = env.gl
    alice = await make_user("alice")

    # Log in by DM: the token is checked against GitLab first.
    dm = await alice.create_room(invite=[BOT], is_direct=True, preset="trusted_private_chat")
    await alice.wait_for_message(dm, is_notice_with("Type `help`"))
    await alice.send_text(dm, "gitlab personaltoken gl glpat-wrong")
    await alice.wait_for_message(dm, is_notice_with("Could not authenticate with GitLab. Is your token correct?"))
    await alice.send_text(dm, "gitlab personaltoken gl glpat-alice")
    await alice.wait_for_message(dm, is_notice_with("Connected as alice. Token stored."))

    # Connect: alice maintains the project, so the bridge registers its hook.
    room = await room_with_bot(alice)
    await alice.send_text(room, f"!hookshot gitlab project {gl.base_url}/{env.path}")
    await alice.wait_for_message(room, is_notice_with(f"Room configured to bridge {env.path}."))
    state = await wait_state(alice, room, EVENT_TYPE, f"gl/{env.path}")
    assert state["instance"] == "gl" and state["path"] == env.path
    [hook] = gl.project(env.path).hooks.values()
    assert hook.url == env.webhook_url and hook.token and hook.flags["issues_events"]

    # GitLab delivers with the hook's token; a stranger's token is refused.
    [sent] = await gl.emit(env.path, env.payload("merge_request.open"))
    assert sent.status == 200
    mr = await alice.wait_for_message(room, is_notice_with("opened a new MR"))
    assert mr["sender"] == BOT and mr["content"]["msgtype"] == "m.notice"
    mr_url = f"{gl.base_url}/{env.path}/-/merge_requests/12"
    assert mr["content"]["body"] == f'**alice** opened a new MR [{env.path}!12]({mr_url}): "Add sprockets"'
    assert "<strong>alice</strong>" in mr["content"]["formatted_body"]
    hook.token, real = "forged", hook.token
    [refused] = await gl.emit(env.path, env.payload("issue.open"))
    assert refused.status == 401
    hook.token = real
    await gl.emit(env.path, env.payload("issue.open"))
    await alice.wait_for_message(room, is_notice_with("created new issue"))

    # A review: two comments and an approval become one message.
    await gl.emit(env.path, note(env, 9001, "Smaller?", "disc-1"))
    await gl.emit(env.path, note(env, 9002, "Lighter?", "disc-2"))
    await gl.emit(env.path, env.payload("merge_request.approval"))
    summary = await alice.wait_for_message(room, is_notice_with("✅ approved MR"))
    assert summary["content"]["body"].endswith(" with 2 comments")

    # With includeCommentBody, the comments are replies in the summary's thread.
    status, body = await env.rest("GET", f"/{room}/connections", alice.user_id)
    conn_id = body[0]["id"]
    status, body = await env.rest("PATCH", f"/{room}/connections/{conn_id}", alice.user_id,
                                  {"includeCommentBody": True})
    assert status == 200, body
    await gl.emit(env.path, note(env, 9003, "Use the **small** sprocket", "disc-3"))
    root = await alice.wait_for_message(room, is_notice_with("**Bob Builder** commented on MR"))
    reply = await alice.wait_for_message(room, is_notice_with("Use the **small** sprocket"))
    assert reply["content"]["m.relates_to"]["rel_type"] == "m.thread"
    assert reply["content"]["m.relates_to"]["event_id"] == root["event_id"]

    # `!gl create` acts with the sender's own token.
    await alice.send_text(room, "!gl help")
    help_text = (await alice.wait_for_message(room, is_notice_with(f"GitLab commands for {env.path}")))["content"]
    assert "`!gl create-confidential <title> [description] [labels]`" in help_text["body"]
    assert "`!gl close <number> [comment]`" in help_text["body"]
    await alice.send_text(room, '!gl create "Sprocket squeaks" "At night"')
    created = await alice.wait_for_message(room, is_notice_with("Created issue #1:"))
    assert created["content"]["body"].endswith(f"({gl.base_url}/{env.path}/-/issues/1)")
    assert gl.project(env.path).issues[1].author == gl.user("alice").id

    # After a restart the hook's token comes from the database.
    await env.harness.restart()
    await gl.emit(env.path, env.payload("tag_push"))
    await alice.wait_for_message(room, is_notice_with("pushed tag [`v1.2.0`]"))

    # Removing the connection deletes the hook.
    status, body = await env.rest("DELETE", f"/{room}/connections/{conn_id}", alice.user_id)
    assert (status, body) == (200, {"ok": True})

    async def hook_gone() -> bool:
        return not gl.project(env.path).hooks

    await eventually(hook_gone)


async def test_a_developer_gets_the_manual_setup_in_a_dm_never_in_the_room(gitlab_bridge, make_user) -> None:
    env: GitLabBridge = await gitlab_bridge()
    dave = await make_user("dave")
    dm = await dave.create_room(invite=[BOT], is_direct=True, preset="trusted_private_chat")
    await dave.wait_for_message(dm, is_notice_with("Type `help`"))
    await dave.send_text(dm, "gitlab personaltoken gl glpat-dave")
    await dave.wait_for_message(dm, is_notice_with("Connected as dave. Token stored."))

    room = await room_with_bot(dave)
    await dave.send_text(room, f"!hookshot gitlab project {env.gl.base_url}/{env.path}")
    reply = await dave.wait_for_message(room, is_notice_with(f"Room configured to bridge {env.path}."))
    assert "sent you how to set it up in a direct message" in reply["content"]["body"]
    setup = await dave.wait_for_message(dm, is_notice_with(f"GitLab project {env.path}"))
    row = await eventually(lambda: env.services.db.fetchrow(
        "SELECT secret_ciphertext FROM forge_webhooks WHERE service = 'gitlab' AND project = $1", env.path.lower()))
    token = env.services.secrets.decrypt(bytes(row["secret_ciphertext"])).decode()
    assert token in setup["content"]["body"] and env.webhook_url in setup["content"]["body"]
    assert token not in str(reply["content"]) and env.gl.project(env.path).hooks == {}
