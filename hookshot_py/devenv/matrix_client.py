"""A small Matrix client for tests: speaks the real client-server API to the test Synapse.

Deliberately minimal and explicit (no mautrix) so that a bridge bug can never be masked by sharing
the bridge's own client code. Every HTTP failure raises :class:`MatrixHTTPError`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

import aiohttp

CLIENT_PREFIX = "/_matrix/client/v3"

EventPredicate = Callable[[dict[str, Any]], bool]

# Only what wait_for_invite needs: no presence, no account data, one timeline event per room.
_INVITE_SYNC_FILTER = json.dumps(
    {
        "presence": {"types": []},
        "account_data": {"types": []},
        "room": {"timeline": {"limit": 1}, "ephemeral": {"types": []}, "account_data": {"types": []}},
    }
)


class MatrixHTTPError(Exception):
    """The homeserver answered with a non-2xx status."""

    def __init__(self, status: int, body: Any, method: str = "", url: str = "") -> None:
        self.status = status
        self.body = body
        self.method = method
        self.url = url
        super().__init__(f"{method} {url} -> {status}: {body}")

    @property
    def errcode(self) -> str | None:
        return self.body.get("errcode") if isinstance(self.body, dict) else None


def _q(part: str) -> str:
    return quote(part, safe="")


def describe_event(event: dict[str, Any]) -> str:
    """One line per event for assertion messages: sender, type, state key and body."""
    content = event.get("content", {})
    state = f" [{event['state_key']!r}]" if "state_key" in event else ""
    body = content.get("body")
    detail = f" {content.get('msgtype', '')}: {body!r}" if body is not None else f" {json.dumps(content)[:200]}"
    return f"{event.get('sender')} {event.get('type')}{state}{detail}"


class MatrixTestClient:
    """One logged-in user. Call :meth:`close` when done (the ``make_user`` fixture does)."""

    def __init__(
        self,
        base_url: str,
        user_id: str,
        access_token: str,
        device_id: str | None = None,
        password: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.user_id = user_id
        self.access_token = access_token
        self.device_id = device_id
        self.password = password
        self._session: aiohttp.ClientSession | None = None
        self._txn_ids = itertools.count()
        self._txn_prefix = f"t{time.time_ns()}"
        self._sync_since: str | None = None
        self._pending_invites: deque[str] = deque()

    def __repr__(self) -> str:
        return f"MatrixTestClient({self.user_id!r})"

    @property
    def session(self) -> aiohttp.ClientSession:
        # Created lazily so the client can be built outside a running loop.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers={"Authorization": f"Bearer {self.access_token}"})
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        json_body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> Any:
        """Call ``path`` (relative to the client API prefix unless it starts with ``/_``)."""
        url = self.base_url + (path if path.startswith("/_") else CLIENT_PREFIX + path)
        async with self.session.request(
            method, url, json=json_body, params=params, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as resp:
            text = await resp.text()
            try:
                body: Any = json.loads(text) if text else {}
            except json.JSONDecodeError:
                body = text
            if resp.status >= 300:
                raise MatrixHTTPError(resp.status, body, method, url)
            return body

    def _next_txn(self) -> str:
        return f"{self._txn_prefix}.{next(self._txn_ids)}"

    # Rooms and membership

    async def create_room(
        self,
        invite: Iterable[str] = (),
        name: str | None = None,
        preset: str = "private_chat",
        is_direct: bool = False,
        power_level_content_override: dict[str, Any] | None = None,
    ) -> str:
        body: dict[str, Any] = {"preset": preset, "invite": list(invite), "is_direct": is_direct}
        if name is not None:
            body["name"] = name
        if power_level_content_override is not None:
            body["power_level_content_override"] = power_level_content_override
        return str((await self.request("POST", "/createRoom", body))["room_id"])

    async def join(self, room_id_or_alias: str) -> str:
        return str((await self.request("POST", f"/join/{_q(room_id_or_alias)}", {}))["room_id"])

    async def leave(self, room_id: str) -> None:
        await self.request("POST", f"/rooms/{_q(room_id)}/leave", {})

    async def invite(self, room_id: str, user_id: str) -> None:
        await self.request("POST", f"/rooms/{_q(room_id)}/invite", {"user_id": user_id})

    async def joined_rooms(self) -> list[str]:
        return list((await self.request("GET", "/joined_rooms"))["joined_rooms"])

    # Events

    async def send_event(self, room_id: str, event_type: str, content: dict[str, Any]) -> str:
        path = f"/rooms/{_q(room_id)}/send/{_q(event_type)}/{_q(self._next_txn())}"
        return str((await self.request("PUT", path, content))["event_id"])

    async def send_text(self, room_id: str, body: str) -> str:
        return await self.send_event(room_id, "m.room.message", {"msgtype": "m.text", "body": body})

    async def send_state(self, room_id: str, event_type: str, state_key: str, content: dict[str, Any]) -> str:
        path = f"/rooms/{_q(room_id)}/state/{_q(event_type)}/{_q(state_key)}"
        return str((await self.request("PUT", path, content))["event_id"])

    async def get_state(self, room_id: str, event_type: str, state_key: str = "") -> dict[str, Any] | None:
        """The content of one state event, or None if the room has no such state."""
        try:
            return dict(await self.request("GET", f"/rooms/{_q(room_id)}/state/{_q(event_type)}/{_q(state_key)}"))
        except MatrixHTTPError as err:
            if err.status == 404:
                return None
            raise

    async def get_room_state(self, room_id: str) -> list[dict[str, Any]]:
        return list(await self.request("GET", f"/rooms/{_q(room_id)}/state"))

    async def set_power_levels(self, room_id: str, users: dict[str, int], **overrides: Any) -> str:
        """Merge ``users`` (and any other top-level keys) into the room's current power levels.

        Dict-valued overrides (``events``, ``notifications``) are merged key by key; others replace.
        """
        current = await self.get_state(room_id, "m.room.power_levels", "") or {}
        content = dict(current)
        content["users"] = {**current.get("users", {}), **users}
        for key, value in overrides.items():
            existing = current.get(key)
            content[key] = {**existing, **value} if isinstance(existing, dict) and isinstance(value, dict) else value
        return await self.send_state(room_id, "m.room.power_levels", "", content)

    async def messages(self, room_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """The room's latest ``limit`` timeline events, oldest first."""
        body = await self.request("GET", f"/rooms/{_q(room_id)}/messages", params={"dir": "b", "limit": str(limit)})
        return list(reversed(body.get("chunk", [])))

    async def wait_for_message(
        self, room_id: str, predicate: EventPredicate, timeout: float = 20.0, limit: int = 100
    ) -> dict[str, Any]:
        """Poll the room's timeline until an event satisfies ``predicate``; return that event.

        ``predicate`` sees every timeline event (state events included). On timeout the
        AssertionError lists what was seen, which is usually all one needs to debug a failure.
        """
        deadline = time.monotonic() + timeout
        while True:
            events = await self.messages(room_id, limit)
            for event in events:
                if predicate(event):
                    return event
            if time.monotonic() >= deadline:
                seen = "\n  ".join(describe_event(e) for e in events) or "(no events)"
                raise AssertionError(f"no matching event in {room_id} within {timeout}s; saw:\n  {seen}")
            await asyncio.sleep(0.2)

    async def wait_for_invite(self, timeout: float = 20.0) -> str:
        """Return the id of the next room this user is invited to (e.g. a bot's DM), via ``/sync``.

        Each invite is returned once; invites that arrived before the first call are included.
        """
        deadline = time.monotonic() + timeout
        while not self._pending_invites:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.user_id} received no invite within {timeout}s")
            params = {"filter": _INVITE_SYNC_FILTER, "timeout": str(int(min(remaining, 5.0) * 1000))}
            if self._sync_since is not None:
                params["since"] = self._sync_since
            body = await self.request("GET", "/sync", params=params, timeout=remaining + 10)
            self._sync_since = body["next_batch"]
            self._pending_invites.extend(body.get("rooms", {}).get("invite", {}))
        return self._pending_invites.popleft()
