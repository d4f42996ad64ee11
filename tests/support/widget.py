"""A small connection type for the core's unit tests: prefix commands (`!wd`), secrets, warnings,
and a log of the hooks the ConnectionManager called, so tests see what the core did to a type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hookshot_py.commands.context import CommandContext, CommandError, text_after
from hookshot_py.commands.registry import CommandRegistry, command, commands_of
from hookshot_py.connections.base import Connection, ConnectionType, Outcome
from hookshot_py.connections.validation import command_prefix, unknown_fields
from hookshot_py.errors import ApiError, ErrCode, ValidationIssue

EVENT_TYPE = "org.example.widget"
LEGACY_EVENT_TYPE = "org.example.old-widget"
DEFAULT_PREFIX = "!wd"
_FIELDS = ("name", "commandPrefix", "warn", "broken", "refuse")


@dataclass(frozen=True)
class WidgetConfig:
    name: str
    prefix: str


class WidgetCommands:
    @command("ping", "", "Answer pong.", max_args=0)
    async def ping(self, ctx: CommandContext, args: list[str]) -> None:
        await ctx.reply(f"pong from {ctx.conn.state_key}")

    @command("say", "<text>", "Repeat the text as typed.", min_args=1)
    async def say(self, ctx: CommandContext, args: list[str]) -> None:
        await ctx.reply(f"said: {text_after(ctx.text, 1)} ({len(args)} words)")

    @command("refuse", "", "Always refuses.")
    async def refuse(self, ctx: CommandContext, args: list[str]) -> None:
        raise CommandError("refused on purpose")

    @command("forbidden", "", "Fails like a manager refusal.")
    async def forbidden(self, ctx: CommandContext, args: list[str]) -> None:
        raise ApiError(ErrCode.FORBIDDEN_USER, "the API said no")

    @command("crash", "", "A bug.")
    async def crash(self, ctx: CommandContext, args: list[str]) -> None:
        raise RuntimeError("widget bug with a secret inside")

    @command("admin only", "", "Needs the admin permission.", permission=("widget", "admin"))
    async def admin_only(self, ctx: CommandContext, args: list[str]) -> None:
        await ctx.reply("admin stuff done")


class WidgetType(ConnectionType[WidgetConfig]):
    type_name = "Widget"
    event_type = EVENT_TYPE
    legacy_event_types = (LEGACY_EVENT_TYPE,)
    service = "widget"
    service_label = "Widget"
    default_command_prefix = DEFAULT_PREFIX

    def __init__(self) -> None:
        self.commands = CommandRegistry(commands_of(WidgetCommands()))
        self.log: list[tuple[str, str]] = []

    def validate(
        self, state: dict[str, Any], *, existing: Connection | None, is_new: bool
    ) -> tuple[dict[str, Any], list[ValidationIssue]]:
        issues = unknown_fields(state, _FIELDS) if is_new else []
        name = state.get("name")
        if not isinstance(name, str) or not 3 <= len(name) <= 32:
            issues.append(ValidationIssue("/name", "must be a string of 3 to 32 characters"))
        prefix, problems = command_prefix(state, DEFAULT_PREFIX)
        issues += problems
        normalized = {k: state[k] for k in _FIELDS if k in state}
        return normalized, issues

    def state_key(self, state: dict[str, Any]) -> str:
        return str(state["name"])

    def parse(self, state: dict[str, Any]) -> WidgetConfig:
        if state.get("broken"):
            raise ValueError("this widget no longer fits the config")
        return WidgetConfig(str(state["name"]), str(state.get("commandPrefix", DEFAULT_PREFIX)))

    def label(self, conn: Connection) -> str:
        return f"widget {conn.state_key}"

    async def prepare(self, conn: Connection, *, existing: Connection | None, user_id: str | None) -> Outcome:
        self.log.append(("prepare", conn.state_key))
        if conn.state.get("refuse"):
            raise ApiError(ErrCode.FORBIDDEN_USER, "the widget service refused")
        return Outcome(
            secrets=self.secrets(conn) or {}, warnings=["widgets are experimental"] if conn.state.get("warn") else []
        )

    async def on_removed(self, conn: Connection, *, user_id: str | None) -> list[str]:
        self.log.append(("on_removed", conn.state_key))
        return ["the widget's remote side was left in place"]

    async def start(self, conns: list[Connection]) -> None:
        self.log.append(("start", ",".join(sorted(c.state_key for c in conns))))

    async def on_loaded(self, conn: Connection) -> None:
        self.log.append(("on_loaded", conn.state_key))

    async def on_unloaded(self, conn: Connection) -> None:
        self.log.append(("on_unloaded", conn.state_key))

    def secrets(self, conn: Connection) -> dict[str, Any] | None:
        return {"token": f"secret-of-{conn.state_key}"}

    def calls(self, hook: str) -> list[str]:
        return [key for name, key in self.log if name == hook]
