"""GitFlic project connections as a bridge integration."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hookshot_py.commands.registry import Command, commands_of
from hookshot_py.config import GitFlicConfig
from hookshot_py.connections.base import ConnectionType
from hookshot_py.gitflic.commands import DmCommands, RoomCommands
from hookshot_py.gitflic.connection import GitFlicProjectType
from hookshot_py.gitflic.hooks import GitFlicProjectHooks
from hookshot_py.gitflic.inbound import GitFlicWebhookRoute
from hookshot_py.integration import Integration
from hookshot_py.services import Services


class GitFlicIntegration(Integration):
    name = "gitflic"

    def __init__(self, services: Services, config: GitFlicConfig) -> None:
        self.services = services
        services.cpu.preload("hookshot_py.gitflic.digest")
        self.config = config
        self.hooks = GitFlicProjectHooks(
            config, services.db, services.secrets, services.tokens, services.http, services.gateway
        )
        self.hooks.store.attach(services.cluster)
        self.projects = GitFlicProjectType(config, self.hooks)
        self.route = GitFlicWebhookRoute(
            config, self.hooks, self.projects, services.outbox, services.cpu, on_push=services.push_seen
        )

    def connection_types(self) -> list[ConnectionType[Any]]:
        return [self.projects]

    def room_commands(self) -> list[Command]:
        return commands_of(RoomCommands(self.config, self.services.manager))

    def dm_commands(self) -> list[Command]:
        return commands_of(DmCommands(self.config, self.services.tokens))

    def add_webhook_routes(self, app: web.Application) -> None:
        self.route.add_routes(app)

    async def stop(self) -> None:
        await self.projects.stop()
