"""`!hookshot webhook ...`: create, list and remove generic webhooks from a room.

`!hookshot webhook <name> [duration]` creates a hook (expiring after `duration`, e.g. `30d`).
A transformation function goes in a code block after it, as clients send it:

    !hookshot webhook ci
    ```js
    result = {version: "v2", plain: `Build ${data.status}`};
    ```

For an existing hook, the same command with a script (or a duration) changes it; an empty code
block removes the script.
"""

from __future__ import annotations

from datetime import UTC, datetime

from hookshot_py.commands.context import CommandContext, CommandError, with_warnings
from hookshot_py.commands.registry import command
from hookshot_py.connections.manager import ConnectionManager
from hookshot_py.generic.connection import EVENT_TYPE
from hookshot_py.generic.expiry import format_expiry, parse_duration

PERMISSION = ("generic", "commands")


class WebhookCommands:
    def __init__(self, manager: ConnectionManager) -> None:
        self.manager = manager

    @command("webhook", "<name> [duration] [```script```]",
             "Create a webhook (its secret URL is sent to you privately), expiring after `duration` "
             "(e.g. `30d`) if given, transformed by the JavaScript in a code block after it if given.",
             min_args=1, max_args=2, permission=PERMISSION)  # fmt: skip
    async def create(self, ctx: CommandContext, args: list[str]) -> None:
        name = args[0]
        state: dict[str, object] = {}
        if len(args) > 1:
            duration = parse_duration(args[1])
            if duration is None:
                raise CommandError(f"{args[1]!r} is not a duration like `30d`, `12h` or `90m`.")
            state["expirationDate"] = format_expiry(datetime.now(UTC) + duration)
        if ctx.code is not None:
            state["transformationFunction"] = ctx.code
        existing = self.manager.find(ctx.room_id, EVENT_TYPE, name)
        if existing is not None and state:
            await self.manager.update(ctx.room_id, existing.id, state, user_id=ctx.sender)
            changed = " and ".join(
                what for key, what in (("transformationFunction", "script"), ("expirationDate", "expiry date"))
                if key in state
            )
            await ctx.reply(f"Updated the {changed} of webhook **{name}**.")
            return
        _, outcome = await self.manager.create(ctx.room_id, EVENT_TYPE, {"name": name, **state}, user_id=ctx.sender)
        url = outcome.secrets.get("url")
        expires = f"\n\nIt expires on {state['expirationDate']}." if "expirationDate" in state else ""
        await ctx.dm(
            f"Your webhook **{name}** is ready. Send JSON (or form data, or text) to:\n\n`{url}`\n\n"
            f"For example: `curl -X POST -H 'Content-Type: application/json' "
            f"-d '{{\"text\": \"Hello from {name}\"}}' {url}`\n\n"
            f"Keep this address secret: anyone who has it can post into the room.{expires}"
        )
        await ctx.reply(f"Room configured to bridge webhook **{name}**. I sent you its secret URL in a direct message.")

    @command("webhook list", "", "List the webhooks of this room.", max_args=0, permission=PERMISSION)
    async def list_hooks(self, ctx: CommandContext, args: list[str]) -> None:
        conns = sorted(
            (c for c in self.manager.connections(ctx.room_id) if c.event_type == EVENT_TYPE), key=lambda c: c.state_key
        )
        if not conns:
            await ctx.reply("There are no webhooks in this room. Create one with `!hookshot webhook <name>`.")
            return
        lines = []
        for conn in conns:
            notes = [
                note for note, on in (
                    ("static", conn.static),
                    ("script", bool(conn.state.get("transformationFunction"))),
                    (f"expires {conn.state.get('expirationDate')}", bool(conn.state.get("expirationDate"))),
                ) if on
            ]  # fmt: skip
            lines.append(f"- {conn.state.get('name', conn.state_key)}" + (f" ({', '.join(notes)})" if notes else ""))
        await ctx.reply("**Webhooks in this room**\n\n" + "\n".join(lines))

    @command("webhook remove", "<name>", "Remove a webhook.", min_args=1, max_args=1, permission=PERMISSION)
    async def remove(self, ctx: CommandContext, args: list[str]) -> None:
        name = args[0]
        conn = self.manager.find(ctx.room_id, EVENT_TYPE, name)
        if conn is None:
            raise CommandError(f"There is no webhook named {name!r} in this room (see `!hookshot webhook list`).")
        warnings = await self.manager.remove(ctx.room_id, conn.id, user_id=ctx.sender)
        await ctx.reply(with_warnings(f"Removed webhook **{name}**; its URL no longer works.", warnings))
