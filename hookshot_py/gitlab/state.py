"""The `uk.half-shot.matrix-hookshot.gitlab.repository` state: validation and the typed config.

Mirrors hookshot's `GitLabRepoConnection.validateState` (an AJV schema with
`additionalProperties: true`; `instance` and `path` required; `enableHooks` checked against the
allowed names and `ignoreHooks` refused for new connections only), so state written by hookshot
loads unchanged. Ours on top: `pushTagsRegex` must be a pattern RE2 runs (a room member's regex
never runs on the event loop with backtracking), `path` must look like a GitLab path.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hookshot_py import safe_regex
from hookshot_py.connections.validation import prefix_problem
from hookshot_py.errors import ValidationIssue
from hookshot_py.forges.filters import HookFilter, labels_allowed
from hookshot_py.forges.payload import json_type_name
from hookshot_py.gitlab.models import (
    ALLOWED_EVENTS,
    DEFAULT_COMMAND_PREFIX,
    DEFAULT_HOOKS,
    ProjectRef,
    hook_flags,
)

__all__ = ["RepoConfig", "state_key", "validate_state"]

# `group/subgroup/project`: GitLab's path characters, no segment starting with `-` or ending in `.git`.
_SEGMENT = r"[A-Za-z0-9_.][A-Za-z0-9_.\-]{0,254}"
_PATH = re.compile(rf"^{_SEGMENT}(?:/{_SEGMENT}){{1,20}}$")
MAX_PATH_LENGTH = 1024


def _type(value: Any) -> str:
    name = json_type_name(value)
    return "number" if name == "integer" else name


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _string_list(state: dict[str, Any], key: str, issues: list[ValidationIssue]) -> bool:
    value = state.get(key)
    if value is None:
        return True
    if not isinstance(value, list):
        issues.append(ValidationIssue(f"/{key}", f"must be array, not {_type(value)}"))
        return False
    bad = [i for i, item in enumerate(value) if not isinstance(item, str)]
    for i in bad:
        issues.append(ValidationIssue(f"/{key}/{i}", f"must be string, not {_type(value[i])}"))
    return not bad


def is_project_path(path: str) -> bool:
    return len(path) <= MAX_PATH_LENGTH and bool(_PATH.match(path)) and not path.lower().endswith(".git")


def validate_state(
    raw: Any,
    *,
    instances: Iterable[str],
    is_new: bool,
    existing: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], list[ValidationIssue]]:
    """Normalise a connection's state; returns it with the problems found.

    `is_new`: created or edited through the bridge (strict); else found in a room (lenient, as
    hookshot is with existing state). An `ignoreHooks` the connection already had is converted
    rather than refused, so editing an old connection keeps working.
    """
    issues: list[ValidationIssue] = []
    if not isinstance(raw, dict):
        return {}, [ValidationIssue("", f"must be object, not {_type(raw)}")]
    state = copy.deepcopy(raw)
    known = list(instances)
    for key in ("instance", "path"):
        value = state.get(key)
        if key not in state:
            issues.append(ValidationIssue("", f"must have required property '{key}'"))
        elif not isinstance(value, str):
            issues.append(ValidationIssue(f"/{key}", f"must be string, not {_type(value)}"))
    if isinstance(state.get("instance"), str) and state["instance"] not in known:
        issues.append(ValidationIssue(
            "/instance", f"must be a configured GitLab instance: {', '.join(known) or '(none configured)'}"
        ))
    if isinstance(state.get("path"), str):
        state["path"] = state["path"].strip().strip("/")
        if is_new and not is_project_path(state["path"]):
            issues.append(ValidationIssue("/path", "must be a GitLab project path such as `group/project`"))
        elif not state["path"]:
            issues.append(ValidationIssue("/path", "must not be empty"))

    priority = state.get("priority")
    if priority is not None and (not isinstance(priority, int | float) or isinstance(priority, bool)):
        issues.append(ValidationIssue("/priority", f"must be number, not {_type(priority)}"))
    enable_ok = _string_list(state, "enableHooks", issues)
    ignore_ok = _string_list(state, "ignoreHooks", issues)
    _string_list(state, "includingLabels", issues)
    _string_list(state, "excludingLabels", issues)
    for key in ("includeCommentBody", "showUrlPreviews"):
        if state.get(key) is not None and not isinstance(state[key], bool):
            issues.append(ValidationIssue(f"/{key}", f"must be boolean, not {_type(state[key])}"))
    if state.get("commandPrefix") is not None and (problem := prefix_problem(state["commandPrefix"])):
        issues.append(ValidationIssue("/commandPrefix", problem))
    pattern = state.get("pushTagsRegex")
    if pattern is not None:
        if not isinstance(pattern, str):
            issues.append(ValidationIssue("/pushTagsRegex", f"must be string, not {_type(pattern)}"))
        elif is_new:
            try:
                safe_regex.check_pattern(pattern)
            except safe_regex.PatternError as e:
                issues.append(ValidationIssue("/pushTagsRegex", f"must be a valid regular expression: {e.message}"))
    if issues:
        return state, issues

    if is_new and enable_ok and state.get("enableHooks"):
        invalid = [h for h in state["enableHooks"] if h not in ALLOWED_EVENTS]
        if invalid:
            return state, [ValidationIssue(
                "/enableHooks",
                f"`enableHooks` must only contain allowed values ({', '.join(ALLOWED_EVENTS)}); "
                f"found {', '.join(invalid)}",
            )]
    if ignore_ok and state.get("ignoreHooks") is not None:
        inherited = existing is not None and existing.get("ignoreHooks") == state["ignoreHooks"]
        if is_new and not inherited:
            return state, [ValidationIssue("/ignoreHooks", "`ignoreHooks` cannot be used with new connections")]
        state["enableHooks"] = HookFilter.convert_ignored_hooks_to_enabled_hooks(
            _strings(state.get("enableHooks")), state["ignoreHooks"], DEFAULT_HOOKS
        )
    state.pop("ignoreHooks", None)
    if is_new and state.get("enableHooks") is None:
        state["enableHooks"] = list(DEFAULT_HOOKS)  # hookshot writes the list it defaults to
    return state, []


def state_key(state: dict[str, Any]) -> str:
    """hookshot's state key: `{instance}/{path}` (with the case typed)."""
    return f"{state['instance']}/{state['path']}"


