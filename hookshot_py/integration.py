"""What a service package (generic/, github/, gitflic/, barkeep/ ...) plugs into the bridge.

The core knows services only through this interface: their connection types (handed to the
ConnectionManager; each type carries its own prefix commands), their `!hookshot ...` room
commands and DM commands, HTTP routes on the webhooks and provisioning listeners, and
background work started after the bridge is ready.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hookshot_py.commands.registry import Command
from hookshot_py.connections.base import ConnectionType


class Integration:
    name: str = ""  # the service name, e.g. "github"; used for provisioning sub-routes

    def connection_types(self) -> list[ConnectionType[Any]]:
        return []

    def room_commands(self) -> list[Command]:
        """`!hookshot ...` commands (declared with `@command`, collected with `commands_of`)."""
        return []

    def dm_commands(self) -> list[Command]:
        """Commands in the DM with the bot (no prefix)."""
        return []

    def add_webhook_routes(self, app: web.Application) -> None:
        """Routes on the listener with the `webhooks` resource (e.g. /github/webhook)."""

    def add_provisioning_routes(self, app: web.Application) -> None:
        """Routes on the provisioning listener: under /v1/{name}/, or a connection's own
        resources under /v1/{roomId}/connections/{id}/ (the outbound hooks' delivery log)."""

    async def start(self) -> None:
        """Background work (pollers...). Called once the bridge is ready."""

    async def stop(self) -> None:
        """Stop background work."""
