"""The `uk.half-shot.matrix-hookshot.github.repository` state: validation, defaults, hook filter.

Mirrors hookshot's `GitHubRepoConnection.validateState` (an AJV schema with
`additionalProperties: true`) and `src/HookFilter.ts`, so that state written by hookshot loads
unchanged and state we write loads in hookshot.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hookshot_py import safe_regex
from hookshot_py.errors import ValidationIssue
from hookshot_py.forges.filters import HookFilter
from hookshot_py.forges.payload import json_type_name

__all__ = [
    "ALLOWED_EVENTS",
    "DEFAULT_COMMAND_PREFIX",
    "DEFAULT_HOOKS",
    "DEFAULT_HOTLINK_PREFIX",
    "DEFAULT_PR_DIFF_MAX_LINES",
    "EVENT_TYPE",
    "LEGACY_EVENT_TYPE",
    "ALWAYS_SUBSCRIBED_EVENTS",
    "HookFilter",
    "RepoConfig",
    "WorkflowFilter",
    "RepoSettings",
    "github_events_for_hooks",
    "state_key",
    "storable_state",
    "validate_repo_state",
]

EVENT_TYPE = "uk.half-shot.matrix-hookshot.github.repository"
LEGACY_EVENT_TYPE = "uk.half-shot.matrix-github.repository"

#: hookshot's `AllowedEvents`, in its order.
ALLOWED_EVENTS: tuple[str, ...] = (
    "issue.changed",
    "issue.created",
    "issue.edited",
    "issue.labeled",
    "issue.comment",
    "issue.comment.created",
    "issue",
    "pull_request.closed",
    "pull_request.merged",
    "pull_request.opened",
    "pull_request.ready_for_review",
    "pull_request.reviewed",
    "pull_request",
    "push",
    "release.created",
    "release.drafted",
    "release",
    "workflow",
    "workflow.run",
    "workflow.run.success",
    "workflow.run.failure",
    "workflow.run.neutral",
    "workflow.run.cancelled",
    "workflow.run.timed_out",
    "workflow.run.action_required",
    "workflow.run.stale",
)

#: hookshot's `DefaultHooks`: issues (not comments), all pull requests, published releases.
DEFAULT_HOOKS: tuple[str, ...] = (
    "issue.changed",
    "issue.created",
    "issue.edited",
    "issue.labeled",
    "issue",
    "pull_request.closed",
    "pull_request.merged",
    "pull_request.opened",
    "pull_request.ready_for_review",
    "pull_request.reviewed",
    "pull_request",
    "release.created",
)

DEFAULT_COMMAND_PREFIX = "!gh"
DEFAULT_HOTLINK_PREFIX = "#"
DEFAULT_PR_DIFF_MAX_LINES = 30
COMMAND_PREFIX_MIN = 2
COMMAND_PREFIX_MAX = 24


@dataclass(frozen=True)
class RepoSettings:
    """Effective runtime options of a repo connection: state first, then config defaults.

    Defaults are resolved at read time, like hookshot, rather than written into the room: a
    later change to `github.defaultOptions` then applies to every existing connection.
    """

    command_prefix: str
    show_issue_room_link: bool
    hotlink_prefix: str | None
    pr_diff_enabled: bool
    pr_diff_max_lines: int
    new_issue_labels: tuple[str, ...]

    @classmethod
    def from_state(
        cls, state: dict[str, Any], default_options: dict[str, Any] | None = None
    ) -> RepoSettings:
        defaults = default_options or {}
        show_link = state.get("showIssueRoomLink")
        if show_link is None:
            show_link = bool(defaults.get("showIssueRoomLink") or False)
        # hookshot: `config.defaultOptions?.hotlinkIssues || state.hotlinkIssues`; the config
        # value wins whenever it is truthy.
        hotlink = defaults.get("hotlinkIssues") or state.get("hotlinkIssues")
        if hotlink is False:
            hotlink_prefix: str | None = None
        elif isinstance(hotlink, dict) and isinstance(hotlink.get("prefix"), str):
            hotlink_prefix = hotlink["prefix"]
        else:
            hotlink_prefix = DEFAULT_HOTLINK_PREFIX
        pr_diff = state.get("prDiff") or {}
        max_lines = pr_diff.get("maxLines")
        new_issue = state.get("newIssue") or {}
        return cls(
            command_prefix=state.get("commandPrefix") or DEFAULT_COMMAND_PREFIX,
            show_issue_room_link=bool(show_link),
            hotlink_prefix=hotlink_prefix,
            pr_diff_enabled=bool(pr_diff.get("enabled")),
            pr_diff_max_lines=int(max_lines) if max_lines else DEFAULT_PR_DIFF_MAX_LINES,
            new_issue_labels=tuple(new_issue.get("labels") or ()),
        )


@dataclass(frozen=True)
class WorkflowFilter:
    """`workflowRun`: which completed workflow runs a room wants. The branch pattern is checked
    once here and matched with RE2 (`safe_regex`: linear time, compiled patterns cached)."""

    branch: str | None = None
    # A pattern RE2 refuses only gets past validation in hand-written state: it matches nothing.
    broken: bool = False
    including: frozenset[str] | None = None
    excluding: frozenset[str] = frozenset()

    @classmethod
    def from_state(cls, options: Any) -> WorkflowFilter:
        if not isinstance(options, dict):
            return cls()
        pattern = options.get("matchingBranch")
        branch, broken = None, False
        if isinstance(pattern, str) and pattern:
            try:
                safe_regex.check_pattern(pattern)
                branch = pattern
            except safe_regex.PatternError:
                broken = True
        including = options.get("includingWorkflows")
        return cls(
            branch,
            broken,
            None if including is None else frozenset(_strings(including)),
            frozenset(_strings(options.get("excludingWorkflows"))),
        )

    def allows(self, name: str, branch: str) -> bool:
        if self.broken or (self.branch is not None and not safe_regex.search(self.branch, branch)):
            return False
        if name in self.excluding:
            return False
        return self.including is None or name in self.including


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


@dataclass(frozen=True)
class RepoConfig:
    """A repo connection's typed state, parsed once per state change: what the webhook route,
    `format.py` and the commands read."""

    org: str
    repo: str
    # The effective state (config defaults applied), as hookshot would keep it.
    state: dict[str, Any]
    settings: RepoSettings
    hooks: HookFilter
    including_labels: frozenset[str]
    excluding_labels: frozenset[str]
    workflow: WorkflowFilter

    @property
    def full_name(self) -> str:
        return f"{self.org}/{self.repo}"

    @property
    def hook_events(self) -> list[str]:
        """The GitHub events this connection needs the repository hook to deliver."""
        return github_events_for_hooks(self.hooks.enabled_hooks)

    @classmethod
    def from_state(cls, state: dict[str, Any], default_options: dict[str, Any] | None = None) -> RepoConfig:
        effective, issues = validate_repo_state(state, is_new=False, default_options=default_options)
        if issues:
            effective = state
        org, repo = effective.get("org"), effective.get("repo")
        if not isinstance(org, str) or not isinstance(repo, str):
            raise ValueError("a GitHub repository connection needs `org` and `repo`")
        enabled = effective.get("enableHooks")
        return cls(
            org,
            repo,
            effective,
            RepoSettings.from_state(state, default_options),
            HookFilter(DEFAULT_HOOKS if enabled is None else _strings(enabled)),
            frozenset(_strings(effective.get("includingLabels"))),
            frozenset(_strings(effective.get("excludingLabels"))),
            WorkflowFilter.from_state(effective.get("workflowRun")),
        )


def state_key(state: dict[str, Any]) -> str:
    """The state key hookshot uses: `org/repo` with the case the user typed.

    Routing must compare case-insensitively (GitHub names are case-insensitive).
    """
    return f"{state['org']}/{state['repo']}"


# --- validation -----------------------------------------------------------------------------


def _type_name(value: Any) -> str:
    """JSON type names as AJV reports them (integers are numbers)."""
    name = json_type_name(value)
    return "number" if name == "integer" else name


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _Checker:
    """Collects issues with JSON-pointer paths, in the spirit of AJV's error list."""

    def __init__(self) -> None:
        self.issues: list[ValidationIssue] = []

    def fail(self, path: str, message: str) -> None:
        self.issues.append(ValidationIssue(path, message))

    def string_list(self, value: Any, path: str) -> bool:
        if not isinstance(value, list):
            self.fail(path, f"must be array, not {_type_name(value)}")
            return False
        ok = True
        for i, item in enumerate(value):
            if not isinstance(item, str):
                self.fail(f"{path}/{i}", f"must be string, not {_type_name(item)}")
                ok = False
        return ok

    def optional_string_list(self, obj: dict[str, Any], key: str, path: str) -> None:
        if obj.get(key) is not None:
            self.string_list(obj[key], f"{path}/{key}")

    def optional_bool(self, obj: dict[str, Any], key: str, path: str) -> None:
        value = obj.get(key)
        if value is not None and not isinstance(value, bool):
            self.fail(f"{path}/{key}", f"must be boolean, not {_type_name(value)}")


