"""Checks that several connection types share."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from hookshot_py.errors import ValidationIssue

# hookshot's rule for every connection type's `commandPrefix`.
MIN_PREFIX_LENGTH = 2
MAX_PREFIX_LENGTH = 24


def unknown_fields(state: Mapping[str, Any], allowed: Iterable[str]) -> list[ValidationIssue]:
    known = tuple(allowed)
    return [
        ValidationIssue(f"/{key}", f"unknown field; expected one of {', '.join(known)}")
        for key in state
        if key not in known
    ]


def prefix_problem(prefix: Any) -> str | None:
    """Why `prefix` cannot be a `commandPrefix` (hookshot: 2 to 24 characters), if so."""
    if isinstance(prefix, str) and MIN_PREFIX_LENGTH <= len(prefix) <= MAX_PREFIX_LENGTH and not any(
        c.isspace() for c in prefix
    ):
        return None
    return f"must be a word of {MIN_PREFIX_LENGTH} to {MAX_PREFIX_LENGTH} characters without spaces"


def command_prefix(state: Mapping[str, Any], default: str) -> tuple[Any, list[ValidationIssue]]:
    """The connection's `commandPrefix` (default when absent), checked by the one rule."""
    prefix = state.get("commandPrefix", default)
    problem = prefix_problem(prefix)
    return prefix, [] if problem is None else [ValidationIssue("/commandPrefix", problem)]
