"""Query parameters of the provisioning API that several routes read: `userId` and paging.

The core routes and each service's `/v1/<service>/...` routes read them the same way, with the
same errors (`HS_BAD_VALUE`, naming the parameter).
"""

from __future__ import annotations

import re

from aiohttp import web

from hookshot_py.errors import ApiError, ErrCode

__all__ = ["DEFAULT_PER_PAGE", "MAX_PER_PAGE", "USER_ID_PATTERN", "int_param", "paging", "user_id"]

DEFAULT_PER_PAGE = 10
MAX_PER_PAGE = 100
# No spaces, no control characters (a NUL cannot even be stored), at most Matrix's 255 bytes.
USER_ID_PATTERN = r"^@[^:\s\x00-\x1f\x7f]+:[^\s\x00-\x1f\x7f]+$"
_USER_ID = re.compile(USER_ID_PATTERN)
MAX_USER_ID_BYTES = 255


def user_id(request: web.Request) -> str:
    """The `?userId=` the request acts for (a Matrix user id)."""
    value = request.query.get("userId", "")
    if not _USER_ID.match(value) or len(value.encode("utf-8", "surrogatepass")) > MAX_USER_ID_BYTES:
        raise ApiError(ErrCode.BAD_VALUE, "Invalid userId: pass ?userId=@user:server.")
    return value


def int_param(request: web.Request, name: str, default: int, maximum: int | None = None) -> int:
    """A positive whole-number query parameter (`default` when absent or empty)."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(ErrCode.BAD_VALUE, f"`{name}` must be a whole number, not {raw!r}.") from None
    if value < 1 or (maximum is not None and value > maximum):
        limit = f"between 1 and {maximum}" if maximum is not None else "at least 1"
        raise ApiError(ErrCode.BAD_VALUE, f"`{name}` must be {limit}.")
    return value


def paging(request: web.Request) -> tuple[int, int]:
    """(`page`, `perPage`) from the query, as seed 000 defines them (defaults 1 and 10)."""
    return int_param(request, "page", 1), int_param(request, "perPage", DEFAULT_PER_PAGE, MAX_PER_PAGE)
