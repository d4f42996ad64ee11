"""JIRA Cloud login through OAuth 2.0 (3LO): the link, and the callback on the webhooks listener
(`/jira/oauth`, the path hookshot's `jira.oauth.redirect_uri` points at).

Each link carries a one-time `state` kept in Postgres (`forges/oauth.py`), so a callback with a
forged, replayed or expired state is refused before Atlassian is asked anything. A good one is
exchanged for the grant (access and refresh token), the account is looked up for its name,
the login is stored encrypted and the user is told in their DM which sites they granted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from aiohttp import web

from hookshot_py.db.database import Database
from hookshot_py.errors import ApiError, ErrCode
from hookshot_py.forges.oauth import DEFAULT_TTL_MINUTES, OAuthStates, callback_page
from hookshot_py.jira.accounts import JiraAccounts, Tell
from hookshot_py.jira.auth import AtlassianAuth
from hookshot_py.jira.client import JiraError
from hookshot_py.jira.format import Text
from hookshot_py.jira.models import SERVICE

__all__ = ["CALLBACK_PATH", "STATE_TTL_MINUTES", "JiraOAuthFlow"]

log = logging.getLogger(__name__)

CALLBACK_PATH = "/jira/oauth"
STATE_TTL_MINUTES = DEFAULT_TTL_MINUTES


@dataclass
class JiraOAuthFlow:
    db: Database
    accounts: JiraAccounts
    auth: AtlassianAuth | None  # None: no `jira.oauth` for JIRA Cloud, or an on-premise JIRA
    tell: Tell
    states: OAuthStates = field(init=False)

    def __post_init__(self) -> None:
        self.states = OAuthStates(self.db, SERVICE, STATE_TTL_MINUTES)

    @property
    def enabled(self) -> bool:
        return self.auth is not None

    def disabled_reason(self) -> str:
        if self.accounts.config.url is not None:
            return (
                "This bridge serves an on-premise JIRA: log in by sending "
                "`jira personaltoken <token>` to the bot in a direct message."
            )
        return "JIRA OAuth is disabled (this bridge has no `jira.oauth` section)."

    async def begin(self, user_id: str) -> str:
        """A fresh authorize link for `user_id` (its state is stored, single use)."""
        if self.auth is None:
            raise ApiError(ErrCode.DISABLED_FEATURE, self.disabled_reason())
        return self.auth.authorize_url(await self.states.issue(user_id))

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(CALLBACK_PATH, self.callback)

    async def _tell(self, user_id: str, text: Text) -> None:
        try:
            await self.tell(user_id, text)
        except Exception:
            log.exception("Could not tell %s about their JIRA login", user_id)

    async def callback(self, request: web.Request) -> web.Response:
        q = request.query
        code, state, error = q.get("code"), q.get("state"), q.get("error")
        if self.auth is None:
            return callback_page("JIRA login is not enabled", self.disabled_reason(), 404)
        if error:
            user_id = await self.states.consume(state) if state else None
            reason = q.get("error_description") or error
            if user_id is not None:
                await self._tell(user_id, Text().raw("Your JIRA login did not complete: ").text(reason))
            return callback_page("JIRA login cancelled", f"Atlassian said: {reason}", 400)
        if not code or not state:
            return callback_page("Invalid JIRA login", "The request lacks the `code` or `state` parameter.", 400)
        user_id = await self.states.consume(state)
        if user_id is None:
            log.warning("Refused a JIRA OAuth callback with an unknown, used or expired state")
            return callback_page(
                "Invalid JIRA login",
                "This login link is unknown, already used or expired. Send `jira login` to the bot again.",
                400,
            )
        try:
            grant = await self.auth.exchange(code)
            me = await self.auth.me(grant.access_token)
            stored = self.accounts.grant_login(grant, me.name or me.nickname or me.email)
            sites = await self.accounts.sites(stored)
        except JiraError as exc:
            log.warning("JIRA login of %s failed: %s", user_id, exc)
            text = Text().raw("Your JIRA login failed: ").text(exc.message)
            await self._tell(user_id, text.raw(". Send `jira login` to try again."))
            return callback_page("JIRA login failed", exc.message, 400 if exc.refused else 502)
        if stored.refresh_token is None:
            log.warning("Atlassian granted %s no refresh token (is `offline_access` allowed?)", user_id)
        await self.accounts.put(user_id, stored)
        log.info("%s logged in to JIRA as %s (%d site(s))", user_id, stored.name, len(sites))
        text = Text().raw("You are now logged in to JIRA")
        if stored.name:
            text.raw(" as **").text(stored.name).raw("**")
        text.raw(". Sites: ")
        for i, site in enumerate(sites):
            text.raw(", " if i else "").link(site.name, site.url)
        await self._tell(user_id, text.raw("." if sites else "none (log in again to grant one)."))
        return callback_page("Logged in to JIRA", "Your account has been bridged. You may close this window.")
