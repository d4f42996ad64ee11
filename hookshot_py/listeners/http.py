"""What every listener shares: `{errcode, error}` error bodies, `/live`, `/ready`, metrics."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from hookshot_py import jsonsafe
from hookshot_py.errors import ApiError, ErrCode

if TYPE_CHECKING:
    from hookshot_py.matrix.causal import Mark

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# A client gets this long to send a request's headers (and to send the next one on a kept-alive
# connection), and this long to send its body: slow clients cannot hold sockets for ever.
HEADER_TIMEOUT_S = 15.0
BODY_TIMEOUT_S = 30.0
# Open connections per listener; further ones are closed at once.
MAX_CONNECTIONS = 1024
# Request bodies held in memory at once, all listeners together (see `BodyBudget`).
MAX_BUFFERED_BODY_BYTES = 256 * 1024 * 1024
# At a stop, a request still running after this long is cancelled (and after as long again,
# dropped): the bridge must stop within 10 s (lifecycle.STOP_DEADLINE).
SHUTDOWN_TIMEOUT_S = 1.0
ReadyCheck = Callable[[], tuple[bool, dict[str, object]]]

_NUL_IN_URL = re.compile(r"%00|\x00")
_HTTP_CODES = {
    404: ErrCode.NOT_FOUND,
    405: ErrCode.METHOD_NOT_ALLOWED,
    413: ErrCode.TOO_LARGE,
}


def error_response(err: ApiError) -> web.Response:
    return web.json_response(err.to_json(), status=err.status or 500)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """ApiError → its JSON; aiohttp's own 404/405/413 → the same shape; anything else → a
    logged 500 HS_UNKNOWN (a bug, never an answer to bad input).

    A URL holding a NUL character (`%00` in a path segment or query value) is refused here, for
    every route: no handler expects one, and Postgres refuses it in any text it is given. The
    request's share of the body budget (`BODIES`) is given back once it is answered."""
    try:
        return await _answer(request, handler)
    finally:
        BODIES.release(request)


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        if _NUL_IN_URL.search(request.raw_path):
            raise ApiError(ErrCode.BAD_VALUE, "The URL holds a NUL character.")
        return await handler(request)
    except ApiError as e:
        return error_response(e)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        code = _HTTP_CODES.get(e.status, ErrCode.BAD_VALUE if e.status < 500 else ErrCode.UNKNOWN)
        text = e.reason or "Error"
        if e.status == 404:
            text = f"No route for {request.method} {request.path}"
        elif e.status == 405:
            text = f"Method {request.method} is not allowed on {request.path}"
        err = ApiError(code, text, status=e.status)
        resp = error_response(err)
        if e.status == 405 and "Allow" in e.headers:
            resp.headers["Allow"] = e.headers["Allow"]
        return resp
    except ConnectionResetError:
        # The client went away mid-request: nothing to log loudly (re-raised, aiohttp would log a
        # traceback for each one: a stranger could fill the log). The answer goes nowhere.
        log.debug("Client left during %s %s", request.method, route_name(request))
        return error_response(ApiError(ErrCode.BAD_VALUE, "The connection was lost.", status=400))
    except Exception:
        # Never the raw path: a generic webhook's path is its secret.
        log.exception("Unhandled error in %s %s", request.method, route_name(request))
        return error_response(ApiError(ErrCode.UNKNOWN, "An internal error occurred"))


