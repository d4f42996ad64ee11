"""One delivery attempt of one event to one outbound hook, as hookshot sends it, plus a signature.

The request (hookshot's `OutboundHookConnection.onEvent`): the hook's method (PUT or POST) with
a `multipart/form-data` body whose `event` part (`event_data.json`, `application/json`) is the
event as the homeserver sent it; for `m.image`, `m.audio`, `m.file` and `m.video` a `media` part
holds the file (named by the event's `body`), downloaded from the media repository (decrypted,
with the event's `file` key set to null, for encrypted rooms). Headers: `X-Matrix-Hookshot-RoomId`,
`-EventId`, `-Token` (the hook's token) and `User-Agent`; ours besides: `-Signature-256`
(`sha256=` + hex HMAC-SHA256 of the exact body, keyed with the token) and `-Delivery` (the
delivery's id in the log, the same on every retry).

The multipart boundary is derived from the token and the delivery id: a retry sends the very same
bytes, and no one who can post into the room can guess it to forge a part.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp

from hookshot_py import __version__
from hookshot_py.matrix.gateway import MediaError
from hookshot_py.net.guard import BlockedUrl
from hookshot_py.net.retry_after import retry_after_seconds
from hookshot_py.outbound.queue import Delivery, HookTarget

log = logging.getLogger(__name__)

MEDIA_MSGTYPES = ("m.image", "m.audio", "m.file", "m.video")
SIGNATURE_HEADER = "X-Matrix-Hookshot-Signature-256"
DELIVERY_HEADER = "X-Matrix-Hookshot-Delivery"
USER_AGENT = f"hookshot_py/{__version__} (+https://github.com/matrix-org/matrix-hookshot)"
# Answers worth retrying: the receiver is down, overloaded or asks us to come back.
RETRY_STATUSES = frozenset({408, 425, 429}) | frozenset(range(500, 600))
MAX_RETRY_AFTER_S = 3600.0
SNIPPET_BYTES = 1024

# (mxc URI, max bytes, timeout seconds) → (bytes, content type)
Download = Callable[[str, int, float], Awaitable[tuple[bytes, str | None]]]


@dataclass(frozen=True)
class Result:
    """What an attempt came to: `delivered`, `retry` (transient) or `failed` (retrying cannot help)."""

    outcome: Literal["delivered", "retry", "failed"]
    response_status: int | None = None
    error: str | None = None
    retry_after: float | None = None  # seconds the receiver asked us to wait


@dataclass(frozen=True)
class Part:
    name: str
    filename: str
    content_type: str
    data: bytes


def sign(token: str, body: bytes) -> str:
    """The signature header's value: how a receiver checks the body came from the bridge."""
    return "sha256=" + hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


def boundary_for(token: str, delivery_id: int) -> str:
    return "hookshot-" + hmac.new(token.encode(), f"boundary:{delivery_id}".encode(), hashlib.sha256).hexdigest()[:32]


def _quote(value: str) -> str:
    """A form-data parameter value as browsers write it (WHATWG): `"`, CR and LF escaped."""
    return value.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def multipart(boundary: str, parts: list[Part]) -> bytes:
    out = bytearray()
    for part in parts:
        out += (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="{_quote(part.name)}"; filename="{_quote(part.filename)}"\r\n'
            f"Content-Type: {_quote(part.content_type)}\r\n\r\n"
        ).encode()
        out += part.data
        out += b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out)


def _b64(text: str, *, urlsafe: bool = False) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(padded) if urlsafe else base64.b64decode(padded)


