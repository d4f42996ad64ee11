"""User tokens and other secrets, encrypted at rest in Postgres.

The key is derived from the `passFile` private key (hookshot's key file; generated on first start
when missing), so a database dump alone reveals no token.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hookshot_py.db.database import Database
from hookshot_py.passkey import new_private_key_pem, pkcs8_der

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

log = logging.getLogger(__name__)

SECRETS_INFO = b"hookshot_py secrets v1"


def hkdf_sha256(key_material: bytes, info: bytes, length: int = 32) -> bytes:
    """HKDF-SHA256 without salt (RFC 5869), as `cryptography`'s HKDF computes it, in the
    standard library: deriving the key must not load `cryptography` (passkey.py says why)."""
    prk = hmac.digest(bytes(hashlib.sha256().digest_size), key_material, "sha256")
    out, block = b"", b""
    for counter in range(1, -(-length // len(prk)) + 1):
        block = hmac.digest(prk, block + info + bytes([counter]), "sha256")
        out += block
    return out[:length]


class SecretBox:
    """AES-256-GCM with a key derived from the pass file. `cryptography`'s AESGCM is loaded on
    the first encryption or decryption: a bridge with only generic webhooks never needs it."""

    def __init__(self, key: bytes) -> None:
        if len(key) not in (16, 24, 32):
            raise ValueError("AESGCM key must be 128, 192, or 256 bits.")
        self._key = key
        self._aead: AESGCM | None = None

    def derive(self, purpose: str) -> str:
        """A secret of its own for `purpose` (e.g. the crypto store's pickle key), from the same key."""
        return hkdf_sha256(self._key, f"hookshot_py {purpose}".encode()).hex()

    @classmethod
    def from_pass_file(cls, path: Path) -> SecretBox:
        if not path.exists():
            log.warning("passFile %s does not exist; generating a new private key there", path)
            path.parent.mkdir(parents=True, exist_ok=True)
            pem = new_private_key_pem()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
        try:
            material = pkcs8_der(path.read_bytes())
        except ValueError as e:
            raise ValueError(f"passFile {path} is not a PEM private key: {e}") from e
        return cls(hkdf_sha256(material, SECRETS_INFO))

    def _cipher(self) -> AESGCM:
        if self._aead is None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            self._aead = AESGCM(self._key)
        return self._aead

    def encrypt(self, plaintext: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._cipher().encrypt(nonce, plaintext, None)

    def decrypt(self, blob: bytes) -> bytes:
        return self._cipher().decrypt(blob[:12], blob[12:], None)


class TokenStore:
    """Per-user credentials for a service (and instance): a string or a JSON object."""

    def __init__(self, db: Database, box: SecretBox) -> None:
        self.db = db
        self.box = box

    async def put(self, user_id: str, service: str, value: Any, instance: str = "") -> None:
        blob = self.box.encrypt(json.dumps(value).encode())
        await self.db.execute(
            """
            INSERT INTO user_tokens (user_id, service, instance, ciphertext) VALUES ($1, $2, $3, $4)
            ON CONFLICT (user_id, service, instance)
            DO UPDATE SET ciphertext = EXCLUDED.ciphertext, updated_at = now()
            """,
            user_id, service, instance, blob,
        )

    async def get(self, user_id: str, service: str, instance: str = "") -> Any | None:
        blob = await self.db.fetchval(
            "SELECT ciphertext FROM user_tokens WHERE user_id = $1 AND service = $2 AND instance = $3",
            user_id, service, instance,
        )
        if blob is None:
            return None
        try:
            return json.loads(self.box.decrypt(bytes(blob)))
        except Exception:
            log.error("Stored %s token of %s cannot be decrypted (was passFile changed?)", service, user_id)
            return None

    async def delete(self, user_id: str, service: str, instance: str = "") -> bool:
        result = await self.db.execute(
            "DELETE FROM user_tokens WHERE user_id = $1 AND service = $2 AND instance = $3",
            user_id, service, instance,
        )
        return result != "DELETE 0"
