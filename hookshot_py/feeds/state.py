"""A feed connection's state (`uk.half-shot.matrix-hookshot.feed`), hookshot's fields plus ours.

hookshot's: `url` (also the state key), `label`, `template` (≤ 1024 characters), `notifyOnFailure`,
`showUrlPreviews`. Ours: `pollIntervalSeconds`, the room's wish for this feed's interval, bounded
below by the admin's `feeds.minPollIntervalSeconds`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from hookshot_py.errors import ValidationIssue

MAX_TEMPLATE_LENGTH = 1024
MAX_URL_LENGTH = 2048
MAX_LABEL_LENGTH = 256
_KEPT_KEYS = ("url", "label", "template", "notifyOnFailure", "showUrlPreviews", "pollIntervalSeconds")


def normalize_url(url: str) -> str:
    """The URL fetched for a state key: the fragment removed (hookshot's `normalizeUrl`), so
    `…/feed` and `…/feed#x` are fetched once."""
    return url.split("#", 1)[0]


@dataclass(frozen=True)
class FeedState:
    url: str
    label: str | None = None
    template: str | None = None
    notify_on_failure: bool = False
    show_url_previews: bool = True
    poll_interval_seconds: int | None = None

    @classmethod
    def from_content(cls, content: dict[str, Any]) -> FeedState:
        """From state already validated (the mirror's content); unknown or mistyped fields are ignored."""

        def typed(key: str, kind: type) -> Any:
            value = content.get(key)
            return value if isinstance(value, kind) and not (kind is int and isinstance(value, bool)) else None

        return cls(
            url=str(content.get("url", "")),
            label=typed("label", str) or None,
            template=typed("template", str) or None,
            notify_on_failure=typed("notifyOnFailure", bool) is True,
            show_url_previews=typed("showUrlPreviews", bool) is not False,
            poll_interval_seconds=typed("pollIntervalSeconds", int),
        )

    def interval(self, default: int, minimum: int) -> int:
        wanted = self.poll_interval_seconds if self.poll_interval_seconds is not None else default
        return max(minimum, wanted)


def validate_state(
    state: dict[str, Any], *, min_interval: int, is_new: bool
) -> tuple[dict[str, Any], list[ValidationIssue]]:
    """Normalise a feed state and list its problems. State found in a room (`is_new` false) is
    judged leniently: an interval below the minimum is raised to it when polling, not refused."""
    issues: list[ValidationIssue] = []
    url = state.get("url")
    if not isinstance(url, str) or not url:
        issues.append(ValidationIssue("/url", "is required and must be a string"))
    elif len(url) > MAX_URL_LENGTH:
        issues.append(ValidationIssue("/url", f"must be at most {MAX_URL_LENGTH} characters long"))
    else:
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            issues.append(ValidationIssue("/url", "must be an http(s) URL"))
    label = state.get("label")
    if label is not None and not isinstance(label, str):
        issues.append(ValidationIssue("/label", "must be a string"))
    elif isinstance(label, str) and len(label) > MAX_LABEL_LENGTH:
        issues.append(ValidationIssue("/label", f"must be at most {MAX_LABEL_LENGTH} characters long"))
    template = state.get("template")
    if template is not None and not isinstance(template, str):
        issues.append(ValidationIssue("/template", "must be a string"))
    elif isinstance(template, str) and len(template) > MAX_TEMPLATE_LENGTH:
        issues.append(
            ValidationIssue("/template", f"should not be longer than {MAX_TEMPLATE_LENGTH} characters")
        )
    for key in ("notifyOnFailure", "showUrlPreviews"):
        if state.get(key) is not None and not isinstance(state.get(key), bool):
            issues.append(ValidationIssue(f"/{key}", "must be a boolean"))
    interval = state.get("pollIntervalSeconds")
    if interval is not None:
        if not isinstance(interval, int) or isinstance(interval, bool) or interval < 1:
            issues.append(ValidationIssue("/pollIntervalSeconds", "must be a positive integer"))
        elif is_new and interval < min_interval:
            issues.append(
                ValidationIssue("/pollIntervalSeconds", f"must be at least {min_interval} on this bridge")
            )
    normalized = {k: state[k] for k in _KEPT_KEYS if k in state and state[k] is not None}
    return normalized, issues
