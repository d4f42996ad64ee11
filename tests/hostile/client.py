"""Sending hostile requests: through aiohttp, or byte by byte on a socket for what aiohttp's
client will not send (oversized headers, bodies that stall)."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

from .conftest import HostileEnv
from .routes import Request


async def send(env: HostileEnv, request: Request) -> tuple[int, bytes]:
    async with env.session.request(
        request.method, request.url, data=request.body or None, headers=request.headers,
        skip_auto_headers=("Content-Type",),
    ) as resp:
        return resp.status, await resp.read()


def assert_not_5xx(what: str, status: int, body: bytes) -> None:
    assert status < 500, f"{what}: {status} {body[:300]!r}"


def assert_error_shape(what: str, status: int, body: bytes) -> None:
    """A 4xx from the bridge's own routes is `{errcode, error}` JSON."""
    if status < 400:
        return
    try:
        answer: Any = json.loads(body)
    except ValueError:
        raise AssertionError(f"{what}: {status} is not JSON: {body[:200]!r}") from None
    assert isinstance(answer, dict) and isinstance(answer.get("errcode"), str) and isinstance(answer.get("error"), str), (
        f"{what}: {status} {answer!r}"
    )


async def send_raw(url: str, head: bytes, body: bytes = b"", *, stall: bool = False, timeout: float = 20.0) -> int:
    """Send `head` (request line and headers, without the blank line) and `body` on a fresh
    connection; with `stall`, never send the rest of the body. The status code, or 0 when the
    server closed the connection without answering."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(head + b"\r\n\r\n" + body)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        if not line:
            return 0
        return int(line.split()[1])
    except ConnectionResetError:
        return 0
    finally:
        writer.close()


def request_head(request: Request, extra: list[tuple[str, str]] = (), content_length: int | None = None) -> bytes:  # type: ignore[assignment]
    parts = urlsplit(request.url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"{request.method} {target} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{k}: {v}" for k, v in request.headers.items()]
    lines += [f"{k}: {v}" for k, v in extra]
    if content_length is not None:
        lines.append(f"Content-Length: {content_length}")
    return "\r\n".join(lines).encode("latin-1")
