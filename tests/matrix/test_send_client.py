"""The outbox's HTTP/1.1 client against small real servers: kept-alive connections, bodies by
length or chunks, and the difference between "not sent" and "outcome unknown"."""

from __future__ import annotations

import asyncio
import json

import pytest

from hookshot_py.devenv.synapse import free_port
from hookshot_py.matrix.outbox_sender import MARKER, with_marker
from hookshot_py.matrix.send_client import SendClient, SendNotSent, SendUnknown


class Server:
    """Answers each request with the next scripted raw answer; counts connections and requests."""

    def __init__(self, answers: list[bytes]) -> None:
        self.answers = answers
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.port = free_port()

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while self.answers:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                self.requests.append(head + await reader.readexactly(length))
                answer = self.answers.pop(0)
                if answer == b"HANG":
                    await asyncio.sleep(30)
                writer.write(answer)
                await writer.drain()
                if answer.endswith(b"CLOSE") or b"Connection: close" in answer:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


def _ok(event_id: str) -> bytes:
    body = json.dumps({"event_id": event_id}).encode()
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


async def test_requests_share_a_kept_alive_connection_and_chunked_bodies_are_read():
    chunked = b"HTTP/1.1 429 Too Many\r\nRetry-After: 2\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"err\r\n7\r\ncode\": \r\nA\r\n\"M_LIMIT\"}\r\n0\r\n\r\n"
    async with Server([_ok("$1"), chunked, _ok("$3")]) as server:
        client = SendClient(f"http://127.0.0.1:{server.port}", "tok")
        first = await client.put("/_matrix/client/v3/rooms/%21r/send/m.room.message/t1?user_id=%40a%3Ax", b'{"a": 1}')
        second = await client.put("/p2", b"{}")
        third = await client.put("/p3", b"{}")
        await client.close()
    assert (first.status, json.loads(first.body)) == (200, {"event_id": "$1"})
    assert (second.status, json.loads(second.body), second.retry_after) == (429, {"errcode": "M_LIMIT"}, "2")
    assert json.loads(third.body) == {"event_id": "$3"}
    assert server.connections == 1
    assert server.requests[0].startswith(
        b"PUT /_matrix/client/v3/rooms/%21r/send/m.room.message/t1?user_id=%40a%3Ax HTTP/1.1\r\n"
    )
    assert b"Authorization: Bearer tok\r\n" in server.requests[0] and server.requests[0].endswith(b'{"a": 1}')


async def test_a_connection_the_server_closes_is_replaced():
    closing = _ok("$1").replace(b"Content-Type", b"Connection: close\r\nContent-Type")
    async with Server([closing, _ok("$2")]) as server:
        client = SendClient(f"http://127.0.0.1:{server.port}", "tok")
        assert (await client.put("/a", b"{}")).status == 200
        assert json.loads((await client.put("/b", b"{}")).body) == {"event_id": "$2"}
        await client.close()
    assert server.connections == 2


async def test_no_server_means_not_sent_and_a_cut_answer_means_unknown():
    client = SendClient(f"http://127.0.0.1:{free_port()}", "tok")
    with pytest.raises(SendNotSent):
        await client.put("/a", b"{}")
    async with Server([b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{\"ev CLOSE"]) as server:
        client = SendClient(f"http://127.0.0.1:{server.port}", "tok")
        with pytest.raises(SendUnknown):
            await client.put("/a", b"{}")
    async with Server([b"HANG"]) as server:
        client = SendClient(f"http://127.0.0.1:{server.port}", "tok")
        with pytest.raises(SendUnknown):
            await client.put("/a", b"{}", timeout=0.3)
        await client.close()


def test_the_marker_is_added_last_to_the_stored_json():
    assert json.loads(with_marker('{"body": "x", "n": 1}', "t.1")) == {"body": "x", "n": 1, MARKER: "t.1"}
    assert json.loads(with_marker("{}", "t.2")) == {MARKER: "t.2"}
    assert json.loads(with_marker('{"%s": "forged"}' % MARKER, "t.3"))[MARKER] == "t.3"
