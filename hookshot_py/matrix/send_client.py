"""The outbox's line to the homeserver: `PUT /send` over a small pool of kept-alive HTTP/1.1
connections.

A general-purpose client (aiohttp) spends ~150-200 µs of CPU per request building URL objects,
header multidicts, cookie and tracing hooks; this one writes a request head from a template and
reads back the status line, the few headers it needs and a JSON body (Content-Length or chunked):
~30 µs, measured. Everything else the bridge asks of the homeserver stays on mautrix's client.

An exchange that fails after the request was written leaves its outcome unknown (the homeserver
may have stored the event): `SendUnknown` says so, and the outbox looks for the event's marker
before sending it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024
# A kept-alive connection idle longer is not reused: servers close idle ones after 30-75 s, and a
# request written just as the server closes would end with an unknown outcome.
MAX_IDLE_S = 15.0


class SendUnknown(ConnectionError):
    """The request may or may not have reached the homeserver (the connection broke, or timed out)."""


class SendNotSent(ConnectionError):
    """The request was not written: the homeserver cannot have seen it."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    retry_after: str | None  # the Retry-After header, if any


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection, one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._buffer = bytearray()
        self._waiter: asyncio.Future[Answer] | None = None
        self._keep_alive = True

    # -- asyncio.Protocol ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._waiter is None or self._waiter.done():
            if self._waiter is None:
                self._close()  # bytes nobody asked for: the stream cannot be trusted any more
            return
        try:
            answer = self._parse()
        except ValueError as e:
            self._waiter.set_exception(SendUnknown(f"bad answer from the homeserver: {e}"))
            self._close()
            return
        if answer is not None:
            waiter, self._waiter = self._waiter, None
            waiter.set_result(answer)
            if not self._keep_alive:
                self._close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(SendUnknown(f"the homeserver closed the connection ({exc or 'EOF'})"))

    # -- one exchange -------------------------------------------------------------------------------

    async def exchange(self, request: bytes, timeout: float) -> Answer:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(self._waiter)
        except TimeoutError:
            self._close()
            raise SendUnknown(f"no answer from the homeserver within {timeout:.0f} s") from None
        except asyncio.CancelledError:
            self._close()  # an answer may still come: this connection cannot be reused
            raise

    def _parse(self) -> Answer | None:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HEAD_BYTES:
                raise ValueError("headers too long")
            return None
        head = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        parts = head[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise ValueError(f"not an HTTP/1.x status line: {head[0][:80]!r}")
        status = int(parts[1])
        headers: dict[str, str] = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        start = end + 4
        if headers.get("transfer-encoding", "").lower() == "chunked":
            parsed = _dechunk(self._buffer, start)
            if parsed is None:
                return None
            body, used = parsed
        elif "content-length" in headers:
            length = int(headers["content-length"])
            if length > MAX_BODY_BYTES:
                raise ValueError("body too large")
            if len(self._buffer) < start + length:
                return None
            body, used = bytes(self._buffer[start : start + length]), start + length
        else:
            return None  # the body ends with the connection: see connection_lost
        del self._buffer[:used]
        self._keep_alive = headers.get("connection", "").lower() != "close" and parts[0] != "HTTP/1.0"
        return Answer(status, body, headers.get("retry-after"))

    def _close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _dechunk(buffer: bytearray, start: int) -> tuple[bytes, int] | None:
    """A complete chunked body from `start` and where it ends, or None while incomplete."""
    body = bytearray()
    pos = start
    while True:
        line_end = buffer.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size = int(bytes(buffer[pos:line_end]).split(b";")[0], 16)
        pos = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n", pos)
            while trailer_end > pos:  # skip trailers
                pos = trailer_end + 2
                trailer_end = buffer.find(b"\r\n", pos)
            return (bytes(body), trailer_end + 2) if trailer_end >= 0 else None
        if len(buffer) < pos + size + 2:
            return None
        body += buffer[pos : pos + size]
        if len(body) > MAX_BODY_BYTES:
            raise ValueError("body too large")
        pos += size + 2


class SendClient:
    """`PUT` requests with a JSON body to one homeserver, over at most `max_connections`
    kept-alive connections."""

    def __init__(self, base_url: str, token: str, *, max_connections: int = 64) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "localhost"
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        self.prefix = parts.path.rstrip("/")
        default_port = self.port == (443 if self.tls else 80)
        host_header = self.host if default_port else f"{self.host}:{self.port}"
        self._head_tail = (
            f"Host: {host_header}\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\nContent-Length: "
        ).encode()
        self._ssl: ssl.SSLContext | None = ssl.create_default_context() if self.tls else None
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(max_connections)
        self._open: set[_Connection] = set()

    async def put(self, path: str, body: bytes, *, timeout: float = 60.0) -> Answer:
        """`path` is percent-encoded and may carry a query. Raises SendNotSent or SendUnknown."""
        request = b"PUT " + (self.prefix + path).encode() + b" HTTP/1.1\r\n" + self._head_tail
        request += str(len(body)).encode() + b"\r\n\r\n" + body
        async with self._slots:
            conn = await self._connection(timeout)
            try:
                answer = await conn.exchange(request, timeout)
            finally:
                if conn.closed:
                    self._open.discard(conn)
                else:
                    conn.idle_since = asyncio.get_running_loop().time()
                    self._idle.append(conn)
            return answer

    async def _connection(self, timeout: float) -> _Connection:
        loop = asyncio.get_running_loop()
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and loop.time() - conn.idle_since < MAX_IDLE_S:
                return conn
            conn._close()
            self._open.discard(conn)
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    _Connection, self.host, self.port, ssl=self._ssl, server_hostname=self.host if self.tls else None
                )
        except (OSError, TimeoutError) as e:
            raise SendNotSent(f"cannot connect to the homeserver: {type(e).__name__}: {e}") from e
        self._open.add(conn)
        return conn

    async def close(self) -> None:
        for conn in list(self._open):
            conn._close()
        self._open.clear()
        self._idle.clear()
        with contextlib.suppress(Exception):
            await asyncio.sleep(0)