@dataclass(frozen=True)
class RepoConfig:
    """A GitLab connection's typed state, parsed once per state change: what the webhook route,
    `format.py`, the review debouncer and the commands read."""

    instance: str
    path: str
    hooks: HookFilter
    command_prefix: str
    push_tags: str | None  # an RE2 pattern, searched in the tag name
    push_tags_broken: bool  # hand-written state with a pattern RE2 refuses: matches no tag
    including_labels: frozenset[str]
    excluding_labels: frozenset[str]
    include_comment_body: bool

    @property
    def ref(self) -> ProjectRef:
        return ProjectRef(self.instance, self.path)

    @property
    def flags(self) -> tuple[str, ...]:
        """The project hook's flags this connection needs."""
        return hook_flags(self.hooks.enabled_hooks)

    def wants(self, *names: str) -> bool:
        return self.hooks.allows(*names)

    def labels_allowed(self, labels: Iterable[str]) -> bool:
        return labels_allowed(set(labels), self.including_labels, self.excluding_labels)

    def tag_allowed(self, tag: str) -> bool:
        if self.push_tags_broken:
            return False
        return self.push_tags is None or safe_regex.search(self.push_tags, tag)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RepoConfig:
        instance, path = state.get("instance"), state.get("path")
        if not isinstance(instance, str) or not isinstance(path, str) or not path:
            raise ValueError("a GitLab project connection needs `instance` and `path`")
        enabled = state.get("enableHooks")
        pattern = state.get("pushTagsRegex")
        broken = False
        if isinstance(pattern, str) and pattern:
            try:
                safe_regex.check_pattern(pattern)
            except safe_regex.PatternError:
                broken = True
        else:
            pattern = None
        prefix = state.get("commandPrefix")
        return cls(
            instance,
            path.strip("/"),
            HookFilter(DEFAULT_HOOKS if enabled is None else _strings(enabled)),
            prefix if isinstance(prefix, str) and prefix else DEFAULT_COMMAND_PREFIX,
            None if broken else pattern,
            broken,
            frozenset(_strings(state.get("includingLabels"))),
            frozenset(_strings(state.get("excludingLabels"))),
            state.get("includeCommentBody") is True,
        )
