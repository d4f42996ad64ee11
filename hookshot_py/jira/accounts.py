"""Users' JIRA logins: stored encrypted (the bridge's TokenStore), kept usable, used to act as them.

- **JIRA Cloud**: the OAuth grant of `jira login` — an access token living an hour and a
  refresh token that rotates. A login is refreshed when it is used and less than
  `REFRESH_MARGIN_S` remain, under a lock per user held in this process *and* in Postgres (an
  advisory lock), so two requests — or two bridge processes — never spend the same refresh
  token: the second one waits, re-reads and finds the new pair. A refresh Atlassian refuses
  (the refresh token expired or was revoked) marks the login broken and tells the user once,
  in their DM; later uses answer "not logged in" without telling again, until `jira login`.
  A refresh that fails for want of an answer (network, 5xx) changes nothing and is tried again
  on the next use.
- **JIRA Server/Data Center** (`jira.url`): a personal access token (`jira personaltoken`),
  checked with `GET myself` when stored.

A login gives the user's sites (cloud: `accessible-resources`, cached a minute per token as
hookshot does; on-premise: the one instance) and a client for each.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from hookshot_py.config import JiraConfig
from hookshot_py.db.database import Database
from hookshot_py.errors import ApiError, ErrCode, upstream_error
from hookshot_py.forges.http import RateLimits
from hookshot_py.jira.auth import AtlassianAuth
from hookshot_py.jira.client import JiraClient, JiraError
from hookshot_py.jira.format import Text
from hookshot_py.jira.models import SERVICE, ProjectRef, TokenGrant, User
from hookshot_py.tokens import TokenStore

__all__ = [
    "REFRESH_MARGIN_S",
    "JiraAccounts",
    "JiraLogin",
    "Site",
    "StoredLogin",
    "api_error",
    "not_logged_in",
    "project_client",
    "user_login",
]

log = logging.getLogger(__name__)

#: A login is refreshed when less than this is left of its access token's life.
REFRESH_MARGIN_S = 60.0
#: How long the sites of a token are remembered (hookshot: one minute).
SITES_TTL_S = 60.0
SITES_CACHE_SIZE = 256

#: A notice in the user's DM; payload text in it stays literal (see `format.Text`).
Tell = Callable[[str, Text], Awaitable[None]]


@dataclass(frozen=True)
class StoredLogin:
    kind: str  # "oauth" (cloud) or "pat" (on-premise personal access token)
    access_token: str
    refresh_token: str | None = None
    expires_at: float | None = None  # Unix seconds
    name: str | None = None  # who the user is on JIRA, for "logged in as"
    broken: bool = False  # a refresh was refused and the user was told: they must log in again

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "accessToken": self.access_token,
            "refreshToken": self.refresh_token,
            "expiresAt": self.expires_at,
            "name": self.name,
            "broken": self.broken,
        }

    @classmethod
    def from_json(cls, value: Any) -> StoredLogin | None:
        if not isinstance(value, dict):
            return None
        kind, token = value.get("kind"), value.get("accessToken")
        if kind not in ("oauth", "pat") or not isinstance(token, str) or not token:
            return None
        refresh, expires, name = value.get("refreshToken"), value.get("expiresAt"), value.get("name")
        return cls(
            kind,
            token,
            refresh if isinstance(refresh, str) and refresh else None,
            float(expires) if isinstance(expires, int | float) and not isinstance(expires, bool) else None,
            name if isinstance(name, str) else None,
            value.get("broken") is True,
        )


@dataclass(frozen=True)
class Site:
    """A JIRA site the user can reach: `url` its web address, `api` its REST base."""

    id: str
    name: str
    url: str
    api: str

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc.lower()

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "url": self.url, "id": self.id}


@dataclass
class JiraAccounts:
    config: JiraConfig
    tokens: TokenStore
    db: Database
    http: aiohttp.ClientSession
    auth: AtlassianAuth | None  # None on-premise, or on cloud without `jira.oauth`
    tell: Tell  # a notice in the user's DM
    clock: Callable[[], float] = time.time
    limits: RateLimits = field(default_factory=RateLimits)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _sites: dict[str, tuple[float, list[Site]]] = field(default_factory=dict)

    @property
    def instance(self) -> str:
        """The key logins are stored under: a login for one deployment is never used on another."""
        return "cloud" if self.config.url is None else self.config.url

    @property
    def login_hint(self) -> str:
        if self.config.url is not None:
            return "`jira personaltoken <token>`"
        return "`jira login`"

    # -- storage ------------------------------------------------------------------------------------

    async def stored(self, user_id: str) -> StoredLogin | None:
        return StoredLogin.from_json(await self.tokens.get(user_id, SERVICE, self.instance))

    async def put(self, user_id: str, login: StoredLogin) -> None:
        await self.tokens.put(user_id, SERVICE, login.to_json(), self.instance)

    async def delete(self, user_id: str) -> bool:
        return await self.tokens.delete(user_id, SERVICE, self.instance)

    def grant_login(self, grant: TokenGrant, name: str | None) -> StoredLogin:
        return StoredLogin("oauth", grant.access_token, grant.refresh_token, self.clock() + grant.expires_in, name)

    async def verify_pat(self, token: str) -> tuple[StoredLogin, User]:
        """Check an on-premise personal access token with `GET myself`; raises JiraError."""
        if self.config.url is None:
            raise ValueError("personal access tokens are for an on-premise JIRA")
        me = await self.client(self._on_prem_site(), token).myself()
        return StoredLogin("pat", token, name=me.display_name or me.name), me

    # -- a usable login -----------------------------------------------------------------------------

    async def login(self, user_id: str) -> JiraLogin | None:
        """The user's login, refreshed if it was about to expire; None when they have none that
        works (never logged in, or a refresh was refused). Raises JiraError when Atlassian
        could not be asked."""
        stored = await self.stored(user_id)
        if stored is None or stored.broken:
            return None
        if self._fresh(stored):
            return JiraLogin(self, user_id, stored)
        refreshed = await self._refresh(user_id)
        return None if refreshed is None else JiraLogin(self, user_id, refreshed)

    def _fresh(self, stored: StoredLogin) -> bool:
        return stored.kind == "pat" or stored.expires_at is None or stored.expires_at - self.clock() > REFRESH_MARGIN_S

    async def _refresh(self, user_id: str) -> StoredLogin | None:
        lock = self._locks.setdefault(user_id, asyncio.Lock())
        async with lock, self.db.acquire() as conn:
            key = f"hookshot_py:jira-refresh:{self.instance}:{user_id}"
            await conn.execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", key)
            try:
                return await self._refresh_locked(user_id)
            finally:
                await conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", key)

    async def _refresh_locked(self, user_id: str) -> StoredLogin | None:
        current = await self.stored(user_id)  # another caller may have refreshed it meanwhile
        if current is None or current.broken:
            return None
        if self._fresh(current):
            return current
        if self.auth is None or current.refresh_token is None:
            await self._give_up(user_id, current, "it cannot be renewed")
            return None
        try:
            grant = await self.auth.refresh(current.refresh_token)
        except JiraError as exc:
            if not exc.refused:
                log.warning("Refreshing the JIRA login of %s failed (%s); trying again on next use", user_id, exc)
                raise
            await self._give_up(user_id, current, f"Atlassian said: {exc.message}")
            return None
        renewed = StoredLogin(
            "oauth", grant.access_token, grant.refresh_token or current.refresh_token,
            self.clock() + grant.expires_in, current.name,
        )
        await self.put(user_id, renewed)
        log.info("Refreshed the JIRA login of %s", user_id)
        return renewed

    async def _give_up(self, user_id: str, current: StoredLogin, why: str) -> None:
        log.warning("The JIRA login of %s could not be renewed: %s", user_id, why)
        await self.put(user_id, replace(current, broken=True))
        await self.tell(
            user_id,
            Text().raw("Your JIRA login has expired and could not be renewed (").text(why)
            .raw(f"). Send {self.login_hint} here to log in again."),
        )

    # -- sites --------------------------------------------------------------------------------------

    def _on_prem_site(self) -> Site:
        url = self.config.url or ""
        return Site("on-prem", urlsplit(url).netloc, url, f"{url}/rest/api/2")

    async def sites(self, login: StoredLogin) -> list[Site]:
        if self.config.url is not None:
            return [self._on_prem_site()]
        if self.auth is None:
            return []
        now = self.clock()
        cached = self._sites.get(login.access_token)
        if cached is not None and cached[0] > now:
            return cached[1]
        resources = await self.auth.resources(login.access_token)
        found = [Site(r.id, r.name, r.url.rstrip("/"), self.auth.site_api(r.id)) for r in resources]
        if len(self._sites) >= SITES_CACHE_SIZE:
            self._sites.pop(next(iter(self._sites)))
        self._sites[login.access_token] = (now + SITES_TTL_S, found)
        return found

    def client(self, site: Site, token: str) -> JiraClient:
        return JiraClient(site.api, token, self.http, cloud=self.config.url is None, limits=self.limits)


@dataclass
class JiraLogin:
    """One user's working login: their sites, and a client for each."""

    accounts: JiraAccounts
    user_id: str
    stored: StoredLogin

    async def sites(self) -> list[Site]:
        return await self.accounts.sites(self.stored)

    async def site_for_host(self, host: str) -> Site | None:
        """The site at `host` (`host[:port]`), if the user can reach it."""
        return next((s for s in await self.sites() if s.host == host.lower()), None)

    async def site_named(self, name: str) -> Site | None:
        """The site called `name` (its id or host also do)."""
        sites = await self.sites()
        return next(
            (s for s in sites if s.name == name),
            next((s for s in sites if s.id == name or s.host == name.lower()), None),
        )

    def client(self, site: Site) -> JiraClient:
        return self.accounts.client(site, self.stored.access_token)


