"""One delivery attempt against a local receiver: hookshot's request (multipart parts, headers),
the signature recipe, media parts (plain and encrypted), and how answers are classified."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from fakes.receiver import Receiver, parse_multipart, verify

from hookshot_py.matrix.gateway import MediaError
from hookshot_py.net.guard import UrlPolicy, guarded_session
from hookshot_py.outbound.queue import Delivery, HookTarget
from hookshot_py.outbound.request import (
    SIGNATURE_HEADER,
    USER_AGENT,
    OutboundClient,
    Part,
    boundary_for,
    decrypt_attachment,
    media_part,
    multipart,
    sign,
)

LOCAL = UrlPolicy.create(allowed_ranges=["127.0.0.1/32"])
TOKEN = "hs-ob-00000000-0000-4000-8000-000000000000"
ROOM = "!room:hookshot.test"


def message(event_id: str = "$e1", **content: Any) -> dict[str, Any]:
    return {
        "type": "m.room.message", "event_id": event_id, "room_id": ROOM, "sender": "@alice:hookshot.test",
        "origin_server_ts": 1, "content": {"msgtype": "m.text", "body": "hello", **content},
    }  # fmt: skip


class Media:
    """A media repository: mxc → (bytes, content type), or an error."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str | None]] = {}
        self.error: MediaError | None = None
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, mxc: str, max_bytes: int, timeout: float) -> tuple[bytes, str | None]:
        self.calls.append((mxc, max_bytes))
        if self.error is not None:
            raise self.error
        if mxc not in self.files:
            raise MediaError("404", permanent=True)
        data, ctype = self.files[mxc]
        if len(data) > max_bytes:
            raise MediaError("too large", permanent=True)
        return data, ctype


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
async def base(receiver: Receiver, aiohttp_server: Any) -> str:
    server = await aiohttp_server(receiver.app(), host="127.0.0.1")
    return f"http://127.0.0.1:{server.port}"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    s = guarded_session(LOCAL)
    yield s
    await s.close()


def target(url: str, method: str = "PUT") -> HookTarget:
    return HookTarget("c1", ROOM, "ci", url, method, TOKEN, False)


def delivery(event: dict[str, Any], row: int = 7) -> Delivery:
    return Delivery(row, "c1", event["event_id"], event, 0, 0.0)


def test_signature_recipe_and_multipart_shape() -> None:
    body = multipart("b0und", [Part("event", "event_data.json", "application/json", b'{"x":1}')])
    assert body == (
        b'--b0und\r\nContent-Disposition: form-data; name="event"; filename="event_data.json"\r\n'
        b"Content-Type: application/json\r\n\r\n"
        b'{"x":1}\r\n--b0und--\r\n'
    )
    # GitHub's published vector, with the token as the key: the same HMAC-SHA256 recipe
    assert sign("It's a Secret to Everybody", b"Hello, World!") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )
    # the boundary is the same for every retry of a delivery, and no one without the token can guess it
    assert boundary_for(TOKEN, 7) == boundary_for(TOKEN, 7) != boundary_for(TOKEN, 8)
    assert boundary_for(TOKEN, 7) != boundary_for("hs-ob-other", 7)


async def test_event_sent_as_hookshot_sends_it_and_signed(base: str, receiver: Receiver, session) -> None:  # type: ignore[no-untyped-def]
    client = OutboundClient(session, Media(), max_media_bytes=1024, timeout_s=5)
    event = message(body="héllo ✓")
    result = await client.attempt(target(f"{base}/hook", "POST"), delivery(event))
    assert result.outcome == "delivered" and result.response_status == 200 and result.error is None
    [got] = receiver.received
    assert got.method == "POST" and got.path == "/hook"
    assert got.headers["X-Matrix-Hookshot-RoomId"] == ROOM
    assert got.headers["X-Matrix-Hookshot-EventId"] == "$e1"
    assert got.headers["X-Matrix-Hookshot-Token"] == TOKEN
    assert got.headers["X-Matrix-Hookshot-Delivery"] == "7"
    assert got.headers["User-Agent"] == USER_AGENT
    assert got.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert verify(TOKEN, got.body, got.headers[SIGNATURE_HEADER])
    assert not verify("hs-ob-wrong", got.body, got.headers[SIGNATURE_HEADER])
    assert set(got.parts) == {"event"}
    assert got.parts["event"][:2] == ("event_data.json", "application/json")
    assert got.event == event


