"""The passFile's private key as PKCS#8 DER: what the SecretBox key is derived from.

`cryptography` (which bundles its own OpenSSL: ~7.5 MiB of RSS) used to load the key and write it
back as PKCS#8 DER at every start. For an RSA key in canonical DER, PKCS#8 ("BEGIN PRIVATE KEY",
`openssl genpkey`, what the bridge generates) or PKCS#1 ("BEGIN RSA PRIVATE KEY", `openssl genrsa
-traditional`), that is the very DER in the file (wrapped in PKCS#8 for PKCS#1), so it is read here
with the standard library. Anything else (another algorithm, attributes, non-minimal encodings, an
encrypted key, a key whose numbers do not agree) goes through `cryptography` as before: the bytes
derived from — hence every stored secret — never change, and a bad file fails with its error.
"""

from __future__ import annotations

import base64
import binascii

_PKCS8 = ("-----BEGIN PRIVATE KEY-----", "-----END PRIVATE KEY-----")
_PKCS1 = ("-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----")
# AlgorithmIdentifier { rsaEncryption (1.2.840.113549.1.1.1), NULL }
_RSA_ALGORITHM = bytes.fromhex("300d06092a864886f70d0101010500")
_SEQUENCE, _INTEGER, _OCTET_STRING = 0x30, 0x02, 0x04


class _NotCanonical(Exception):
    """Not a form read here: let `cryptography` decide."""


def pkcs8_der(material: bytes) -> bytes:
    """The key in `material` (PEM) as unencrypted PKCS#8 DER; ValueError if it is no private key."""
    try:
        return _rsa_pkcs8_der(material)
    except _NotCanonical:
        return _pkcs8_der_by_cryptography(material)


def new_private_key_pem() -> bytes:
    """A new 2048-bit RSA key, PKCS#8 PEM (the passFile the bridge writes when there is none)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pkcs8_der_by_cryptography(material: bytes) -> bytes:
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(material, password=None)
    except TypeError as e:  # encrypted, or an unsupported key type
        raise ValueError(str(e)) from e
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _rsa_pkcs8_der(material: bytes) -> bytes:
    """The PKCS#8 DER `cryptography` would write for this PEM RSA key, or _NotCanonical."""
    try:
        lines = material.decode("ascii").strip().splitlines()
    except UnicodeDecodeError:
        raise _NotCanonical from None
    if len(lines) < 3 or (lines[0], lines[-1]) not in (_PKCS8, _PKCS1):
        raise _NotCanonical
    try:
        der = base64.b64decode("".join(line.strip() for line in lines[1:-1]), validate=True)
    except (binascii.Error, ValueError):
        raise _NotCanonical from None
    if lines[0] == _PKCS1[0]:
        _check_rsa_private_key(der)
        return _tlv(_SEQUENCE, bytes([_INTEGER, 1, 0]) + _RSA_ALGORITHM + _tlv(_OCTET_STRING, der))
    version, algorithm, key = _children(der)
    if version != bytes([_INTEGER, 1, 0]) or algorithm != _RSA_ALGORITHM:
        raise _NotCanonical
    _check_rsa_private_key(_content(key, _OCTET_STRING))
    return der


def _check_rsa_private_key(der: bytes) -> None:
    """A two-prime RSAPrivateKey (PKCS#1) whose numbers agree, as OpenSSL checks on loading."""
    fields = [_integer(f) for f in _children(der)]
    if len(fields) != 9:
        raise _NotCanonical
    version, n, e, d, p, q, dp, dq, qinv = fields
    if version != 0 or min(fields[1:]) < 1 or p < 3 or q < 3 or n != p * q:
        raise _NotCanonical
    if dp != d % (p - 1) or dq != d % (q - 1) or (qinv * q) % p != 1 or qinv >= p:
        raise _NotCanonical
    if (e * d) % (p - 1) != 1 or (e * d) % (q - 1) != 1:
        raise _NotCanonical


def _children(der: bytes) -> list[bytes]:
    """The elements (whole TLVs) of the DER SEQUENCE that is exactly `der`."""
    content = _content(der, _SEQUENCE)
    out, pos = [], 0
    while pos < len(content):
        end = _tlv_end(content, pos)
        out.append(content[pos:end])
        pos = end
    return out


def _content(tlv: bytes, tag: int) -> bytes:
    if not tlv or tlv[0] != tag or _tlv_end(tlv, 0) != len(tlv):
        raise _NotCanonical
    return tlv[len(tlv) - _length_of(tlv) :]


def _integer(tlv: bytes) -> int:
    value = _content(tlv, _INTEGER)
    if not value or (len(value) > 1 and (value[0], value[1] >> 7) in ((0, 0), (0xFF, 1))):
        raise _NotCanonical  # empty or not minimal
    return int.from_bytes(value, "big", signed=True)


def _length_of(tlv: bytes) -> int:
    first = tlv[1]
    return first if first < 0x80 else int.from_bytes(tlv[2 : 2 + (first & 0x7F)], "big")


def _tlv_end(data: bytes, pos: int) -> int:
    """Where the TLV at `pos` ends; _NotCanonical unless its length is DER (definite, minimal)."""
    if pos + 2 > len(data) or data[pos] & 0x1F == 0x1F:  # truncated, or a multi-byte tag
        raise _NotCanonical
    first = data[pos + 1]
    start = pos + 2
    if first < 0x80:
        length = first
    else:
        size = first & 0x7F
        raw = data[start : start + size]
        if size == 0 or size > 4 or len(raw) != size or raw[0] == 0:
            raise _NotCanonical
        length = int.from_bytes(raw, "big")
        if length < 0x80:
            raise _NotCanonical
        start += size
    if start + length > len(data):
        raise _NotCanonical
    return start + length


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = (n.bit_length() + 7) // 8
    return bytes([tag, 0x80 | size]) + n.to_bytes(size, "big") + content
