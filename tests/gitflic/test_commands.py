"""GitFlic commands in real Synapse rooms: `!hookshot gitflic project`, `!gf ...`, and the DM's
`gitflic settoken|logout`."""

from __future__ import annotations

from hookshot_py.gitflic.connection import EVENT_TYPE
from support.fixtures import BOT, room_with_bot
from support.helpers import eventually, is_notice_with, wait_state

from .conftest import ALICE_TOKEN


async def open_dm(user) -> str:  # type: ignore[no-untyped-def]
    """A DM room with the bot, created by the user (as a client does)."""
    dm = await user.create_room(invite=[BOT], is_direct=True)
    await user.wait_for_message(dm, is_notice_with("Type `help`"))
    return dm


async def test_own_token_project_command_and_prefix_commands(gitflic_bridge, make_user):
    env = await gitflic_bridge(token=None)
    alice = await make_user("alice")
    dm = await open_dm(alice)
    await alice.send_text(dm, f"gitflic settoken {ALICE_TOKEN}")
    await alice.wait_for_message(dm, is_notice_with("Stored your GitFlic token for https://gitflic.ru"))
    assert await env.services.tokens.get(alice.user_id, "gitflic", "gitflic") == ALICE_TOKEN
    blob = await env.services.db.fetchval("SELECT ciphertext FROM user_tokens WHERE user_id = $1", alice.user_id)
    assert ALICE_TOKEN.encode() not in bytes(blob)

    room = await room_with_bot(alice)
    await alice.send_text(room, f"!hookshot gitflic project https://gitflic.ru/project/{env.owner}/widgets")
    reply = await alice.wait_for_message(room, is_notice_with("Room configured to bridge GitFlic project"))
    assert f"**{env.key}**" in reply["content"]["body"] and "Its webhook is registered for: ISSUE_UPDATE" in reply["content"]["body"]
    state = await wait_state(alice, room, EVENT_TYPE, env.key)
    assert state["commandPrefix"] == "!gf" and state["instance"] == "gitflic"
    hook = env.only_hook()
    assert env.fake.api_requests("POST")[-1].headers["Authorization"] == f"token {ALICE_TOKEN}"
    assert hook.secret not in str(await alice.messages(room)), "the secret is never posted in the room"

    await alice.send_text(room, "!gf hooks")
    listing = await alice.wait_for_message(room, is_notice_with(f"Webhooks of GitFlic project {env.key}"))
    assert hook.id in listing["content"]["body"] and "**this bridge**" in listing["content"]["body"]
    await alice.send_text(room, "!gf help")
    await alice.wait_for_message(room, is_notice_with(f"GitFlic commands for {env.key}"))
    await alice.send_text(room, "!hookshot help")
    await alice.wait_for_message(room, is_notice_with("`!gf hooks` — List the webhooks"))
    await alice.send_text(room, "!gf frobnicate")
    await alice.wait_for_message(room, is_notice_with("Unknown command `frobnicate`. Try `!gf help`."))

    await alice.send_text(dm, "gitflic logout")
    await alice.wait_for_message(dm, is_notice_with("Forgot your GitFlic token"))
    await alice.send_text(dm, "gitflic logout")
    await alice.wait_for_message(dm, is_notice_with("You have no GitFlic token stored"))
    await alice.send_text(dm, "gitflic settoken x nowhere")
    await alice.wait_for_message(dm, is_notice_with("Unknown GitFlic instance 'nowhere'"))
    await alice.send_text(room, "!gf hooks")
    await alice.wait_for_message(room, is_notice_with("Listing webhooks needs a GitFlic token"))


async def test_gitflic_refusals_are_clear_replies_in_the_room(gitflic_bridge, make_user):
    env = await gitflic_bridge(token="viewer-token")
    alice = await make_user("alice")
    room = await room_with_bot(alice)

    await alice.send_text(room, f"!hookshot gitflic project {env.owner}/widgets")
    await alice.wait_for_message(
        room,
        is_notice_with(
            f"Failed to handle command: The GitFlic token has no admin rights on {env.key}: only project "
            "administrators can manage its webhooks. (The bridge used the bridge's GitFlic token.)"
        ),
    )
    await alice.send_text(room, f"!hookshot gitflic project {env.owner}/nope")
    await alice.wait_for_message(room, is_notice_with(f"Failed to handle command: Project {env.owner}/nope not found on gitflic.ru (or the token cannot see it)."))

    # alice's own token has admin rights, but GitFlic refuses the bridge's (local) address: 422
    await env.services.tokens.put(alice.user_id, "gitflic", ALICE_TOKEN, instance="gitflic")
    env.fake.refused_hosts.add("127.0.0.1")
    await alice.send_text(room, f"!hookshot gitflic project {env.owner}/widgets")
    await alice.wait_for_message(
        room,
        is_notice_with(
            f"Failed to handle command: GitFlic rejected the webhook for {env.key}: url: must not point "
            "to a private or local address."
        ),
    )
    await alice.send_text(room, "!hookshot gitflic project widgets")
    await alice.wait_for_message(room, is_notice_with("'widgets' is not of the form owner/project."))
    await alice.send_text(room, "!hookshot gitflic project https://example.org/project/a/b")
    await alice.wait_for_message(room, is_notice_with("example.org is not a GitFlic instance this bridge knows"))
    assert await alice.get_state(room, EVENT_TYPE, env.key) is None
    assert env.services.manager.connections(room) == [] and env.hooks() == []

    # once GitFlic accepts, a second project in the room needs its own prefix
    env.fake.refused_hosts.clear()
    await alice.send_text(room, f"!hookshot gitflic project {env.owner}/widgets")
    await wait_state(alice, room, EVENT_TYPE, env.key)
    await alice.send_text(room, f"!hookshot gitflic project {env.owner}/secret")
    await alice.wait_for_message(room, is_notice_with("The command prefix !gf is already used"))
    await alice.send_text(room, f"!hookshot gitflic project {env.owner}/secret !sec")
    state = await wait_state(alice, room, EVENT_TYPE, f"{env.owner}/secret")
    assert state["commandPrefix"] == "!sec"


async def test_without_a_token_the_setup_goes_to_the_dm(gitflic_bridge, make_user):
    env = await gitflic_bridge(token=None)
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    await alice.send_text(room, f"!hookshot gitflic project {env.owner}/widgets")
    reply = await alice.wait_for_message(room, is_notice_with("could not register the project's webhook itself"))
    dm = await alice.wait_for_invite()
    await alice.join(dm)
    setup = await alice.wait_for_message(dm, is_notice_with("No GitFlic token is available"))
    row = await eventually(env.hook_row)
    secret = env.services.secrets.decrypt(bytes(row["secret_ciphertext"])).decode()
    assert f"secret `{secret}`" in setup["content"]["body"]
    assert f"URL `{env.webhook_url}`" in setup["content"]["body"]
    assert secret not in str(reply["content"]) and env.fake.requests == []
