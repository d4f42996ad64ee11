"""What a listener does against slow, greedy or broken clients: bounded header and body time,
a connection cap, and no secret paths in the log."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest
from aiohttp import web

from hookshot_py.listeners import http as listener_http
from hookshot_py.listeners.http import ListenerRunner, error_middleware, read_body
from hookshot_py.devenv.synapse import free_port


async def _echo(request: web.Request) -> web.Response:
    body = await read_body(request, 1024)
    return web.json_response({"len": len(body)})


async def _boom(request: web.Request) -> web.Response:
    raise RuntimeError("a bug")


@pytest.fixture
async def server(monkeypatch):
    monkeypatch.setattr(listener_http, "HEADER_TIMEOUT_S", 0.5)
    monkeypatch.setattr(listener_http, "BODY_TIMEOUT_S", 0.5)
    monkeypatch.setattr(listener_http, "MAX_CONNECTIONS", 4)
    app = web.Application(middlewares=[error_middleware])
    app.router.add_post("/echo", _echo)
    app.router.add_post("/webhook/{hook_id}", _boom)
    runner = ListenerRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield port
    await runner.cleanup()


async def _closed_by_server(reader: asyncio.StreamReader, within: float = 5.0) -> bool:
    data = await asyncio.wait_for(reader.read(), within)
    return data == b""


async def test_a_client_that_never_finishes_its_headers_is_dropped(server):
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\n")  # ... and never the blank line
    await writer.drain()
    assert await _closed_by_server(reader)
    writer.close()


async def test_a_body_that_never_arrives_gets_408(server):
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b")
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 5.0)
    assert status_line.startswith(b"HTTP/1.1 408")
    writer.close()


async def test_a_client_leaving_mid_body_is_not_an_error_in_the_log(server, caplog):
    """Anyone can abort requests by the thousand: each used to log a traceback."""
    caplog.set_level(logging.DEBUG)
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b")
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.transport.abort()
    for _ in range(50):
        if "Client left during POST /echo" in caplog.text:
            break
        await asyncio.sleep(0.02)
    assert "Client left during POST /echo" in caplog.text
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_connections_past_the_cap_are_closed_at_once(server):
    idle = [await asyncio.open_connection("127.0.0.1", server) for _ in range(4)]
    await asyncio.sleep(0.05)
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    assert await _closed_by_server(reader, within=0.4)  # well before the header timeout
    for _, w in [*idle, (reader, writer)]:
        w.close()


async def test_errors_are_logged_without_the_secret_path(server, caplog):
    caplog.set_level(logging.INFO)
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    writer.write(b"POST /webhook/SECRET-HOOK-ID HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 5.0)
    assert status_line.startswith(b"HTTP/1.1 500")
    writer.close()
    assert "/webhook/{hook_id}" in caplog.text
    assert "SECRET-HOOK-ID" not in caplog.text


async def test_bodies_held_at_once_are_bounded_and_given_back(monkeypatch):
    """Bodies are read before they can be verified: past the process's budget, 429 (not growth)."""
    budget = listener_http.BodyBudget(3000)
    monkeypatch.setattr(listener_http, "BODIES", budget)
    release = asyncio.Event()

    async def hold(request: web.Request) -> web.Response:
        body = await read_body(request, 10_000)
        await release.wait()
        return web.json_response({"len": len(body)})

    app = web.Application(middlewares=[error_middleware])
    app.router.add_post("/hold", hold)
    runner = ListenerRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}/hold"
    try:
        async with aiohttp.ClientSession() as session:
            first = asyncio.create_task(session.post(url, data=b"a" * 2000))
            while budget.used < 2000:
                await asyncio.sleep(0.01)
            async with session.post(url, data=b"b" * 2000) as refused:
                assert refused.status == 429 and (await refused.json())["errcode"] == "HS_LIMIT_EXCEEDED"
            assert budget.used == 2000, "the refused body's bytes were given back"
            release.set()
            async with await first as answered:
                assert answered.status == 200 and (await answered.json()) == {"len": 2000}
            async with session.post(url, data=b"c" * 2500) as later:
                assert later.status == 200
        assert budget.used == 0
    finally:
        await runner.cleanup()