def _check_pr_diff(check: _Checker, value: Any) -> None:
    if not isinstance(value, dict):
        check.fail("/prDiff", f"must be object, not {_type_name(value)}")
        return
    if "enabled" not in value:
        check.fail("/prDiff", "must have required property 'enabled'")
    elif not isinstance(value["enabled"], bool):
        check.fail("/prDiff/enabled", f"must be boolean, not {_type_name(value['enabled'])}")
    if "maxLines" in value:
        max_lines = value["maxLines"]
        if not _is_number(max_lines):
            check.fail("/prDiff/maxLines", f"must be number, not {_type_name(max_lines)}")
        elif max_lines < 1:
            check.fail("/prDiff/maxLines", "must be >= 1")


def _check_hotlink(check: _Checker, value: Any) -> None:
    if isinstance(value, bool):
        return
    if not isinstance(value, dict):
        check.fail("/hotlinkIssues", f"must be boolean or object, not {_type_name(value)}")
        return
    if "prefix" not in value:
        check.fail("/hotlinkIssues", "must have required property 'prefix'")
    elif not isinstance(value["prefix"], str):
        check.fail(
            "/hotlinkIssues/prefix", f"must be string, not {_type_name(value['prefix'])}"
        )


def _check_new_issue(check: _Checker, value: Any) -> None:
    if not isinstance(value, dict):
        check.fail("/newIssue", f"must be object, not {_type_name(value)}")
    elif "labels" not in value:
        check.fail("/newIssue", "must have required property 'labels'")
    else:
        check.string_list(value["labels"], "/newIssue/labels")


