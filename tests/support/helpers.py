"""Small helpers shared by end-to-end tests."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import aiohttp

from hookshot_py.devenv.matrix_client import MatrixTestClient

URL_RE = re.compile(r"(http://[^\s`'\"]+/webhook/[0-9a-f-]{36})")


async def http(
    method: str, url: str, *, json: Any = None, data: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """One request; returns (status, parsed JSON or text)."""
    async with aiohttp.ClientSession() as session:
        async with session.request(method, url, json=json, data=data, headers=headers) as resp:
            text = await resp.text()
            try:
                import json as _json

                return resp.status, _json.loads(text)
            except ValueError:
                return resp.status, text


def is_notice_with(body_part: str):  # type: ignore[no-untyped-def]
    def predicate(event: dict[str, Any]) -> bool:
        content = event.get("content") or {}
        return event.get("type") == "m.room.message" and body_part in str(content.get("body", ""))

    return predicate


async def wait_state(
    client: MatrixTestClient, room_id: str, event_type: str, state_key: str, timeout: float = 15.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        state = await client.get_state(room_id, event_type, state_key)
        if state:
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"no {event_type}/{state_key} state in {room_id} after {timeout}s")
        await asyncio.sleep(0.2)


async def dm_webhook_url(client: MatrixTestClient, name: str, timeout: float = 20.0) -> str:
    """Accept the bot's DM (first time) and return the webhook URL it sent for `name`."""
    dm = await client.wait_for_invite(timeout)
    await client.join(dm)
    event = await client.wait_for_message(dm, is_notice_with(f"**{name}**"), timeout)
    match = URL_RE.search(event["content"]["body"])
    assert match, event
    return match.group(1)


async def eventually(check, timeout: float = 15.0, interval: float = 0.2):  # type: ignore[no-untyped-def]
    """Retry an async `check()` until it returns a truthy value."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met after {timeout}s (last value {value!r})")
        await asyncio.sleep(interval)
