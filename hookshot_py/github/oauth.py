"""GitHub login through OAuth: the web application flow, App installation links, and the callback
on the webhooks listener (`/github/oauth`, legacy `/oauth`).

`oauth_url` is GitHub's web address, `https://github.com` (or a GitHub Enterprise host), not the
API address: the authorize page and the token exchange live on the web host. GitHub answers a
failed exchange with **200** and an `error` field, so the body decides.

Each link carries a one-time `state` kept in Postgres (`oauth_states`, 30 minutes), so a
restart between the link and the callback loses nothing and a callback cannot be replayed.
The token is checked against `GET /user`, stored encrypted, and the user is told in their DM.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

import aiohttp
from aiohttp import web

from hookshot_py.commands.context import notice
from hookshot_py.config import GitHubConfig
from hookshot_py.db.database import Database
from hookshot_py.errors import ApiError, ErrCode
from hookshot_py.forges.http import ForgeHttp, ForgeHttpError
from hookshot_py.forges.models import ModelError, convert
from hookshot_py.forges.oauth import DEFAULT_TTL_MINUTES, OAuthStates, callback_page
from hookshot_py.github.accounts import GitHubAccounts
from hookshot_py.github.client import DEFAULT_TIMEOUT_S, NO_RESPONSE, GitHubError
from hookshot_py.github.models import OAuthToken
from hookshot_py.matrix.dm import DirectMessages
from hookshot_py.matrix.outbox import Outbox

__all__ = [
    "GitHubOAuthFlow",
    "OAuthToken",
    "STATE_TTL_MINUTES",
    "authorize_url",
    "exchange_code",
    "install_url",
    "request_token",
]

log = logging.getLogger(__name__)

SERVICE = "github"
STATE_TTL_MINUTES = DEFAULT_TTL_MINUTES


def authorize_url(oauth_url: str, client_id: str, redirect_uri: str, state: str) -> str:
    """The page to send the user to; GitHub comes back to `redirect_uri?code=…&state=…`."""
    query = urlencode({"client_id": client_id, "redirect_uri": redirect_uri, "state": state})
    return f"{oauth_url.rstrip('/')}/login/oauth/authorize?{query}"


def install_url(oauth_url: str, app_slug: str, state: str | None = None) -> str:
    """Where a user installs the GitHub App on an account or organisation."""
    url = f"{oauth_url.rstrip('/')}/apps/{quote(app_slug, safe='')}/installations/new"
    return f"{url}?{urlencode({'state': state})}" if state else url


async def request_token(
    oauth_url: str,
    client_id: str,
    client_secret: str,
    code: str,
    redirect_uri: str,
    session: aiohttp.ClientSession,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> OAuthToken:
    """Exchange an authorization `code` for a token; every failure is a `GitHubError`."""
    http = ForgeHttp(oauth_url, session, headers={"Accept": "application/json"}, timeout=timeout)
    form = {"client_id": client_id, "client_secret": client_secret, "code": code, "redirect_uri": redirect_uri}
    try:
        resp = await http.request("POST", "/login/oauth/access_token", form=form, expect=range(100, 600))
    except ForgeHttpError as exc:
        raise GitHubError(NO_RESPONSE, f"token exchange failed: {exc.message}") from exc
    status = resp.status
    try:
        body = resp.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        raise GitHubError(status or NO_RESPONSE, f"token exchange answered {status} without JSON")
    error = body.get("error")
    if error is not None or status != 200:
        description = body.get("error_description")
        uri = body.get("error_uri")
        message = str(error or f"HTTP {status}")
        if isinstance(description, str) and description:
            message += f": {description}"
        # An OAuth refusal is the caller's mistake (bad or reused code), hence 400 not 200.
        raise GitHubError(status if status != 200 else 400, message, uri if isinstance(uri, str) else None)
    try:
        return convert(body, OAuthToken)
    except ModelError as e:
        if e.path == "access_token":
            raise GitHubError(NO_RESPONSE, "token exchange answered without an access_token") from None
        raise GitHubError(NO_RESPONSE, f"token exchange answered an unexpected '{e.path}'") from None


async def exchange_code(
    oauth_url: str,
    client_id: str,
    client_secret: str,
    code: str,
    redirect_uri: str,
    session: aiohttp.ClientSession,
) -> str:
    """Exchange an authorization `code` for the access token string."""
    token = await request_token(oauth_url, client_id, client_secret, code, redirect_uri, session)
    return token.access_token


# --- the flow -------------------------------------------------------------------------------------


@dataclass
class GitHubOAuthFlow:
    config: GitHubConfig
    db: Database
    accounts: GitHubAccounts
    dms: DirectMessages
    outbox: Outbox
    http: aiohttp.ClientSession
    states: OAuthStates = field(init=False)

    def __post_init__(self) -> None:
        self.states = OAuthStates(self.db, SERVICE, STATE_TTL_MINUTES)

    @property
    def enabled(self) -> bool:
        return self.config.oauth is not None

    async def begin(self, user_id: str) -> str:
        """A fresh authorize link for `user_id` (its state is stored, single use)."""
        oauth = self.config.oauth
        if oauth is None:
            raise ApiError(
                ErrCode.DISABLED_FEATURE,
                "GitHub OAuth is not configured on this bridge (`github.oauth`); "
                "log in with `github setpersonaltoken <token>` instead.",
            )
        state = await self.states.issue(user_id)
        return authorize_url(self.config.oauth_url, oauth.client_id, oauth.redirect_uri, state)

    def org_url(self) -> str:
        """Where organisations are granted access: the App's install page, or the OAuth app's
        settings page when there is no GitHub App."""
        if self.config.app_slug:
            return install_url(self.config.oauth_url, self.config.app_slug)
        client_id = self.config.oauth.client_id if self.config.oauth else ""
        return f"{self.config.oauth_url}/settings/connections/applications/{client_id}"

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/github/oauth", self.callback)
        app.router.add_get("/oauth", self.callback)

    async def _tell(self, user_id: str, markdown: str) -> None:
        try:
            room_id = await self.dms.room_for(user_id)
            await self.outbox.enqueue([notice(room_id, markdown)])
        except Exception:
            log.exception("Could not tell %s about their GitHub login", user_id)

    async def callback(self, request: web.Request) -> web.Response:
        q = request.query
        code, state, error = q.get("code"), q.get("state"), q.get("error")
        oauth = self.config.oauth
        if oauth is None:
            return callback_page("GitHub login is not enabled", "This bridge has no GitHub OAuth app configured.", 404)
        if error:
            user_id = await self.states.consume(state) if state else None
            reason = q.get("error_description") or error
            if user_id is not None:
                await self._tell(user_id, f"Your GitHub login did not complete: {reason}")
            return callback_page("GitHub login cancelled", f"GitHub said: {reason}", 400)
        if not code and q.get("installation_id"):
            return callback_page(
                "GitHub App installed", "The bridge's GitHub App is installed. You may close this window."
            )
        if not code or not state:
            return callback_page("Invalid GitHub login", "The request lacks the `code` or `state` parameter.", 400)
        user_id = await self.states.consume(state)
        if user_id is None:
            return callback_page(
                "Invalid GitHub login",
                "This login link is unknown, already used or expired. Send `github login` to the bot again.",
                400,
            )
        try:
            token = await request_token(
                self.config.oauth_url, oauth.client_id, oauth.client_secret, code, oauth.redirect_uri, self.http
            )
            stored = await self.accounts.verify(token.access_token, "oauth")
        except GitHubError as exc:
            log.warning("GitHub login of %s failed: %s", user_id, exc)
            await self._tell(user_id, f"Your GitHub login failed: {exc.message}. Send `github login` to try again.")
            status = 400 if 400 <= exc.status < 500 else 502
            return callback_page("GitHub login failed", exc.message, status)
        await self.accounts.put(user_id, stored)
        log.info("%s logged in to GitHub as %s", user_id, stored.login)
        await self._tell(user_id, f"You are now logged in to GitHub as **{stored.login}**.")
        return callback_page("Logged in to GitHub", f"You are logged in as {stored.login}. You may close this window.")
