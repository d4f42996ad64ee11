"""Generic webhooks as a bridge integration."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from hookshot_py.commands.registry import Command, commands_of
from hookshot_py.config import GenericConfig
from hookshot_py.connections.base import ConnectionType
from hookshot_py.generic.commands import WebhookCommands
from hookshot_py.generic.connection import EVENT_TYPE, GenericHookType
from hookshot_py.generic.expiry import CHECK_INTERVAL_S, ExpiryNotices
from hookshot_py.generic.sandbox import JsSandbox
from hookshot_py.generic.webhook import GenericWebhooks
from hookshot_py.integration import Integration
from hookshot_py.services import Services

log = logging.getLogger(__name__)


class GenericIntegration(Integration):
    name = "generic"

    def __init__(self, services: Services, config: GenericConfig) -> None:
        self.services = services
        self.config = config
        self.expiry = ExpiryNotices(services.db, services.outbox)
        self.expiry_interval_s: float = CHECK_INTERVAL_S
        self.hooks = GenericHookType(
            config,
            services.db,
            services.gateway,
            services.outbox,
            services.profiles,
            domain=services.config.bridge.domain,
            sandbox=JsSandbox() if config.allow_js_transformation_functions else None,
            static=list(services.config.connections or []),
            expiry=self.expiry,
        )
        self.webhooks = GenericWebhooks(config, self.hooks, services.manager, services.outbox, services.cpu)
        self._tasks: list[asyncio.Task[None]] = []

    def connection_types(self) -> list[ConnectionType[Any]]:
        return [self.hooks]

    def room_commands(self) -> list[Command]:
        return commands_of(WebhookCommands(self.services.manager))

    def add_webhook_routes(self, app: web.Application) -> None:
        self.webhooks.add_routes(app)

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._join_static_rooms()))
        if self.config.send_expiry_notice:
            manager = self.services.manager
            self._tasks.append(asyncio.create_task(
                self.expiry.run(lambda: manager.all(EVENT_TYPE), self.hooks.sender_for, self.expiry_interval_s)
            ))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.hooks.stop()

    async def _join_static_rooms(self) -> None:
        """Static hooks post into rooms the bot may not have been invited to through the bridge."""
        for room_id in sorted(self.services.manager.static_rooms()):
            try:
                await self.services.manager.access.ensure_bot_in_room(room_id)
            except Exception as e:
                log.warning("Static webhook room %s: the bot cannot join it (%s); its hooks cannot post", room_id, e)
