"""JIRA as a bridge integration: the JiraProject type, commands, `/jira/webhook`, the OAuth
callback `/jira/oauth` and the `/v1/jira/*` provisioning routes."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hookshot_py.commands.registry import Command, commands_of
from hookshot_py.config import JiraConfig
from hookshot_py.connections.base import ConnectionType
from hookshot_py.integration import Integration
from hookshot_py.jira.accounts import JiraAccounts
from hookshot_py.jira.auth import AtlassianAuth
from hookshot_py.jira.commands import DmCommands, RoomCommands
from hookshot_py.jira.connection import JiraProjectType
from hookshot_py.jira.format import Text
from hookshot_py.jira.inbound import JiraWebhookRoute
from hookshot_py.jira.oauth import JiraOAuthFlow
from hookshot_py.jira.provisioning import JiraProvisioning
from hookshot_py.markdown import render_markdown
from hookshot_py.matrix.outbox import OutgoingEvent
from hookshot_py.services import Services

__all__ = ["JiraIntegration"]


class JiraIntegration(Integration):
    name = "jira"

    def __init__(self, services: Services, config: JiraConfig) -> None:
        self.services = services
        self.config = config
        oauth = config.oauth
        auth = None
        if config.cloud and oauth is not None and oauth.client_id and oauth.client_secret:
            auth = AtlassianAuth(
                config.oauth_url, config.api_url, oauth.client_id, oauth.client_secret, oauth.redirect_uri,
                services.http,
            )
        self.accounts = JiraAccounts(config, services.tokens, services.db, services.http, auth, self.tell)
        self.projects = JiraProjectType(config, self.accounts)
        self.oauth = JiraOAuthFlow(services.db, self.accounts, auth, self.tell)
        self.route = JiraWebhookRoute(config.webhook.secret, self.projects, services.outbox, services.cpu)
        self.provisioning = JiraProvisioning(self.accounts, self.oauth)

    async def tell(self, user_id: str, text: Text) -> None:
        """A notice in the user's DM with the bot (created if needed). The texts are short and
        about the user's own login, so they are rendered here."""
        message = text.notice(inline=True, extra={})
        content = message.content(render_markdown(message.markdown, inline=True))
        room_id = await self.services.dms.room_for(user_id)
        await self.services.outbox.enqueue([OutgoingEvent(room_id, content)])

    def connection_types(self) -> list[ConnectionType[Any]]:
        return [self.projects]

    def room_commands(self) -> list[Command]:
        return commands_of(RoomCommands(self.services.manager, self.config.url))

    def dm_commands(self) -> list[Command]:
        return commands_of(DmCommands(self.accounts, self.oauth))

    def add_webhook_routes(self, app: web.Application) -> None:
        self.route.add_routes(app)
        self.oauth.add_routes(app)

    def add_provisioning_routes(self, app: web.Application) -> None:
        self.provisioning.add_routes(app)