def not_logged_in(accounts: JiraAccounts) -> ApiError:
    return ApiError(
        ErrCode.FORBIDDEN_USER,
        f"User is not authenticated with JIRA: send {accounts.login_hint} to the bridge bot in a direct message.",
    )


def api_error(exc: JiraError) -> ApiError:
    """A JIRA failure as the caller's answer (`upstream_error`; JIRA rejects values with 400)."""
    return upstream_error(exc.status, exc.describe(), bad_value=(400,))


async def user_login(accounts: JiraAccounts, user_id: str) -> JiraLogin:
    """The user's working login, or the "not logged in" refusal (ApiError)."""
    try:
        login = await accounts.login(user_id)
    except JiraError as exc:
        raise ApiError(ErrCode.UNKNOWN, f"Could not renew your JIRA login: {exc.describe()}", status=502) from exc
    if login is None:
        raise not_logged_in(accounts)
    return login


async def project_client(accounts: JiraAccounts, user_id: str, ref: ProjectRef) -> tuple[JiraClient, Site]:
    """A client acting as `user_id` on the site of `ref`; ApiError when they have no login or
    did not grant the bridge that site."""
    login = await user_login(accounts, user_id)
    try:
        site = await login.site_for_host(ref.host)
    except JiraError as exc:
        raise api_error(exc) from exc
    if site is None:
        raise ApiError(
            ErrCode.FORBIDDEN_USER,
            f"User is not authenticated with this JIRA instance ({ref.origin}): log in again with "
            f"{accounts.login_hint} and grant the bridge access to that site.",
        )
    return login.client(site), site
