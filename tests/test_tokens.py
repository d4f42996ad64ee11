"""The SecretBox key: derived without `cryptography` for plain RSA pass files, and bit for bit the
key `cryptography` derived before (stored secrets of existing deployments still decrypt)."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hookshot_py.passkey import _rsa_pkcs8_der
from hookshot_py.tokens import SecretBox, hkdf_sha256

REPO = Path(__file__).resolve().parents[1]
NO_CRYPTO = serialization.NoEncryption()


def old_key(pem: bytes) -> bytes:
    """The key as the bridge derived it before, with `cryptography` only."""
    der = serialization.load_pem_private_key(pem, password=None).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, NO_CRYPTO
    )
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"hookshot_py secrets v1").derive(der)


def old_derive(key: bytes, purpose: str) -> str:
    info = f"hookshot_py {purpose}".encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key).hex()


def rsa_pem(fmt: serialization.PrivateFormat) -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, fmt, NO_CRYPTO)


def openssl(tmp_path: Path, *args: str) -> bytes:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    out = tmp_path / "openssl.pem"
    subprocess.run(["openssl", args[0], "-out", str(out), *args[1:]], check=True, capture_output=True)
    return out.read_bytes()


def write(tmp_path: Path, pem: bytes) -> Path:
    path = tmp_path / "passkey.pem"
    path.write_bytes(pem)
    return path


KEYS = {
    "rsa-pkcs8": lambda _: rsa_pem(serialization.PrivateFormat.PKCS8),
    "rsa-pkcs1": lambda _: rsa_pem(serialization.PrivateFormat.TraditionalOpenSSL),
    "rsa-pkcs8-crlf": lambda _: rsa_pem(serialization.PrivateFormat.PKCS8).replace(b"\n", b"\r\n"),
    "openssl-genpkey": lambda tmp: openssl(tmp, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"),
    "openssl-genrsa-pkcs1": lambda tmp: openssl(tmp, "genrsa", "-traditional", "2048"),
}
THROUGH_CRYPTOGRAPHY = {  # not read by the standard library: through `cryptography`, as before
    "ec-pkcs8": lambda _: ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, NO_CRYPTO
    ),
    "ed25519": lambda _: ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, NO_CRYPTO
    ),
}


@pytest.mark.parametrize("kind", [*KEYS, *THROUGH_CRYPTOGRAPHY])
def test_key_and_derived_secrets_are_the_ones_cryptography_derived(tmp_path: Path, kind: str) -> None:
    pem = {**KEYS, **THROUGH_CRYPTOGRAPHY}[kind](tmp_path)
    if kind in KEYS:  # read by the standard library: the DER cryptography writes
        assert _rsa_pkcs8_der(pem) == serialization.load_pem_private_key(pem, password=None).private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, NO_CRYPTO
        )
    box = SecretBox.from_pass_file(write(tmp_path, pem))
    assert box._key == old_key(pem)
    for purpose in ("e2ee pickle key", "x", ""):
        assert box.derive(purpose) == old_derive(box._key, purpose)


def test_secrets_stored_by_the_old_box_decrypt_and_the_other_way_round(tmp_path: Path) -> None:
    pem = rsa_pem(serialization.PrivateFormat.PKCS8)
    box = SecretBox.from_pass_file(write(tmp_path, pem))
    old = AESGCM(old_key(pem))
    nonce = os.urandom(12)
    assert box.decrypt(nonce + old.encrypt(nonce, b"a stored token", None)) == b"a stored token"
    blob = box.encrypt(b"a new token")
    assert old.decrypt(blob[:12], blob[12:], None) == b"a new token"


def test_hkdf_matches_rfc5869_test_case_3() -> None:
    okm = hkdf_sha256(b"\x0b" * 22, b"", 42)
    assert okm.hex() == (
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    )


def test_a_missing_pass_file_is_generated_and_read_back_the_same(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "passkey.pem"
    box = SecretBox.from_pass_file(path)
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert box._key == old_key(path.read_bytes()) == SecretBox.from_pass_file(path)._key


def _tampered_rsa() -> bytes:
    """An RSA key in canonical PKCS#1 whose exponent d does not fit its primes."""
    numbers = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_numbers()

    def integer(value: int) -> bytes:
        raw = value.to_bytes(value.bit_length() // 8 + 1, "big")
        return bytes([2]) + _length(len(raw)) + raw

    fields = [0, numbers.public_numbers.n, numbers.public_numbers.e, numbers.d + 2, numbers.p, numbers.q,
              numbers.dmp1, numbers.dmq1, numbers.iqmp]  # fmt: skip
    body = b"".join(integer(v) for v in fields)
    der = b"\x30" + _length(len(body)) + body
    b64 = base64.encodebytes(der)
    return b"-----BEGIN RSA PRIVATE KEY-----\n" + b64 + b"-----END RSA PRIVATE KEY-----\n"


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


@pytest.mark.parametrize(
    "pem",
    [
        b"not a key at all\n",
        b"-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n",  # truncated DER
        b"-----BEGIN PRIVATE KEY-----\n" + base64.encodebytes(b"\x30\x03\x02\x01\x00")
        + b"-----END PRIVATE KEY-----\n",  # a SEQUENCE, but no key in it
        b"-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n",
        _tampered_rsa(),
    ],
    ids=["garbage", "truncated", "empty-sequence", "bad-base64", "inconsistent-rsa"],
)
def test_a_malformed_pass_file_fails_at_start_with_a_clear_error(tmp_path: Path, pem: bytes) -> None:
    path = write(tmp_path, pem)
    with pytest.raises(ValueError, match=f"passFile {path} is not a PEM private key"):
        SecretBox.from_pass_file(path)


@pytest.mark.parametrize("fmt", ["PKCS8", "TraditionalOpenSSL"])
def test_starting_with_an_rsa_pass_file_does_not_load_cryptography(tmp_path: Path, fmt: str) -> None:
    """`cryptography` costs ~7.5 MiB of RSS; it is loaded on the first encryption only (a new
    interpreter: other tests have imported it here)."""
    path = write(tmp_path, rsa_pem(getattr(serialization.PrivateFormat, fmt)))
    script = (
        "import sys; from pathlib import Path; import hookshot_py.app; from hookshot_py.tokens import SecretBox\n"
        f"box = SecretBox.from_pass_file(Path({str(path)!r})); box.derive('e2ee pickle key')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'cryptography'))\n"
        "box.decrypt(box.encrypt(b'x')); print('cryptography' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, check=True, capture_output=True, text=True)
    assert out.stdout.splitlines() == ["[]", "True"]
