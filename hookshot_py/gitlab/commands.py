"""GitLab commands: `!hookshot gitlab project <url>` in rooms, a connection's `!gl ...` commands
(acting on GitLab with the sender's own token, never anyone else's), and in the DM with the bot
`gitlab personaltoken|hastoken|logout`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from hookshot_py.commands.context import CommandContext, CommandError, issue_number, with_warnings
from hookshot_py.commands.registry import command
from hookshot_py.config import GitLabConfig
from hookshot_py.connections.base import Connection
from hookshot_py.connections.manager import ConnectionManager
from hookshot_py.gitlab.accounts import GitLabAccounts, not_logged_in_text
from hookshot_py.gitlab.client import GitLabClient, GitLabError
from hookshot_py.gitlab.models import EVENT_TYPE
from hookshot_py.gitlab.state import RepoConfig, is_project_path

__all__ = ["DmCommands", "ProjectCommands", "RoomCommands", "parse_project_url"]

ConfigOf = Callable[[Connection], RepoConfig]


def parse_project_url(url: str, config: GitLabConfig) -> tuple[str, str]:
    """`https://gitlab.example.com/group/project` → (instance name, `group/project`); the
    instance is the configured one whose URL starts the given one (hookshot's rule). GitLab's
    page suffixes (`/-/issues`...) and `.git` are dropped."""
    url = url.strip().strip("<>")
    instance = config.instance_for_url(url.rstrip("/"))
    if instance is None:
        raise CommandError(
            "No instance found that matches the provided URL (configured: "
            + ", ".join(i.url for i in config.instances.values()) + ")."
        )
    path = url[len(config.instances[instance].url):].split("?", 1)[0].split("#", 1)[0]
    path = path.split("/-/", 1)[0].strip("/")
    if path.lower().endswith(".git"):
        path = path[: -len(".git")]
    if not is_project_path(path):
        raise CommandError(f"The GitLab project url you entered was not valid: `{url}`.")
    return instance, path


@contextmanager
def _explained() -> Iterator[None]:
    """GitLab's refusals as a reply in the room."""
    try:
        yield
    except GitLabError as e:
        raise CommandError(e.describe()) from e


class ProjectCommands:
    """The `<commandPrefix> ...` commands of a GitLab connection, run with the sender's token."""

    def __init__(self, accounts: GitLabAccounts, config_of: ConfigOf) -> None:
        self.accounts = accounts
        self.config_of = config_of

    async def _client(self, ctx: CommandContext, repo: RepoConfig) -> GitLabClient:
        client = await self.accounts.client_for(ctx.sender, repo.instance)
        if client is None:
            raise CommandError(not_logged_in_text(repo.instance))
        return client

    async def _create(self, ctx: CommandContext, args: list[str], *, confidential: bool) -> None:
        repo = self.config_of(ctx.conn)
        if not args[0].strip():
            raise CommandError(f"Usage: `{ctx.prefix} create <title> [description] [labels]` "
                               "(quote a title or description with spaces).")
        description = args[1] if len(args) > 1 else None
        labels = [label.strip() for label in args[2].split(",") if label.strip()] if len(args) > 2 else []
        client = await self._client(ctx, repo)
        with _explained():
            issue = await client.create_issue(repo.path, args[0], description, labels, confidential=confidential)
        kind = "confidential issue" if confidential else "issue"
        await ctx.reply(f"Created {kind} #{issue.iid}: [{issue.web_url}]({issue.web_url})")

    @command("create", "<title> [description] [labels]", "Create an issue for this project (labels comma-separated).",
             min_args=1, max_args=3)
    async def create(self, ctx: CommandContext, args: list[str]) -> None:
        await self._create(ctx, args, confidential=False)

    @command("create-confidential", "<title> [description] [labels]",
             "Create a confidential issue for this project.", min_args=1, max_args=3)
    async def create_confidential(self, ctx: CommandContext, args: list[str]) -> None:
        await self._create(ctx, args, confidential=True)

    @command("close", "<number> [comment]", "Close an issue, optionally commenting first.", min_args=1, max_args=2)
    async def close(self, ctx: CommandContext, args: list[str]) -> None:
        repo = self.config_of(ctx.conn)
        iid = issue_number(args[0], f"{ctx.prefix} close <number> [comment]")
        client = await self._client(ctx, repo)
        with _explained():
            if len(args) > 1 and args[1].strip():
                await client.comment_issue(repo.path, iid, args[1])
            issue = await client.close_issue(repo.path, iid)
        await ctx.reply(f"Closed issue [{repo.path}#{issue.iid}]({issue.web_url}).")


class RoomCommands:
    """`!hookshot gitlab project <url>`."""

    def __init__(self, config: GitLabConfig, manager: ConnectionManager) -> None:
        self.config = config
        self.manager = manager

    @command("gitlab project", "<url>",
             "Bridge a GitLab project to this room (log in first: `gitlab personaltoken` in a DM with me).",
             min_args=1, max_args=1, permission=("gitlab", "manageConnections"))
    async def project(self, ctx: CommandContext, args: list[str]) -> None:
        instance, path = parse_project_url(args[0], self.config)
        conn, outcome = await self.manager.create(
            ctx.room_id, EVENT_TYPE, {"instance": instance, "path": path}, user_id=ctx.sender
        )
        manual = outcome.secrets.get("manualSetup")
        text = f"Room configured to bridge {path}."
        if isinstance(manual, str):
            # It holds the hook's token: never in the room.
            await ctx.dm(f"**GitLab project {path}**\n\n{manual}")
            text += " I could not register the project's webhook: I sent you how to set it up in a direct message."
        await ctx.reply(with_warnings(text, [w for w in outcome.warnings if w != manual]))


LOGIN = ("gitlab", "login")


class DmCommands:
    """`gitlab personaltoken|hastoken|logout <instance>` in the DM with the bot."""

    def __init__(self, config: GitLabConfig, accounts: GitLabAccounts) -> None:
        self.config = config
        self.accounts = accounts

    def _instance(self, name: str) -> str:
        if name in self.config.instances:
            return name
        by_url = self.config.instance_for_url(name.rstrip("/"))
        if by_url is not None:
            return by_url
        raise CommandError(
            f"The bridge is not configured for the GitLab instance {name!r}. Configured: "
            + ", ".join(f"`{n}` ({i.url})" for n, i in self.config.instances.items()) + "."
        )

    @command("gitlab personaltoken", "<instance> <token>",
             "Set your personal access token for a GitLab instance (checked, then stored encrypted).",
             min_args=2, max_args=2, permission=LOGIN)
    async def personal_token(self, ctx: CommandContext, args: list[str]) -> None:
        instance = self._instance(args[0])
        try:
            stored = await self.accounts.verify(instance, args[1].strip())
        except GitLabError as e:
            if e.status in (401, 403):
                raise CommandError("Could not authenticate with GitLab. Is your token correct?") from e
            raise CommandError(e.describe()) from e
        await self.accounts.put(ctx.sender, instance, stored)
        await ctx.reply(f"Connected as {stored.username}. Token stored.")

    @command("gitlab hastoken", "<instance>", "Check whether you have a token stored for a GitLab instance.",
             min_args=1, max_args=1, permission=LOGIN)
    async def has_token(self, ctx: CommandContext, args: list[str]) -> None:
        instance = self._instance(args[0])
        if await self.accounts.get(ctx.sender, instance) is None:
            await ctx.reply("You do not currently have a token stored.")
        else:
            await ctx.reply("A token is stored for your GitLab account.")

    @command("gitlab logout", "<instance>", "Forget your token for a GitLab instance.",
             min_args=1, max_args=1, permission=LOGIN)
    async def logout(self, ctx: CommandContext, args: list[str]) -> None:
        instance = self._instance(args[0])
        if await self.accounts.delete(ctx.sender, instance):
            await ctx.reply(f"Your GitLab token for {self.config.instances[instance].url} is forgotten.")
        else:
            await ctx.reply("You do not currently have a token stored.")
