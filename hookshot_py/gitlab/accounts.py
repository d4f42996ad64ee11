"""Users' GitLab tokens, one per instance: checked against the instance when given
(`gitlab personaltoken`), stored encrypted through the bridge's TokenStore, used to act as them.

Tokens are filed under the instance's URL (as hookshot files them), not its name in the config,
so renaming an instance in the config keeps its users logged in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp

from hookshot_py.config import GitLabConfig
from hookshot_py.errors import ApiError, ErrCode, upstream_error
from hookshot_py.forges.http import RateLimits
from hookshot_py.gitlab.client import GitLabClient, GitLabError
from hookshot_py.tokens import TokenStore

__all__ = ["SERVICE", "GitLabAccounts", "StoredToken", "api_error", "not_logged_in"]

SERVICE = "gitlab"


def not_logged_in_text(instance: str) -> str:
    return (
        f"You are not logged into the GitLab instance {instance}. Start a DM with this bot and use the "
        f"command `gitlab personaltoken {instance} <token>`."
    )


def not_logged_in(instance: str) -> ApiError:
    return ApiError(ErrCode.FORBIDDEN_USER, not_logged_in_text(instance))


def api_error(error: GitLabError) -> ApiError:
    """A GitLab failure as the caller's answer (`upstream_error`)."""
    return upstream_error(error.status, error.describe())


@dataclass(frozen=True)
class StoredToken:
    token: str
    username: str | None = None
    user_id: int | None = None  # GitLab's numeric id, for access-level look-ups

    def to_json(self) -> dict[str, Any]:
        return {"token": self.token, "username": self.username, "userId": self.user_id}

    @classmethod
    def from_json(cls, value: Any) -> StoredToken | None:
        """What `to_json` wrote; a bare string is a token too."""
        if isinstance(value, str) and value:
            return cls(value)
        if not isinstance(value, dict) or not isinstance(value.get("token"), str) or not value["token"]:
            return None
        username, user_id = value.get("username"), value.get("userId")
        return cls(
            value["token"],
            username if isinstance(username, str) else None,
            user_id if isinstance(user_id, int) and not isinstance(user_id, bool) else None,
        )


@dataclass
class GitLabAccounts:
    tokens: TokenStore
    config: GitLabConfig
    http: aiohttp.ClientSession
    # What GitLab said about each token's rate limit, kept across the clients made per call.
    limits: RateLimits = field(default_factory=RateLimits)

    def url(self, instance: str) -> str:
        return self.config.instances[instance].url

    def client(self, instance: str, token: str) -> GitLabClient:
        return GitLabClient(self.url(instance), token, self.http, limits=self.limits)

    async def get(self, user_id: str, instance: str) -> StoredToken | None:
        if instance not in self.config.instances:
            return None
        return StoredToken.from_json(await self.tokens.get(user_id, SERVICE, self.url(instance)))

    async def put(self, user_id: str, instance: str, token: StoredToken) -> None:
        await self.tokens.put(user_id, SERVICE, token.to_json(), instance=self.url(instance))

    async def delete(self, user_id: str, instance: str) -> bool:
        return await self.tokens.delete(user_id, SERVICE, instance=self.url(instance))

    async def client_for(self, user_id: str, instance: str) -> GitLabClient | None:
        stored = await self.get(user_id, instance)
        return None if stored is None else self.client(instance, stored.token)

    async def require(self, user_id: str, instance: str) -> tuple[GitLabClient, StoredToken]:
        """The user's client and stored token, or the "not logged in" refusal."""
        stored = await self.get(user_id, instance)
        if stored is None:
            raise not_logged_in(instance)
        return self.client(instance, stored.token), stored

    async def verify(self, instance: str, token: str) -> StoredToken:
        """Check `token` against the instance (`GET /user`); raises GitLabError (401: refused)."""
        user = await self.client(instance, token).current_user()
        return StoredToken(token, user.username, user.id)

    async def user_id(self, client: GitLabClient, stored: StoredToken) -> int:
        """The GitLab id of the token's user (asked once if the stored token predates it)."""
        if stored.user_id is not None:
            return stored.user_id
        return (await client.current_user()).id
