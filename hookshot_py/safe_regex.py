"""Regular expressions that room members set (GitHub `workflowRun.matchingBranch`, GitLab
`pushTagsRegex`), checked and matched with RE2.

Python's `re` backtracks: `^(a+)+$` against a 24-character branch took 2 s on the event loop,
doubling with each character. RE2 matches in time linear in the text and refuses the constructs
that would need backtracking (backreferences, lookaround). `check_pattern` is called when a
connection's state is validated, so such a pattern is refused with a clear error then, instead of
silently never matching later.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import re2

__all__ = ["MAX_PATTERN_LENGTH", "PatternError", "check_pattern", "search"]

# Far beyond a branch or tag filter; bounds the compiled program's size and the time to build it.
MAX_PATTERN_LENGTH = 1000
# Memory RE2 may use for one compiled pattern (its default is 8 MiB).
_MAX_MEMORY = 4 * 1024 * 1024

_LOOKAROUND = re.compile(r"invalid perl operator: \(\?<?[=!]")
_BACKREFERENCE = re.compile(r"invalid escape sequence: \\[0-9]")


class PatternError(ValueError):
    """`message` says why a pattern cannot be used, for a validation error."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False
    options.max_mem = _MAX_MEMORY
    return options


def _explain(reason: str) -> str:
    if _LOOKAROUND.match(reason):
        return f"{reason} (lookahead and lookbehind are not supported)"
    if _BACKREFERENCE.match(reason):
        return f"{reason} (backreferences are not supported)"
    return reason


@functools.lru_cache(maxsize=256)
def _compile(pattern: str) -> Any:
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise PatternError(f"is longer than {MAX_PATTERN_LENGTH} characters")
    try:
        return re2.compile(pattern, _options())
    except re2.error as e:
        reason = e.args[0] if e.args else "invalid pattern"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternError(_explain(str(reason))) from None


def check_pattern(pattern: str) -> None:
    """Raise `PatternError` unless `pattern` is a regular expression RE2 can run."""
    _compile(pattern)


def search(pattern: str, text: str) -> bool:
    """Whether `pattern` matches anywhere in `text` (like JavaScript's `String.match`), in time
    linear in `text`. Raises `PatternError` for a pattern `check_pattern` refuses."""
    return _compile(pattern).search(text) is not None
