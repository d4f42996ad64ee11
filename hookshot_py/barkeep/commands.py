"""Barkeep commands: `!hookshot barkeep repo ...` in rooms, `!barkeep ...` on a connection, and
`barkeep login|logout` in the DM with the bot."""

from __future__ import annotations

from html import escape
from typing import Any

from hookshot_py.barkeep.accounts import BarkeepAccounts, Credentials, UnknownInstance
from hookshot_py.barkeep.client import BarkeepClient
from hookshot_py.barkeep.errors import BAD_API_KEY, BAD_SIGNATURE, NO_API_KEY, BarkeepError
from hookshot_py.barkeep.format import format_comment_posted, format_status
from hookshot_py.barkeep.models import Commit, CommitSnapshot
from hookshot_py.barkeep.repo import EVENT_TYPE, events_of, instance_of, repo_of
from hookshot_py.barkeep.store import WatchStore
from hookshot_py.commands.context import CommandContext, CommandError, text_after, with_warnings
from hookshot_py.commands.registry import command
from hookshot_py.connections.base import Connection
from hookshot_py.connections.manager import ConnectionManager


def login_hint(instance: str) -> str:
    return f"send me `barkeep login {instance} <apiKey> <apiSecret>` in a direct message"


def describe_user_error(err: BarkeepError, instance: str) -> str:
    """A failure of a call signed with the user's own key, explained to that user.

    `BarkeepError.describe()` speaks of the bridge's configured key; here the key is theirs.
    """
    if err.kind == "auth":
        return (
            f"Barkeep ({instance}) refused your credentials: {auth_reason(err)}. Copy the key and secret "
            f"from your Barkeep settings page and {login_hint(instance)} again."
        )
    if err.kind == "admin_only":
        return "Only a Barkeep admin can do that, and your Barkeep user is not one."
    return err.describe()


def auth_reason(err: BarkeepError) -> str:
    """Why Barkeep refused a key and secret, in the user's terms."""
    if err.message == BAD_SIGNATURE:
        return "the API secret does not match the API key"
    if err.message in (BAD_API_KEY, NO_API_KEY):
        return "it does not know the API key"
    return err.message.rstrip(".")


def parse_location(arg: str) -> tuple[str, int] | None:
    """"src/app.py:42" → ("src/app.py", 42); None when `arg` is not `file:line`."""
    filename, colon, line = arg.rpartition(":")
    if not colon or not filename or not line.isdigit() or int(line) < 1:
        return None
    return filename, int(line)


class RepoCommands:
    """`<commandPrefix> ...` on a Barkeep repository connection."""

    def __init__(self, accounts: BarkeepAccounts, store: WatchStore) -> None:
        self.accounts = accounts
        self.store = store

    def _client(self, conn: Connection) -> BarkeepClient:
        try:
            return self.accounts.client(instance_of(conn))
        except UnknownInstance as e:
            raise CommandError(str(e)) from e

    async def _commit(self, ctx: CommandContext, conn: Connection, sha: str) -> Commit:
        try:
            return await self._client(conn).get_commit(repo_of(conn), sha)
        except BarkeepError as e:
            raise CommandError(e.describe()) from e

    @command("status", "<sha>", "Show whether a commit is approved, by whom and when, its comments and link.",
             min_args=1, max_args=1)
    async def status(self, ctx: CommandContext, args: list[str]) -> None:
        conn = ctx.conn
        commit = await self._commit(ctx, conn, args[0])
        plain, html = format_status(commit, repo_of(conn))
        await ctx.reply_html(plain, html)

    @command("comment", "<sha> [file:line] <text>",
             "Comment on a commit (or a line of a file in it) as yourself; needs `barkeep login` in a DM with me.",
             min_args=2)
    async def comment(self, ctx: CommandContext, args: list[str]) -> None:
        conn = ctx.conn
        sha, rest = args[0], args[1:]
        location = parse_location(rest[0]) if len(rest) > 1 else None
        # The text as typed: "comment <sha> [file:line]" are the words before it.
        text = text_after(ctx.text, 3 if location is not None else 2) if ctx.text else " ".join(rest).strip()
        if not text:
            raise CommandError("The comment text is empty.")
        instance = instance_of(conn)
        try:
            client = await self.accounts.user_client(ctx.sender, instance)
        except UnknownInstance as e:
            raise CommandError(str(e)) from e
        if client is None:
            raise CommandError(
                f"Comments are posted with your own Barkeep API key, and you have none stored for {instance}: "
                f"{login_hint(instance)} first."
            )
        commit = await self._commit(ctx, conn, sha)  # Barkeep needs the full sha to comment
        filename, line = location if location else (None, None)
        try:
            await client.add_comment(repo_of(conn), commit.sha, text, filename, line)
        except BarkeepError as e:
            raise CommandError(describe_user_error(e, instance)) from e
        plain, html = format_comment_posted(commit)
        if location:
            plain, html = f"{plain} ({filename}:{line})", f"{html} (<code>{_escape(f'{filename}:{line}')}</code>)"
        await ctx.reply_html(plain, html)

    @command("watch", "<sha>", "Announce here when the commit is approved or gets comments.",
             min_args=1, max_args=1)
    async def watch(self, ctx: CommandContext, args: list[str]) -> None:
        conn = ctx.conn
        commit = await self._commit(ctx, conn, args[0])
        added = await self.store.watch(
            instance_of(conn), repo_of(conn), [commit.sha], {commit.sha: CommitSnapshot.of(commit)}
        )
        plain, html = format_status(commit, repo_of(conn))
        wanted = " and ".join(
            {"approvals": "approved (or the approval is withdrawn)", "comments": "commented on"}[e]
            for e in events_of(conn)
        )
        if not added:
            lead = f"👀 Already watching {commit.short_sha}."
        elif wanted:
            lead = f"👀 Watching {commit.short_sha}: this room will hear when it is {wanted}."
        else:
            lead = f"👀 Watching {commit.short_sha}, though this connection announces no events."
        await ctx.reply_html(f"{lead}\n{plain}", f"{_escape(lead)}<br>{html}")


