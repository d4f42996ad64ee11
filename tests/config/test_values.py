"""The value parsers: durations, sizes, URLs, ports, levels."""

from __future__ import annotations

from typing import Any

import pytest

from hookshot_py.config import ConfigError, values

HOUR = 3_600_000


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("30d", 30 * 24 * HOUR),
        ("12h", 12 * HOUR),
        ("90m", 90 * 60_000),
        ("45s", 45_000),
        ("250ms", 250),
        ("2w", 14 * 24 * HOUR),
        ("1h30m", 90 * 60_000),
        ("1.5h", 90 * 60_000),
        ("2 days", 48 * HOUR),
        ("1 hour 15 min", 75 * 60_000),
        ("10D", 240 * HOUR),
        ("5000", 5000),
        (5000, 5000),
    ],
)
def test_duration_ms(text: Any, ms: int) -> None:
    assert values.duration_ms(text, "k") == ms


@pytest.mark.parametrize("bad", ["", "d30", "30x", "1h 2y", "-1h", "1.5", "0s", 0, -1, 1.5, True, None, [1]])
def test_duration_ms_rejects(bad: Any) -> None:
    with pytest.raises(ConfigError) as info:
        values.duration_ms(bad, "generic.maxExpiryTime")
    assert info.value.path == "generic.maxExpiryTime"
    assert info.value.message.startswith('expected a duration like "30d"')


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("1mb", 1048576),
        ("512kb", 524288),
        ("2gb", 2 * 1024**3),
        ("1.5MB", 1572864),
        ("10Kb", 10240),
        (1, 1),
        (123456, 123456),
    ],
)
def test_size_bytes(value: Any, size: int) -> None:
    assert values.size_bytes(value, "k") == size


@pytest.mark.parametrize("bad", ["1", "1 mb", "mb", "1tb", "1b", "-1mb", 0, -5, 1.5, True, None])
def test_size_bytes_rejects(bad: Any) -> None:
    with pytest.raises(ConfigError, match=r'^k: expected a size like "1mb"'):
        values.size_bytes(bad, "k")


@pytest.mark.parametrize("good", ["http://localhost:8008", "https://example.com/webhook/", "http://[::1]:9000/x"])
def test_http_url_accepts(good: str) -> None:
    assert values.http_url(good, "k") == good


@pytest.mark.parametrize("bad", ["localhost:8008", "ftp://x", "https://", "http://h:0x", "/webhook", 8008, None])
def test_http_url_rejects(bad: Any) -> None:
    with pytest.raises(ConfigError, match=r"^k: expected an http\(s\) URL, got "):
        values.http_url(bad, "k")


def test_url_prefix_appends_a_slash_once() -> None:
    assert values.url_prefix("https://x/webhook", "k") == "https://x/webhook/"
    assert values.url_prefix("https://x/webhook/", "k") == "https://x/webhook/"


def test_postgres_url_never_echoes_the_value() -> None:
    assert values.postgres_url("postgresql://u:pw@h:5432/db", "k") == "postgresql://u:pw@h:5432/db"
    assert values.postgres_url("postgres://h/db", "k") == "postgres://h/db"
    with pytest.raises(ConfigError) as info:
        values.postgres_url("mysql://user:hunter2@h/db", "database.url")
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("value", "ok"),
    [(1, True), (65535, True), (0, False), (65536, False), ("80", False), (True, False), (80.0, False)],
)
def test_port(value: Any, ok: bool) -> None:
    if ok:
        assert values.port(value, "p") == value
    else:
        with pytest.raises(ConfigError, match="^p: expected an integer between 1 and 65535, got "):
            values.port(value, "p")


def test_log_level() -> None:
    assert values.log_level("WARN", "l") == "warn"
    with pytest.raises(ConfigError, match='got "warning"$'):
        values.log_level("warning", "l")


def test_non_empty_and_counts() -> None:
    assert values.non_empty("x", "k") == "x"
    with pytest.raises(ConfigError, match='expected a non-empty string, got ""'):
        values.non_empty("", "k")
    assert values.positive_int(3, "k") == 3
    assert values.non_negative_int(0, "k") == 0
    with pytest.raises(ConfigError, match="expected an integer >= 0, got -1"):
        values.non_negative_int(-1, "k")
    with pytest.raises(ConfigError, match="expected a positive integer, got false"):
        values.positive_int(False, "k")


# -- secrets ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret",
    [
        "change-me-to-a-long-random-string",  # config.yaml.sample's
        "!secretToken",  # hookshot's sample
        "the-provisioning-secret",  # the README's example
        "CHANGEME-please-0123456789abcdef0123",
        "your-secret-here-0123456789abcdef0123",
        "an-example-secret-0123456789abcdef012",
        "Place_Holder",
        "password1234567890password1234567890",
    ],
)
def test_placeholder_secrets_are_refused_with_a_command_making_a_good_one(secret: str) -> None:
    with pytest.raises(ConfigError) as info:
        values.strong_secret(secret, "provisioning.secret")
    assert info.value.path == "provisioning.secret"
    assert info.value.message.startswith("a placeholder, not a secret; make a random one with: ")
    assert "openssl rand -hex 32" in info.value.message
    assert "secrets.token_hex(32)" in info.value.message
    assert secret not in info.value.message


@pytest.mark.parametrize(
    ("secret", "why"),
    [
        ("s", "too short (1 characters; at least 32 are needed)"),
        ("0f6b0a3c9e5d47b2a8c1f4e7d2b9a6c", "too short (31 characters; at least 32 are needed)"),
        ("a" * 64, "not random (it repeats a few characters)"),
        ("abababababababababababababababab", "not random (it repeats a few characters)"),
    ],
)
def test_short_and_repetitive_secrets_are_refused(secret: str, why: str) -> None:
    assert values.weak_secret(secret) == why
    with pytest.raises(ConfigError, match=r"make a random one with: openssl rand -hex 32") as info:
        values.strong_secret(secret, "provisioning.secret")
    assert info.value.message.startswith(why + ";")


def test_random_secrets_of_32_characters_or_more_are_accepted() -> None:
    import secrets

    for _ in range(200):
        for secret in (secrets.token_hex(16), secrets.token_hex(32), secrets.token_urlsafe(24)):
            assert values.strong_secret(secret, "provisioning.secret") == secret
    assert values.weak_secret("0f6b0a3c9e5d47b2a8c1f4e7d2b9a6c3") is None


def test_an_empty_secret_is_still_a_type_error() -> None:
    with pytest.raises(ConfigError, match=r'^x: expected a non-empty string, got " "$'):
        values.strong_secret(" ", "x")
