"""`!gl create|create-confidential|close` act with the sender's own token; `gitlab
personaltoken|hastoken|logout` in the DM check and store tokens; project URLs are read like
hookshot reads them."""

from __future__ import annotations

from typing import Any

import pytest

from fakes.gitlab import FakeGitLabState
from hookshot_py.commands.context import CommandContext, CommandError
from hookshot_py.commands.registry import CommandRegistry, commands_of
from hookshot_py.gitlab.commands import DmCommands, parse_project_url

from .conftest import FIXTURE_PATH, INSTANCE, TOKENS, gitlab_config

DAVE, ERIN, CAROL = "@dave:test", "@erin:test", "@carol:test"
ROOM = "!cmd:test"


async def run(stack: Any, registry: CommandRegistry, sender: str, *args: str, room: str = ROOM,
              conn: Any = None) -> CommandContext:
    ctx = CommandContext(room, sender, "$cmd", stack.outbox, None, prefix="!gl", connection=conn)  # type: ignore[arg-type]
    found = registry.match(list(args))
    assert found is not None, args
    command, rest = found
    await command.handler(ctx, rest)
    return ctx


async def replies(stack: Any, room: str = ROOM) -> list[str]:
    return await stack.bodies(room)


async def test_create_and_close_issues_with_the_senders_token(make_stack, gl: FakeGitLabState) -> None:
    stack = await make_stack()
    await stack.login(DAVE, "dave")
    conn, _ = await stack.connect(ROOM, DAVE)
    commands = stack.projects.commands
    await run(stack, commands, DAVE, "create", "Sprocket squeaks", "It squeaks at night", "bug, ui", conn=conn)
    issue = gl.project(FIXTURE_PATH).issues[1]
    assert (issue.title, issue.description, issue.labels, issue.confidential) == (
        "Sprocket squeaks", "It squeaks at night", ["bug", "ui"], False
    )
    assert issue.author == gl.user("dave").id
    url = f"{gl.base_url}/acme/widgets/-/issues/1"
    assert (await replies(stack))[-1] == f"Created issue #1: [{url}]({url})"
    assert gl.requests[-1].headers["Authorization"] == f"Bearer {TOKENS['dave']}"

    await run(stack, commands, DAVE, "create-confidential", "Secret squeak", conn=conn)
    assert gl.project(FIXTURE_PATH).issues[2].confidential
    assert (await replies(stack))[-1].startswith("Created confidential issue #2: ")

    await run(stack, commands, DAVE, "close", "#1", "Fixed by oiling", conn=conn)
    assert issue.state == "closed" and issue.notes == ["Fixed by oiling"]
    assert (await replies(stack))[-1] == f"Closed issue [acme/widgets#1]({url})."


async def test_commands_refuse_without_a_usable_token(make_stack, gl: FakeGitLabState) -> None:
    stack = await make_stack()
    await stack.login(DAVE, "dave")
    conn, _ = await stack.connect(ROOM, DAVE)
    commands = stack.projects.commands
    with pytest.raises(CommandError, match="You are not logged into the GitLab instance gl"):
        await run(stack, commands, CAROL, "create", "Nope", conn=conn)
    await stack.login(ERIN, "erin")
    with pytest.raises(CommandError, match=r"has no project acme/widgets \(or the token cannot see it\)"):
        await run(stack, commands, ERIN, "create", "Nope", conn=conn)
    with pytest.raises(CommandError, match="is not an issue number"):
        await run(stack, commands, DAVE, "close", "twelve", conn=conn)
    with pytest.raises(CommandError, match="has no issue acme/widgets#99"):
        await run(stack, commands, DAVE, "close", "99", conn=conn)
    assert gl.project(FIXTURE_PATH).issues == {}


async def test_personal_tokens_are_checked_then_stored_encrypted(make_stack, gl: FakeGitLabState) -> None:
    stack = await make_stack()
    dm = CommandRegistry(commands_of(DmCommands(stack.config, stack.accounts)))
    await run(stack, dm, DAVE, "gitlab", "hastoken", INSTANCE, room="!dm:test")
    assert (await replies(stack, "!dm:test"))[-1] == "You do not currently have a token stored."
    with pytest.raises(CommandError, match="Could not authenticate with GitLab. Is your token correct?"):
        await run(stack, dm, DAVE, "gitlab", "personaltoken", INSTANCE, "glpat-wrong", room="!dm:test")
    assert await stack.accounts.get(DAVE, INSTANCE) is None
    with pytest.raises(CommandError, match="not configured for the GitLab instance 'elsewhere'"):
        await run(stack, dm, DAVE, "gitlab", "personaltoken", "elsewhere", TOKENS["dave"], room="!dm:test")

    # The instance may be named by its URL too.
    await run(stack, dm, DAVE, "gitlab", "personaltoken", gl.base_url + "/", TOKENS["dave"], room="!dm:test")
    assert (await replies(stack, "!dm:test"))[-1] == "Connected as dave. Token stored."
    stored = await stack.accounts.get(DAVE, INSTANCE)
    assert stored is not None and (stored.token, stored.username, stored.user_id) == (
        TOKENS["dave"], "dave", gl.user("dave").id
    )
    raw = await stack.db.fetchval("SELECT ciphertext FROM user_tokens WHERE user_id = $1", DAVE)
    assert TOKENS["dave"].encode() not in bytes(raw)
    # filed under the instance's URL, as hookshot files it
    assert await stack.db.fetchval("SELECT instance FROM user_tokens WHERE user_id = $1", DAVE) == gl.base_url

    await run(stack, dm, DAVE, "gitlab", "hastoken", INSTANCE, room="!dm:test")
    assert (await replies(stack, "!dm:test"))[-1] == "A token is stored for your GitLab account."
    await run(stack, dm, DAVE, "gitlab", "logout", INSTANCE, room="!dm:test")
    assert (await replies(stack, "!dm:test"))[-1] == f"Your GitLab token for {gl.base_url} is forgotten."
    assert await stack.accounts.get(DAVE, INSTANCE) is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("{base}/acme/widgets", (INSTANCE, "acme/widgets")),
        ("{base}/acme/sub/widgets/", (INSTANCE, "acme/sub/widgets")),
        ("{base}/acme/widgets.git", (INSTANCE, "acme/widgets")),
        ("{base}/acme/widgets/-/merge_requests/3", (INSTANCE, "acme/widgets")),
        ("<{base}/acme/widgets>", (INSTANCE, "acme/widgets")),
        ("https://other.example/acme/widgets", "No instance found that matches the provided URL"),
        ("{base}/widgets", "The GitLab project url you entered was not valid"),
        ("{base}", "The GitLab project url you entered was not valid"),
        ("{base}evil.example/acme/widgets", "No instance found"),
    ],
)
def test_project_urls(url: str, expected: Any) -> None:
    base = "https://gitlab.example.com"
    config = gitlab_config(base)
    if isinstance(expected, tuple):
        assert parse_project_url(url.format(base=base), config) == expected
    else:
        with pytest.raises(CommandError, match=expected):
            parse_project_url(url.format(base=base), config)
