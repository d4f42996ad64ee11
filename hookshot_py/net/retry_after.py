"""`Retry-After`, read the same way by every HTTP client of the bridge (forge APIs, feeds,
outbound hooks): the servers that send it are often strangers'."""

from __future__ import annotations

import math
import time
from datetime import UTC
from email.utils import parsedate_to_datetime

__all__ = ["retry_after_seconds"]


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """The seconds to wait from a `Retry-After` value, delta-seconds or an HTTP date (one
    without a zone is UTC), as seconds from `now` (Unix time; the clock when None), never
    negative. None when there is no value or it is unreadable or not finite ("inf")."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None
