import hashlib
import hmac

import pytest

from hookshot_py.forges.inbound import sign_sha1, sign_sha256, verify_signature

# GitHub's published example (docs: "Validating webhook deliveries").
DOC_SECRET = "It's a Secret to Everybody"
DOC_BODY = b"Hello, World!"
DOC_SIG256 = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

BODY = b'{"zen":"Design for failure.","hook_id":1}'
SECRET = "s3cr3t"


def sha1_header(secret: str, body: bytes) -> str:
    return "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def test_published_vector() -> None:
    assert sign_sha256(DOC_SECRET, DOC_BODY) == DOC_SIG256
    assert verify_signature(DOC_SECRET, DOC_BODY, DOC_SIG256, None)
    assert verify_signature(DOC_SECRET.encode(), DOC_BODY, DOC_SIG256, None)


def test_published_vector_with_upper_case_hex() -> None:
    header = "sha256=" + DOC_SIG256.split("=", 1)[1].upper()
    assert verify_signature(DOC_SECRET, DOC_BODY, header, None)


def test_wrong_secret_or_body_fails() -> None:
    assert not verify_signature("another secret", DOC_BODY, DOC_SIG256, None)
    assert not verify_signature(DOC_SECRET, DOC_BODY + b"\n", DOC_SIG256, None)


def test_sha1_used_only_without_sha256() -> None:
    good1 = sha1_header(SECRET, BODY)
    assert sign_sha1(SECRET, BODY) == good1
    assert verify_signature(SECRET, BODY, None, good1)
    # A present SHA-256 header decides, even when the SHA-1 one is right.
    bad256 = "sha256=" + "0" * 64
    assert not verify_signature(SECRET, BODY, bad256, good1)
    assert verify_signature(SECRET, BODY, sign_sha256(SECRET, BODY), "sha1=" + "0" * 40)


def test_sha1_with_wrong_secret_fails() -> None:
    assert not verify_signature(SECRET, BODY, None, sha1_header("nope", BODY))


@pytest.mark.parametrize(
    "sig256",
    [
        "",
        "sha256=",
        "sha256=xyz",
        "sha1=" + "0" * 40,
        "sha256=" + "a" * 63,
        "sha256=" + "a" * 65,
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1é",
    ],
)
def test_malformed_sha256_header_is_false(sig256: str) -> None:
    assert verify_signature(DOC_SECRET, DOC_BODY, sig256, None) is False


@pytest.mark.parametrize("sig1", ["", "sha1=", "sha256=" + "0" * 64, "sha1=" + "g" * 40])
def test_malformed_sha1_header_is_false(sig1: str) -> None:
    assert verify_signature(SECRET, BODY, None, sig1) is False


def test_no_header_or_empty_secret_is_false() -> None:
    assert not verify_signature(SECRET, BODY, None, None)
    assert not verify_signature("", BODY, sign_sha256("", BODY), None)
