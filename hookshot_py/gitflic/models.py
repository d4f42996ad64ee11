"""GitFlic's vocabulary — project names, event names — and the API objects the bridge reads,
declared (see forges/models.py).

Two event vocabularies differ. A webhook subscribes with the 16 boolean flags of its `events`
object (seed 002), while a delivery names what happened in its body's `action` field, and
several delivered actions (NEW_ISSUE_NOTE, MERGE, PIPELINE_*...) have no flag of their own.
The table `ACTION_FLAGS` bridges them so a connection's `events` can filter deliveries.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit

import msgspec

from hookshot_py.config import GitFlicConfig
from hookshot_py.errors import ValidationIssue
from hookshot_py.forges.models import Model, convert

#: The connection's state event type, and the prefix of its commands when the state names none.
EVENT_TYPE = "uk.half-shot.matrix-hookshot.gitflic.project"
DEFAULT_PREFIX = "!gf"

# -- naming a project: `owner/project` or its web address, on one of the configured instances ----------

# GitFlic aliases are made of letters, digits, `-`, `_` and `.`; anything else (a slash, a space,
# `..`) could change the API path the alias is put into.
ALIAS_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")


class ProjectRefError(ValueError):
    """The text does not name a GitFlic project; the message says why (shown to the user)."""


@dataclass(frozen=True)
class ProjectRef:
    instance: str  # a key of `gitflic.instances`
    owner: str
    project: str

    @property
    def key(self) -> str:
        """The connection's state key, as the user spelled it."""
        return f"{self.owner}/{self.project}"


def is_alias(value: object) -> bool:
    return isinstance(value, str) and ALIAS_RE.match(value) is not None and ".." not in value


def project_key(owner: str, project: str) -> str:
    """The case-insensitive identity of a project on one instance (how GitFlic compares aliases)."""
    return f"{owner}/{project}".lower()


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower().removeprefix("www.")


def instance_for_host(config: GitFlicConfig, host: str) -> str | None:
    """The configured instance whose web address has this host name."""
    wanted = host.lower().removeprefix("www.")
    return next((name for name, inst in config.instances.items() if _host(inst.url) == wanted), None)


def parse_project(text: str, config: GitFlicConfig) -> ProjectRef:
    """`owner/project` (on the default instance) or `https://host/project/owner/project[/...]`."""
    text = text.strip()
    if "://" in text:
        try:
            parts = urlsplit(text)
        except ValueError as e:
            raise ProjectRefError(f"{text!r} is not a valid URL.") from e
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ProjectRefError(f"{text!r} is not an http(s) URL.")
        instance = instance_for_host(config, parts.hostname)
        if instance is None:
            known = ", ".join(inst.url for inst in config.instances.values())
            raise ProjectRefError(
                f"{parts.hostname} is not a GitFlic instance this bridge knows (configured: {known})."
            )
        segments = [unquote(s) for s in parts.path.split("/") if s]
        if len(segments) < 3 or segments[0] != "project":
            expected = f"{config.instances[instance].url}/project/<owner>/<project>"
            raise ProjectRefError(f"{text!r} is not a project address; expected {expected}.")
        owner, project = segments[1], segments[2].removesuffix(".git")
    else:
        instance = config.default_instance
        owner, sep, project = text.partition("/")
        if not sep or "/" in project:
            raise ProjectRefError(f"{text!r} is not of the form owner/project.")
    for label, value in (("owner", owner), ("project", project)):
        if not is_alias(value):
            raise ProjectRefError(
                f"{value!r} is not a valid GitFlic {label} alias (letters, digits, '-', '_' and '.')."
            )
    return ProjectRef(instance, owner, project)


# -- events ----------------------------------------------------------------------------------------

