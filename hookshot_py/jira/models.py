"""JIRA's vocabulary: the connection's state names, project URLs, and the API answers the
bridge reads (declared as `forges.models.Model`; only the keys the bridge uses).

Two deployments, one vocabulary (CONTRACTS.md): JIRA Cloud through Atlassian's OAuth 2.0 (3LO)
and its API gateway (`/ex/jira/{cloudId}/rest/api/3`), and JIRA Server/Data Center at
`jira.url` with personal access tokens (`{url}/rest/api/2`). Cloud users are identified by
`accountId`, on-premise users by `name`; `User` holds either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import msgspec

from hookshot_py.forges.models import Model

__all__ = [
    "DEFAULT_EVENTS",
    "DEFAULT_PREFIX",
    "EVENTS",
    "EVENT_TYPE",
    "HOOKSHOT_EVENTS",
    "LEGACY_EVENT_TYPE",
    "SERVICE",
    "CreatedIssue",
    "Issue",
    "IssueType",
    "Me",
    "Project",
    "ProjectPage",
    "ProjectRef",
    "ProjectUrlError",
    "Resource",
    "TokenGrant",
    "User",
    "instance_base",
    "parse_project_url",
    "project_url",
]

SERVICE = "jira"
EVENT_TYPE = "uk.half-shot.matrix-hookshot.jira.project"
LEGACY_EVENT_TYPE = "uk.half-shot.matrix-github.jira.project"
DEFAULT_PREFIX = "!jira"
#: The `events` hookshot allows, in its order.
HOOKSHOT_EVENTS = ("issue_created", "issue_updated", "version_created", "version_updated", "version_released")
#: Ours adds new comments (hookshot defines the payload type but posts nothing for it).
EVENTS = (*HOOKSHOT_EVENTS, "comment_created")
DEFAULT_EVENTS = ("issue_created",)

# A project key as JIRA allows it (an admin may widen the default `[A-Z][A-Z0-9_]{1,9}`).
_KEY = r"[A-Za-z][A-Za-z0-9_]{0,254}"
_PROJECTS_PATH = re.compile(rf"/projects/({_KEY})(?:/|$)")
_KEY_ONLY = re.compile(rf"^{_KEY}$")


# -- project URLs ------------------------------------------------------------------------------------


class ProjectUrlError(ValueError):
    """The text is not a JIRA project URL; the message says what one looks like."""


@dataclass(frozen=True)
class ProjectRef:
    """A project as a connection names it: the instance's web address and the project key.

    `host` (`host[:port]`, lower-case) identifies the instance when a delivery is routed, as in
    hookshot: the scheme and the context path of an on-premise instance do not matter there.
    """

    origin: str  # scheme://host[:port]
    key: str  # upper-case

    @property
    def host(self) -> str:
        return urlsplit(self.origin).netloc.lower()


def parse_project_url(url: str, *, lenient: bool = False) -> ProjectRef:
    """The project a URL names: `.../projects/KEY/...` or `...?projectKey=KEY` (as hookshot's
    `!hookshot jira project` accepts). `lenient` also takes the last path segment, hookshot's
    rule for state written by hand or by hookshot (`https://example.org/.../TP`)."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProjectUrlError(f"`{url}` is not an http(s) URL.")
    origin = f"{parts.scheme}://{parts.netloc}"
    if found := _PROJECTS_PATH.search(parts.path):
        return ProjectRef(origin, found.group(1).upper())
    key = parse_qs(parts.query).get("projectKey", [""])[0]
    if _KEY_ONLY.match(key):
        return ProjectRef(origin, key.upper())
    if lenient:
        segments = [s for s in parts.path.split("/") if s]
        if segments and _KEY_ONLY.match(segments[-1]):
            return ProjectRef(origin, segments[-1].upper())
    raise ProjectUrlError(
        "The JIRA project url you entered was not valid. It should be in the format of "
        "`https://jira-instance/.../projects/PROJECTKEY/...` or `.../RapidBoard.jspa?projectKey=TEST`."
    )


def project_url(ref: ProjectRef, on_prem_url: str | None = None) -> str:
    """The canonical URL a connection to `ref` is stored under (its state key), as hookshot
    writes it: `{instance}/projects/{KEY}`. The instance is the origin, or the configured
    on-premise `url` (with its context path) when the project is on that host."""
    base = ref.origin
    if on_prem_url is not None and urlsplit(on_prem_url).netloc.lower() == ref.host:
        base = on_prem_url.rstrip("/")
    return f"{base}/projects/{ref.key}"


def instance_base(rest_url: str) -> str | None:
    """The web address of the instance a REST URL (an issue's or version's `self`) belongs to:
    everything before `/rest/` (scheme, host, port and an on-premise context path), else the
    origin. None when it is not an http(s) URL."""
    try:
        parts = urlsplit(rest_url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    origin = f"{parts.scheme}://{parts.netloc}"
    context, sep, _ = parts.path.partition("/rest/")
    return origin + context.rstrip("/") if sep else origin


# -- Atlassian's OAuth server and gateway -------------------------------------------------------------


class TokenGrant(Model, frozen=True):
    """`POST /oauth/token` (code exchange and refresh; the refresh token rotates)."""

    what = "token"
    access_token: str
    expires_in: int = 3600
    refresh_token: str | None = None
    scope: str = ""


class Resource(Model, frozen=True, rename="camel"):
    """A site the user granted access to (`GET /oauth/token/accessible-resources`)."""

    what = "site"
    id: str
    url: str
    name: str
    scopes: tuple[str, ...] = ()
    avatar_url: str | None = None


class Me(Model, frozen=True):
    """The Atlassian account (`GET https://api.atlassian.com/me`)."""

    what = "account"
    account_id: str
    name: str | None = None
    nickname: str | None = None
    email: str | None = None


# -- the REST API (v3 cloud, v2 on-premise) -------------------------------------------------------------


class User(Model, frozen=True, rename="camel"):
    """`myself`, user searches: cloud users have an `accountId`, on-premise ones a `name`."""

    what = "user"
    account_id: str | None = None
    name: str | None = None
    key: str | None = None
    display_name: str | None = None
    email_address: str | None = None
    active: bool = True

    @property
    def label(self) -> str:
        return self.display_name or self.name or self.account_id or "?"


class IssueType(Model, frozen=True):
    what = "issue type"
    id: str
    name: str
    subtask: bool = False


class Project(Model, frozen=True, rename="camel"):
    what = "project"
    id: str
    key: str
    name: str
    url: str = msgspec.field(name="self", default="")
    issue_types: tuple[IssueType, ...] = ()


class ProjectPage(Model, frozen=True, rename="camel"):
    """One page of `project/search` (cloud); `is_last` may be absent on old servers."""

    what = "project page"
    values: tuple[Project, ...] = ()
    start_at: int = 0
    max_results: int = 50
    total: int | None = None
    is_last: bool | None = None


class CreatedIssue(Model, frozen=True):
    what = "created issue"
    id: str
    key: str
    url: str = msgspec.field(name="self", default="")


class IssueFields(Model, frozen=True):
    summary: str = ""


class Issue(Model, frozen=True):
    what = "issue"
    id: str
    key: str
    url: str = msgspec.field(name="self", default="")
    fields: IssueFields = IssueFields()
