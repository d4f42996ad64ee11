"""GitFlic commands: `!hookshot gitflic project ...` in rooms, `!gf ...` on a connection, and
`gitflic settoken|logout` in the DM."""

from __future__ import annotations

from collections.abc import Callable

from hookshot_py.commands.context import CommandContext, CommandError, with_warnings
from hookshot_py.commands.registry import command
from hookshot_py.config import GitFlicConfig
from hookshot_py.connections.base import Connection
from hookshot_py.connections.manager import ConnectionManager
from hookshot_py.gitflic.hooks import TOKEN_SERVICE, GitFlicProjectHooks, webhook_url
from hookshot_py.gitflic.models import EVENT_TYPE, ProjectRef, ProjectRefError, Webhook, parse_project
from hookshot_py.tokens import TokenStore


def _describe_hook(hook: Webhook, ours: str | None) -> str:
    mark = " — **this bridge**" if ours is not None and hook.url.rstrip("/") == ours.rstrip("/") else ""
    events = ", ".join(sorted(hook.known_events())) or "no events"
    return f"- `{hook.hook_id}` → `{hook.url}`{mark} ({events})"


class ProjectCommands:
    """`<commandPrefix> ...` on a GitFlic project connection."""

    def __init__(
        self, config: GitFlicConfig, hooks: GitFlicProjectHooks, ref_of: Callable[[Connection], ProjectRef]
    ) -> None:
        self.config = config
        self.hooks = hooks
        self.ref_of = ref_of

    @command("hooks", "", "List the webhooks of the GitFlic project (needs a token with admin rights).", max_args=0)
    async def list_hooks(self, ctx: CommandContext, args: list[str]) -> None:
        conn = ctx.conn
        ref = self.ref_of(conn)
        if ref.instance not in self.config.instances:
            raise CommandError(f"The GitFlic instance {ref.instance!r} is not configured on this bridge.")
        found = await self.hooks.list_hooks(ref, ctx.sender)
        if not found:
            await ctx.reply(f"GitFlic project **{conn.state_key}** has no webhooks.")
            return
        ours = webhook_url(self.config)
        lines = "\n".join(_describe_hook(h, ours) for h in found)
        await ctx.reply(f"**Webhooks of GitFlic project {conn.state_key}**\n\n{lines}")


class RoomCommands:
    """`!hookshot gitflic project <owner/project or URL> [commandPrefix]`."""

    def __init__(self, config: GitFlicConfig, manager: ConnectionManager) -> None:
        self.config = config
        self.manager = manager

    @command("gitflic project", "<owner/project or project URL> [commandPrefix]",
             "Bridge a GitFlic project's events into this room.",
             min_args=1, max_args=2, permission=("gitflic", "commands"))
    async def connect(self, ctx: CommandContext, args: list[str]) -> None:
        try:
            ref = parse_project(args[0], self.config)
        except ProjectRefError as e:
            raise CommandError(str(e)) from e
        state: dict[str, object] = {"ownerAlias": ref.owner, "projectAlias": ref.project, "instance": ref.instance}
        if len(args) > 1:
            state["commandPrefix"] = args[1]
        conn, outcome = await self.manager.create(ctx.room_id, EVENT_TYPE, state, user_id=ctx.sender)
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
        await ctx.reply(with_warnings(text, [w for w in outcome.warnings if w != manual]))


LOGIN = ("gitflic", "login")


class DmCommands:
    """`gitflic settoken|logout` in the DM with the bot."""

    def __init__(self, config: GitFlicConfig, tokens: TokenStore) -> None:
        self.config = config
        self.tokens = tokens

    def _instance(self, args: list[str], at: int) -> str:
        if len(args) <= at:
            return self.config.default_instance
        name = args[at]
        if name not in self.config.instances:
            raise CommandError(f"Unknown GitFlic instance {name!r}; configured: {', '.join(self.config.instances)}.")
        return name

    @command("gitflic settoken", "<token> [instance]",
             "Store your GitFlic access token; the bridge uses it to manage your projects' webhooks.",
             min_args=1, max_args=2, permission=LOGIN)
    async def settoken(self, ctx: CommandContext, args: list[str]) -> None:
        token, instance = args[0].strip(), self._instance(args, 1)
        if not token:
            raise CommandError("The token is empty.")
        await self.tokens.put(ctx.sender, TOKEN_SERVICE, token, instance=instance)
        url = self.config.instances[instance].url
        await ctx.reply(
            f"Stored your GitFlic token for {url} (encrypted). GitFlic's API offers no way to check a "
            "token on its own, so it is checked the first time the bridge manages a project's webhook "
            "with it; it needs admin rights on the project. You can delete your message with the token now."
        )

    @command("gitflic logout", "[instance]", "Forget your GitFlic token.", max_args=1, permission=LOGIN)
    async def logout(self, ctx: CommandContext, args: list[str]) -> None:
        instance = self._instance(args, 0)
        url = self.config.instances[instance].url
        if await self.tokens.delete(ctx.sender, TOKEN_SERVICE, instance=instance):
            await ctx.reply(f"Forgot your GitFlic token for {url}.")
        else:
            await ctx.reply(f"You have no GitFlic token stored for {url}.")
