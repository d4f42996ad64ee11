"""Users' GitHub tokens: stored encrypted through the bridge's TokenStore, used to act as them.

A token comes from the OAuth flow (`github login`) or is a personal access token
(`github setpersonaltoken`); both are stored with the GitHub login they belong to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp

from hookshot_py.errors import ApiError, ErrCode, upstream_error
from hookshot_py.forges.http import RateLimits
from hookshot_py.github.client import GitHubClient, GitHubError
from hookshot_py.github.models import User
from hookshot_py.tokens import TokenStore

__all__ = ["SERVICE", "GitHubAccounts", "StoredToken", "api_error", "not_logged_in"]

SERVICE = "github"

NOT_LOGGED_IN = (
    "You are not logged in to GitHub. Send `github login` (or `github setpersonaltoken <token>`) "
    "to the bridge bot in a direct message first."
)


def not_logged_in() -> ApiError:
    return ApiError(ErrCode.FORBIDDEN_USER, NOT_LOGGED_IN)


def api_error(exc: GitHubError) -> ApiError:
    """A GitHub failure as the caller's answer (`upstream_error`, but a 403 or 404 about a
    repository refuses the user: GitHub hides a repository the token may not see behind a 404)."""
    if exc.status in (403, 404):
        return ApiError(ErrCode.FORBIDDEN_USER if exc.repo else ErrCode.NOT_FOUND, exc.describe())
    return upstream_error(exc.status, exc.describe(), bad_value=(422,))


@dataclass(frozen=True)
class StoredToken:
    token: str
    login: str | None = None
    kind: str = "oauth"  # "oauth" or "pat"

    def to_json(self) -> dict[str, Any]:
        return {"token": self.token, "login": self.login, "kind": self.kind}

    @classmethod
    def from_json(cls, value: Any) -> StoredToken | None:
        """Read what `to_json` wrote; a bare string is accepted as a token too."""
        if isinstance(value, str) and value:
            return cls(value)
        if not isinstance(value, dict):
            return None
        token, login, kind = value.get("token"), value.get("login"), value.get("kind")
        if not isinstance(token, str) or not token:
            return None
        return cls(token, login if isinstance(login, str) else None, kind if isinstance(kind, str) else "oauth")


@dataclass
class GitHubAccounts:
    tokens: TokenStore
    api_url: str
    http: aiohttp.ClientSession
    # What GitHub said about each token's rate limit, kept across the clients made per call.
    limits: RateLimits = field(default_factory=RateLimits)

    def client(self, token: str) -> GitHubClient:
        return GitHubClient(self.api_url, token, self.http, limits=self.limits)

    async def get(self, user_id: str) -> StoredToken | None:
        return StoredToken.from_json(await self.tokens.get(user_id, SERVICE))

    async def put(self, user_id: str, token: StoredToken) -> None:
        await self.tokens.put(user_id, SERVICE, token.to_json())

    async def delete(self, user_id: str) -> bool:
        return await self.tokens.delete(user_id, SERVICE)

    async def client_for(self, user_id: str) -> GitHubClient | None:
        stored = await self.get(user_id)
        return None if stored is None else self.client(stored.token)

    async def require_client(self, user_id: str) -> GitHubClient:
        """The user's client, or the "not logged in" refusal."""
        client = await self.client_for(user_id)
        if client is None:
            raise not_logged_in()
        return client

    async def verify(self, token: str, kind: str) -> StoredToken:
        """Check `token` against `GET /user`; raises GitHubError (401 for a bad token)."""
        user: User = await self.client(token).get_user()
        return StoredToken(token, user.login, kind)