# In the order of the seed's table.
SUBSCRIPTION_FLAGS: tuple[str, ...] = (
    "COLLABORATOR_ADD",
    "COLLABORATOR_DELETE",
    "COLLABORATOR_UPDATE",
    "ISSUE_UPDATE",
    "ISSUE_CREATE",
    "TAG_DELETE",
    "TAG_CREATE",
    "BRANCH_UPDATE",
    "BRANCH_DELETE",
    "BRANCH_CREATE",
    "MERGE_REQUEST_CREATE",
    "MERGE_REQUEST_UPDATE",
    "DISCUSSION_CREATE",
    "DISCUSSION_COMMENT_CREATE",
    "PUSH",
    "WEBHOOK_SEND",
)
_FLAG_SET = frozenset(SUBSCRIPTION_FLAGS)

# What a room wants to hear about by default: the work itself (issues, merge requests,
# discussions, pushes, tags, branches). Membership changes are opt-in. BRANCH_UPDATE stays on
# next to PUSH: GitFlic documents no delivered PUSH action, pushes arrive as BRANCH_UPDATE.
DEFAULT_EVENTS: tuple[str, ...] = (
    "ISSUE_CREATE",
    "ISSUE_UPDATE",
    "MERGE_REQUEST_CREATE",
    "MERGE_REQUEST_UPDATE",
    "DISCUSSION_CREATE",
    "DISCUSSION_COMMENT_CREATE",
    "PUSH",
    "TAG_CREATE",
    "TAG_DELETE",
    "BRANCH_CREATE",
    "BRANCH_UPDATE",
    "BRANCH_DELETE",
    "WEBHOOK_SEND",
)

# Delivered `action` → the subscription flags that make GitFlic send it (any one suffices).
# An empty tuple means no flag governs the action: it is never filtered out.
# Certain: names shared by both vocabularies (ISSUE_CREATE, TAG_*, BRANCH_*, COLLABORATOR_*...).
# Uncertain, inferred from the descriptions in GitFlic's documentation:
# - NEW_ISSUE_NOTE ("new comment on an issue") → ISSUE_UPDATE: the issue's only other flag.
# - MERGE_REQUEST_ACCEPT / _CLOSE / _CANCEL and MERGE → MERGE_REQUEST_UPDATE: state changes of
#   an existing merge request.
# - DISCUSSION_CREATE is described as "new discussion comment", so either discussion flag.
# - BRANCH_UPDATE is what a push to an existing branch produces; PUSH has no delivered action
#   of its own in the documentation, so both flags let it through; a delivery named PUSH,
#   should an instance send one, is treated the same way.
# - TEST_WEBHOOK is sent when a user presses "test" in GitFlic's settings: always shown,
#   since filtering it would make a working hook look broken.
# - PIPELINE_* postdate the seed and have no flag: never filtered.
ACTION_FLAGS: dict[str, tuple[str, ...]] = {
    "TEST_WEBHOOK": (),
    "ISSUE_CREATE": ("ISSUE_CREATE",),
    "ISSUE_UPDATE": ("ISSUE_UPDATE",),
    "NEW_ISSUE_NOTE": ("ISSUE_UPDATE",),
    "MERGE_REQUEST_CREATE": ("MERGE_REQUEST_CREATE",),
    "MERGE_REQUEST_UPDATE": ("MERGE_REQUEST_UPDATE",),
    "MERGE_REQUEST_ACCEPT": ("MERGE_REQUEST_UPDATE",),
    "MERGE_REQUEST_CLOSE": ("MERGE_REQUEST_UPDATE",),
    "MERGE_REQUEST_CANCEL": ("MERGE_REQUEST_UPDATE",),
    "MERGE": ("MERGE_REQUEST_UPDATE",),
    "DISCUSSION_CREATE": ("DISCUSSION_CREATE", "DISCUSSION_COMMENT_CREATE"),
    "TAG_CREATE": ("TAG_CREATE",),
    "TAG_DELETE": ("TAG_DELETE",),
    "BRANCH_CREATE": ("BRANCH_CREATE",),
    "BRANCH_UPDATE": ("BRANCH_UPDATE", "PUSH"),
    "BRANCH_DELETE": ("BRANCH_DELETE",),
    "PUSH": ("PUSH", "BRANCH_UPDATE"),
    "COLLABORATOR_ADD": ("COLLABORATOR_ADD",),
    "COLLABORATOR_UPDATE": ("COLLABORATOR_UPDATE",),
    "COLLABORATOR_DELETE": ("COLLABORATOR_DELETE",),
    "PIPELINE_NEW": (),
    "PIPELINE_SUCCESS": (),
    "PIPELINE_FAIL": (),
    "PIPELINE_WARNING": (),
}

