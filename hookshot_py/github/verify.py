"""Verification of GitHub webhook signatures (`X-Hub-Signature-256` / `X-Hub-Signature`).

hookshot answers 200 first and checks the HMAC afterwards; we check it before answering, so a
sender with the wrong secret gets an error it can see. SHA-256 is preferred; the legacy SHA-1
header (the only one in the original hooks API) is accepted only when no SHA-256 header came,
so an attacker cannot downgrade a delivery by adding a forged SHA-1 header.
"""

from __future__ import annotations

import hashlib
import hmac
import re

__all__ = ["sign_sha256", "sign_sha1", "verify_signature"]

_SHA256_RE = re.compile(r"sha256=([0-9a-fA-F]{64})")
_SHA1_RE = re.compile(r"sha1=([0-9a-fA-F]{40})")


def _key(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def sign_sha256(secret: str | bytes, body: bytes) -> str:
    """The `X-Hub-Signature-256` value GitHub would send for `body`."""
    return "sha256=" + hmac.new(_key(secret), body, hashlib.sha256).hexdigest()


def sign_sha1(secret: str | bytes, body: bytes) -> str:
    """The legacy `X-Hub-Signature` value GitHub would send for `body`."""
    return "sha1=" + hmac.new(_key(secret), body, hashlib.sha1).hexdigest()


def _matches(pattern: re.Pattern[str], header: str, expected: str) -> bool:
    match = pattern.fullmatch(header.strip())
    if match is None:
        return False
    prefix = expected.split("=", 1)[0]
    given = f"{prefix}={match.group(1).lower()}"
    return hmac.compare_digest(given.encode("ascii"), expected.encode("ascii"))


def verify_signature(
    secret: str | bytes, body: bytes, sig256: str | None, sig1: str | None
) -> bool:
    """True if the delivery's signature headers prove it was signed with `secret`.

    `sig256` / `sig1` are the raw header values (or None when absent). A malformed header, an
    empty secret or no header at all is a failure, never an exception.
    """
    key = _key(secret)
    if not key:
        return False
    if sig256 is not None:
        return _matches(_SHA256_RE, sig256, sign_sha256(key, body))
    if sig1 is not None:
        return _matches(_SHA1_RE, sig1, sign_sha1(key, body))
    return False
