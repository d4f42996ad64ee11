"""`!hookshot webhook ...`: create, list and remove generic webhooks from a room."""

from __future__ import annotations

from hookshot_py.commands.context import CommandContext, CommandError
from hookshot_py.commands.registry import command
from hookshot_py.connections.manager import ConnectionManager
from hookshot_py.generic.connection import EVENT_TYPE

PERMISSION = ("generic", "commands")


class WebhookCommands:
    def __init__(self, manager: ConnectionManager) -> None:
        self.manager = manager

    @command("webhook", "<name>", "Create a webhook (its secret URL is sent to you privately).",
             min_args=1, max_args=1, permission=PERMISSION)
    async def create(self, ctx: CommandContext, args: list[str]) -> None:
        name = args[0]
        _, outcome = await self.manager.create(ctx.room_id, EVENT_TYPE, {"name": name}, user_id=ctx.sender)
        url = outcome.secrets.get("url")
        await ctx.dm(
            f"Your webhook **{name}** is ready. Send JSON (or form data, or text) to:\n\n`{url}`\n\n"
            f"For example: `curl -X POST -H 'Content-Type: application/json' "
            f"-d '{{\"text\": \"Hello from {name}\"}}' {url}`\n\n"
            "Keep this address secret: anyone who has it can post into the room."
        )
        await ctx.reply(f"Room configured to bridge webhook **{name}**. I sent you its secret URL in a direct message.")

    @command("webhook list", "", "List the webhooks of this room.", max_args=0, permission=PERMISSION)
    async def list_hooks(self, ctx: CommandContext, args: list[str]) -> None:
        names = sorted(c.state_key for c in self.manager.connections(ctx.room_id) if c.event_type == EVENT_TYPE)
        if not names:
            await ctx.reply("There are no webhooks in this room. Create one with `!hookshot webhook <name>`.")
            return
        await ctx.reply("**Webhooks in this room**\n\n" + "\n".join(f"- {n}" for n in names))

    @command("webhook remove", "<name>", "Remove a webhook.", min_args=1, max_args=1, permission=PERMISSION)
    async def remove(self, ctx: CommandContext, args: list[str]) -> None:
        name = args[0]
        conn = self.manager.find(ctx.room_id, EVENT_TYPE, name)
        if conn is None:
            raise CommandError(f"There is no webhook named {name!r} in this room (see `!hookshot webhook list`).")
        warnings = await self.manager.remove(ctx.room_id, conn.id, user_id=ctx.sender)
        suffix = "".join(f"\n\n⚠️ {w}" for w in warnings)
        await ctx.reply(f"Removed webhook **{name}**; its URL no longer works.{suffix}")
