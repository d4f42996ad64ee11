"""GitHub commands: `!hookshot github repo <url>` in rooms, the per-connection prefix commands
(`!gh create/assign/close/test-hook/help`) and, in the DM with the bot, `github login`,
`github setpersonaltoken`, `github status` and `github logout`.

Prefix commands act on GitHub with the sender's own token, never the bridge's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from hookshot_py.commands.context import CommandContext, CommandError
from hookshot_py.commands.registry import Command
from hookshot_py.connections.base import Connection
from hookshot_py.github.accounts import NOT_LOGGED_IN, GitHubAccounts
from hookshot_py.github.client import GitHubClient
from hookshot_py.github.errors import GitHubError
from hookshot_py.github.hooks import RepoHooks
from hookshot_py.github.oauth_routes import STATE_TTL_MINUTES, GitHubOAuthFlow
from hookshot_py.github.state import EVENT_TYPE
from hookshot_py.services import Services

__all__ = ["RepoCommands", "parse_repo_url", "register"]

PREFIX_COMMANDS: list[tuple[str, str]] = [
    ("create <title> [description] [labels]", "Create an issue (labels comma-separated)."),
    ("assign [number] [users...]", "Assign an issue (default: the newest open one) to users (default: you)."),
    ("close <number> [comment]", "Close an issue, optionally commenting first."),
    ("test-hook", "Ask GitHub to test the repository's webhook (re-send the latest push, else a ping)."),
    ("help", "Show these commands."),
]


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


_Handler = Callable[[CommandContext, GitHubClient, str, str, dict[str, Any], list[str]], Awaitable[None]]


class RepoCommands:
    """The `<commandPrefix> ...` commands of a GithubRepo connection."""

    def __init__(self, services: Services, accounts: GitHubAccounts, hooks: RepoHooks) -> None:
        self.services = services
        self.accounts = accounts
        self.hooks = hooks
        self._table: dict[str, _Handler] = {
            "create": self._create,
            "assign": self._assign,
            "close": self._close,
            "test-hook": self._test_hook,
        }

    def help(self) -> list[tuple[str, str]]:
        return list(PREFIX_COMMANDS)

    async def handle(self, ctx: CommandContext, conn: Connection, state: dict[str, Any], args: list[str]) -> bool:
        if not args or args[0].lower() == "help":
            lines = [f"- `{ctx.prefix} {usage}` — {text}" for usage, text in PREFIX_COMMANDS]
            await ctx.reply(f"**Commands for {conn.state_key}**\n\n" + "\n".join(lines))
            return True
        handler = self._table.get(args[0].lower())
        if handler is None:
            return False
        if not self.services.permissions.check(ctx.sender, "github", "commands"):
            raise CommandError("You do not have the `commands` permission for `github` on this bridge.")
        client = await self.accounts.client_for(ctx.sender)
        if client is None:
            raise CommandError(NOT_LOGGED_IN)
        try:
            await handler(ctx, client, state["org"], state["repo"], state, args[1:])
        except GitHubError as exc:
            raise CommandError(exc.describe()) from exc
        return True

    @staticmethod
    def _number(value: str, usage: str) -> int:
        digits = value[1:] if value.startswith("#") else value
        if not digits.isdigit() or int(digits) < 1:
            raise CommandError(f"`{value}` is not an issue number. Usage: `{usage}`")
        return int(digits)

    async def _create(self, ctx: CommandContext, client: GitHubClient, owner: str, repo: str,
                      state: dict[str, Any], args: list[str]) -> None:
        usage = f"{ctx.prefix} create <title> [description] [labels]"
        if not 1 <= len(args) <= 3 or not args[0].strip():
            raise CommandError(f"Usage: `{usage}` (quote a title or description with spaces).")
        description = args[1] if len(args) > 1 else ""
        labels = [label.strip() for label in args[2].split(",")] if len(args) > 2 else []
        defaults = (state.get("newIssue") or {}).get("labels") or []
        merged = list(dict.fromkeys(label for label in [*labels, *defaults] if label))
        issue = await client.create_issue(owner, repo, args[0], description, merged)
        await ctx.reply(f"Created issue [{owner}/{repo}#{issue.number}]({issue.html_url}): {issue.title}")

    async def _assign(self, ctx: CommandContext, client: GitHubClient, owner: str, repo: str,
                      state: dict[str, Any], args: list[str]) -> None:
        usage = f"{ctx.prefix} assign [number] [users...]"
        if args and args[0].lstrip("#").isdigit():
            number: int | None = self._number(args[0], usage)
            users = args[1:]
        else:
            number, users = None, args
        if number is None:
            newest = await client.newest_open_issue(owner, repo)
            if newest is None:
                raise CommandError(f"{owner}/{repo} has no open issue to assign.")
            number = newest.number
        if not users:
            stored = await self.accounts.get(ctx.sender)
            login = stored.login if stored is not None and stored.login else None
            users = [login or (await client.get_user()).login]
        await client.add_assignees(owner, repo, number, users)
        await ctx.reply(f"Assigned {owner}/{repo}#{number} to {', '.join(users)}.")

    async def _close(self, ctx: CommandContext, client: GitHubClient, owner: str, repo: str,
                     state: dict[str, Any], args: list[str]) -> None:
        usage = f"{ctx.prefix} close <number> [comment]"
        if not 1 <= len(args) <= 2:
            raise CommandError(f"Usage: `{usage}`")
        number = self._number(args[0], usage)
        issue = await client.close_issue(owner, repo, number, args[1] if len(args) > 1 else None)
        await ctx.reply(f"Closed [{owner}/{repo}#{issue.number}]({issue.html_url}).")

    async def _test_hook(self, ctx: CommandContext, client: GitHubClient, owner: str, repo: str,
                         state: dict[str, Any], args: list[str]) -> None:
        if args:
            raise CommandError(f"Usage: `{ctx.prefix} test-hook`")
        record = await self.hooks.get(f"{owner}/{repo}")
        if record is None or record.hook_id is None:
            raise CommandError(
                f"The bridge did not register a webhook for {owner}/{repo} (it was set up by hand, "
                "or not at all), so it cannot test it: use the webhook's page on GitHub."
            )
        if "push" in record.events:
            await client.test_hook(owner, repo, record.hook_id)
            await ctx.reply(f"Asked GitHub to re-deliver the latest push of {owner}/{repo} to the webhook.")
        else:
            await client.ping_hook(owner, repo, record.hook_id)
            await ctx.reply(
                f"Asked GitHub to ping the webhook of {owner}/{repo} (it does not subscribe to pushes, "
                "so there is no push to re-deliver)."
            )


def register(services: Services, accounts: GitHubAccounts, oauth: GitHubOAuthFlow, web_url: str) -> None:
    manager = services.manager

    async def repo(ctx: CommandContext, args: list[str]) -> None:
        owner, name = parse_repo_url(args[0], web_url)
        conn, outcome = await manager.create(ctx.room_id, EVENT_TYPE, {"org": owner, "repo": name}, user_id=ctx.sender)
        manual = outcome.secrets.get("webhook")
        secret = manual.get("secret") if isinstance(manual, dict) else None
        private = [w for w in outcome.warnings if secret and secret in w]
        public = [w for w in outcome.warnings if w not in private]
        text = f"Room configured to bridge **{conn.state_key}**."
        if private:
            await ctx.dm("\n\n".join(private))
            text += " The bridge could not create the repository's webhook: I sent you how to set it up in a direct message."
        text += "".join(f"\n\n⚠️ {w}" for w in public)
        await ctx.reply(text)

    services.room_commands.add(
        Command(("github", "repo"), repo, "<url>", "Bridge a GitHub repository to this room.",
                min_args=1, max_args=1, permission=("github", "manageConnections"))
    )

    async def login(ctx: CommandContext, args: list[str]) -> None:
        if not oauth.enabled:
            raise CommandError(
                "GitHub OAuth is not configured on this bridge: log in with "
                "`github setpersonaltoken <token>` instead."
            )
        url = await oauth.begin(ctx.sender)
        await ctx.reply(
            f"[Log in to GitHub]({url}) to let the bridge act for you. "
            f"The link works once, within {STATE_TTL_MINUTES} minutes."
        )

    async def set_token(ctx: CommandContext, args: list[str]) -> None:
        try:
            stored = await accounts.verify(args[0], "pat")
        except GitHubError as exc:
            if exc.status == 401:
                raise CommandError("GitHub rejected this token: check that it is complete and not expired.") from exc
            raise CommandError(exc.describe()) from exc
        await accounts.put(ctx.sender, stored)
        await ctx.reply(f"Your GitHub token is stored: you are logged in as **{stored.login}**.")

    async def status(ctx: CommandContext, args: list[str]) -> None:
        stored = await accounts.get(ctx.sender)
        if stored is None:
            await ctx.reply("You are not logged in to GitHub. Use `github login` or `github setpersonaltoken <token>`.")
            return
        try:
            checked = await accounts.verify(stored.token, stored.kind)
        except GitHubError as exc:
            if exc.status == 401:
                await ctx.reply("Your stored GitHub token no longer works (revoked or expired): log in again.")
                return
            raise CommandError(exc.describe()) from exc
        if checked.login != stored.login:
            await accounts.put(ctx.sender, checked)
        how = "a personal access token" if stored.kind == "pat" else "OAuth"
        await ctx.reply(f"You are logged in to GitHub as **{checked.login}** (with {how}).")

    async def logout(ctx: CommandContext, args: list[str]) -> None:
        if await accounts.delete(ctx.sender):
            await ctx.reply("You are logged out of GitHub: the bridge has forgotten your token.")
        else:
            await ctx.reply("You were not logged in to GitHub.")

    for words, handler, usage, text, n in (
        (("github", "login"), login, "", "Log in to GitHub (sends you a link).", 0),
        (("github", "setpersonaltoken"), set_token, "<token>", "Log in to GitHub with a personal access token.", 1),
        (("github", "status"), status, "", "Show which GitHub account you are logged in with.", 0),
        (("github", "logout"), logout, "", "Forget your GitHub token.", 0),
    ):
        services.dm_commands.add(
            Command(words, handler, usage, text, min_args=n, max_args=n, permission=("github", "login"))
        )