def decrypt_attachment(ciphertext: bytes, file: dict[str, Any]) -> bytes:
    """An encrypted attachment's plaintext (Matrix spec: AES-256-CTR, SHA-256 of the ciphertext).
    Raises ValueError for a malformed `file` or a hash mismatch."""
    try:
        key = _b64(file["key"]["k"], urlsafe=True)
        iv = _b64(file["iv"])
        expected = _b64(file["hashes"]["sha256"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"malformed encrypted file info ({e})") from e
    if len(key) != 32 or len(iv) != 16:
        raise ValueError("the encrypted file's key or iv has the wrong length")
    if not hmac.compare_digest(hashlib.sha256(ciphertext).digest(), expected):
        raise ValueError("the encrypted file does not match its hash")
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # only here: ~7.5 MiB

    decryptor = Cipher(algorithms.AES(key), modes.CTR(iv)).decryptor()
    return decryptor.update(ciphertext) + decryptor.finalize()


async def media_part(
    event: dict[str, Any], download: Download, *, max_bytes: int, timeout: float
) -> tuple[Part | None, dict[str, Any], str | None]:
    """The `media` part of a file event (None for others), the event as the `event` part shows
    it, and why a file event goes without its media. Raises MediaError when retrying can help."""
    content = event.get("content")
    if not isinstance(content, dict) or content.get("msgtype") not in MEDIA_MSGTYPES:
        return None, event, None
    info = content.get("info")
    mimetype = info.get("mimetype") if isinstance(info, dict) and isinstance(info.get("mimetype"), str) else None
    body = content.get("body")
    filename = body if isinstance(body, str) and body else "file"
    file, url = content.get("file"), content.get("url")
    try:
        if isinstance(file, dict) and isinstance(file.get("url"), str):
            ciphertext, _ = await download(file["url"], max_bytes, timeout)
            data = decrypt_attachment(ciphertext, file)
            shown = {**event, "content": {**content, "file": None}}
            return Part("media", filename, mimetype or "application/octet-stream", data), shown, None
        if isinstance(url, str):
            data, content_type = await download(url, max_bytes, timeout)
            return Part("media", filename, content_type or mimetype or "application/octet-stream", data), event, None
    except MediaError as e:
        if not e.permanent:
            raise
        return None, event, f"sent without its media: {e}"
    except ValueError as e:
        return None, event, f"sent without its media: {e}"
    return None, event, "sent without its media: the event has no url or file"


def _retry_after(value: str | None) -> float | None:
    seconds = retry_after_seconds(value)
    return None if seconds is None else min(seconds, MAX_RETRY_AFTER_S)


async def _snippet(resp: aiohttp.ClientResponse) -> str:
    try:
        raw = await resp.content.read(SNIPPET_BYTES)
    except (aiohttp.ClientError, TimeoutError):
        return ""
    return " ".join(raw.decode("utf-8", "replace").split())[:200]


class OutboundClient:
    """Sends attempts through a guarded session (no internal addresses, after DNS, on redirects)."""

    def __init__(self, session: aiohttp.ClientSession, download: Download, *, max_media_bytes: int,
                 timeout_s: float) -> None:  # fmt: skip
        self.session = session
        self.download = download
        self.max_media_bytes = max_media_bytes
        self.timeout_s = timeout_s

    async def attempt(self, target: HookTarget, delivery: Delivery) -> Result:
        try:
            media, shown, note = await media_part(
                delivery.event, self.download, max_bytes=self.max_media_bytes, timeout=self.timeout_s
            )
        except MediaError as e:
            return Result("retry", error=f"could not download the event's media: {e}")
        event_json = json.dumps(shown, ensure_ascii=False, separators=(",", ":")).encode()
        parts = [Part("event", "event_data.json", "application/json", event_json)]
        if media is not None:
            parts.append(media)
        boundary = boundary_for(target.token, delivery.id)
        body = multipart(boundary, parts)
        headers = {
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "User-Agent": USER_AGENT,
            "X-Matrix-Hookshot-RoomId": target.room_id,
            "X-Matrix-Hookshot-EventId": delivery.event_id,
            "X-Matrix-Hookshot-Token": target.token,
            SIGNATURE_HEADER: sign(target.token, body),
            DELIVERY_HEADER: str(delivery.id),
        }
        try:
            async with self.session.request(
                target.method, target.url, data=body, headers=headers, max_redirects=5,
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            ) as resp:
                if 200 <= resp.status < 300:
                    return Result("delivered", resp.status, note)
                error = f"HTTP {resp.status}" + (f": {s}" if (s := await _snippet(resp)) else "")
                if resp.status in RETRY_STATUSES:
                    return Result("retry", resp.status, error, _retry_after(resp.headers.get("Retry-After")))
                return Result("failed", resp.status, error)
        except BlockedUrl as e:
            return Result("failed", error=f"refused by the outbound URL guard: {e.reason} (see outboundUrls)")
        except aiohttp.TooManyRedirects:
            return Result("failed", error="too many redirects")
        except (aiohttp.InvalidURL, ValueError) as e:
            return Result("failed", error=f"invalid URL: {e}")
        except TimeoutError:
            return Result("retry", error=f"no answer within {self.timeout_s:.0f} s")
        except (aiohttp.ClientError, OSError) as e:
            return Result("retry", error=f"{type(e).__name__}: {e}")
