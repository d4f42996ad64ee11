"""Barkeep clients for the configured instances, and the users' own API keys.

Reading review state needs no key. A comment is signed with the key of the user who writes
it (stored encrypted in `user_tokens`, service "barkeep", one per instance), so that Barkeep
shows it under their name; asking Barkeep to track a repository needs an admin's key, the
instance's `apiKey`/`apiSecret` from the config.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from hookshot_py.barkeep.client import BarkeepClient
from hookshot_py.config import BarkeepConfig, BarkeepInstance
from hookshot_py.tokens import TokenStore

TOKEN_SERVICE = "barkeep"


@dataclass(frozen=True)
class Credentials:
    api_key: str
    api_secret: str

    def to_json(self) -> dict[str, str]:
        return {"apiKey": self.api_key, "apiSecret": self.api_secret}

    @classmethod
    def from_json(cls, data: Any) -> Credentials | None:
        """The stored value, or None when it is not one (written by another version)."""
        if not isinstance(data, dict):
            return None
        key, secret = data.get("apiKey"), data.get("apiSecret")
        if not isinstance(key, str) or not isinstance(secret, str) or not key or not secret:
            return None
        return cls(key, secret)


class UnknownInstance(LookupError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"Unknown Barkeep instance {name!r}; configured: {', '.join(known) or 'none'}.")
        self.name = name


class BarkeepAccounts:
    def __init__(
        self,
        config: BarkeepConfig,
        http: aiohttp.ClientSession,
        tokens: TokenStore,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.http = http
        self.tokens = tokens
        self.clock = clock

    def instance(self, name: str) -> BarkeepInstance:
        try:
            return self.config.instances[name]
        except KeyError:
            raise UnknownInstance(name, list(self.config.instances)) from None

    def client(self, instance: str, credentials: Credentials | None = None) -> BarkeepClient:
        """A client for `instance`, signing with `credentials` when given."""
        config = self.instance(instance)
        key, secret = (credentials.api_key, credentials.api_secret) if credentials else (None, None)
        return BarkeepClient(config.url, self.http, key, secret, clock=self.clock)

    def admin_client(self, instance: str) -> BarkeepClient | None:
        """A client with the instance's configured key, if it has one."""
        config = self.instance(instance)
        if not config.api_key or not config.api_secret:
            return None
        return self.client(instance, Credentials(config.api_key, config.api_secret))

    async def credentials(self, user_id: str, instance: str) -> Credentials | None:
        return Credentials.from_json(await self.tokens.get(user_id, TOKEN_SERVICE, instance))

    async def user_client(self, user_id: str, instance: str) -> BarkeepClient | None:
        credentials = await self.credentials(user_id, instance)
        return self.client(instance, credentials) if credentials else None

    async def store(self, user_id: str, instance: str, credentials: Credentials) -> None:
        self.instance(instance)
        await self.tokens.put(user_id, TOKEN_SERVICE, credentials.to_json(), instance=instance)

    async def forget(self, user_id: str, instance: str) -> bool:
        return await self.tokens.delete(user_id, TOKEN_SERVICE, instance=instance)