async def test_a_retry_sends_the_same_bytes(base: str, receiver: Receiver, session) -> None:  # type: ignore[no-untyped-def]
    client = OutboundClient(session, Media(), max_media_bytes=1024, timeout_s=5)
    for _ in range(2):
        assert (await client.attempt(target(base), delivery(message()))).outcome == "delivered"
    first, second = receiver.received
    assert first.method == "PUT" and first.body == second.body
    assert first.headers[SIGNATURE_HEADER] == second.headers[SIGNATURE_HEADER]


async def test_file_events_carry_a_media_part(base: str, receiver: Receiver, session) -> None:  # type: ignore[no-untyped-def]
    media = Media()
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(3000)
    media.files["mxc://hookshot.test/abc"] = (png, "image/png")
    client = OutboundClient(session, media, max_media_bytes=1 << 20, timeout_s=5)
    event = message(msgtype="m.image", body="cat.png", url="mxc://hookshot.test/abc", info={"mimetype": "image/png"})
    assert (await client.attempt(target(base), delivery(event))).outcome == "delivered"
    [got] = receiver.received
    assert got.parts["media"] == ("cat.png", "image/png", png)
    assert got.event == event
    assert verify(TOKEN, got.body, got.headers[SIGNATURE_HEADER])


async def test_media_that_cannot_be_had_is_left_out_or_retried(base: str, receiver: Receiver, session) -> None:  # type: ignore[no-untyped-def]
    media = Media()
    media.files["mxc://hookshot.test/big"] = (b"x" * 2000, "application/zip")
    client = OutboundClient(session, media, max_media_bytes=1000, timeout_s=5)
    big = message("$big", msgtype="m.file", body="big.zip", url="mxc://hookshot.test/big")
    gone = message("$gone", msgtype="m.video", body="v.mp4", url="mxc://hookshot.test/gone")
    # too large, or unknown to the media repository: sent without media (as hookshot does), and the log says why
    for ev in (big, gone):
        result = await client.attempt(target(base), delivery(ev))
        assert result.outcome == "delivered" and "sent without its media" in str(result.error)
    assert [set(r.parts) for r in receiver.received] == [{"event"}, {"event"}]
    # the homeserver down: retried later, nothing sent yet
    media.error = MediaError("connection refused", permanent=False)
    result = await client.attempt(target(base), delivery(big))
    assert result.outcome == "retry" and "could not download" in str(result.error)
    assert len(receiver.received) == 2


def encrypt_attachment(plaintext: bytes) -> tuple[bytes, dict[str, Any]]:
    key, iv = os.urandom(32), os.urandom(8) + b"\0" * 8
    encryptor = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    ciphertext = encryptor.update(plaintext) + encryptor.finalize()
    b64 = lambda b: base64.b64encode(b).decode().rstrip("=")  # noqa: E731
    info = {
        "url": "mxc://hookshot.test/enc", "v": "v2", "iv": b64(iv),
        "key": {"kty": "oct", "alg": "A256CTR", "ext": True, "key_ops": ["encrypt", "decrypt"],
                "k": base64.urlsafe_b64encode(key).decode().rstrip("=")},
        "hashes": {"sha256": b64(hashlib.sha256(ciphertext).digest())},
    }  # fmt: skip
    return ciphertext, info


