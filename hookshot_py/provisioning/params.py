"""Query parameters the provisioning routes share: `userId`, and seed 000's paging (`page`,
default 1, and `perPage`, default 10)."""

from __future__ import annotations

import re

from aiohttp import web

from hookshot_py.errors import ApiError, ErrCode

__all__ = ["DEFAULT_PER_PAGE", "MAX_PER_PAGE", "int_param", "paging", "user_id"]

DEFAULT_PER_PAGE = 10
MAX_PER_PAGE = 100
# No spaces, no control characters (a NUL cannot even be stored), at most Matrix's 255 bytes.
_USER_ID = re.compile(r"^@[^:\s\x00-\x1f\x7f]+:[^\s\x00-\x1f\x7f]+$")
MAX_USER_ID_BYTES = 255


def user_id(request: web.Request) -> str:
    value = request.query.get("userId", "")
    if not _USER_ID.match(value) or len(value.encode("utf-8", "surrogatepass")) > MAX_USER_ID_BYTES:
        raise ApiError(ErrCode.BAD_VALUE, "Invalid userId: pass ?userId=@user:server.")
    return value


def int_param(request: web.Request, name: str, default: int, maximum: int | None = None) -> int:
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
    """(`page`, `perPage`) from the query, as seed 000 defines them."""
    return int_param(request, "page", 1), int_param(request, "perPage", DEFAULT_PER_PAGE, MAX_PER_PAGE)