def route_name(request: web.Request) -> str:
    """The route's pattern (`/webhook/{hook_id}`), safe to log: paths may hold secrets."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "(no route)"


def add_health_routes(app: web.Application, ready: ReadyCheck) -> None:
    async def live(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def ready_handler(_: web.Request) -> web.Response:
        ok, details = ready()
        return web.json_response({"ready": ok, **details}, status=200 if ok else 503)

    app.router.add_get("/live", live)
    app.router.add_get("/ready", ready_handler)


class RequestMarks(Protocol):
    def begin_request(self, *, until_answered: bool = False) -> Mark: ...

    def answered(self, mark: Mark) -> None: ...


def causal_middleware(outbox: RequestMarks) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Marks each request's start and answer for the outbox's causal order: messages it queues
    follow those whose requests were answered before it began (`matrix/causal.py`)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        mark = outbox.begin_request(until_answered=True)
        try:
            return await handler(request)
        finally:  # the answer has not left yet: requests starting from now follow this one
            outbox.answered(mark)

    return middleware


def timed(observe: Callable[[web.Request, int, float], None]) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Middleware calling `observe(request, status, seconds)` after every request."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        status = 500
        try:
            resp = await handler(request)
            status = resp.status
            return resp
        finally:
            observe(request, status, time.perf_counter() - start)

    return middleware


class BodyBudget:
    """Bytes of request bodies held in memory at once by this process. Bodies are read before
    they can be verified (a signature covers the whole body), so strangers with many connections
    and large bodies (GitHub's limit is 25 MiB) could otherwise grow the process without bound:
    past the budget a request is turned away with 429, and the others go on."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, request: web.Request, size: int) -> None:
        if self.used + size > self.limit:
            raise ApiError(ErrCode.LIMIT_EXCEEDED, "The bridge is receiving too much at once: retry in a moment.")
        self.used += size
        request[_HELD] = request.get(_HELD, 0) + size

    def release(self, request: web.Request) -> None:
        self.used -= request.pop(_HELD, 0)


_HELD = web.RequestKey("hookshot_py.body_bytes", int)
BODIES = BodyBudget(MAX_BUFFERED_BODY_BYTES)


async def read_body(request: web.Request, limit: int, *, timeout: float | None = None) -> bytes:
    """The raw body, refusing (413 `HS_TOO_LARGE`) anything over `limit` bytes without reading it
    all, (408) a body that does not arrive within `timeout` seconds (`BODY_TIMEOUT_S`), and (429)
    a body past the process's budget for bodies in memory (`BODIES`, released when the request
    is answered, by `error_middleware`)."""
    timeout = BODY_TIMEOUT_S if timeout is None else timeout
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(ErrCode.TOO_LARGE, f"The body exceeds the limit of {limit} bytes.")
    body = bytearray()
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.content.iter_chunked(65536):
                BODIES.take(request, len(chunk))
                body += chunk
                if len(body) > limit:
                    raise ApiError(ErrCode.TOO_LARGE, f"The body exceeds the limit of {limit} bytes.")
    except TimeoutError:
        raise ApiError(ErrCode.BAD_VALUE, f"The body did not arrive within {timeout:.0f} s.", status=408) from None
    return bytes(body)


def parse_json(raw: bytes, *, max_depth: int = jsonsafe.MAX_DEPTH) -> Any:
    """A JSON body, or 400 `HS_BAD_VALUE` saying what is wrong (bad UTF-8, bad JSON, too deep)."""
    try:
        return jsonsafe.loads(raw, max_depth=max_depth)
    except jsonsafe.JsonError as e:
        raise ApiError(ErrCode.BAD_VALUE, str(e)[:1].upper() + str(e)[1:] + ".") from e


class ListenerRunner(web.AppRunner):
    """An AppRunner with bounded header/keep-alive time and a cap on open connections (past it,
    new connections are closed at once instead of holding file descriptors)."""

    def __init__(self, app: web.Application, *, max_connections: int | None = None) -> None:
        super().__init__(
            app, access_log=None, keepalive_timeout=HEADER_TIMEOUT_S, shutdown_timeout=SHUTDOWN_TIMEOUT_S
        )
        self.max_connections = MAX_CONNECTIONS if max_connections is None else max_connections

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        track = server.connection_made
        cap = self.max_connections

        def connection_made(handler: RequestHandler, transport: asyncio.Transport) -> None:
            track(handler, transport)
            if len(server.connections) > cap:
                log.warning("Refusing a connection: %d are open (the limit)", cap)
                transport.abort()

        setattr(server, "connection_made", connection_made)  # noqa: B010 - wraps one instance
        return server
