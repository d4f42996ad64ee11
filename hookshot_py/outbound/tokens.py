"""An outbound hook's token (`hs-ob-<uuid>`), and hookshot's encrypted copy of it.

The bridge keeps the token in Postgres, encrypted with its SecretBox (`outbound_hooks.token`):
that is what deliveries read, from any bridge process. hookshot keeps it instead in the bot's
global account data, `generic:outboundHookToken:<md5(roomId:stateKey)>`, RSA-encrypted with the
passFile key (`src/tokens/mod.rs`: PKCS#1 v1.5, 128-byte chunks, base64, `keyId` = md5 of the
PEM). hookshot_py reads that copy to adopt the token of a hook hookshot created (its receiver
keeps validating), and writes it for hooks it creates, so a lost database is recovered from
Matrix and a room moved back to hookshot keeps working. Both need the same passFile.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # loaded when a codec is made: `cryptography` costs ~7.5 MiB (hookshot_py/passkey.py)
    from cryptography.hazmat.primitives.asymmetric import rsa

log = logging.getLogger(__name__)

TOKEN_PREFIX = "hs-ob-"
MAX_PART = 128  # hookshot's MAX_TOKEN_PART_SIZE


def new_token() -> str:
    return f"{TOKEN_PREFIX}{uuid.uuid4()}"


def account_data_type(room_id: str, state_key: str) -> str:
    """hookshot's account data key for the token of the hook `state_key` in `room_id`."""
    return f"generic:outboundHookToken:{hashlib.md5(f'{room_id}:{state_key}'.encode()).hexdigest()}"


@dataclass(frozen=True)
class HookshotTokenCodec:
    """hookshot's token encryption with the passFile's RSA key."""

    private_key: rsa.RSAPrivateKey
    key_id: str

    @classmethod
    def from_pass_file(cls, path: Path) -> HookshotTokenCodec:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        pem = path.read_bytes()
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"passFile {path} is not an RSA private key")
        return cls(key, hashlib.md5(pem).hexdigest())

    def encrypt(self, token: str) -> dict[str, Any]:
        from cryptography.hazmat.primitives.asymmetric import padding

        data = token.encode()
        parts = [
            base64.b64encode(self.private_key.public_key().encrypt(data[i : i + MAX_PART], padding.PKCS1v15())).decode()
            for i in range(0, len(data), MAX_PART)
        ]
        return {"encrypted": parts, "keyId": self.key_id, "algorithm": "rsa-pkcs1v15"}

    def decrypt(self, stored: dict[str, Any]) -> str | None:
        """The token in hookshot's stored form, or None (deleted, another key, damaged)."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        if not stored or "deleted" in stored:
            return None
        if stored.get("keyId", self.key_id) != self.key_id:
            log.warning("An outbound hook token in account data was encrypted with another passFile key")
            return None
        parts = stored.get("encrypted")
        parts = [parts] if isinstance(parts, str) else parts
        algorithm = stored.get("algorithm", "rsa")
        pad: padding.AsymmetricPadding = (
            padding.PKCS1v15() if algorithm == "rsa-pkcs1v15"
            else padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
        )  # fmt: skip
        if not isinstance(parts, list) or not parts or algorithm not in ("rsa", "rsa-pkcs1v15"):
            return None
        try:
            return "".join(self.private_key.decrypt(base64.b64decode(p), pad).decode() for p in parts)
        except (ValueError, TypeError) as e:
            log.warning("An outbound hook token in account data could not be decrypted: %s", e)
            return None
