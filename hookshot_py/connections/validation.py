"""Checks that several connection types share."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from hookshot_py.errors import ValidationIssue

MAX_PREFIX_LENGTH = 32


def unknown_fields(state: Mapping[str, Any], allowed: Iterable[str]) -> list[ValidationIssue]:
    known = tuple(allowed)
    return [
        ValidationIssue(f"/{key}", f"unknown field; expected one of {', '.join(known)}")
        for key in state
        if key not in known
    ]


def command_prefix(state: Mapping[str, Any], default: str) -> tuple[Any, list[ValidationIssue]]:
    """The connection's `commandPrefix` (default when absent): one word, no spaces."""
    prefix = state.get("commandPrefix", default)
    if isinstance(prefix, str) and 0 < len(prefix) <= MAX_PREFIX_LENGTH and not any(c.isspace() for c in prefix):
        return prefix, []
    return prefix, [
        ValidationIssue("/commandPrefix", f"must be a word of 1 to {MAX_PREFIX_LENGTH} characters without spaces")
    ]
