"""The bridge's shared parts, handed to listeners, commands and service packages."""

from __future__ import annotations

from dataclasses import dataclass, field

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
