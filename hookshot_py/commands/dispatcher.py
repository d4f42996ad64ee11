"""Turns room messages into commands: `!hookshot ...`, connection prefixes (`!gh ...`) and DMs.

All three are served by one path: find the scope (which registry, under which prefix), split
the text, match the longest command, check its arity and permission, run it, and mark the
outcome with a reaction. `help` is answered here for every scope.
"""

from __future__ import annotations

import logging
import shlex
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from hookshot_py.commands.context import CommandContext, CommandError, split_code_block
from hookshot_py.commands.registry import Command, CommandRegistry
from hookshot_py.commands.runs import CommandRuns
from hookshot_py.connections.base import Connection
from hookshot_py.connections.manager import ConnectionManager
from hookshot_py.db.leases import Leases
from hookshot_py.errors import ApiError
from hookshot_py.matrix.dm import DirectMessages
from hookshot_py.matrix.outbox import Outbox
from hookshot_py.metrics import Metrics
from hookshot_py.permissions import Permissions

log = logging.getLogger(__name__)

ROOM_PREFIX = "!hookshot"
# A command sent while the bridge was down is still run when it comes back, unless it is stale.
MAX_COMMAND_AGE_MS = 5 * 60 * 1000


@dataclass
class Scope:
    """Where a command is looked up: a registry, the prefix it was typed with, and help texts."""

    registry: CommandRegistry
    prefix: str  # "" in the DM
    title: str
    connection: Connection | None = None
    footer: str = ""
    extra_help: list[str] = field(default_factory=list)
    # Needed for commands that declare no permission: a connection's prefix commands need
    # `commands` for its service.
    default_permission: tuple[str, str] | None = None

    def permission(self, cmd: Command) -> tuple[str, str] | None:
        return cmd.permission or self.default_permission

    def shown(self, cmd: Command | None = None) -> str:
        head = f"{self.prefix} " if self.prefix else ""
        return head + (cmd.usage_line() if cmd is not None else "")