# The delivered actions GitFlic documents (CONTRACTS.md); PUSH above is a tolerated extra.
DELIVERED_ACTIONS: tuple[str, ...] = tuple(a for a in ACTION_FLAGS if a != "PUSH")


def flags_for_action(action: str) -> tuple[str, ...]:
    """The subscription flags that govern `action`; empty when none does (or it is unknown)."""
    return ACTION_FLAGS.get(action, ())


def is_wanted(action: str, events: Iterable[str]) -> bool:
    """Whether a connection subscribed to `events` should post a delivery of `action`.

    Actions no flag governs, unknown ones included, always pass: dropping what we cannot
    classify would hide new GitFlic features from the room.
    """
    flags = flags_for_action(action)
    if not flags:
        return True
    subscribed = set(events)
    return any(flag in subscribed for flag in flags)


def validate_events(value: Any, path: str = "/events") -> list[ValidationIssue]:
    """Check a connection's `events`: a list of distinct subscription flags."""
    if not isinstance(value, list):
        return [ValidationIssue(path, "must be a list of GitFlic event names")]
    issues: list[ValidationIssue] = []
    seen: set[str] = set()
    for index, item in enumerate(value):
        item_path = f"{path}/{index}"
        if not isinstance(item, str):
            issues.append(ValidationIssue(item_path, "must be a string"))
        elif item not in _FLAG_SET:
            issues.append(
                ValidationIssue(
                    item_path,
                    f"unknown GitFlic event {item!r}; expected one of {', '.join(SUBSCRIPTION_FLAGS)}",
                )
            )
        elif item in seen:
            issues.append(ValidationIssue(item_path, f"duplicate event {item!r}"))
        else:
            seen.add(item)
    return issues


def events_body(events: Iterable[str]) -> dict[str, bool]:
    """The `events` object of a create/update request, every flag explicit.

    GitFlic lets a request omit flags, but an update then keeps their old values; naming all 16
    is the only way to turn one off.
    """
    wanted = set(events)
    unknown = wanted - _FLAG_SET
    if unknown:
        raise ValueError(f"unknown GitFlic events: {', '.join(sorted(unknown))}")
    return {flag: flag in wanted for flag in SUBSCRIPTION_FLAGS}


# -- deliveries -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    action: str
    # "owner/project", lower-cased, when the body names the project; TEST_WEBHOOK bodies may
    # carry only `project_id`, which the caller maps through the ids of the hooks it created.
    project_key: str | None
    project_id: str | None
    raw: dict[str, Any]


# -- API objects -----------------------------------------------------------------------------------


class Webhook(Model, frozen=True, rename="camel"):
    """A project webhook as `/project/{owner}/{project}/setting/webhook` answers it."""

    what = "webhook"
    id: Annotated[str, msgspec.Meta(min_length=1)] | int
    url: str
    secret: str | None = None
    flags: dict[str, Any] = msgspec.field(default_factory=dict, name="events")
    project_id: str | None = None
    created_at: str | None = None
    updated_at: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.id, int):  # ids are UUID strings; an instance answering numbers is read alike
            msgspec.structs.force_setattr(self, "id", str(self.id))

    @classmethod
    def from_json(cls, data: Any) -> Webhook:
        """Read a webhook object; raises ModelError (a ValueError) when it lacks an id or url."""
        return convert(data, cls)

    @property
    def hook_id(self) -> str:
        return str(self.id)

    @property
    def events(self) -> frozenset[str]:
        """The flags that are on."""
        return frozenset(k for k, v in self.flags.items() if v is True)

    def known_events(self) -> frozenset[str]:
        """The enabled flags among the 16 of the seed (an instance may send more)."""
        return self.events & _FLAG_SET
