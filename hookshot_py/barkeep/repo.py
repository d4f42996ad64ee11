"""A Barkeep repository connection's state: its event type and the fields everyone reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hookshot_py.connections.base import Connection

EVENT_TYPE = "uk.half-shot.matrix-hookshot.barkeep.repository"
DEFAULT_PREFIX = "!barkeep"
EVENTS = ("approvals", "comments")
MAX_REPO_LENGTH = 255
MAX_URL_LENGTH = 2048


def repo_problem(repo: Any) -> str | None:
    """Why `repo` cannot be a Barkeep repository name (a directory name on the server), if so."""
    if not isinstance(repo, str) or not repo:
        return "must be the repository's name on Barkeep"
    if repo in (".", "..") or "/" in repo or not repo.isprintable() or repo != repo.strip():
        return "must be a Barkeep repository name (a directory name: no '/', no surrounding spaces)"
    if len(repo) > MAX_REPO_LENGTH:
        return f"must be at most {MAX_REPO_LENGTH} characters"
    return None


def repo_name_of_url(url: str) -> str:
    """The name Barkeep gives a repository cloned from `url`: Ruby's `File.basename(url, ".*")`."""
    base = url.rstrip("/").rsplit("/", 1)[-1]
    stem, dot, _ = base.rpartition(".")
    return stem if dot and stem else base


def events_of(conn: Connection) -> list[str]:
    events = conn.state.get("events")
    if not isinstance(events, list):
        return list(EVENTS)
    return [e for e in EVENTS if e in events]


def instance_of(conn: Connection) -> str:
    return str(conn.state.get("instance", ""))


def repo_of(conn: Connection) -> str:
    return str(conn.state.get("repo", ""))


@dataclass(frozen=True)
class RepoConfig:
    instance: str  # a key of `barkeep.instances`
    repo: str  # the repository's name on Barkeep
    events: tuple[str, ...]
    git_url: str | None

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RepoConfig:
        events = state.get("events")
        wanted = tuple(e for e in EVENTS if e in events) if isinstance(events, list) else EVENTS
        git_url = state.get("gitUrl")
        return cls(
            str(state.get("instance", "")), str(state.get("repo", "")), wanted,
            git_url if isinstance(git_url, str) else None,
        )
