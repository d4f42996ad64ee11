"""The bridge's shared parts, handed to listeners, commands and service packages."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from hookshot_py.commands.registry import CommandRegistry
from hookshot_py.config import Config
from hookshot_py.connections.manager import ConnectionManager
from hookshot_py.db.database import Database
from hookshot_py.matrix.dm import DirectMessages
from hookshot_py.matrix.gateway import MatrixGateway
from hookshot_py.matrix.outbox import Outbox
from hookshot_py.matrix.profiles import Profiles
from hookshot_py.metrics import Metrics
from hookshot_py.permissions import Permissions
from hookshot_py.tokens import SecretBox, TokenStore

log = logging.getLogger(__name__)

# (room_id, repository name as the forge spells it, the forge's push payload)
PushListener = Callable[[str, str, dict[str, Any]], Awaitable[object]]


@dataclass
class Services:
    config: Config
    db: Database
    gateway: MatrixGateway
    outbox: Outbox
    profiles: Profiles
    manager: ConnectionManager
    permissions: Permissions
    dms: DirectMessages
    metrics: Metrics
    http: aiohttp.ClientSession
    tokens: TokenStore
    secrets: SecretBox
    room_commands: CommandRegistry = field(default_factory=CommandRegistry)
    dm_commands: CommandRegistry = field(default_factory=CommandRegistry)
    push_listeners: list[PushListener] = field(default_factory=list)

    async def push_seen(self, room_id: str, repo: str, payload: dict[str, Any]) -> None:
        """A forge connection in `room_id` received a push: tell the services that care (Barkeep
        watches the pushed commits). Listeners' failures are logged, never raised."""
        for listener in self.push_listeners:
            try:
                await listener(room_id, repo, payload)
            except Exception:
                log.exception("A push listener failed for %s in %s", repo, room_id)
