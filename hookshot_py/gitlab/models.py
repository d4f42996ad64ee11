"""GitLab's vocabulary: the connection's event names, the project hook's `*_events` flags, access
levels, and the API answers the client reads (declared `forges.models.Model`s).

Event names are hookshot's (`GitLabRepo.ts` `AllowedEvents`) plus ours for what hookshot never
posted: issues (`issue.*`, its #777), comments outside merge request reviews (`note.*`) and
pipelines (`pipeline.*`, its #569). A room's `enableHooks` decides which hook flags the project's
one webhook needs (`hook_flags`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar, NamedTuple

from hookshot_py.forges.models import Model

__all__ = [
    "ALLOWED_EVENTS",
    "DEFAULT_HOOKS",
    "EVENT_TYPE",
    "HOOK_FLAGS",
    "LEGACY_EVENT_TYPE",
    "AccessLevel",
    "Hook",
    "Issue",
    "Member",
    "Project",
    "ProjectRef",
    "User",
    "hook_flags",
]

EVENT_TYPE = "uk.half-shot.matrix-hookshot.gitlab.repository"
LEGACY_EVENT_TYPE = "uk.half-shot.matrix-github.gitlab.repository"
DEFAULT_COMMAND_PREFIX = "!gl"

#: hookshot's `AllowedEvents`, in its order.
HOOKSHOT_EVENTS: tuple[str, ...] = (
    "merge_request.open",
    "merge_request.reopen",
    "merge_request.close",
    "merge_request.merge",
    "merge_request.review",
    "merge_request.review.individual",
    "merge_request.ready_for_review",
    "merge_request.review.comments",
    "merge_request",
    "tag_push",
    "push",
    "wiki",
    "release",
    "release.created",
)

ISSUE_EVENTS: tuple[str, ...] = ("issue", "issue.open", "issue.close", "issue.reopen", "issue.update")
NOTE_EVENTS: tuple[str, ...] = ("note", "note.issue", "note.commit")
PIPELINE_EVENTS: tuple[str, ...] = ("pipeline", "pipeline.success", "pipeline.failed", "pipeline.canceled")

#: hookshot filters wiki pages by `wiki.<action>` too (its `AllowedEvents` forgot to list them).
WIKI_EVENTS: tuple[str, ...] = ("wiki.create", "wiki.update", "wiki.delete")

ALLOWED_EVENTS: tuple[str, ...] = (*HOOKSHOT_EVENTS, *WIKI_EVENTS, *ISSUE_EVENTS, *NOTE_EVENTS, *PIPELINE_EVENTS)

#: When a room names no `enableHooks`: hookshot's default (all of its events) and issues (which
#: hookshot's documentation always promised). Comments on issues and commits, and pipelines, are
#: asked for by name: they are many.
DEFAULT_HOOKS: tuple[str, ...] = (*HOOKSHOT_EVENTS, *ISSUE_EVENTS)

#: The project hook's flags the bridge manages, in GitLab's order (`POST /projects/:id/hooks`).
HOOK_FLAGS: tuple[str, ...] = (
    "push_events",
    "tag_push_events",
    "issues_events",
    "merge_requests_events",
    "note_events",
    "pipeline_events",
    "wiki_page_events",
    "releases_events",
)
#: Flags the bridge turns off on a hook it manages (an adopted hook may have them on): confidential
#: issues and comments are for project members, and a room is not (see docs/gitlab.md); the others
#: are events no room posts. GitLab ignores the flags it does not know (older versions).
OFF_FLAGS: tuple[str, ...] = (
    "confidential_issues_events",
    "confidential_note_events",
    "job_events",
    "deployment_events",
    "feature_flag_events",
    "emoji_events",
    "milestone_events",
    "resource_access_token_events",
)

# Which flag an event name needs. Comments in a merge request review arrive as note events.
_FLAG_BY_FAMILY: tuple[tuple[str, str], ...] = (
    ("merge_request.review.comments", "note_events"),
    ("merge_request", "merge_requests_events"),
    ("tag_push", "tag_push_events"),
    ("push", "push_events"),
    ("wiki", "wiki_page_events"),
    ("release", "releases_events"),
    ("issue", "issues_events"),
    ("note", "note_events"),
    ("pipeline", "pipeline_events"),
)


def _in_family(name: str, family: str) -> bool:
    return name == family or name.startswith(family + ".")


def hook_flags(enabled: Iterable[str]) -> tuple[str, ...]:
    """The hook flags that deliver what `enabled` names, in `HOOK_FLAGS` order."""
    flags: set[str] = set()
    for name in enabled:
        for family, flag in _FLAG_BY_FAMILY:
            if _in_family(name, family):
                flags.add(flag)
        if name == "merge_request":  # the whole family, review comments included
            flags.add("note_events")
    return tuple(f for f in HOOK_FLAGS if f in flags)


class AccessLevel:
    """GitLab's access levels (`access_level` in member answers)."""

    NONE = 0
    GUEST = 10
    REPORTER = 20
    DEVELOPER = 30
    MAINTAINER = 40
    OWNER = 50

    NAMES: ClassVar[dict[int, str]] = {
        0: "no access", 5: "Minimal Access", 10: "Guest", 15: "Planner", 20: "Reporter", 30: "Developer",
        40: "Maintainer", 50: "Owner",
    }

    @classmethod
    def name(cls, level: int) -> str:
        return cls.NAMES.get(level, f"level {level}")


class ProjectRef(NamedTuple):
    """A project on a configured instance; `path` is `group/sub/project` as the room spells it
    (GitLab paths compare case-insensitively)."""

    instance: str
    path: str


# -- API answers ---------------------------------------------------------------------------------------


class User(Model, frozen=True):
    what: ClassVar[str] = "user"
    id: int
    username: str
    name: str = ""


class Project(Model, frozen=True):
    what: ClassVar[str] = "project"
    id: int
    path_with_namespace: str
    name: str = ""
    web_url: str = ""
    description: str | None = None
    avatar_url: str | None = None


class Member(Model, frozen=True):
    what: ClassVar[str] = "member"
    access_level: int


class Hook(Model, frozen=True):
    """A project hook as `GET /projects/:id/hooks` lists it (the token is never shown)."""

    what: ClassVar[str] = "hook"
    id: int
    url: str
    push_events: bool = False
    tag_push_events: bool = False
    issues_events: bool = False
    merge_requests_events: bool = False
    note_events: bool = False
    pipeline_events: bool = False
    wiki_page_events: bool = False
    releases_events: bool = False

    @property
    def flags(self) -> tuple[str, ...]:
        return tuple(f for f in HOOK_FLAGS if getattr(self, f))


class Issue(Model, frozen=True):
    what: ClassVar[str] = "issue"
    iid: int
    web_url: str
    title: str = ""
    state: str = ""