class CommandDispatcher:
    def __init__(
        self,
        *,
        manager: ConnectionManager,
        dms: DirectMessages,
        outbox: Outbox,
        permissions: Permissions,
        metrics: Metrics,
        room_commands: CommandRegistry,
        dm_commands: CommandRegistry,
        is_bridge_user: Callable[[str], bool],
        runs: CommandRuns | None = None,
    ) -> None:
        self.runs = runs  # claims in Postgres: each command runs once across processes
        self.manager = manager
        self.dms = dms
        self.outbox = outbox
        self.permissions = permissions
        self.metrics = metrics
        self.room_commands = room_commands
        self.dm_commands = dm_commands
        self.is_bridge_user = is_bridge_user

    async def handle_message(self, event: dict[str, Any], *, claimed: bool = False) -> None:
        """Run the command the message holds, if any. `claimed`: this process already holds the
        command's claim (it runs it again after the process that had it died)."""
        content = event.get("content") or {}
        body = content.get("body")
        sender = event.get("sender", "")
        room_id = event.get("room_id", "")
        if not isinstance(body, str) or content.get("msgtype") not in ("m.text", "m.notice", None):
            return
        if content.get("msgtype") == "m.notice" or self.is_bridge_user(sender):
            return  # never answer bots (including ourselves)
        ts = event.get("origin_server_ts")
        if isinstance(ts, int) and time.time() * 1000 - ts > MAX_COMMAND_AGE_MS:
            log.info("Ignoring a %d s old message in %s", (time.time() * 1000 - ts) // 1000, room_id)
            return
        body = body.strip()
        found = self._scope(room_id, sender, body)
        if found is None:
            return
        scope, text = found
        event_id = event.get("event_id", "")
        ctx = CommandContext(
            room_id, sender, event_id, self.outbox, self.dms,
            is_dm=scope.prefix == "", prefix=scope.prefix, text=text.strip(), connection=scope.connection,
        )
        if self.runs is None or not isinstance(event_id, str) or not event_id:
            await self._run(ctx, scope, text)
            return
        ctx.dedupe = True
        if not claimed and not await self.runs.claim(event):
            log.info("Command %s in %s was run already (or is running elsewhere)", event_id, room_id)
            return
        async with self.runs.running(event_id):
            await self._run(ctx, scope, text)

    def start(self, leases: Leases) -> None:
        """Commands whose process died are run again by one process (`commands/runs.py`)."""
        if self.runs is not None:
            self.runs.start_redo(leases, lambda event: self.handle_message(event, claimed=True),
                                 MAX_COMMAND_AGE_MS / 1000)

    async def stop(self) -> None:
        if self.runs is not None:
            await self.runs.stop()

    def _scope(self, room_id: str, sender: str, body: str) -> tuple[Scope, str] | None:
        """The scope a message addresses and the text after its prefix; None: not a command."""
        dm_owner = self.dms.user_of(room_id)
        lowered = body.lower()
        if dm_owner is not None:
            if sender != dm_owner:
                return None
            text = body[len(ROOM_PREFIX):] if lowered.startswith(ROOM_PREFIX) else body
            scope = Scope(
                self.dm_commands, "", "**Commands in this chat** (no prefix needed)",
                footer=f"In a room, invite me and type `{ROOM_PREFIX} help`.",
            )
            return scope, text
        if lowered == ROOM_PREFIX or lowered.startswith(ROOM_PREFIX + " "):
            return Scope(self.room_commands, ROOM_PREFIX, "**Hookshot commands**",
                         extra_help=self._connection_help(room_id, sender)), body[len(ROOM_PREFIX):]
        for conn in self.manager.connections(room_id):
            ctype = self.manager.type_of(conn)
            prefix = ctype.command_prefix(conn)
            if prefix and (body == prefix or body.startswith(prefix + " ")):
                label = f"{ctype.service_label} commands" if ctype.service_label else "Commands"
                title = f"**{label} for {ctype.label(conn)}**"
                scope = Scope(ctype.commands, prefix, title, connection=conn,
                              default_permission=(ctype.service, "commands"))
                return scope, body[len(prefix):]
        return None

    def _connection_help(self, room_id: str, user_id: str) -> list[str]:
        lines = []
        for conn in self.manager.connections(room_id):
            ctype = self.manager.type_of(conn)
            prefix = ctype.command_prefix(conn)
            if prefix is None:
                continue
            scope = Scope(ctype.commands, prefix, "", connection=conn, default_permission=(ctype.service, "commands"))
            lines += [f"{line} ({conn.state_key})" for line in self._listing(scope, user_id)]
        return lines

    @staticmethod
    def _split(text: str) -> list[str] | None:
        try:
            return shlex.split(text)
        except ValueError:
            return None

    async def _run(self, ctx: CommandContext, scope: Scope, text: str) -> None:
        if scope.connection is None:
            text, ctx.code = split_code_block(text)
        args = self._split(text)
        if args is None:
            if scope.connection is None:
                await ctx.reply("Could not parse the command: a quote is not closed.")
                return
            # Free text (a comment) may hold a lone apostrophe: split on spaces then.
            args = text.split()
        if not args or (args[0].lower() == "help" and scope.registry.match(args) is None):
            await self._help(ctx, scope)
            return
        found = scope.registry.match(args)
        if found is None:
            hint = scope.registry.suggest(args[0])
            extra = f" Did you mean `{scope.shown()}{hint[0]}`?" if hint else ""
            await ctx.reply(f"Unknown command `{args[0]}`.{extra} Try `{scope.shown()}help`.")
            self.metrics.commands.labels(outcome="unknown").inc()
            return
        cmd, rest = found
        if len(rest) < cmd.min_args or (cmd.max_args is not None and len(rest) > cmd.max_args):
            await ctx.reply(f"Usage: `{scope.shown(cmd)}`. {cmd.help}")
            self.metrics.commands.labels(outcome="usage").inc()
            return
        permission = scope.permission(cmd)
        if permission is not None and not self.permissions.check(ctx.sender, *permission):
            service, level = permission
            await ctx.reply(
                f"You do not have permission to use this command (it needs the `{level}` "
                f"permission for `{service}` on this bridge)."
            )
            self.metrics.commands.labels(outcome="forbidden").inc()
            return
        await self._guard(ctx, lambda: cmd.handler(ctx, rest))

    async def _guard(self, ctx: CommandContext, run: Callable[[], Awaitable[None]]) -> None:
        try:
            await run()
        except (CommandError, ApiError) as e:
            await ctx.react("⛔")
            await ctx.reply(f"Failed to handle command: {e}")
            self.metrics.commands.labels(outcome="refused").inc()
            return
        except Exception:
            log.exception("Command %r in %s failed", ctx.prefix, ctx.room_id)
            await ctx.react("⛔")
            await ctx.reply("Failed to handle command: an internal error occurred (it has been logged).")
            self.metrics.commands.labels(outcome="error").inc()
            return
        await ctx.react("✅")
        self.metrics.commands.labels(outcome="ok").inc()

    def _listing(self, scope: Scope, user_id: str) -> list[str]:
        return [
            f"- `{scope.shown(cmd)}` — {cmd.help}"
            for cmd in scope.registry
            if (permission := scope.permission(cmd)) is None or self.permissions.check(user_id, *permission)
        ]

    async def _help(self, ctx: CommandContext, scope: Scope) -> None:
        help_line = f"- `{scope.shown()}help` — Show the commands you can use here."
        lines = [*self._listing(scope, ctx.sender), *scope.extra_help, help_line]
        text = f"{scope.title}\n\n" + "\n".join(lines)
        if scope.footer:
            text += f"\n\n{scope.footer}"
        await ctx.reply(text)
