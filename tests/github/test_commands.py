"""GitHub commands in a real room: `!hookshot github repo`, the `!gh` prefix commands acting on
the fake GitHub with the sender's token, and the DM login commands."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from hookshot_py.commands.context import CommandError
from hookshot_py.github.commands import parse_repo_url
from hookshot_py.github.state import EVENT_TYPE
from support.fixtures import BOT, room_with_bot
from support.helpers import eventually, is_notice_with, wait_state

from .conftest import GitHubBridge


def fresh_repo(bridge: GitHubBridge) -> str:
    name = f"cmd-{secrets.token_hex(4)}"
    bridge.gh.add_repo("octo-org", name, permissions={"alice": "admin", "bob": "write"})
    return name


def count(events: list[dict[str, Any]], part: str) -> int:
    return sum(1 for e in events if part in str((e.get("content") or {}).get("body", "")))


async def test_repo_command_and_prefix_commands_act_with_the_senders_token(
    gh_bridge: GitHubBridge, make_user: Any
) -> None:
    gh = gh_bridge.gh
    repo = fresh_repo(gh_bridge)
    alice, zed = await make_user("alice"), await make_user("zed")
    room = await room_with_bot(alice)
    await gh_bridge.login(alice.user_id, "alice")

    await alice.send_text(room, f"!hookshot github repo {gh_bridge.api}/octo-org/{repo}")
    await alice.wait_for_message(room, is_notice_with(f"Room configured to bridge **octo-org/{repo}**"))
    assert (await wait_state(alice, room, EVENT_TYPE, f"octo-org/{repo}"))["repo"] == repo
    [hook] = gh.hooks_for("octo-org", repo)

    await alice.send_text(room, '!gh create "Broken build" "It fails on main" "bug, ci"')
    await alice.wait_for_message(room, is_notice_with("Created issue [octo-org/"))
    [issue] = gh.issues[("octo-org", repo)]
    assert (issue.title, issue.body, issue.labels) == ("Broken build", "It fails on main", ["bug", "ci"])
    create = gh.requests_to("POST", f"/repos/octo-org/{repo}/issues")[0]
    assert create.headers["Authorization"] == "Bearer tok-alice"

    await alice.send_text(room, "!gh assign 1 bob")
    await alice.wait_for_message(room, is_notice_with(f"Assigned octo-org/{repo}#1 to bob."))
    await alice.send_text(room, "!gh assign")  # the newest open issue, to the sender's GitHub login
    await alice.wait_for_message(room, is_notice_with(f"Assigned octo-org/{repo}#1 to alice."))
    assert issue.assignees == ["bob", "alice"]

    await alice.send_text(room, '!gh close #1 "Fixed on main"')
    await alice.wait_for_message(room, is_notice_with(f"Closed [octo-org/{repo}#1]"))
    assert issue.state == "closed" and issue.comments == ["Fixed on main"]

    await alice.send_text(room, "!gh help")
    await alice.wait_for_message(room, is_notice_with("`!gh create <title> [description] [labels]`"))
    await alice.send_text(room, "!gh frobnicate")
    await alice.wait_for_message(room, is_notice_with("Unknown command `frobnicate`. Try `!gh help`."))
    await alice.send_text(room, "!gh close one")
    await alice.wait_for_message(room, is_notice_with("`one` is not an issue number"))

    # test-hook: the hook has no push subscription, so GitHub is asked for a ping.
    await gh.drain()
    await alice.send_text(room, "!gh test-hook")
    await alice.wait_for_message(room, is_notice_with("Asked GitHub to ping the webhook"))
    assert gh.requests_to("POST", f"/hooks/{hook.id}/pings")
    await gh.drain()

    async def two_pings() -> bool:
        return count(await alice.messages(room), f"🏓 GitHub webhook for octo-org/{repo} is set up") == 2

    await eventually(two_pings)

    # Someone without a GitHub login gets a clear answer.
    await alice.invite(room, zed.user_id)
    await zed.join(room)
    await zed.send_text(room, "!gh create Nope")
    await zed.wait_for_message(room, is_notice_with("Failed to handle command: You are not logged in to GitHub"))
    assert len(gh.issues[("octo-org", repo)]) == 1

    await alice.send_text(room, "!hookshot github repo https://example.com/octo-org/x")
    await alice.wait_for_message(room, is_notice_with("is not a repository URL"))


async def test_writer_gets_the_manual_setup_in_a_dm_not_in_the_room(gh_bridge: GitHubBridge, make_user: Any) -> None:
    repo = fresh_repo(gh_bridge)
    bob = await make_user("bob")
    room = await room_with_bot(bob)
    await gh_bridge.login(bob.user_id, "bob")
    await bob.send_text(room, f"!hookshot github repo {gh_bridge.api}/octo-org/{repo}")
    reply = await bob.wait_for_message(room, is_notice_with("Room configured to bridge"))
    secret = await gh_bridge.integration.hooks.secret_for(f"octo-org/{repo}")
    assert "sent you how to set it up in a direct message" in reply["content"]["body"]
    assert secret not in str(await bob.messages(room))
    dm = await bob.wait_for_invite()
    await bob.join(dm)
    instructions = await bob.wait_for_message(dm, is_notice_with("A repository admin must add a webhook"))
    assert secret in instructions["content"]["body"]
    assert gh_bridge.gh.hooks_for("octo-org", repo) == []


async def test_dm_login_commands(gh_bridge: GitHubBridge, make_user: Any) -> None:
    bob = await make_user("bob")
    dm = await bob.create_room(invite=[BOT], is_direct=True)
    await bob.wait_for_message(dm, is_notice_with("Hello!"))

    async def say(text: str, expect: str) -> None:
        await bob.send_text(dm, text)
        await bob.wait_for_message(dm, is_notice_with(expect))

    await say("github status", "You are not logged in to GitHub")
    await say("github setpersonaltoken wrong-token", "GitHub rejected this token")
    assert await gh_bridge.services.tokens.get(bob.user_id, "github") is None
    await say("github setpersonaltoken tok-bob", "you are logged in as **bob**")
    await say("github status", "logged in to GitHub as **bob** (with a personal access token)")
    await say("github logout", "You are logged out of GitHub")
    assert await gh_bridge.services.tokens.get(bob.user_id, "github") is None
    await say("github logout", "You were not logged in to GitHub")
    await say("github login", f"[Log in to GitHub]({gh_bridge.api}/login/oauth/authorize?client_id=")
    assert await gh_bridge.services.db.fetchval("SELECT user_id FROM oauth_states") == bob.user_id


@pytest.mark.parametrize(
    "url, expected",
    [
        ("https://github.com/octo-org/hello-world", ("octo-org", "hello-world")),
        ("https://github.com/octo-org/hello-world/", ("octo-org", "hello-world")),
        ("https://GitHub.com/octo-org/hello-world.git", ("octo-org", "hello-world")),
    ],
)
def test_parse_repo_url(url: str, expected: tuple[str, str]) -> None:
    assert parse_repo_url(url, "https://github.com") == expected


@pytest.mark.parametrize(
    "url",
    [
        "https://gitlab.com/octo-org/hello-world",
        "https://github.com/octo-org",
        "https://github.com/octo-org/hello-world/issues",
        "https://github.com/octo-org/hello-world?tab=readme",
        "ftp://github.com/octo-org/hello-world",
        "octo-org/hello-world",
        "http://[::1/x/y",
    ],
)
def test_parse_repo_url_refuses(url: str) -> None:
    with pytest.raises(CommandError, match="is not a repository URL"):
        parse_repo_url(url, "https://github.com")
