"""`!hookshot feed ...`: subscribe a room to a feed, list and remove its feeds (hookshot's wording)."""

from __future__ import annotations

import json

import yaml

from hookshot_py.commands.context import CommandContext, CommandError, with_warnings
from hookshot_py.commands.registry import command
from hookshot_py.connections.manager import ConnectionManager
from hookshot_py.feeds.connection import EVENT_TYPE

PERMISSION = ("feeds", "commands")


class FeedCommands:
    def __init__(self, manager: ConnectionManager) -> None:
        self.manager = manager

    @command("feed", "<url> [label] [template]", "Bridge an RSS/Atom/JSON feed to the room.",
             min_args=1, max_args=3, permission=PERMISSION)
    async def add(self, ctx: CommandContext, args: list[str]) -> None:
        url, label, template = (args + [None, None])[:3]
        state = {"url": url, "label": label, "template": template}
        await self.manager.create(
            ctx.room_id, EVENT_TYPE, {k: v for k, v in state.items() if v is not None}, user_id=ctx.sender
        )
        await ctx.reply(f"Room configured to bridge `{url}`")

    @command("feed list", "[json|yaml]", "Show feeds currently subscribed to. Supported formats `json` and `yaml`.",
             max_args=1, permission=PERMISSION)
    async def list_feeds(self, ctx: CommandContext, args: list[str]) -> None:
        fmt = args[0].lower() if args else ""
        feeds = sorted(
            (c.state for c in self.manager.connections(ctx.room_id) if c.event_type == EVENT_TYPE),
            key=lambda s: str(s.get("label") or s.get("url")),
        )
        if not feeds:
            await ctx.reply("Not subscribed to any feeds")
            return
        message = "Currently subscribed to these feeds:\n"
        if fmt == "json":
            message += f"```json\n{json.dumps(feeds, indent=4)}\n```"
        elif fmt == "yaml":
            message += f"```yaml\n{yaml.safe_dump(feeds, sort_keys=False, allow_unicode=True)}```"
        else:
            message += "\n".join(
                f"- [{s['label']}]({s['url']})" if s.get("label") else f"- {s['url']}" for s in feeds
            )
        await ctx.reply(message)

    @command("feed remove", "<url>", "Unsubscribe from an RSS/Atom/JSON feed.", min_args=1, max_args=1,
             permission=PERMISSION)
    async def remove(self, ctx: CommandContext, args: list[str]) -> None:
        url = args[0]
        conn = self.manager.find(ctx.room_id, EVENT_TYPE, url)
        if conn is None:
            raise CommandError(f'Feed "{url}" is not currently bridged to this room')
        warnings = await self.manager.remove(ctx.room_id, conn.id, user_id=ctx.sender)
        await ctx.reply(with_warnings(f"Unsubscribed from `{url}`", warnings))
