"""Atlassian's OAuth 2.0 (3LO) server and API gateway, for JIRA Cloud logins (CONTRACTS.md).

- `authorize_url`: `{oauth}/authorize?audience=api.atlassian.com&client_id&scope&redirect_uri
  &state&response_type=code&prompt=consent`, with `offline_access` among the scopes so that a
  refresh token comes with the access token.
- `exchange` and `refresh`: `POST {oauth}/oauth/token` (JSON). Access tokens live an hour;
  refresh tokens **rotate**: every refresh answers a new one and the old one stops working,
  so the caller must store the new pair before anything else uses it (`accounts.py` does).
- `resources`: `GET {api}/oauth/token/accessible-resources`, the sites the user granted,
  `[{id, name, url, scopes}]`; a site's REST API is `{api}/ex/jira/{id}/rest/api/3`.
- `me`: `GET {api}/me`, the Atlassian account (its name, for "logged in as").

Failures are `JiraError`s; a refused grant (`invalid_grant`, 400/401/403) has `refused` set.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlencode

import aiohttp

from hookshot_py.forges.http import ForgeHttp, ForgeHttpError
from hookshot_py.jira.client import as_jira_error, read_list, read_model
from hookshot_py.jira.models import Me, Resource, TokenGrant

__all__ = ["SCOPES", "AtlassianAuth", "authorize_url"]

#: hookshot's scopes: read and write issues, read users, the account, and a refresh token.
SCOPES = ("read:jira-work", "write:jira-work", "read:jira-user", "read:me", "read:account", "offline_access")
AUDIENCE = "api.atlassian.com"
TIMEOUT_S = 20.0


def authorize_url(oauth_url: str, client_id: str, redirect_uri: str, state: str) -> str:
    """The consent page; Atlassian comes back to `redirect_uri?code=…&state=…`."""
    query = urlencode(
        {
            "audience": AUDIENCE,
            "client_id": client_id,
            "scope": " ".join(SCOPES),
            "redirect_uri": redirect_uri,
            "state": state,
            "response_type": "code",
            "prompt": "consent",
        },
        quote_via=quote,
    )
    return f"{oauth_url}/authorize?{query}"


@dataclass
class AtlassianAuth:
    oauth_url: str  # https://auth.atlassian.com
    api_url: str  # https://api.atlassian.com
    client_id: str
    client_secret: str
    redirect_uri: str
    session: aiohttp.ClientSession

    def authorize_url(self, state: str) -> str:
        return authorize_url(self.oauth_url, self.client_id, self.redirect_uri, state)

    def site_api(self, cloud_id: str) -> str:
        """The REST API v3 base of a site."""
        return f"{self.api_url}/ex/jira/{quote(cloud_id, safe='')}/rest/api/3"

    async def exchange(self, code: str) -> TokenGrant:
        return await self._token(
            {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri}
        )

    async def refresh(self, refresh_token: str) -> TokenGrant:
        """A new access token **and a new refresh token** (the one sent stops working)."""
        return await self._token({"grant_type": "refresh_token", "refresh_token": refresh_token})

    async def resources(self, access_token: str) -> list[Resource]:
        http = self._gateway(access_token)
        try:
            return read_list(await http.request("GET", "/oauth/token/accessible-resources"), Resource)
        except ForgeHttpError as exc:
            raise as_jira_error(exc) from exc

    async def me(self, access_token: str) -> Me:
        http = self._gateway(access_token)
        try:
            return read_model(await http.request("GET", "/me"), Me)
        except ForgeHttpError as exc:
            raise as_jira_error(exc) from exc

    def _gateway(self, access_token: str) -> ForgeHttp:
        headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
        return ForgeHttp(self.api_url, self.session, headers=headers, timeout=TIMEOUT_S)

    async def _token(self, grant: dict[str, str]) -> TokenGrant:
        http = ForgeHttp(self.oauth_url, self.session, headers={"Accept": "application/json"}, timeout=TIMEOUT_S)
        body = {**grant, "client_id": self.client_id, "client_secret": self.client_secret}
        try:
            return read_model(await http.request("POST", "/oauth/token", json=body), TokenGrant)
        except ForgeHttpError as exc:
            raise as_jira_error(exc) from exc