def _check_workflow_run(check: _Checker, value: Any) -> None:
    if not isinstance(value, dict):
        check.fail("/workflowRun", f"must be object, not {_type_name(value)}")
        return
    branch = value.get("matchingBranch")
    if branch is not None:
        if not isinstance(branch, str):
            check.fail(
                "/workflowRun/matchingBranch", f"must be string, not {_type_name(branch)}"
            )
        else:
            try:
                safe_regex.check_pattern(branch)
            except safe_regex.PatternError as exc:
                check.fail(
                    "/workflowRun/matchingBranch", f"must be a valid regular expression: {exc.message}"
                )
    check.optional_string_list(value, "includingWorkflows", "/workflowRun")
    check.optional_string_list(value, "excludingWorkflows", "/workflowRun")


def validate_repo_state(
    raw: dict[str, Any], *, is_new: bool, default_options: dict[str, Any] | None = None
) -> tuple[dict[str, Any], list[ValidationIssue]]:
    """Validate and normalise a repo connection's state content.

    Returns `(state, issues)`. When `issues` is empty, `state` is the effective configuration:
    the content as hookshot would keep it (unknown keys preserved, `ignoreHooks` converted and
    dropped, `enableHooks` filled with `DEFAULT_HOOKS`) plus the runtime defaults
    `commandPrefix`, `showIssueRoomLink` (from `default_options`, else false), `hotlinkIssues`
    (the config default wins, as in hookshot) and `prDiff.maxLines`. Write
    `storable_state(state, raw)` to the room so these defaults stay defaults.

    `is_new` applies hookshot's stricter rules for new connections: `enableHooks` may only hold
    `ALLOWED_EVENTS` names and `ignoreHooks` is refused.
    """
    check = _Checker()
    if not isinstance(raw, dict):
        check.fail("", f"must be object, not {_type_name(raw)}")
        return {}, check.issues
    state = copy.deepcopy(raw)

    for key in ("org", "repo"):
        if key not in state:
            check.fail("", f"must have required property '{key}'")
        elif not isinstance(state[key], str):
            check.fail(f"/{key}", f"must be string, not {_type_name(state[key])}")
        elif not state[key].strip():
            check.fail(f"/{key}", "must not be empty")

    priority = state.get("priority")
    if priority is not None and not _is_number(priority):
        check.fail("/priority", f"must be number, not {_type_name(priority)}")

    enable_ok = state.get("enableHooks") is None or check.string_list(
        state["enableHooks"], "/enableHooks"
    )
    ignore_ok = state.get("ignoreHooks") is None or check.string_list(
        state["ignoreHooks"], "/ignoreHooks"
    )

    prefix = state.get("commandPrefix")
    if prefix is not None:
        if not isinstance(prefix, str):
            check.fail("/commandPrefix", f"must be string, not {_type_name(prefix)}")
        elif len(prefix) < COMMAND_PREFIX_MIN:
            check.fail("/commandPrefix", "must NOT have fewer than 2 characters")
        elif len(prefix) > COMMAND_PREFIX_MAX:
            check.fail("/commandPrefix", "must NOT have more than 24 characters")

    check.optional_bool(state, "showIssueRoomLink", "")
    check.optional_bool(state, "showUrlPreviews", "")
    check.optional_string_list(state, "includingLabels", "")
    check.optional_string_list(state, "excludingLabels", "")
    if state.get("prDiff") is not None:
        _check_pr_diff(check, state["prDiff"])
    if state.get("newIssue") is not None:
        _check_new_issue(check, state["newIssue"])
    if state.get("hotlinkIssues") is not None:
        _check_hotlink(check, state["hotlinkIssues"])
    if state.get("workflowRun") is not None:
        _check_workflow_run(check, state["workflowRun"])

    if check.issues:
        return state, check.issues

    # hookshot runs these checks only once the schema passed, and reports them one at a time.
    if is_new and enable_ok and state.get("enableHooks"):
        invalid = [h for h in state["enableHooks"] if h not in ALLOWED_EVENTS]
        if invalid:
            check.fail(
                "/enableHooks",
                "'enableHooks' must only contain allowed values. "
                f"Found invalid values {','.join(invalid)}",
            )
            return state, check.issues
    if ignore_ok and state.get("ignoreHooks") is not None:
        if is_new:
            check.fail("/ignoreHooks", "`ignoreHooks` cannot be used with new connections")
            return state, check.issues
        state["enableHooks"] = HookFilter.convert_ignored_hooks_to_enabled_hooks(
            state.get("enableHooks") or [], state["ignoreHooks"], DEFAULT_HOOKS
        )
    state.pop("ignoreHooks", None)
    if state.get("enableHooks") is None:
        state["enableHooks"] = list(DEFAULT_HOOKS)

    settings = RepoSettings.from_state(state, default_options)
    state["commandPrefix"] = settings.command_prefix
    state["showIssueRoomLink"] = settings.show_issue_room_link
    state["hotlinkIssues"] = (
        False if settings.hotlink_prefix is None else {"prefix": settings.hotlink_prefix}
    )
    if isinstance(state.get("prDiff"), dict) and "maxLines" not in state["prDiff"]:
        state["prDiff"]["maxLines"] = DEFAULT_PR_DIFF_MAX_LINES
    return state, check.issues


