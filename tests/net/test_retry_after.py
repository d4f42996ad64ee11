"""`Retry-After` as every HTTP client of the bridge reads it (forge APIs, feeds, outbound hooks)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hookshot_py.net.retry_after import retry_after_seconds

NOW = datetime(2026, 1, 1, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    "value, seconds",
    [
        ("30", 30.0),
        (" 30 ", 30.0),
        ("1.5", 1.5),
        ("-5", 0.0),
        ("Thu, 01 Jan 2026 00:02:00 GMT", 120.0),
        ("Thu, 01 Jan 2026 00:02:00 -0000", 120.0),  # no zone: UTC (it used to crash outbound hooks)
        ("Wed, 31 Dec 2025 23:00:00 GMT", 0.0),  # in the past
        ("inf", None),
        ("nan", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_forms(value: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(value, NOW) == seconds
