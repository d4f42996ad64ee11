"""hookshot's GitLabRepo state: what loads, what a new connection may hold, and the hook flags
the rooms' events need."""

from __future__ import annotations

from typing import Any

import pytest

from hookshot_py.gitlab.models import ALLOWED_EVENTS, DEFAULT_HOOKS, HOOKSHOT_EVENTS, hook_flags
from hookshot_py.gitlab.state import RepoConfig, is_project_path, state_key, validate_state


def validate(state: Any, *, is_new: bool = True, existing: dict[str, Any] | None = None) -> tuple[dict, list[str]]:
    normalized, issues = validate_state(state, instances=["gl", "other"], is_new=is_new, existing=existing)
    return normalized, [f"{i.path}: {i.message}" for i in issues]


def test_a_new_connection_gets_hookshots_default_hooks_written() -> None:
    state, issues = validate({"instance": "gl", "path": "/acme/widgets/"})
    assert issues == []
    assert state == {"instance": "gl", "path": "acme/widgets", "enableHooks": list(DEFAULT_HOOKS)}
    assert state_key(state) == "gl/acme/widgets"
    assert set(HOOKSHOT_EVENTS) <= set(DEFAULT_HOOKS)


def test_state_written_by_hookshot_loads_unchanged() -> None:
    hookshot = {
        "instance": "gl", "path": "Acme/Widgets", "enableHooks": ["merge_request", "push"], "commandPrefix": "!gitlab",
        "pushTagsRegex": "^v", "includingLabels": ["bug"], "excludingLabels": [], "includeCommentBody": True,
        "priority": 3, "showUrlPreviews": False, "somethingNew": {"kept": True},
    }
    state, issues = validate(hookshot, is_new=False)
    assert issues == [] and state == hookshot
    cfg = RepoConfig.from_state(state)
    assert (cfg.instance, cfg.path, cfg.command_prefix, cfg.include_comment_body) == ("gl", "Acme/Widgets", "!gitlab",
                                                                                      True)
    assert cfg.including_labels == {"bug"} and cfg.tag_allowed("v1") and not cfg.tag_allowed("1.0")


def test_existing_state_without_enable_hooks_uses_the_defaults() -> None:
    cfg = RepoConfig.from_state({"instance": "gl", "path": "acme/widgets"})
    assert cfg.hooks.enabled_hooks == frozenset(DEFAULT_HOOKS)
    assert cfg.command_prefix == "!gl"


@pytest.mark.parametrize(
    ("state", "problem"),
    [
        ({"path": "a/b"}, ": must have required property 'instance'"),
        ({"instance": "gl"}, ": must have required property 'path'"),
        ({"instance": "nope", "path": "a/b"}, "/instance: must be a configured GitLab instance: gl, other"),
        ({"instance": "gl", "path": "widgets"}, "/path: must be a GitLab project path such as `group/project`"),
        ({"instance": "gl", "path": "a/b", "enableHooks": ["push", "issue.labeled"]}, "/enableHooks: `enableHooks`"),
        ({"instance": "gl", "path": "a/b", "enableHooks": "push"}, "/enableHooks: must be array, not string"),
        ({"instance": "gl", "path": "a/b", "ignoreHooks": ["push"]},
         "/ignoreHooks: `ignoreHooks` cannot be used with new connections"),
        ({"instance": "gl", "path": "a/b", "commandPrefix": "!"}, "/commandPrefix: must be a word of 2 to 24"),
        ({"instance": "gl", "path": "a/b", "pushTagsRegex": "(?<=v)1"},
         "/pushTagsRegex: must be a valid regular expression"),
        ({"instance": "gl", "path": "a/b", "pushTagsRegex": "(a"}, "/pushTagsRegex: must be a valid regular"),
        ({"instance": "gl", "path": "a/b", "includeCommentBody": "yes"}, "/includeCommentBody: must be boolean"),
        ({"instance": "gl", "path": "a/b", "includingLabels": ["a", 3]}, "/includingLabels/1: must be string"),
        ({"instance": "gl", "path": "a/b", "priority": "high"}, "/priority: must be number, not string"),
        ("gl/a/b", ": must be object, not string"),
    ],
)
def test_refused(state: Any, problem: str) -> None:
    _, issues = validate(state)
    assert any(i.startswith(problem) for i in issues), issues


def test_ignore_hooks_in_existing_state_is_converted() -> None:
    state, issues = validate(
        {"instance": "gl", "path": "a/b", "ignoreHooks": ["merge_request", "wiki"]}, is_new=False
    )
    assert issues == [] and "ignoreHooks" not in state
    assert state["enableHooks"] == [h for h in DEFAULT_HOOKS if not h.startswith(("merge_request", "wiki"))]


def test_editing_a_connection_that_had_ignore_hooks_keeps_working() -> None:
    existing = {"instance": "gl", "path": "a/b", "ignoreHooks": ["push"]}
    state, issues = validate({**existing, "includeCommentBody": True}, existing=existing)
    assert issues == [] and "push" not in state["enableHooks"]
    _, issues = validate({**existing, "ignoreHooks": ["wiki"]}, existing=existing)
    assert issues and "ignoreHooks" in issues[0]


@pytest.mark.parametrize(
    ("path", "ok"),
    [("a/b", True), ("group/sub/project.name_x-1", True), ("a", False), ("-a/b", False), ("a/b.git", False),
     ("a//b", False), ("a/b c", False), ("a/" + "x" * 300, False)],
)
def test_project_paths(path: str, ok: bool) -> None:
    assert is_project_path(path) is ok


@pytest.mark.parametrize(
    ("events", "flags"),
    [
        (DEFAULT_HOOKS, ("push_events", "tag_push_events", "issues_events", "merge_requests_events", "note_events",
                         "wiki_page_events", "releases_events")),
        (["merge_request.open"], ("merge_requests_events",)),
        (["merge_request"], ("merge_requests_events", "note_events")),
        (["merge_request.review.comments"], ("merge_requests_events", "note_events")),
        (["note.issue"], ("note_events",)),
        (["pipeline.failed"], ("pipeline_events",)),
        (["wiki.create", "release.created"], ("wiki_page_events", "releases_events")),
        (["tag_push"], ("tag_push_events",)),
        ([], ()),
        (ALLOWED_EVENTS, ("push_events", "tag_push_events", "issues_events", "merge_requests_events", "note_events",
                          "pipeline_events", "wiki_page_events", "releases_events")),
    ],
)
def test_hook_flags(events: list[str], flags: tuple[str, ...]) -> None:
    assert hook_flags(events) == flags
