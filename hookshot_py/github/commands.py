"""GitHub commands: `!hookshot github repo <url>` in rooms, the per-connection prefix commands
(`!gh create/assign/close/test-hook/help`) and, in the DM with the bot, `github login`,
`github setpersonaltoken`, `github status` and `github logout`.

Prefix commands act on GitHub with the sender's own token, never the bridge's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from hookshot_py.commands.context import CommandContext, CommandError, issue_number, with_warnings
from hookshot_py.commands.registry import command
from hookshot_py.connections.base import Connection
from hookshot_py.connections.manager import ConnectionManager
from hookshot_py.github.accounts import NOT_LOGGED_IN, GitHubAccounts
from hookshot_py.github.client import GitHubClient, GitHubError
from hookshot_py.github.hooks import RepoHooks
from hookshot_py.github.oauth import STATE_TTL_MINUTES, GitHubOAuthFlow
from hookshot_py.github.state import EVENT_TYPE, RepoConfig

__all__ = ["DmCommands", "RepoCommands", "RoomCommands", "parse_repo_url"]

def parse_repo_url(url: str, web_url: str) -> tuple[str, str]:
    """`https://github.com/owner/repo` (or the Enterprise host) → (owner, repo)."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        parts = None
    expected = urlsplit(web_url)
    segments = [s for s in parts.path.split("/") if s] if parts else []
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or (parts.hostname or "").lower() != (expected.hostname or "").lower()
        or len(segments) != 2
        or parts.query
        or parts.fragment
    ):
        raise CommandError(f"`{url}` is not a repository URL such as `{web_url}/owner/repo`.")
    owner, repo = segments
    if repo.endswith(".git"):
        repo = repo[: -len(".git")]
    return owner, repo


ConfigOf = Callable[[Connection], RepoConfig]


class RepoCommands:
    """The `<commandPrefix> ...` commands of a GithubRepo connection, run with the sender's token."""

    def __init__(self, accounts: GitHubAccounts, hooks: RepoHooks, config_of: ConfigOf) -> None:
        self.accounts = accounts
        self.hooks = hooks
        self.config_of = config_of

    async def _client(self, ctx: CommandContext) -> GitHubClient:
        client = await self.accounts.client_for(ctx.sender)
        if client is None:
            raise CommandError(NOT_LOGGED_IN)
        return client

    @command("create", "<title> [description] [labels]", "Create an issue (labels comma-separated).",
             min_args=1, max_args=3)
    async def create(self, ctx: CommandContext, args: list[str]) -> None:
        repo = self.config_of(ctx.conn)
        if not args[0].strip():
            raise CommandError(f"Usage: `{ctx.prefix} create <title> [description] [labels]` "
                               "(quote a title or description with spaces).")
        description = args[1] if len(args) > 1 else ""
        labels = [label.strip() for label in args[2].split(",")] if len(args) > 2 else []
        merged = list(dict.fromkeys(label for label in [*labels, *repo.settings.new_issue_labels] if label))
        client = await self._client(ctx)
        with _explained():
            issue = await client.create_issue(repo.org, repo.repo, args[0], description, merged)
        await ctx.reply(f"Created issue [{repo.full_name}#{issue.number}]({issue.html_url}): {issue.title}")

    @command("assign", "[number] [users...]",
             "Assign an issue (default: the newest open one) to users (default: you).")
    async def assign(self, ctx: CommandContext, args: list[str]) -> None:
        repo = self.config_of(ctx.conn)
        usage = f"{ctx.prefix} assign [number] [users...]"
        if args and args[0].lstrip("#").isdigit():
            number: int | None = issue_number(args[0], usage)
            users = args[1:]
        else:
            number, users = None, args
        client = await self._client(ctx)
        with _explained():
            if number is None:
                newest = await client.newest_open_issue(repo.org, repo.repo)
                if newest is None:
                    raise CommandError(f"{repo.full_name} has no open issue to assign.")
                number = newest.number
            if not users:
                stored = await self.accounts.get(ctx.sender)
                login = stored.login if stored is not None and stored.login else None
                users = [login or (await client.get_user()).login]
            await client.add_assignees(repo.org, repo.repo, number, users)
        await ctx.reply(f"Assigned {repo.full_name}#{number} to {', '.join(users)}.")

    @command("close", "<number> [comment]", "Close an issue, optionally commenting first.", min_args=1, max_args=2)
    async def close(self, ctx: CommandContext, args: list[str]) -> None:
        repo = self.config_of(ctx.conn)
        number = issue_number(args[0], f"{ctx.prefix} close <number> [comment]")
        client = await self._client(ctx)
        with _explained():
            issue = await client.close_issue(repo.org, repo.repo, number, args[1] if len(args) > 1 else None)
        await ctx.reply(f"Closed [{repo.full_name}#{issue.number}]({issue.html_url}).")

    @command("test-hook", "", "Ask GitHub to test the repository's webhook (re-send the latest push, else a ping).",
             max_args=0)
    async def test_hook(self, ctx: CommandContext, args: list[str]) -> None:
        repo = self.config_of(ctx.conn)
        owner, name = repo.org, repo.repo
        client = await self._client(ctx)
        record = await self.hooks.get(repo.full_name)
        if record is None or record.hook_id is None:
            raise CommandError(
                f"The bridge did not register a webhook for {owner}/{name} (it was set up by hand, "
                "or not at all), so it cannot test it: use the webhook's page on GitHub."
            )
        with _explained():
            if "push" in record.events:
                await client.test_hook(owner, name, record.hook_id)
                await ctx.reply(f"Asked GitHub to re-deliver the latest push of {owner}/{name} to the webhook.")
            else:
                await client.ping_hook(owner, name, record.hook_id)
                await ctx.reply(
                    f"Asked GitHub to ping the webhook of {owner}/{name} (it does not subscribe to pushes, "
                    "so there is no push to re-deliver)."
                )


