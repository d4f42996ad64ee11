"""GitFlic commands: `!hookshot gitflic project ...` in rooms, `!gf ...` on a connection, and
`gitflic settoken|logout` in the DM."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hookshot_py.commands.context import CommandContext, CommandError
from hookshot_py.commands.registry import Command
from hookshot_py.connections.base import Connection
from hookshot_py.gitflic.client import Webhook
from hookshot_py.gitflic.connection import GitFlicProjectType, ref_of
from hookshot_py.gitflic.hooks import TOKEN_SERVICE, ProjectHooks
from hookshot_py.gitflic.project import ProjectRefError, parse_project, webhook_url

if TYPE_CHECKING:
    from hookshot_py.services import Services

_HELP: list[tuple[str, str]] = [
    ("hooks", "List the webhooks of the GitFlic project (needs a token with admin rights)."),
    ("help", "Show these commands."),
]


def _describe_hook(hook: Webhook, ours: str | None) -> str:
    mark = " — **this bridge**" if ours is not None and hook.url.rstrip("/") == ours.rstrip("/") else ""
    events = ", ".join(sorted(hook.known_events())) or "no events"
    return f"- `{hook.id}` → `{hook.url}`{mark} ({events})"


class PrefixCommands:
    """`<commandPrefix> hooks|help` on a GitFlic project connection."""

    def __init__(self, services: Services, hooks: ProjectHooks) -> None:
        self.services = services
        self.hooks = hooks

    def help(self) -> list[tuple[str, str]]:
        return list(_HELP)

    async def handle(self, ctx: CommandContext, conn: Connection, args: list[str]) -> bool:
        command = args[0].lower() if args else "help"
        if command == "help":
            lines = "\n".join(f"- `{ctx.prefix} {usage}` — {text}" for usage, text in _HELP)
            await ctx.reply(f"**GitFlic commands for {conn.state_key}**\n\n{lines}")
            return True
        if command != "hooks":
            return False
        if len(args) > 1:
            raise CommandError(f"`{ctx.prefix} hooks` takes no arguments.")
        if not self.services.permissions.check(ctx.sender, "gitflic", "commands"):
            raise CommandError("You need the `commands` permission for `gitflic` on this bridge.")
        ref = ref_of(conn)
        if ref.instance not in self.hooks.config.instances:
            raise CommandError(f"The GitFlic instance {ref.instance!r} is not configured on this bridge.")
        found = await self.hooks.list_hooks(ref, ctx.sender)
        if not found:
            await ctx.reply(f"GitFlic project **{conn.state_key}** has no webhooks.")
            return True
        ours = webhook_url(self.hooks.config)
        lines = "\n".join(_describe_hook(h, ours) for h in found)
        await ctx.reply(f"**Webhooks of GitFlic project {conn.state_key}**\n\n{lines}")
        return True


def register(services: Services, ctype: GitFlicProjectType) -> None:
    config = ctype.config
    manager = services.manager

    async def connect(ctx: CommandContext, args: list[str]) -> None:
        try:
            ref = parse_project(args[0], config)
        except ProjectRefError as e:
            raise CommandError(str(e)) from e
        state: dict[str, object] = {"ownerAlias": ref.owner, "projectAlias": ref.project, "instance": ref.instance}
        if len(args) > 1:
            state["commandPrefix"] = args[1]
        conn, outcome = await manager.create(ctx.room_id, ctype.event_type, state, user_id=ctx.sender)
        prefix = conn.state["commandPrefix"]
        manual = outcome.secrets.get("manualSetup")
        if manual:
            # The text holds the hook's secret: never in the room.
            await ctx.dm(f"**GitFlic project {conn.state_key}**\n\n{manual}")
            text = (
                f"Room configured to bridge GitFlic project **{conn.state_key}**. The bridge could not "
                "register the project's webhook itself: I sent you what to enter in GitFlic in a direct message."
            )
        else:
            events = ", ".join(outcome.secrets.get("webhookEvents") or []) or "no events"
            text = (
                f"Room configured to bridge GitFlic project **{conn.state_key}**. Its webhook is registered "
                f"for: {events}. Type `{prefix} help` for the project's commands."
            )
        notes = [w for w in outcome.warnings if w != manual]
        await ctx.reply(text + "".join(f"\n\n⚠️ {w}" for w in notes))

    def instance_arg(args: list[str], at: int) -> str:
        if len(args) <= at:
            return config.default_instance
        name = args[at]
        if name not in config.instances:
            raise CommandError(f"Unknown GitFlic instance {name!r}; configured: {', '.join(config.instances)}.")
        return name

    async def settoken(ctx: CommandContext, args: list[str]) -> None:
        token, instance = args[0].strip(), instance_arg(args, 1)
        if not token:
            raise CommandError("The token is empty.")
        await services.tokens.put(ctx.sender, TOKEN_SERVICE, token, instance=instance)
        url = config.instances[instance].url
        await ctx.reply(
            f"Stored your GitFlic token for {url} (encrypted). GitFlic's API offers no way to check a "
            "token on its own, so it is checked the first time the bridge manages a project's webhook "
            "with it; it needs admin rights on the project. You can delete your message with the token now."
        )

    async def logout(ctx: CommandContext, args: list[str]) -> None:
        instance = instance_arg(args, 0)
        url = config.instances[instance].url
        if await services.tokens.delete(ctx.sender, TOKEN_SERVICE, instance=instance):
            await ctx.reply(f"Forgot your GitFlic token for {url}.")
        else:
            await ctx.reply(f"You have no GitFlic token stored for {url}.")

    services.room_commands.add(
        Command(
            ("gitflic", "project"),
            connect,
            "<owner/project or project URL> [commandPrefix]",
            "Bridge a GitFlic project's events into this room.",
            min_args=1,
            max_args=2,
            permission=("gitflic", "commands"),
        )
    )
    services.dm_commands.add(
        Command(
            ("gitflic", "settoken"),
            settoken,
            "<token> [instance]",
            "Store your GitFlic access token; the bridge uses it to manage your projects' webhooks.",
            min_args=1,
            max_args=2,
            permission=("gitflic", "login"),
        )
    )
    services.dm_commands.add(
        Command(
            ("gitflic", "logout"),
            logout,
            "[instance]",
            "Forget your GitFlic token.",
            max_args=1,
            permission=("gitflic", "login"),
        )
    )
