"""A round-robin HTTP reverse proxy, for tests and benchmarks of several bridge processes: what
nginx or HAProxy does in front of them in a deployment (docs/scale-out.md). A backend that
refuses the connection is skipped, so a killed process only costs a retry on the next one.

`mirror=True` sends every request to every live backend at once and answers with the first
backend's answer: how tests show that a homeserver transaction delivered to several processes
is still handled once."""

from __future__ import annotations

import asyncio
import itertools

import aiohttp
from aiohttp import web

_HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


class Balancer:
    def __init__(self, port: int, backends: list[str], host: str = "127.0.0.1", *, mirror: bool = False) -> None:
        self.host = host
        self.port = port
        self.backends = list(backends)  # base URLs; may be changed while running
        self.mirror = mirror
        self.forwarded: dict[str, int] = {}
        self._turn = itertools.count()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120))
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        backends = list(self.backends)
        if self.mirror:
            answers = await asyncio.gather(*(self._one(b, request, body, headers) for b in backends))
        else:
            start = next(self._turn)
            answers = []
            for i in range(len(backends)):
                answers.append(await self._one(backends[(start + i) % len(backends)], request, body, headers))
                if answers[-1] is not None:
                    break
        for answer in answers:
            if answer is not None:
                return answer
        return web.json_response({"errcode": "M_UNKNOWN", "error": "no backend answered"}, status=502)

    async def _one(
        self, backend: str, request: web.Request, body: bytes, headers: dict[str, str]
    ) -> web.Response | None:
        """The backend's answer, or None when it is down."""
        assert self._session is not None
        try:
            async with self._session.request(request.method, backend + request.path_qs, data=body,
                                             headers=headers) as resp:
                payload = await resp.read()
                self.forwarded[backend] = self.forwarded.get(backend, 0) + 1
                return web.Response(status=resp.status, body=payload,
                                    content_type=resp.content_type or "application/json")
        except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError):
            return None
