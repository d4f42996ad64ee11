"""The token and hookshot's encrypted copy: what hookshot stored is read back, and what we store
hookshot can read (its format, src/tokens/mod.rs)."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from hookshot_py.outbound.tokens import HookshotTokenCodec, account_data_type, new_token


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path_factory.mktemp("key") / "passkey.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))  # fmt: skip
    return path


def test_token_shape_and_account_data_key() -> None:
    assert re.fullmatch(r"hs-ob-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", new_token())
    assert new_token() != new_token()
    digest = hashlib.md5(b"!room:example.org:ci-hook").hexdigest()
    assert account_data_type("!room:example.org", "ci-hook") == f"generic:outboundHookToken:{digest}"


def test_roundtrip_in_hookshots_format(pem: Path) -> None:
    codec = HookshotTokenCodec.from_pass_file(pem)
    token = new_token() * 5  # longer than one 128-byte chunk
    stored = codec.encrypt(token)
    assert stored["algorithm"] == "rsa-pkcs1v15" and stored["keyId"] == hashlib.md5(pem.read_bytes()).hexdigest()
    assert len(stored["encrypted"]) == 2
    assert codec.decrypt(stored) == token


def test_reads_what_hookshot_wrote(pem: Path) -> None:
    """hookshot's encrypt (PKCS#1 v1.5 per 128-byte chunk) and its legacy OAEP-SHA1 ("rsa")."""
    public = serialization.load_pem_private_key(pem.read_bytes(), password=None).public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    token = "hs-ob-5a0f3c59-8b4e-4d6a-9d43-4e1f3a2b1c0d"
    pkcs1 = [base64.b64encode(public.encrypt(token.encode(), padding.PKCS1v15())).decode()]
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    legacy = base64.b64encode(public.encrypt(token.encode(), oaep)).decode()
    codec = HookshotTokenCodec.from_pass_file(pem)
    assert codec.decrypt({"encrypted": pkcs1, "keyId": codec.key_id, "algorithm": "rsa-pkcs1v15"}) == token
    assert codec.decrypt({"encrypted": legacy}) == token  # no keyId, no algorithm: hookshot's old form
    assert codec.decrypt({"deleted": True}) is None
    assert codec.decrypt({"encrypted": pkcs1, "keyId": "another-key", "algorithm": "rsa-pkcs1v15"}) is None
    assert codec.decrypt({"encrypted": ["bm90IGVuY3J5cHRlZA=="], "algorithm": "rsa-pkcs1v15"}) is None
