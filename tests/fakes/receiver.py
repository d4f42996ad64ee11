"""An outbound webhook receiver for tests: records every request (method, headers, raw body and
its multipart parts, parsed by aiohttp's own multipart reader) and answers as told: 200, a
failing status (with Retry-After), a redirect, or a hang. It checks signatures the way the
README tells receivers to (`verify`)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

SIGNATURE_HEADER = "X-Matrix-Hookshot-Signature-256"


def verify(token: str, body: bytes, header: str) -> bool:
    """The README's recipe: HMAC-SHA256 of the exact body, keyed with the hook's token."""
    expected = "sha256=" + hmac.new(token.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, str | None, bytes]]:
    """The parts of a multipart/form-data body, by the standard library's MIME parser:
    name → (filename, content type, data)."""
    message = email.message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body, policy=email.policy.HTTP
    )
    assert message.is_multipart(), content_type
    parts = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        parts[str(name)] = (part.get_filename(), part.get_content_type(), part.get_payload(decode=True) or b"")
    return parts


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    parts: dict[str, tuple[str | None, str | None, bytes]]  # name → (filename, content type, data)

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.parts["event"][2])


@dataclass
class Receiver:
    received: list[Received] = field(default_factory=list)  # answered 2xx
    attempts: int = 0
    fail_status: int | None = None  # answer every request with this status while set
    retry_after: str | None = None
    redirect_to: str | None = None
    hang: bool = False
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=256 * 1024**2)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.attempts += 1
        body = await request.read()
        if self.hang:
            await asyncio.sleep(3600)
        if self.redirect_to is not None:
            raise web.HTTPTemporaryRedirect(self.redirect_to)
        if self.fail_status is not None:
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            return web.Response(status=self.fail_status, text="receiver says no", headers=headers)
        parts = parse_multipart(request.headers.get("Content-Type", ""), body)
        self.received.append(Received(request.method, request.path, dict(request.headers), body, parts))
        self.arrived.set()
        return web.json_response({"ok": True})

    async def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        async def enough() -> None:
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(enough(), timeout)
        return self.received
