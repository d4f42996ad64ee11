"""Barkeep repository connections as a bridge integration: commands, and the review poller."""

from __future__ import annotations

from typing import Any

from hookshot_py.barkeep.accounts import BarkeepAccounts
from hookshot_py.barkeep.commands import DmCommands, RoomCommands
from hookshot_py.barkeep.connection import BarkeepRepoType
from hookshot_py.barkeep.poller import BarkeepPoller
from hookshot_py.barkeep.store import WatchStore
from hookshot_py.barkeep.watch import pushed_shas, watch_pushed_commits
from hookshot_py.commands.registry import Command, commands_of
from hookshot_py.config import BarkeepConfig
from hookshot_py.connections.base import ConnectionType
from hookshot_py.integration import Integration
from hookshot_py.services import Services


class BarkeepIntegration(Integration):
    name = "barkeep"

    def __init__(self, services: Services, config: BarkeepConfig) -> None:
        self.services = services
        self.accounts = BarkeepAccounts(config, services.http, services.tokens)
        self.store = WatchStore(services.db)
        self.repos = BarkeepRepoType(self.accounts, self.store, services.manager, services.url_policy)
        self.poller = BarkeepPoller(
            self.accounts, self.store, services.manager, services.outbox, float(config.poll_interval_seconds),
            leases=services.leases,
        )
        services.push_listeners.append(self._on_push)

    async def _on_push(self, room_id: str, repo: str, payload: dict[str, Any]) -> None:
        """Commits pushed to a GitHub/GitFlic repository of the same name become watched."""
        await watch_pushed_commits(self.services, room_id, repo, pushed_shas(payload))

    def connection_types(self) -> list[ConnectionType[Any]]:
        return [self.repos]

    def room_commands(self) -> list[Command]:
        return commands_of(RoomCommands(self.accounts, self.services.manager))

    def dm_commands(self) -> list[Command]:
        return commands_of(DmCommands(self.accounts))

    async def start(self) -> None:
        self.poller.start()

    async def stop(self) -> None:
        await self.poller.stop()