async def test_encrypted_media_is_decrypted_and_file_nulled() -> None:
    plaintext = os.urandom(5000)
    ciphertext, info = encrypt_attachment(plaintext)
    assert decrypt_attachment(ciphertext, info) == plaintext
    with pytest.raises(ValueError, match="hash"):
        decrypt_attachment(ciphertext[:-1] + bytes([ciphertext[-1] ^ 1]), info)
    media = Media()
    media.files[info["url"]] = (ciphertext, "application/octet-stream")
    event = message(msgtype="m.audio", body="note.ogg", file=info, info={"mimetype": "audio/ogg"})
    part, shown, note = await media_part(event, media, max_bytes=1 << 20, timeout=5)
    assert part == Part("media", "note.ogg", "audio/ogg", plaintext) and note is None
    assert shown["content"]["file"] is None and shown["content"]["body"] == "note.ogg"
    assert event["content"]["file"] == info  # the queued event is not changed


@pytest.mark.parametrize(
    ("status", "retry_after", "outcome", "wait"),
    [
        (500, None, "retry", None),
        (503, "7", "retry", 7.0),
        (429, "120", "retry", 120.0),
        (408, None, "retry", None),
        (404, None, "failed", None),
        (400, None, "failed", None),
        (410, None, "failed", None),
    ],
)
async def test_answers_are_classified(base, receiver, session, status, retry_after, outcome, wait) -> None:  # type: ignore[no-untyped-def]
    receiver.fail_status, receiver.retry_after = status, retry_after
    client = OutboundClient(session, Media(), max_media_bytes=1024, timeout_s=5)
    result = await client.attempt(target(base), delivery(message()))
    assert (result.outcome, result.response_status, result.retry_after) == (outcome, status, wait)
    assert result.error == f"HTTP {status}: receiver says no"


async def test_unreachable_and_slow_receivers_are_retried(base: str, receiver: Receiver, session) -> None:  # type: ignore[no-untyped-def]
    client = OutboundClient(session, Media(), max_media_bytes=1024, timeout_s=1)
    from hookshot_py.devenv.synapse import free_port

    closed = await client.attempt(target(f"http://127.0.0.1:{free_port()}/"), delivery(message()))
    assert closed.outcome == "retry" and closed.response_status is None and closed.error
    receiver.hang = True
    slow = await client.attempt(target(base), delivery(message()))
    assert slow.outcome == "retry" and slow.error == "no answer within 1 s"


async def test_the_guard_refuses_internal_addresses_at_delivery(base: str, receiver: Receiver) -> None:
    # nothing allowed: the receiver on 127.0.0.1 is refused, and so is a name resolving to it
    strict = guarded_session(UrlPolicy.create())
    try:
        client = OutboundClient(strict, Media(), max_media_bytes=1024, timeout_s=5)
        port = base.rsplit(":", 1)[1]
        for url in (base, f"http://localhost:{port}/"):
            result = await client.attempt(target(url), delivery(message()))
            assert result.outcome == "failed" and "refused by the outbound URL guard" in str(result.error), result
            assert "loopback" in str(result.error)
    finally:
        await strict.close()
    assert receiver.attempts == 0


async def test_a_redirect_to_an_internal_address_is_refused(base: str, receiver: Receiver, session) -> None:  # type: ignore[no-untyped-def]
    # 127.0.0.1 is allowed, 127.0.0.2 (loopback too) is not: the redirect's connection is checked
    receiver.redirect_to = f"http://127.0.0.2:{base.rsplit(':', 1)[1]}/elsewhere"
    client = OutboundClient(session, Media(), max_media_bytes=1024, timeout_s=5)
    result = await client.attempt(target(base), delivery(message()))
    assert result.outcome == "failed" and "127.0.0.2" in str(result.error) and "loopback" in str(result.error)
    assert receiver.attempts == 1


def test_receiver_parser_reads_what_we_send() -> None:
    data = os.urandom(1000) + b"\r\n--hookshot-x\r\n"
    body = multipart("hookshot-abc", [Part("event", "event_data.json", "application/json", b"{}"),
                                      Part("media", 'a "b"\n.png', "image/png", data)])  # fmt: skip
    parts = parse_multipart("multipart/form-data; boundary=hookshot-abc", body)
    assert parts["media"] == ("a %22b%22%0A.png", "image/png", data)
