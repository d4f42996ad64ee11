"""Commands every bridge has: `help`, in rooms and in the DM."""

from __future__ import annotations

from hookshot_py.commands.context import CommandContext
from hookshot_py.commands.dispatcher import ROOM_PREFIX, help_text
from hookshot_py.commands.registry import Command
from hookshot_py.services import Services


def register(services: Services) -> None:
    async def room_help(ctx: CommandContext, args: list[str]) -> None:
        lines = [help_text(services.room_commands, ROOM_PREFIX, services, ctx.sender)]
        for conn in services.manager.connections(ctx.room_id):
            ctype = services.manager.type_of(conn)
            prefix = ctype.command_prefix(conn)
            for cmd_usage, text in ctype.command_help(conn):
                lines.append(f"- `{prefix} {cmd_usage}` — {text} ({conn.state_key})")
        body = "\n".join(line for line in lines if line)
        await ctx.reply(f"**Hookshot commands**\n\n{body}" if body else "You have no commands available here.")

    async def dm_help(ctx: CommandContext, args: list[str]) -> None:
        body = help_text(services.dm_commands, "", services, ctx.sender)
        await ctx.reply(
            "**Commands in this chat** (no prefix needed)\n\n"
            f"{body}\n\nIn a room, invite me and type `{ROOM_PREFIX} help`."
        )

    services.room_commands.add(Command(("help",), room_help, "", "Show the commands you can use here."))
    services.dm_commands.add(Command(("help",), dm_help, "", "Show the commands you can use here."))
