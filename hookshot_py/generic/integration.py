"""Generic webhooks as a bridge integration."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hookshot_py.commands.registry import Command, commands_of
from hookshot_py.config import GenericConfig
from hookshot_py.connections.base import ConnectionType
from hookshot_py.generic.commands import WebhookCommands
from hookshot_py.generic.connection import GenericHookType
from hookshot_py.generic.webhook import GenericWebhooks
from hookshot_py.integration import Integration
from hookshot_py.services import Services


class GenericIntegration(Integration):
    name = "generic"

    def __init__(self, services: Services, config: GenericConfig) -> None:
        self.services = services
        self.hooks = GenericHookType(config, services.db, services.gateway)
        self.webhooks = GenericWebhooks(
            config,
            self.hooks,
            services.manager,
            services.outbox,
            services.profiles,
            services.config.bridge.domain,
            services.cpu,
        )

    def connection_types(self) -> list[ConnectionType[Any]]:
        return [self.hooks]

    def room_commands(self) -> list[Command]:
        return commands_of(WebhookCommands(self.services.manager))

    def add_webhook_routes(self, app: web.Application) -> None:
        self.webhooks.add_routes(app)


def create(services: Services) -> Integration | None:
    cfg = services.config.generic
    if cfg is None or not cfg.enabled:
        return None
    return GenericIntegration(services, cfg)
