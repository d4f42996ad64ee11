"""GitHub as a bridge integration: the GithubRepo type, commands, `/github/webhook`, the OAuth
callback and the `/v1/github/*` provisioning routes."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hookshot_py.commands.registry import Command, commands_of
from hookshot_py.config import GitHubConfig
from hookshot_py.connections.base import ConnectionType
from hookshot_py.github.accounts import GitHubAccounts
from hookshot_py.github.commands import DmCommands, RoomCommands
from hookshot_py.github.connection import GithubRepoType
from hookshot_py.github.diffs import PrDiffs
from hookshot_py.github.hooks import RepoHooks
from hookshot_py.github.inbound import GitHubWebhooks
from hookshot_py.github.oauth import GitHubOAuthFlow
from hookshot_py.github.provisioning import GitHubProvisioning
from hookshot_py.integration import Integration
from hookshot_py.services import Services

__all__ = ["GitHubIntegration"]


class GitHubIntegration(Integration):
    name = "github"

    def __init__(self, services: Services, config: GitHubConfig) -> None:
        self.services = services
        services.cpu.preload("hookshot_py.github.digest")
        self.config = config
        webhook = config.webhook
        self.accounts = GitHubAccounts(services.tokens, config.api_url, services.http)
        self.hooks = RepoHooks(
            services.db, services.secrets, self.accounts, webhook.public_url if webhook else None, services.gateway
        )
        self.hooks.store.attach(services.cluster)
        self.repo_type = GithubRepoType(self.accounts, self.hooks, config.default_options)
        self.oauth = GitHubOAuthFlow(
            config, services.db, self.accounts, services.dms, services.outbox, services.http
        )
        self.diffs = PrDiffs(config.oauth_url, services.url_policy)
        self.webhooks = GitHubWebhooks(
            self.repo_type, self.hooks, services.outbox, self.diffs, services.cpu,
            services.config.bridge.domain, webhook.secret if webhook else None,
            on_push=services.push_seen,
        )
        self.provisioning = GitHubProvisioning(config, self.accounts, self.oauth)

    def connection_types(self) -> list[ConnectionType[Any]]:
        return [self.repo_type]

    def room_commands(self) -> list[Command]:
        return commands_of(RoomCommands(self.services.manager, self.config.oauth_url))

    def dm_commands(self) -> list[Command]:
        return commands_of(DmCommands(self.accounts, self.oauth))

    def add_webhook_routes(self, app: web.Application) -> None:
        self.webhooks.add_routes(app)
        self.oauth.add_routes(app)

    def add_provisioning_routes(self, app: web.Application) -> None:
        self.provisioning.add_routes(app)

    async def stop(self) -> None:
        await self.repo_type.stop()
        await self.diffs.close()
