"""API errors with hookshot's error codes, shared by REST handlers and bot commands."""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class ErrCode(str, Enum):
    UNKNOWN = "HS_UNKNOWN"
    NOT_FOUND = "HS_NOTFOUND"
    UNSUPPORTED_OPERATION = "HS_UNSUPPORTED_OPERATION"
    FORBIDDEN_USER = "HS_FORBIDDEN_USER"
    FORBIDDEN_BOT = "HS_FORBIDDEN_BOT"
    NOT_IN_ROOM = "HS_NOT_IN_ROOM"
    BAD_VALUE = "HS_BAD_VALUE"
    BAD_TOKEN = "HS_BAD_TOKEN"
    DISABLED_FEATURE = "HS_DISABLED_FEATURE"
    ADDITIONAL_ACTION_REQUIRED = "HS_ADDITIONAL_ACTION_REQUIRED"
    CONFLICTING_CONNECTION = "HS_CONFLICTING_CONNECTION"
    METHOD_NOT_ALLOWED = "HS_METHOD_NOT_ALLOWED"
    UNROUTABLE = "HS_UNROUTABLE"
    TOO_LARGE = "HS_TOO_LARGE"
    LIMIT_EXCEEDED = "HS_LIMIT_EXCEEDED"


STATUS: dict[ErrCode, int] = {
    ErrCode.UNKNOWN: 500,
    ErrCode.NOT_FOUND: 404,
    ErrCode.UNSUPPORTED_OPERATION: 400,
    ErrCode.FORBIDDEN_USER: 403,
    ErrCode.FORBIDDEN_BOT: 403,
    ErrCode.NOT_IN_ROOM: 403,
    ErrCode.BAD_VALUE: 400,
    ErrCode.BAD_TOKEN: 401,
    # hookshot answers 500 here; a disabled feature is the caller's problem, not a bug, so 404.
    ErrCode.DISABLED_FEATURE: 404,
    ErrCode.ADDITIONAL_ACTION_REQUIRED: 400,
    ErrCode.CONFLICTING_CONNECTION: 409,
    ErrCode.METHOD_NOT_ALLOWED: 405,
    ErrCode.UNROUTABLE: 400,
    ErrCode.TOO_LARGE: 413,
    ErrCode.LIMIT_EXCEEDED: 429,
}


@dataclass(frozen=True)
class ValidationIssue:
    """One schema violation: `path` is a JSON-pointer-ish path such as `/enableHooks/0`."""

    path: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


@dataclass
class ApiError(Exception):
    """An error meant for the caller: a REST answer or a reply in the room."""

    errcode: ErrCode
    error: str
    extra: dict[str, Any] = field(default_factory=dict)
    status: int | None = None

    def __post_init__(self) -> None:
        super().__init__(self.error)
        if self.status is None:
            self.status = STATUS[self.errcode]

    def to_json(self) -> dict[str, Any]:
        return {"errcode": self.errcode.value, "error": self.error, **self.extra}


def validation_error(issues: list[ValidationIssue], summary: str | None = None) -> ApiError:
    text = summary or "; ".join(f"{i.path or '/'}: {i.message}" for i in issues)
    return ApiError(
        ErrCode.BAD_VALUE,
        text,
        {"validationErrors": [i.to_json() for i in issues]},
    )


def upstream_error(status: int, text: str, *, bad_value: Container[int] = (400, 422)) -> ApiError:
    """A forge's failure (`status`, 0 when it did not answer) as the caller's answer: its refusals
    (401, 403) stay refusals, 404 is not found, a `bad_value` status is the caller's bad value;
    anything else (an outage, rate limiting, nonsense) is a 502: neither the caller's fault nor
    our bug."""
    if status in (401, 403):
        return ApiError(ErrCode.FORBIDDEN_USER, text)
    if status == 404:
        return ApiError(ErrCode.NOT_FOUND, text)
    if status in bad_value:
        return ApiError(ErrCode.BAD_VALUE, text)
    return ApiError(ErrCode.UNKNOWN, text, status=502)
