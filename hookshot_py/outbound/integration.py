"""Outbound webhooks as a bridge integration (config `generic.outbound: true`, as in hookshot)."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from typing import Any

import aiohttp
from aiohttp import web

from hookshot_py.commands.registry import Command, commands_of
from hookshot_py.config import GenericConfig
from hookshot_py.connections.base import ConnectionType
from hookshot_py.integration import Integration
from hookshot_py.net.guard import UrlPolicy, guarded_session
from hookshot_py.outbound.commands import OutboundHookCommands
from hookshot_py.outbound.connection import OutboundHookType
from hookshot_py.outbound.queue import OutboundQueue
from hookshot_py.outbound.request import USER_AGENT, OutboundClient
from hookshot_py.outbound.routes import DeliveryLogRoute
from hookshot_py.outbound.sender import OutboundSender
from hookshot_py.outbound.tokens import HookshotTokenCodec
from hookshot_py.services import Services

log = logging.getLogger(__name__)


class OutboundIntegration(Integration):
    name = "genericOutbound"

    def __init__(self, services: Services, config: GenericConfig) -> None:
        self.services = services
        delivery = config.outbound_delivery
        urls = services.config.outbound_urls
        policy = UrlPolicy.create(urls.allowed_hosts, urls.allowed_ip_ranges)
        self.session = guarded_session(
            policy, timeout=aiohttp.ClientTimeout(total=delivery.timeout_seconds), headers={"User-Agent": USER_AGENT}
        )
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.queue = OutboundQueue(services.db, services.secrets, owner)

        async def download(mxc: str, max_bytes: int, timeout: float) -> tuple[bytes, str | None]:
            return await services.gateway.download_media(mxc, max_bytes=max_bytes, timeout=timeout)

        client = OutboundClient(
            self.session, download, max_media_bytes=delivery.max_media_size, timeout_s=delivery.timeout_seconds
        )
        self.sender = OutboundSender(self.queue, client, services.outbox, services.metrics, delivery)
        # The bridge made its SecretBox from the passFile (generating it if missing); hookshot's
        # copies of tokens need the same key.
        pass_file = services.config.pass_file
        codec = HookshotTokenCodec.from_pass_file(pass_file) if pass_file.exists() else None
        if codec is None:
            log.warning("passFile %s is missing: outbound hook tokens are not copied to account data", pass_file)
        self.hooks = OutboundHookType(self.queue, codec, services.gateway, policy, self.sender.wake)
        self.log_route = DeliveryLogRoute(services, self.queue)

    def connection_types(self) -> list[ConnectionType[Any]]:
        return [self.hooks]

    def room_commands(self) -> list[Command]:
        return commands_of(OutboundHookCommands(self.services.manager))

    def add_provisioning_routes(self, app: web.Application) -> None:
        self.log_route.add_routes(app)

    async def start(self) -> None:
        self.sender.start()

    async def stop(self) -> None:
        await self.sender.stop()
        await self.session.close()
