"""Can the homeserver and this bridge talk? A start-up check that tells apart what an admin must fix.

- `unreachable`: nothing usable answers at `bridge.url` (homeserver down, wrong URL, network).
- `unknown_token`: the homeserver answers but rejects the registration's `as_token`: it has not
  loaded this registration (not in `app_service_config_files`, not restarted since, or it loaded
  an older copy of the file).
- `cannot_reach_bridge`: the homeserver knows the bridge but cannot reach it at the registration's
  `url` (the appservice ping fails), so no events would arrive.

The first two are waited out (with backoff), since an admin fixes them without touching the
bridge; the third is re-checked in the background. Each new diagnosis is logged once in full,
with what to do; `/ready` shows the current one.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import aiohttp
from mautrix.errors import MatrixConnectionError, MatrixRequestError

from hookshot_py.matrix.appservice import HookshotAppService

log = logging.getLogger(__name__)

CHECK_TIMEOUT = 10.0
MAX_DELAY = 30.0
# What the homeserver answers to an appservice ping it could not deliver (client-server API v1.7).
_PING_DELIVERY_ERRORS = {"M_CONNECTION_FAILED", "M_CONNECTION_TIMEOUT", "M_BAD_STATUS", "M_URL_NOT_SET"}


class HomeserverStatus(StrEnum):
    CHECKING = "checking"
    OK = "ok"
    UNREACHABLE = "unreachable"
    UNKNOWN_TOKEN = "unknown_token"
    CANNOT_REACH_BRIDGE = "cannot_reach_bridge"


@dataclass(frozen=True)
class HomeserverState:
    status: HomeserverStatus
    error: str = ""  # what the homeserver (or the network) said
    action: str = ""  # what the admin should do

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": str(self.status)}
        if self.error:
            out["error"] = self.error
        if self.action:
            out["action"] = self.action
        return out


@dataclass(frozen=True)
class Setup:
    """What the messages name: where the bridge looks for the homeserver and vice versa."""

    homeserver_url: str
    registration_url: str
    registration_file: str
    bind: str  # bridge.bindAddress:bridge.port


def _describe(e: BaseException) -> str:
    if isinstance(e, MatrixRequestError):
        return f"HTTP {e.http_status} {e.errcode or ''}: {e.message or ''}".replace(" :", ":").strip()
    if isinstance(e, TimeoutError):
        return f"no answer within {CHECK_TIMEOUT:.0f}s"
    return str(e) or type(e).__name__


def unreachable(setup: Setup, error: str) -> HomeserverState:
    return HomeserverState(
        HomeserverStatus.UNREACHABLE,
        error,
        f"Check that the homeserver is running and that bridge.url ({setup.homeserver_url}) is its "
        "client-server API address, reachable from this machine.",
    )


async def check_token(appservice: HookshotAppService, setup: Setup) -> HomeserverState:
    """Does the homeserver answer, and accept the registration's as_token?"""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await appservice.intent.whoami()
    except MatrixRequestError as e:
        if e.errcode == "M_UNKNOWN_TOKEN" or e.http_status == 401:
            return HomeserverState(
                HomeserverStatus.UNKNOWN_TOKEN,
                _describe(e),
                f"The homeserver has not loaded this bridge's registration: add {setup.registration_file} to "
                "app_service_config_files in its config (homeserver.yaml for Synapse) and restart the homeserver. "
                "If you regenerated the registration, the homeserver still has the old tokens: restart it.",
            )
        return unreachable(setup, f"{_describe(e)} (is bridge.url a Matrix homeserver?)")
    except (MatrixConnectionError, aiohttp.ClientError, TimeoutError, OSError, ValueError) as e:
        return unreachable(setup, _describe(e))
    return HomeserverState(HomeserverStatus.OK)


async def check_ping(appservice: HookshotAppService, setup: Setup) -> HomeserverState:
    """Can the homeserver reach the bridge at the registration's url? (It also makes Synapse
    resend at once the transactions it could not deliver while we were down.)"""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT + 5):  # the homeserver waits for us in between
            await appservice.ping_self()
    except MatrixRequestError as e:
        if e.errcode in _PING_DELIVERY_ERRORS or e.http_status in (502, 504):
            return HomeserverState(
                HomeserverStatus.CANNOT_REACH_BRIDGE,
                _describe(e),
                f"Set `url` in {setup.registration_file} (now {setup.registration_url}) to an address where "
                f"the homeserver reaches the appservice listener (bridge.bindAddress:bridge.port = {setup.bind}), "
                "then restart the homeserver (it reads the registration only when it starts).",
            )
        if e.http_status in (401, 403) or e.errcode == "M_UNKNOWN_TOKEN":
            return await check_token(appservice, setup)
        # A homeserver without the ping endpoint (before Matrix 1.7): nothing to check with.
        log.info("The homeserver cannot ping appservices (%s); not checking the registration's url", _describe(e))
    except (MatrixConnectionError, aiohttp.ClientError, TimeoutError, OSError) as e:
        return unreachable(setup, _describe(e))
    return HomeserverState(HomeserverStatus.OK)


class HomeserverCheck:
    """The current diagnosis, and the loops that wait for it to become `ok`."""

    def __init__(self, appservice: HookshotAppService, setup: Setup) -> None:
        self.appservice = appservice
        self.setup = setup
        self.state = HomeserverState(HomeserverStatus.CHECKING)

    @property
    def ok(self) -> bool:
        return self.state.status is HomeserverStatus.OK

    async def wait_for_token(self) -> None:
        """Until the homeserver answers and knows the bridge. Cancellable (a signal stops it)."""
        await self._until_ok(lambda: check_token(self.appservice, self.setup))

    async def ping(self) -> bool:
        self._set(await check_ping(self.appservice, self.setup), retry_in=None)
        return self.ok

    async def ping_until_ok(self) -> None:
        await self._until_ok(lambda: check_ping(self.appservice, self.setup), first_delay=5.0)

    async def _until_ok(self, check: Any, first_delay: float = 1.0) -> None:
        delay = first_delay
        while True:
            state = await check()
            self._set(state, retry_in=delay)
            if self.ok:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_DELAY)

    def _set(self, state: HomeserverState, retry_in: float | None) -> None:
        previous, self.state = self.state, state
        failing = retry_in is not None and state.status is not HomeserverStatus.OK
        retry = f"; retrying in {retry_in:.0f}s" if failing else ""
        if state.status is HomeserverStatus.OK:
            if previous.status not in (HomeserverStatus.OK, HomeserverStatus.CHECKING):
                log.info("The homeserver at %s and this bridge reach each other now", self.setup.homeserver_url)
        elif state.status != previous.status:
            level = logging.WARNING if state.status is HomeserverStatus.UNREACHABLE else logging.ERROR
            headline = _HEADLINES[state.status].format(s=self.setup)
            log.log(level, "%s: %s. %s%s", headline, state.error.rstrip("."), state.action, retry)
        else:
            log.warning("%s (%s)%s", _HEADLINES[state.status].format(s=self.setup), state.error, retry)


_HEADLINES = {
    HomeserverStatus.UNREACHABLE: "Homeserver at {s.homeserver_url} not reachable",
    HomeserverStatus.UNKNOWN_TOKEN: "The homeserver at {s.homeserver_url} does not know this bridge's as_token",
    HomeserverStatus.CANNOT_REACH_BRIDGE: "The homeserver cannot reach this bridge at {s.registration_url}",
}
