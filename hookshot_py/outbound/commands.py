"""`!hookshot outbound-hook ...`: create, list and remove outbound webhooks from a room.

`!hookshot outbound-hook <name> <url> [PUT|POST]` as in hookshot (the method is ours; default
PUT). The token is sent to the user's DM, never to the room.
"""

from __future__ import annotations

from hookshot_py.commands.context import CommandContext, CommandError, with_warnings
from hookshot_py.commands.registry import command
from hookshot_py.connections.manager import ConnectionManager
from hookshot_py.outbound.connection import EVENT_TYPE, METHODS
from hookshot_py.outbound.request import SIGNATURE_HEADER

PERMISSION = ("generic", "commands")


class OutboundHookCommands:
    def __init__(self, manager: ConnectionManager) -> None:
        self.manager = manager

    @command("outbound-hook", "<name> <url> [PUT|POST]",
             "Send every message of this room to `url` (its secret token is sent to you privately).",
             min_args=2, max_args=3, permission=PERMISSION)  # fmt: skip
    async def create(self, ctx: CommandContext, args: list[str]) -> None:
        name, url = args[0], args[1]
        state = {"name": name, "url": url}
        if len(args) > 2:
            method = args[2].upper()
            if method not in METHODS:
                raise CommandError(f"{args[2]!r} is not a method outbound webhooks use: PUT or POST.")
            state["method"] = method
        _, outcome = await self.manager.create(ctx.room_id, EVENT_TYPE, state, user_id=ctx.sender)
        token = outcome.secrets.get("token")
        await ctx.dm(
            f"You have bridged the outbound webhook **{name}** in https://matrix.to/#/{ctx.room_id} to `{url}`.\n\n"
            f"Please use the secret token `{token}` when validating the requests: it is sent as "
            f"`X-Matrix-Hookshot-Token`, and each body is signed with it (`{SIGNATURE_HEADER}: sha256=` and the "
            "hex HMAC-SHA256 of the body)."
        )
        await ctx.reply(
            f"Room configured to bridge outbound webhook **{name}**. I sent you its secret token in a direct message."
        )

    @command("outbound-hook list", "", "List the outbound webhooks of this room.", max_args=0, permission=PERMISSION)
    async def list_hooks(self, ctx: CommandContext, args: list[str]) -> None:
        conns = sorted(
            (c for c in self.manager.connections(ctx.room_id) if c.event_type == EVENT_TYPE), key=lambda c: c.state_key
        )
        if not conns:
            await ctx.reply("There are no outbound webhooks in this room. "
                            "Create one with `!hookshot outbound-hook <name> <url>`.")  # fmt: skip
            return
        lines = [f"- {c.state_key}: {c.state.get('method', 'PUT')} {c.state.get('url')}" for c in conns]
        await ctx.reply("**Outbound webhooks in this room**\n\n" + "\n".join(lines))

    @command("outbound-hook remove", "<name>", "Remove an outbound webhook.", min_args=1, max_args=1,
             permission=PERMISSION)  # fmt: skip
    async def remove(self, ctx: CommandContext, args: list[str]) -> None:
        conn = self.manager.find(ctx.room_id, EVENT_TYPE, args[0])
        if conn is None:
            raise CommandError(
                f"There is no outbound webhook named {args[0]!r} in this room (see `!hookshot outbound-hook list`)."
            )
        warnings = await self.manager.remove(ctx.room_id, conn.id, user_id=ctx.sender)
        text = f"Removed outbound webhook **{args[0]}**; events are no longer sent to it."
        await ctx.reply(with_warnings(text, warnings))
