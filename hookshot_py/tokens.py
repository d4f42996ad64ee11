"""User tokens and other secrets, encrypted at rest in Postgres.

The key is derived from the `passFile` private key (hookshot's key file; generated on first start
when missing), so a database dump alone reveals no token.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hookshot_py.db.database import Database

log = logging.getLogger(__name__)


class SecretBox:
    """AES-256-GCM with a key derived from the pass file."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        self._key = key

    def derive(self, purpose: str) -> str:
        """A secret of its own for `purpose` (e.g. the crypto store's pickle key), from the same key."""
        info = f"hookshot_py {purpose}".encode()
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(self._key).hex()

    @classmethod
    def from_pass_file(cls, path: Path) -> SecretBox:
        if not path.exists():
            log.warning("passFile %s does not exist; generating a new private key there", path)
            path.parent.mkdir(parents=True, exist_ok=True)
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
        material = path.read_bytes()
        try:
            key_obj = serialization.load_pem_private_key(material, password=None)
            material = key_obj.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        except (ValueError, TypeError) as e:
            raise ValueError(f"passFile {path} is not a PEM private key: {e}") from e
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"hookshot_py secrets v1").derive(material)
        return cls(key)

    def encrypt(self, plaintext: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plaintext, None)

    def decrypt(self, blob: bytes) -> bytes:
        return self._aead.decrypt(blob[:12], blob[12:], None)


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
