"""What every listener shares: `{errcode, error}` error bodies, `/live`, `/ready`, metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from hookshot_py.errors import ApiError, ErrCode

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ReadyCheck = Callable[[], tuple[bool, dict[str, object]]]

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
    logged 500 HS_UNKNOWN (a bug, never an answer to bad input)."""
    try:
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
    except Exception:
        log.exception("Unhandled error in %s %s", request.method, request.path)
        return error_response(ApiError(ErrCode.UNKNOWN, "An internal error occurred"))


def add_health_routes(app: web.Application, ready: ReadyCheck) -> None:
    async def live(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def ready_handler(_: web.Request) -> web.Response:
        ok, details = ready()
        return web.json_response({"ready": ok, **details}, status=200 if ok else 503)

    app.router.add_get("/live", live)
    app.router.add_get("/ready", ready_handler)


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


async def read_body(request: web.Request, limit: int) -> bytes:
    """The raw body, refusing (413 `HS_TOO_LARGE`) anything over `limit` bytes without reading it all."""
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(ErrCode.TOO_LARGE, f"The body exceeds the limit of {limit} bytes.")
    body = bytearray()
    async for chunk in request.content.iter_chunked(65536):
        body += chunk
        if len(body) > limit:
            raise ApiError(ErrCode.TOO_LARGE, f"The body exceeds the limit of {limit} bytes.")
    return bytes(body)
