"""GitHub OAuth (web application flow) and GitHub App installation links.

`oauth_url` is GitHub's web address, `https://github.com` (or a GitHub Enterprise host), not the
API address: the authorize page and the token exchange live on the web host.
GitHub answers a failed exchange with **200** and an `error` field, so the body decides.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp

from hookshot_py.github.errors import NO_RESPONSE, GitHubError

__all__ = ["OAuthToken", "authorize_url", "exchange_code", "install_url", "request_token"]

DEFAULT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class OAuthToken:
    access_token: str
    token_type: str
    scope: str
    #: Set for GitHub App user tokens, which expire (seconds).
    expires_in: int | None = None
    refresh_token: str | None = None
    refresh_token_expires_in: int | None = None


def authorize_url(oauth_url: str, client_id: str, redirect_uri: str, state: str) -> str:
    """The page to send the user to; GitHub comes back to `redirect_uri?code=…&state=…`."""
    query = urlencode({"client_id": client_id, "redirect_uri": redirect_uri, "state": state})
    return f"{oauth_url.rstrip('/')}/login/oauth/authorize?{query}"


def install_url(oauth_url: str, app_slug: str, state: str | None = None) -> str:
    """Where a user installs the GitHub App on an account or organisation."""
    url = f"{oauth_url.rstrip('/')}/apps/{quote(app_slug, safe='')}/installations/new"
    return f"{url}?{urlencode({'state': state})}" if state else url


def _optional_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


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
    url = f"{oauth_url.rstrip('/')}/login/oauth/access_token"
    form = {
        "client_id": client_id,
        "client_secret": client_secret,
        "code": code,
        "redirect_uri": redirect_uri,
    }
    try:
        async with session.post(
            url,
            data=form,
            headers={"Accept": "application/json"},
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            status = resp.status
            raw = await resp.read()
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise GitHubError(NO_RESPONSE, f"token exchange failed: {exc!r}") from exc
    try:
        body = json.loads(raw) if raw else None
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
        raise GitHubError(
            status if status != 200 else 400, message, uri if isinstance(uri, str) else None
        )
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise GitHubError(NO_RESPONSE, "token exchange answered without an access_token")
    token_type, scope = body.get("token_type"), body.get("scope")
    refresh = body.get("refresh_token")
    return OAuthToken(
        access_token=token,
        token_type=token_type if isinstance(token_type, str) else "bearer",
        scope=scope if isinstance(scope, str) else "",
        expires_in=_optional_int(body.get("expires_in")),
        refresh_token=refresh if isinstance(refresh, str) else None,
        refresh_token_expires_in=_optional_int(body.get("refresh_token_expires_in")),
    )


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