@contextmanager
def _explained() -> Iterator[None]:
    """GitHub's refusals as a reply in the room."""
    try:
        yield
    except GitHubError as exc:
        raise CommandError(exc.describe()) from exc


class RoomCommands:
    """`!hookshot github repo <url>`."""

    def __init__(self, manager: ConnectionManager, web_url: str) -> None:
        self.manager = manager
        self.web_url = web_url

    @command("github repo", "<url>", "Bridge a GitHub repository to this room.",
             min_args=1, max_args=1, permission=("github", "manageConnections"))
    async def repo(self, ctx: CommandContext, args: list[str]) -> None:
        owner, name = parse_repo_url(args[0], self.web_url)
        conn, outcome = await self.manager.create(
            ctx.room_id, EVENT_TYPE, {"org": owner, "repo": name}, user_id=ctx.sender
        )
        manual = outcome.secrets.get("webhook")
        secret = manual.get("secret") if isinstance(manual, dict) else None
        private = [w for w in outcome.warnings if secret and secret in w]
        public = [w for w in outcome.warnings if w not in private]
        text = f"Room configured to bridge **{conn.state_key}**."
        if private:
            await ctx.dm("\n\n".join(private))
            text += (" The bridge could not create the repository's webhook: "
                     "I sent you how to set it up in a direct message.")
        await ctx.reply(with_warnings(text, public))


LOGIN = ("github", "login")


class DmCommands:
    """`github login|setpersonaltoken|status|logout` in the DM with the bot."""

    def __init__(self, accounts: GitHubAccounts, oauth: GitHubOAuthFlow) -> None:
        self.accounts = accounts
        self.oauth = oauth

    @command("github login", "", "Log in to GitHub (sends you a link).", max_args=0, permission=LOGIN)
    async def login(self, ctx: CommandContext, args: list[str]) -> None:
        if not self.oauth.enabled:
            raise CommandError(
                "GitHub OAuth is not configured on this bridge: log in with "
                "`github setpersonaltoken <token>` instead."
            )
        url = await self.oauth.begin(ctx.sender)
        await ctx.reply(
            f"[Log in to GitHub]({url}) to let the bridge act for you. "
            f"The link works once, within {STATE_TTL_MINUTES} minutes."
        )

    @command("github setpersonaltoken", "<token>", "Log in to GitHub with a personal access token.",
             min_args=1, max_args=1, permission=LOGIN)
    async def set_token(self, ctx: CommandContext, args: list[str]) -> None:
        try:
            stored = await self.accounts.verify(args[0], "pat")
        except GitHubError as exc:
            if exc.status == 401:
                raise CommandError("GitHub rejected this token: check that it is complete and not expired.") from exc
            raise CommandError(exc.describe()) from exc
        await self.accounts.put(ctx.sender, stored)
        await ctx.reply(f"Your GitHub token is stored: you are logged in as **{stored.login}**.")

    @command("github status", "", "Show which GitHub account you are logged in with.", max_args=0, permission=LOGIN)
    async def status(self, ctx: CommandContext, args: list[str]) -> None:
        stored = await self.accounts.get(ctx.sender)
        if stored is None:
            await ctx.reply("You are not logged in to GitHub. Use `github login` or `github setpersonaltoken <token>`.")
            return
        try:
            checked = await self.accounts.verify(stored.token, stored.kind)
        except GitHubError as exc:
            if exc.status == 401:
                await ctx.reply("Your stored GitHub token no longer works (revoked or expired): log in again.")
                return
            raise CommandError(exc.describe()) from exc
        if checked.login != stored.login:
            await self.accounts.put(ctx.sender, checked)
        how = "a personal access token" if stored.kind == "pat" else "OAuth"
        await ctx.reply(f"You are logged in to GitHub as **{checked.login}** (with {how}).")

    @command("github logout", "", "Forget your GitHub token.", max_args=0, permission=LOGIN)
    async def logout(self, ctx: CommandContext, args: list[str]) -> None:
        if await self.accounts.delete(ctx.sender):
            await ctx.reply("You are logged out of GitHub: the bridge has forgotten your token.")
        else:
            await ctx.reply("You were not logged in to GitHub.")
