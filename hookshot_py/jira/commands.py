"""JIRA commands: `!hookshot jira project|list project|remove project` in rooms, the
per-connection prefix commands (`!jira create|issue-types|assign|help`) and, in the DM with
the bot, `jira login|logout|whoami` and `jira personaltoken` (on-premise). Wording follows
hookshot's where it has some.

Prefix commands act on JIRA with the sender's own login, never the bridge's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from hookshot_py.commands.context import CommandContext, CommandError, with_warnings
from hookshot_py.commands.registry import command
from hookshot_py.connections.base import Connection
from hookshot_py.connections.manager import ConnectionManager
from hookshot_py.jira.accounts import JiraAccounts, project_client
from hookshot_py.jira.client import JiraError
from hookshot_py.jira.format import Text
from hookshot_py.jira.models import EVENT_TYPE, ProjectUrlError, User, parse_project_url, project_url
from hookshot_py.jira.oauth import STATE_TTL_MINUTES, JiraOAuthFlow
from hookshot_py.markdown import render_markdown

if TYPE_CHECKING:
    from hookshot_py.jira.connection import ProjectConfig

__all__ = ["DmCommands", "ProjectCommands", "RoomCommands"]

_ISSUE_KEY = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)-([1-9][0-9]*)$")
MANAGE = ("jira", "manageConnections")
LOGIN = ("jira", "login")


async def _reply(ctx: CommandContext, text: Text, *, inline: bool = True) -> None:
    """A reply naming things JIRA named (sites, people, issue types): shown as they are in the
    plain body, escaped in the HTML. The texts are short, so they are rendered here."""
    notice = text.notice(inline=inline, extra={})
    await ctx.reply_html(notice.body, render_markdown(notice.markdown, inline=inline))


@contextmanager
def _explained() -> Iterator[None]:
    """JIRA's refusals as a reply in the room."""
    try:
        yield
    except JiraError as exc:
        raise CommandError(exc.describe()) from exc


def _pick(users: list[User], wanted: str) -> User | None:
    """The user whose name, display name or e-mail is `wanted`; else JIRA's best match."""
    folded = wanted.casefold()
    for user in users:
        names = (user.name, user.display_name, user.email_address, user.account_id)
        if folded in {(v or "").casefold() for v in names}:
            return user
    return users[0] if users else None


class ProjectCommands:
    """`<commandPrefix> ...` on a JIRA project connection, run with the sender's login."""

    def __init__(self, accounts: JiraAccounts, config_of: Callable[[Connection], ProjectConfig]) -> None:
        self.accounts = accounts
        self.config_of = config_of

    @command("create", "<type> <title> [description] [labels]",
             "Create an issue for this project (quote a title with spaces; labels comma-separated).",
             min_args=2, max_args=4)
    async def create(self, ctx: CommandContext, args: list[str]) -> None:
        config = self.config_of(ctx.conn)
        if not args[1].strip():
            raise CommandError(f"Usage: `{ctx.prefix} create <type> <title> [description] [labels]`")
        client, site = await project_client(self.accounts, ctx.sender, config.ref)
        with _explained():
            project = await client.project(config.ref.key)
        types = [t for t in project.issue_types if not t.subtask]
        if not types:
            raise CommandError("Cannot create issue, project has no issue types")
        chosen = next((t for t in types if t.name.casefold() == args[0].casefold()), None)
        if chosen is None:
            names = ", ".join(t.name for t in types)
            raise CommandError(
                f"You must specify a valid issue type (one of {names}). E.g. `{ctx.prefix} create {types[0].name}`"
            )
        description = args[2] if len(args) > 2 and args[2].strip() else None
        labels = [label.strip() for label in args[3].split(",") if label.strip()] if len(args) > 3 else []
        with _explained():
            created = await client.create_issue(project.key, chosen.id, args[1].strip(), description, labels)
        link = f"{site.url}/browse/{created.key}"
        await ctx.reply(f"Created JIRA issue {created.key}: [{link}]({link})")

    @command("issue-types", "", "Get issue types for this project.", max_args=0)
    async def issue_types(self, ctx: CommandContext, args: list[str]) -> None:
        config = self.config_of(ctx.conn)
        client, _ = await project_client(self.accounts, ctx.sender, config.ref)
        with _explained():
            project = await client.project(config.ref.key)
        names = ", ".join(t.name for t in project.issue_types if not t.subtask)
        await _reply(ctx, Text().raw("Issue types: ").text(names or "none"))

    @command("assign", "<issueKey> <user>", "Assign an issue to a user (a name or e-mail address).",
             min_args=2, max_args=2)
    async def assign(self, ctx: CommandContext, args: list[str]) -> None:
        config = self.config_of(ctx.conn)
        match = _ISSUE_KEY.match(args[0])
        if match is None:
            raise CommandError(f"`{args[0]}` is not an issue key such as `{config.ref.key}-12`.")
        key = args[0].upper()
        if match.group(1).upper() != config.ref.key:
            raise CommandError(f"{key} is not an issue of project {config.ref.key}, which this room is connected to.")
        client, _ = await project_client(self.accounts, ctx.sender, config.ref)
        with _explained():
            await client.issue(key)
            user = _pick(await client.assignable_users(key, args[1]), args[1])
            if user is None:
                raise CommandError(f"Could not find a user matching '{args[1]}' who may be assigned {key}.")
            await client.assign(key, user)
        await _reply(ctx, Text().raw(f"Assigned {key} to ").text(user.label).raw("."))


