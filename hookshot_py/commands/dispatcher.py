"""Turns room messages into commands: `!hookshot ...`, connection prefixes (`!gh ...`) and DMs."""

from __future__ import annotations

import logging
import shlex
import time
from typing import Any

from hookshot_py.commands.context import CommandContext, CommandError
from hookshot_py.commands.registry import Command, CommandRegistry
from hookshot_py.errors import ApiError
from hookshot_py.services import Services

log = logging.getLogger(__name__)

ROOM_PREFIX = "!hookshot"
# A command sent while the bridge was down is still run when it comes back, unless it is stale.
MAX_COMMAND_AGE_MS = 5 * 60 * 1000


class CommandDispatcher:
    def __init__(self, services: Services, is_bridge_user: Any) -> None:
        self.s = services
        self.is_bridge_user = is_bridge_user

    async def handle_message(self, event: dict[str, Any]) -> None:
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
        dm_owner = self.s.dms.user_of(room_id)
        ctx = CommandContext(room_id, sender, event.get("event_id", ""), self.s)
        if dm_owner is not None:
            if sender != dm_owner:
                return
            ctx.is_dm = True
            text = body[len(ROOM_PREFIX):] if body.lower().startswith(ROOM_PREFIX) else body
            await self._run(ctx, self.s.dm_commands, text, prefix="")
            return
        if body.lower() == ROOM_PREFIX or body.lower().startswith(ROOM_PREFIX + " "):
            await self._run(ctx, self.s.room_commands, body[len(ROOM_PREFIX):], prefix=ROOM_PREFIX)
            return
        for conn in self.s.manager.connections(room_id):
            ctype = self.s.manager.type_of(conn)
            prefix = ctype.command_prefix(conn)
            if prefix and (body == prefix or body.startswith(prefix + " ")):
                ctx.text = body[len(prefix):].strip()
                # Free text (a comment) may hold a lone apostrophe: split on spaces then.
                args = self._split(ctx.text) or ctx.text.split()
                if not self.s.permissions.check(sender, ctype.service, "commands"):
                    await ctx.reply(
                        f"You do not have permission to use {prefix} commands (they need the "
                        f"`commands` permission for `{ctype.service}` on this bridge)."
                    )
                    return
                ctx.prefix = prefix
                await self._guard(ctx, lambda: ctype.handle_command(ctx, conn, args))
                return

    @staticmethod
    def _split(text: str) -> list[str] | None:
        try:
            return shlex.split(text)
        except ValueError:
            return None

    async def _run(self, ctx: CommandContext, registry: CommandRegistry, text: str, *, prefix: str) -> None:
        ctx.prefix = prefix
        ctx.text = text.strip()
        args = self._split(text)
        if args is None:
            await ctx.reply("Could not parse the command: a quote is not closed.")
            return
        if not args:
            args = ["help"]
        found = registry.match(args)
        shown = f"{prefix} " if prefix else ""
        if found is None:
            hint = registry.suggest(args[0])
            extra = f" Did you mean `{shown}{hint[0]}`?" if hint else ""
            await ctx.reply(f"Unknown command `{args[0]}`.{extra} Try `{shown}help`.")
            self.s.metrics.commands.labels(outcome="unknown").inc()
            return
        cmd, rest = found
        if len(rest) < cmd.min_args or (cmd.max_args is not None and len(rest) > cmd.max_args):
            await ctx.reply(f"Usage: `{shown}{usage(cmd)}` — {cmd.help}")
            self.s.metrics.commands.labels(outcome="usage").inc()
            return
        if cmd.permission is not None and not self.s.permissions.check(ctx.sender, *cmd.permission):
            service, level = cmd.permission
            await ctx.reply(
                f"You do not have permission to use this command (it needs the `{level}` "
                f"permission for `{service}` on this bridge)."
            )
            self.s.metrics.commands.labels(outcome="forbidden").inc()
            return
        await self._guard(ctx, lambda: cmd.handler(ctx, rest))

    async def _guard(self, ctx: CommandContext, run: Any) -> None:
        try:
            handled = await run()
        except (CommandError, ApiError) as e:
            await ctx.react("⛔")
            await ctx.reply(f"Failed to handle command: {e}")
            self.s.metrics.commands.labels(outcome="refused").inc()
            return
        except Exception:
            log.exception("Command %r in %s failed", ctx.prefix, ctx.room_id)
            await ctx.react("⛔")
            await ctx.reply("Failed to handle command: an internal error occurred (it has been logged).")
            self.s.metrics.commands.labels(outcome="error").inc()
            return
        if handled is False:
            await ctx.reply(f"Unknown command. Try `{ctx.prefix} help`.")
            return
        await ctx.react("✅")
        self.s.metrics.commands.labels(outcome="ok").inc()


def usage(cmd: Command) -> str:
    return f"{cmd.name} {cmd.usage}".strip()


def help_text(registry: CommandRegistry, prefix: str, services: Services, user_id: str) -> str:
    lines = []
    for cmd in registry:
        if cmd.permission is not None and not services.permissions.check(user_id, *cmd.permission):
            continue
        shown = f"{prefix} " if prefix else ""
        lines.append(f"- `{shown}{usage(cmd)}` — {cmd.help}")
    return "\n".join(lines)