def _escape(text: str) -> str:
    return escape(text, quote=False)


class RoomCommands:
    """`!hookshot barkeep repo <instance> <repoName> [gitUrl]`."""

    def __init__(self, accounts: BarkeepAccounts, manager: ConnectionManager) -> None:
        self.config = accounts.config
        self.manager = manager

    @command("barkeep repo", "<instance> <repoName> [gitUrl]",
             "Bring a Barkeep repository's review news (approvals, comments) into this room; with a "
             "git URL, Barkeep is asked to track it.",
             min_args=2, max_args=3, permission=("barkeep", "commands"))
    async def connect(self, ctx: CommandContext, args: list[str]) -> None:
        instance = _instance(self.config.instances, args[0])
        state: dict[str, Any] = {"instance": instance, "repo": args[1]}
        if len(args) > 2:
            state["gitUrl"] = args[2]
        conn, outcome = await self.manager.create(ctx.room_id, EVENT_TYPE, state, user_id=ctx.sender)
        events = ", ".join(events_of(conn)) or "nothing"
        text = (
            f"Room configured to bridge Barkeep repository `{repo_of(conn)}` ({self.config.instances[instance].url}). "
            f"It announces: {events}. Type `{conn.state['commandPrefix']} help` for the repository's commands."
        )
        if tracking := outcome.secrets.get("tracking"):
            text += f"\n\n{tracking}"
        await ctx.reply(with_warnings(text, outcome.warnings))


def _instance(instances: dict[str, Any], name: str) -> str:
    if name not in instances:
        raise CommandError(f"Unknown Barkeep instance {name!r}; configured: {', '.join(instances)}.")
    return name


LOGIN = ("barkeep", "login")


class DmCommands:
    """`barkeep login|logout` in the DM with the bot."""

    def __init__(self, accounts: BarkeepAccounts) -> None:
        self.accounts = accounts
        self.config = accounts.config

    @command("barkeep login", "<instance> <apiKey> <apiSecret>",
             "Store your Barkeep API key and secret (from your Barkeep settings page), used to post your comments.",
             min_args=3, max_args=3, permission=LOGIN)
    async def login(self, ctx: CommandContext, args: list[str]) -> None:
        instance = _instance(self.config.instances, args[0])
        credentials = Credentials(args[1].strip(), args[2].strip())
        if not credentials.api_key or not credentials.api_secret:
            raise CommandError("The API key and the API secret must not be empty.")
        url = self.config.instances[instance].url
        note: str
        try:
            admin = await self.accounts.client(instance, credentials).check_key()
        except BarkeepError as e:
            if e.kind == "auth":
                raise CommandError(
                    f"Barkeep ({instance}) refused these credentials: {auth_reason(e)}. Nothing was stored."
                ) from e
            # Clock or network trouble says nothing about the key: keep it, and say so.
            note = f"Barkeep could not check it now: {e.describe()}"
        else:
            note = "Barkeep accepted it" + (" (an admin's key)." if admin else ".")
        await self.accounts.store(ctx.sender, instance, credentials)
        await ctx.reply(
            f"Stored your Barkeep API key for {instance} ({url}), encrypted. {note} "
            "You can delete your message with the secret now."
        )

    @command("barkeep logout", "[instance]", "Forget your Barkeep API key (for one instance, or all).",
             max_args=1, permission=LOGIN)
    async def logout(self, ctx: CommandContext, args: list[str]) -> None:
        instances = [_instance(self.config.instances, args[0])] if args else list(self.config.instances)
        forgotten = [name for name in instances if await self.accounts.forget(ctx.sender, name)]
        if forgotten:
            await ctx.reply(f"Forgot your Barkeep API key for {', '.join(forgotten)}.")
        else:
            await ctx.reply(f"You have no Barkeep API key stored for {', '.join(instances)}.")