class RoomCommands:
    """`!hookshot jira project <url>`, `jira list project`, `jira remove project <url>`."""

    def __init__(self, manager: ConnectionManager, on_prem_url: str | None) -> None:
        self.manager = manager
        self.on_prem_url = on_prem_url

    @command("jira project", "<url>",
             "Create a connection for a JIRA project. (You must be logged in with JIRA to do this.)",
             min_args=1, max_args=1, permission=MANAGE)
    async def project(self, ctx: CommandContext, args: list[str]) -> None:
        try:
            ref = parse_project_url(args[0])
        except ProjectUrlError as e:
            raise CommandError(str(e)) from e
        await self.manager.create(
            ctx.room_id, EVENT_TYPE, {"url": project_url(ref, self.on_prem_url)}, user_id=ctx.sender
        )
        await ctx.reply(f"Room configured to bridge Jira project {ref.key}.")

    @command("jira list project", "", "Show JIRA projects currently connected to.", max_args=0,
             permission=("jira", "commands"))
    async def list_projects(self, ctx: CommandContext, args: list[str]) -> None:
        urls = sorted(c.state_key for c in self.manager.connections(ctx.room_id) if c.event_type == EVENT_TYPE)
        if not urls:
            await ctx.reply("Not connected to any JIRA projects")
            return
        await ctx.reply("Currently connected to these JIRA projects:\n\n" + "\n".join(f" - {u}" for u in urls))

    @command("jira remove project", "<url>", "Remove a connection for a JIRA project.",
             min_args=1, max_args=1, permission=MANAGE)
    async def remove(self, ctx: CommandContext, args: list[str]) -> None:
        conn = self._find(ctx.room_id, args[0])
        if conn is None:
            raise CommandError(f'JIRA project "{args[0]}" is not currently bridged to this room')
        warnings = await self.manager.remove(ctx.room_id, conn.id, user_id=ctx.sender)
        await ctx.reply(with_warnings(f"Room no longer bridged to Jira project `{conn.state_key}`.", warnings))

    def _find(self, room_id: str, url: str) -> Connection | None:
        """The connection named by `url`: its state key, or any URL of the same project."""
        if (conn := self.manager.find(room_id, EVENT_TYPE, url)) is not None:
            return conn
        try:
            ref = parse_project_url(url, lenient=True)
        except ProjectUrlError:
            return None
        for conn in self.manager.connections(room_id):
            if conn.event_type != EVENT_TYPE:
                continue
            try:
                theirs = parse_project_url(conn.state_key, lenient=True)
            except ProjectUrlError:
                continue
            if (theirs.host, theirs.key) == (ref.host, ref.key):
                return conn
        return None


class DmCommands:
    """`jira login|logout|whoami|personaltoken` in the DM with the bot."""

    def __init__(self, accounts: JiraAccounts, oauth: JiraOAuthFlow) -> None:
        self.accounts = accounts
        self.oauth = oauth

    @property
    def on_prem(self) -> bool:
        return self.accounts.config.url is not None

    @command("jira login", "", "Log in to JIRA.", max_args=0, permission=LOGIN)
    async def login(self, ctx: CommandContext, args: list[str]) -> None:
        if self.on_prem:
            await ctx.reply(
                f"This bridge serves the on-premise JIRA at {self.accounts.config.url}: create a personal "
                "access token in your JIRA profile and send `jira personaltoken <token>` here."
            )
            return
        if not self.oauth.enabled:
            await ctx.reply("Bot is not configured with JIRA OAuth support.")
            return
        url = await self.oauth.begin(ctx.sender)
        await ctx.reply(
            f"Open [this link]({url}) to link your account to the bridge. "
            f"It works once, within {STATE_TTL_MINUTES} minutes."
        )

    @command("jira personaltoken", "<token>", "Log in to an on-premise JIRA with a personal access token.",
             min_args=1, max_args=1, permission=LOGIN)
    async def personal_token(self, ctx: CommandContext, args: list[str]) -> None:
        if not self.on_prem:
            raise CommandError(
                "Personal access tokens are for an on-premise JIRA (`jira.url`); on JIRA Cloud use `jira login`."
            )
        try:
            stored, me = await self.accounts.verify_pat(args[0].strip())
        except JiraError as exc:
            if exc.status == 401:
                raise CommandError("JIRA rejected this token: check that it is complete and not expired.") from exc
            raise CommandError(exc.describe()) from exc
        await self.accounts.put(ctx.sender, stored)
        text = Text().raw("Your JIRA token is stored (encrypted): you are logged in as **").text(me.label)
        await _reply(ctx, text.raw("**. You can delete your message with the token now."))

    @command("jira logout", "", "Clear any login information.", max_args=0, permission=LOGIN)
    async def logout(self, ctx: CommandContext, args: list[str]) -> None:
        if await self.accounts.delete(ctx.sender):
            await ctx.reply("Your JIRA account has been unlinked from your Matrix user.")
        else:
            await ctx.reply("No JIRA account was linked to your Matrix user.")

    @command("jira whoami", "", "Determine JIRA identity.", max_args=0, permission=LOGIN)
    async def whoami(self, ctx: CommandContext, args: list[str]) -> None:
        try:
            login = await self.accounts.login(ctx.sender)
            sites = await login.sites() if login is not None else []
        except JiraError as exc:
            raise CommandError(f"Could not request JIRA resources due to an error: {exc.describe()}") from exc
        if login is None:
            await ctx.reply("You are not logged into JIRA.")
            return
        if not sites:
            await ctx.reply("You do not have any instances authorised with this bot.")
            return
        text = Text().raw("You have access to the following instances:")
        for site in sites:
            text.raw("\n - ").text(site.name)
            try:
                me = await login.client(site).myself()
            except JiraError as exc:
                text.raw(": ").text(exc.describe())
                continue
            if me.name:
                text.raw(" ").text(me.name)
            if me.display_name:
                text.raw(" (").text(me.display_name).raw(")")
        await _reply(ctx, text, inline=False)
