"""Parsers for keys whose YAML form differs from their Python form: ports, durations, sizes, URLs, levels.

Each takes ``(value, path)`` and returns the converted value or raises :class:`ConfigError` for ``path``.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

from hookshot_py.config.schema import ConfigError, describe

LOG_LEVELS = ("debug", "info", "warn", "error", "trace")

SECRET_MIN_LENGTH = 32
MAKE_A_SECRET = 'openssl rand -hex 32  (or: python3 -c "import secrets; print(secrets.token_hex(32))")'
"""A command that prints a good secret, for the messages refusing a weak one."""

# Words of sample and documentation secrets, compared with letters and digits only (hookshot's sample
# has "!secretToken", ours "change-me-to-a-long-random-string"). All are long enough that a random
# secret contains one by chance with a probability below one in a million.
_PLACEHOLDER_WORDS = (
    "changeme", "replaceme", "placeholder", "example", "yoursecret", "mysecret", "secrettoken",
    "supersecret", "provisioningsecret", "randomstring", "password", "hunter2",
)  # fmt: skip
_MIN_DISTINCT_CHARACTERS = 8

_DURATION_UNITS_MS: dict[str, int] = {
    "ms": 1,
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1000),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60_000),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3_600_000),
    **dict.fromkeys(("d", "day", "days"), 86_400_000),
    **dict.fromkeys(("w", "wk", "week", "weeks"), 604_800_000),
}
_DURATION_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*", re.IGNORECASE)
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)(kb|mb|gb)$", re.IGNORECASE)
_SIZE_UNITS = {"kb": 1024, "mb": 1024**2, "gb": 1024**3}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def port(value: Any, path: str) -> int:
    if not _is_int(value) or not 1 <= value <= 65535:
        raise ConfigError(path, f"expected an integer between 1 and 65535, got {describe(value)}")
    return value


def positive_int(value: Any, path: str) -> int:
    if not _is_int(value) or value < 1:
        raise ConfigError(path, f"expected a positive integer, got {describe(value)}")
    return value


def non_negative_int(value: Any, path: str) -> int:
    if not _is_int(value) or value < 0:
        raise ConfigError(path, f"expected an integer >= 0, got {describe(value)}")
    return value


def non_empty(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(path, f"expected a non-empty string, got {describe(value)}")
    return value


def weak_secret(secret: str) -> str | None:
    """Why ``secret`` is no good as a shared secret (a placeholder, too short, too repetitive), or None."""
    letters = re.sub(r"[^a-z0-9]", "", secret.lower())
    if any(word in letters for word in _PLACEHOLDER_WORDS):
        return "a placeholder, not a secret"
    if len(secret) < SECRET_MIN_LENGTH:
        return f"too short ({len(secret)} characters; at least {SECRET_MIN_LENGTH} are needed)"
    if len(set(secret)) < _MIN_DISTINCT_CHARACTERS:
        return "not random (it repeats a few characters)"
    return None


def strong_secret(value: Any, path: str) -> str:
    """A secret that guards an API: refused when :func:`weak_secret` finds it weak. The value is never echoed."""
    secret = non_empty(value, path)
    why = weak_secret(secret)
    if why is not None:
        raise ConfigError(path, f"{why}; make a random one with: {MAKE_A_SECRET}")
    return secret


def http_url(value: Any, path: str) -> str:
    """An absolute http(s) URL, as hookshot's ``new URL(...)`` checks demand."""
    ok = isinstance(value, str)
    if ok:
        try:
            parts = urlsplit(value)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
            parts.port  # noqa: B018 - raises ValueError for a port out of range
        except ValueError:
            ok = False
    if not ok:
        raise ConfigError(path, f"expected an http(s) URL, got {describe(value)}")
    return value


def url_prefix(value: Any, path: str) -> str:
    """An http(s) URL that ends with ``/``; hookshot appends the slash too (``makePrefixedUrl``)."""
    url = http_url(value, path)
    return url if url.endswith("/") else url + "/"


def postgres_url(value: Any, path: str) -> str:
    # The value is never echoed: it usually holds a password.
    ok = isinstance(value, str)
    if ok:
        try:
            ok = urlsplit(value).scheme in ("postgres", "postgresql")
        except ValueError:
            ok = False
    if not ok:
        raise ConfigError(path, "expected a postgresql://user:password@host:port/database URL")
    return value


def log_level(value: Any, path: str) -> str:
    """One of hookshot's levels; like hookshot, ``DEBUG`` is accepted for ``debug``."""
    if isinstance(value, str) and value.lower() in LOG_LEVELS:
        return value.lower()
    choices = ", ".join(f'"{lvl}"' for lvl in LOG_LEVELS)
    raise ConfigError(path, f"expected one of {choices}, got {describe(value)}")


def duration_ms(value: Any, path: str) -> int:
    """A duration in milliseconds: an integer of ms, or a string like ``30d``, ``12h``, ``90m``, ``1h30m``."""
    ms: float | None = None
    if _is_int(value):
        ms = value
    elif isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d+", text):
            ms = int(text)
        elif text and re.fullmatch(f"(?:{_DURATION_PART.pattern})+", text, re.IGNORECASE):
            parts = _DURATION_PART.findall(text)
            if all(unit.lower() in _DURATION_UNITS_MS for _, unit in parts):
                ms = sum(float(n) * _DURATION_UNITS_MS[unit.lower()] for n, unit in parts)
    if ms is None or ms < 1:
        raise ConfigError(
            path,
            'expected a duration like "30d", "12h" or "90m" (units ms, s, m, h, d, w) '
            f"or a number of milliseconds, got {describe(value)}",
        )
    return round(ms)


def size_bytes(value: Any, path: str) -> int:
    """A size in bytes: an integer, or ``\\d+(kb|mb|gb)`` as hookshot's ``payloadSizeLimit`` accepts."""
    size: float | None = None
    if _is_int(value):
        size = value
    elif isinstance(value, str) and (m := _SIZE.match(value)):
        size = float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]
    if size is None or size < 1:
        raise ConfigError(
            path, f'expected a size like "1mb", "512kb" or "2gb", or a positive number of bytes, got {describe(value)}'
        )
    return int(size)


def ip_ranges(value: Any, path: str) -> list[str]:
    """A list of addresses or CIDR ranges (``10.0.0.0/8``, ``fd00::/8``, ``127.0.0.1``)."""
    if not isinstance(value, list):
        raise ConfigError(path, f"expected a list of address ranges, got {describe(value)}")
    for i, item in enumerate(value):
        try:
            ipaddress.ip_network(str(item).strip(), strict=False)
        except ValueError:
            raise ConfigError(
                f"{path}[{i}]", f"expected an address or CIDR range like 10.0.0.0/8, got {describe(item)}"
            )
        if not isinstance(item, str):
            raise ConfigError(f"{path}[{i}]", f"expected a string, got {describe(item)}")
    return list(value)