def storable_state(state: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
    """The content to write to the room for a validated `state` that came from `raw`.

    Keeps what the user gave (normalised) and `enableHooks` (hookshot stores it too), but not
    the runtime defaults `validate_repo_state` filled in, so config defaults stay live.
    """
    content = copy.deepcopy(state)
    for key in ("commandPrefix", "showIssueRoomLink", "hotlinkIssues", "prDiff"):
        if raw.get(key) is None:
            content.pop(key, None)
        else:
            content[key] = copy.deepcopy(raw[key])
    return content


# --- webhook subscription -------------------------------------------------------------------

#: GitHub events we format that have no enableHooks name: always subscribed, always posted.
#: `watch` is left out on purpose: GitHub sends `watch.started` *and* `star.created` for one
#: star, so subscribing to both would post it twice. (`watch` is still formatted, for hooks
#: that someone else set up with only `watch`.)
ALWAYS_SUBSCRIBED_EVENTS: tuple[str, ...] = (
    "commit_comment",
    "create",
    "delete",
    "fork",
    "gollum",
    "member",
    "public",
    "star",
)


def _events_for_hook(name: str) -> tuple[str, ...]:
    # `issue.comment*` is checked against ("issue.comment.created", "issue.comment") only, so
    # the root `issue` does not enable comments; `pull_request` does enable reviews.
    if name.startswith("issue.comment"):
        return ("issue_comment",)
    if name == "issue" or name.startswith("issue."):
        return ("issues",)
    if name == "pull_request.reviewed":
        return ("pull_request_review",)
    if name == "pull_request":
        return ("pull_request", "pull_request_review")
    if name.startswith("pull_request."):
        return ("pull_request",)
    if name == "push":
        return ("push",)
    if name == "release" or name.startswith("release."):
        return ("release",)
    if name == "workflow" or name.startswith("workflow."):
        return ("workflow_run",)
    return ()


def github_events_for_hooks(enable_hooks: Iterable[str]) -> list[str]:
    """The `events` list of the GitHub repo hook for a connection with these `enableHooks`.

    Mapping: `issue*` → `issues`; `issue.comment*` → `issue_comment`; `pull_request` →
    `pull_request` + `pull_request_review`; `pull_request.reviewed` → `pull_request_review`;
    other `pull_request.*` → `pull_request`; `push` → `push`; `release*` → `release`;
    `workflow*` → `workflow_run`. `ALWAYS_SUBSCRIBED_EVENTS` are always added. `ping` needs no
    subscription (GitHub sends it on creation and on `/pings`). Unknown names add nothing.
    The result is sorted, so two lists can be compared to compute `add_events`/`remove_events`.
    """
    events: set[str] = set(ALWAYS_SUBSCRIBED_EVENTS)
    for name in enable_hooks:
        events.update(_events_for_hook(name))
    return sorted(events)
