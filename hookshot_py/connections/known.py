"""Every connection state type hookshot (and hookshot_py) writes, whether or not this bridge
serves it: a room holding one this bridge does not serve is told so, never left silent.

A type is served when its service's connection type is registered with the ConnectionManager
(its service is enabled in the config). Otherwise the reason depends on whether hookshot_py
implements that type at all: "enable `gitlab` in the config" or "not supported by hookshot_py".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KnownType:
    event_type: str  # canonical
    legacy: tuple[str, ...]
    type_name: str  # hookshot's provisioning type name (or the class name where it has none)
    service: str  # hookshot's service category
    label: str  # how users read it: "GitLab project"
    implemented: bool  # hookshot_py has this connection type (served when its service is enabled)


_H = "uk.half-shot.matrix-hookshot."
_L = "uk.half-shot.matrix-github."

KNOWN_TYPES: tuple[KnownType, ...] = (
    KnownType(_H + "generic.hook", (_L + "generic.hook",), "Webhook", "generic", "webhook", True),
    KnownType(_H + "outbound-hook", (), "OutboundWebhook", "genericOutbound", "outbound webhook", True),
    KnownType(_H + "github.repository", (_L + "repository",), "GithubRepo", "github", "GitHub repository", True),
    KnownType(_H + "gitlab.repository", (_L + "gitlab.repository",), "GitLabRepo", "gitlab", "GitLab project", True),
    KnownType(_H + "jira.project", (_L + "jira.project",), "JiraProject", "jira", "JIRA project", True),
    KnownType(_H + "feed", (), "Feed", "feeds", "feed", True),
    KnownType(_H + "gitflic.project", (), "GitFlicProject", "gitflic", "GitFlic project", True),
    KnownType(_H + "barkeep.repository", (), "BarkeepRepo", "barkeep", "Barkeep repository", True),
    KnownType(_H + "github.issue", (_L + "bridge",), "GithubIssue", "github", "GitHub issue room", False),
    KnownType(_H + "github.discussion", (_L + "discussion",), "GithubDiscussion", "github",
              "GitHub discussion room", False),
    KnownType(_H + "github.discussion.space", (_L + "discussion.space",), "GithubDiscussionSpace", "github",
              "GitHub discussion space", False),
    KnownType(_H + "github.project", (_L + "project",), "GithubProject", "github", "GitHub project board", False),
    KnownType(_H + "github.user.space", (_L + "user.space",), "GithubUserSpace", "github", "GitHub user space",
              False),
    KnownType(_H + "gitlab.issue", (_L + "gitlab.issue",), "GitLabIssue", "gitlab", "GitLab issue room", False),
    KnownType(_H + "figma.file", ("uk.half-shot.matrix-figma.file",), "FigmaFile", "figma", "Figma file", False),
    KnownType(_H + "challengehound.activity", ("uk.half-shot.matrix-challenger.activity",), "ChallengeHound",
              "challengehound", "ChallengeHound challenge", False),
    KnownType("org.matrix.matrix-hookshot.openproject.project", (), "OpenProject", "openproject",
              "OpenProject project", False),
)  # fmt: skip

_BY_EVENT_TYPE: dict[str, KnownType] = {
    et: kt for kt in KNOWN_TYPES for et in (kt.event_type, *kt.legacy)
}

# Each service hookshot_py implements: its name for users, and what to switch on in the config.
SERVICES: dict[str, tuple[str, str]] = {
    "generic": ("generic webhooks", "the `generic` section"),
    "genericOutbound": ("outbound webhooks", "`generic.outbound: true`"),
    "github": ("GitHub", "`github`"),
    "gitlab": ("GitLab", "`gitlab`"),
    "jira": ("JIRA", "`jira`"),
    "feeds": ("feeds", "`feeds`"),
    "gitflic": ("GitFlic", "`gitflic`"),
    "barkeep": ("Barkeep", "`barkeep`"),
}


def known_type(event_type: str) -> KnownType | None:
    """The known type of a state event type (canonical or legacy), or None."""
    return _BY_EVENT_TYPE.get(event_type)


def unsupported_reason(kt: KnownType) -> str:
    """Why this bridge does not serve `kt`'s connections (its type is not registered)."""
    if kt.implemented and kt.service in SERVICES:
        name, switch = SERVICES[kt.service]
        return f"The {name} service is not enabled on this bridge: enable {switch} in the config."
    return f"{kt.label[:1].upper()}{kt.label[1:]} connections are not supported by hookshot_py."
