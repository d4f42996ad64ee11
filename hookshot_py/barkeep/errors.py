"""`BarkeepError`: every way a Barkeep call can fail, sorted into kinds a room reply can explain."""

from __future__ import annotations

import re
from typing import Literal

from hookshot_py.forges.http import ForgeHttpError, error_text

ErrorKind = Literal[
    "auth", "stale", "clock_skew", "not_found", "ambiguous", "admin_only", "bad_request", "unavailable"
]

# The server's own texts (ooyala/barkeep lib/api_routes.rb and models/commit.rb).
NO_API_KEY = "No API key provided."
BAD_API_KEY = "Bad API key provided."
BAD_TIMESTAMP = "Bad timestamp."
STALE_TIMESTAMP = "Timestamp too stale."
BAD_SIGNATURE = "Bad signature."
ADMIN_ONLY = "Admin only."
ALLOWED_STALENESS_MINUTES = 5

_NO_SUCH_REPO = re.compile(r"No such repository: (?P<repo>.*)", re.S)
_NO_SUCH_COMMIT = re.compile(r"No such commit in (?P<repo>.*): (?P<sha>[^:]*)", re.S)
_AMBIGUOUS = re.compile(r"Ambiguous commit in (?P<repo>.*): (?P<sha>[^:]*)", re.S)


class BarkeepError(ForgeHttpError):
    """A Barkeep call failed. `status` is the HTTP status, 0 when no answer arrived (or the
    call was refused before sending). `repo`/`sha` say what the call was about, when known:
    for a 404 in a batch, `sha` is the one Barkeep did not find."""

    kind: ErrorKind

    def __init__(
        self, status: int, message: str, kind: ErrorKind, *, repo: str = "", sha: str = "", instance: str = ""
    ) -> None:
        self.repo = repo
        self.sha = sha
        self.instance = instance
        super().__init__(status, message, kind=kind)

    def summary(self) -> str:
        return f"{self.kind} ({self.status}): {self.message}"

    @property
    def is_clock_skew(self) -> bool:
        """True when retrying cannot help until the clocks agree."""
        return self.kind in ("stale", "clock_skew")

    def describe(self) -> str:
        """One or two sentences for a room reply: what went wrong and what to do about it."""
        instance = f"Barkeep at {self.instance}" if self.instance else "Barkeep"
        repo = self.repo or "the repository"
        if self.kind == "clock_skew":
            return (
                "Barkeep refused the request timestamp: this server's clock seems to be ahead of "
                "Barkeep's. Both clocks need to be set right (e.g. with NTP)."
            )
        if self.kind == "stale":
            return (
                "Barkeep refused the request timestamp as too stale: this server's clock is behind "
                f"Barkeep's by more than {ALLOWED_STALENESS_MINUTES} minutes. Both clocks need to be "
                "set right (e.g. with NTP)."
            )
        if self.kind == "auth":
            if self.message == NO_API_KEY or self.status == 0:
                return (
                    "Barkeep needs an API key for this, and none is configured: set the API key and "
                    "secret from the Barkeep user's settings page in the bridge's barkeep config."
                )
            if self.message == BAD_API_KEY:
                return (
                    f"{instance} does not know the configured API key: copy it again from the "
                    "Barkeep user's settings page."
                )
            if self.message == BAD_SIGNATURE:
                return (
                    f"{instance} rejected the request signature: the configured API secret does not "
                    "match the API key. Copy it again from the Barkeep user's settings page."
                )
            return f"{instance} refused the bridge's credentials: {_sentence(self.message)}"
        if self.kind == "admin_only":
            return (
                "Only a Barkeep admin can do that, and the bridge's API key does not belong to an "
                "admin user."
            )
        if self.kind == "ambiguous":
            sha = self.sha or "that sha"
            return f"{sha} matches more than one commit in {repo}: give more characters of the sha."
        if self.kind == "not_found":
            if _NO_SUCH_REPO.fullmatch(self.message):
                return f"{instance} does not track a repository named {repo}."
            if self.sha:
                return f"{instance} has no commit {self.sha} in {repo}."
            return f"{instance} could not find that: {_sentence(self.message)}"
        if self.kind == "bad_request":
            if self.status == 0:  # refused before asking Barkeep
                return _sentence(self.message[:1].upper() + self.message[1:])
            return f"Barkeep could not do that: {_sentence(self.message)}"
        # unavailable
        if 200 <= self.status < 300:
            return f"{instance} gave an answer the bridge does not understand: {_sentence(self.message)}"
        if self.status == 0:
            return f"Could not reach {instance}: {_sentence(self.message)} Try again later."
        details = "" if self.message == f"HTTP {self.status}" else f": {_sentence(self.message)}"
        return f"{instance} failed to answer (HTTP {self.status}){details or '.'} Try again later."


def _sentence(text: str) -> str:
    text = text.strip() or "no details given"
    return text if text[-1] in ".!?" else text + "."


def error_from_response(status: int, raw: bytes, *, repo: str = "", sha: str = "", instance: str = "") -> BarkeepError:
    """Classify an HTTP error answer. Barkeep's API errors are `{"error": msg}`; older versions
    used `{"message": msg}`, and Sinatra's own failures are plain text or HTML."""
    return classify(status, error_text(raw)[0] or f"HTTP {status}", repo=repo, sha=sha, instance=instance)


def classify(status: int, message: str, *, repo: str = "", sha: str = "", instance: str = "") -> BarkeepError:
    """The kind of failure an error answer's status and message mean."""
    kind: ErrorKind
    if status >= 500 or status in (408, 429):
        kind = "unavailable"
    elif message == BAD_TIMESTAMP:
        kind = "clock_skew"
    elif message == STALE_TIMESTAMP:
        kind = "stale"
    elif message in (NO_API_KEY, BAD_API_KEY, BAD_SIGNATURE) or status == 401:
        kind = "auth"
    elif status == 403:
        kind = "admin_only" if message == ADMIN_ONLY else "auth"
    elif status == 404:
        kind = "not_found"
        if match := _AMBIGUOUS.fullmatch(message):
            kind = "ambiguous"
            repo, sha = match["repo"], match["sha"]
        elif match := _NO_SUCH_COMMIT.fullmatch(message):
            repo, sha = match["repo"], match["sha"]
        elif match := _NO_SUCH_REPO.fullmatch(message):
            repo = match["repo"]
    else:
        kind = "bad_request"
    return BarkeepError(status, message, kind, repo=repo, sha=sha, instance=instance)
