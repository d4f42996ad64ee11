"""GitLab as a bridge integration: the GitLabRepo type, its commands, `/gitlab/webhook`, the
`/v1/gitlab/*` provisioning routes, and the review summaries' background loop."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hookshot_py.commands.registry import Command, commands_of
from hookshot_py.config import GitLabConfig
from hookshot_py.connections.base import ConnectionType
from hookshot_py.gitlab.accounts import GitLabAccounts
from hookshot_py.gitlab.commands import DmCommands, RoomCommands
from hookshot_py.gitlab.connection import GitLabRepoType
from hookshot_py.gitlab.hooks import GitLabProjectHooks
from hookshot_py.gitlab.inbound import GitLabWebhookRoute
from hookshot_py.gitlab.provisioning import GitLabProvisioning
from hookshot_py.gitlab.render import Renderer
from hookshot_py.gitlab.review import ReviewDebouncer
from hookshot_py.integration import Integration
from hookshot_py.services import Services

__all__ = ["GitLabIntegration"]


class GitLabIntegration(Integration):
    name = "gitlab"

    def __init__(self, services: Services, config: GitLabConfig) -> None:
        self.services = services
        self.config = config
        self.accounts = GitLabAccounts(services.tokens, config, services.http)
        self.hooks = GitLabProjectHooks(config, self.accounts, services.db, services.secrets, services.gateway)
        self.hooks.store.attach(services.cluster)
        self.projects = GitLabRepoType(config, self.accounts, self.hooks)
        self.renderer = Renderer(services.cpu)
        self.reviews = ReviewDebouncer(
            services.db, services.outbox, self.renderer,
            debounce_s=config.comment_debounce_ms / 1000, is_live=self._is_live,
        )
        self.route = GitLabWebhookRoute(
            config, self.hooks, self.projects, services.outbox, self.renderer, self.reviews,
            on_push=services.push_seen,
        )
        self.provisioning = GitLabProvisioning(config, self.accounts)

    def _is_live(self, room_id: str, connection_id: str) -> bool:
        return any(c.id == connection_id for c in self.services.manager.connections(room_id))

    def connection_types(self) -> list[ConnectionType[Any]]:
        return [self.projects]

    def room_commands(self) -> list[Command]:
        return commands_of(RoomCommands(self.config, self.services.manager))

    def dm_commands(self) -> list[Command]:
        return commands_of(DmCommands(self.config, self.accounts))

    def add_webhook_routes(self, app: web.Application) -> None:
        self.route.add_routes(app)

    def add_provisioning_routes(self, app: web.Application) -> None:
        self.provisioning.add_routes(app)

    async def start(self) -> None:
        self.reviews.start()

    async def stop(self) -> None:
        await self.reviews.stop()
        await self.projects.stop()
