"""JiraProject state as hookshot's: validation of new state, leniency for state found in rooms,
the canonical URL as state key, and the project id that only JIRA's answer sets."""

from __future__ import annotations

from typing import Any

import pytest

from hookshot_py.config import JiraConfig
from hookshot_py.config.sections import JiraWebhook
from hookshot_py.connections.base import Connection
from hookshot_py.jira.connection import JiraProjectType
from hookshot_py.jira.format import Subject
from hookshot_py.jira.models import EVENT_TYPE

PLAY = "https://acme.atlassian.net/projects/PLAY"


def cloud() -> JiraProjectType:
    return JiraProjectType(JiraConfig(webhook=JiraWebhook(secret="s")), accounts=None)  # type: ignore[arg-type]


def on_prem() -> JiraProjectType:
    config = JiraConfig(webhook=JiraWebhook(secret="s"), url="https://jira.corp/ctx")
    return JiraProjectType(config, accounts=None)  # type: ignore[arg-type]


def paths(issues: list[Any]) -> set[str]:
    return {i.path for i in issues}


def test_new_state_is_normalised_to_hookshots_fields() -> None:
    state, issues = cloud().validate(
        {"url": "https://acme.atlassian.net/jira/software/projects/play/boards/2"}, existing=None, is_new=True
    )
    assert issues == [] and state == {"url": PLAY, "events": ["issue_created"]}
    state, issues = cloud().validate(
        {"url": PLAY, "events": ["version_released", "comment_created", "version_released"], "commandPrefix": "!pl",
         "priority": 3}, existing=None, is_new=True,
    )
    assert issues == [] and state == {"url": PLAY, "events": ["version_released", "comment_created"],
                                      "commandPrefix": "!pl", "priority": 3}
    assert cloud().state_key(state) == PLAY
    config = cloud().parse(state)
    assert (config.ref.key, config.ref.host, config.command_prefix) == ("PLAY", "acme.atlassian.net", "!pl")


@pytest.mark.parametrize(
    ("state", "bad"),
    [
        ({}, {"/url"}),
        ({"url": "https://acme.atlassian.net/browse/PLAY-1"}, {"/url"}),
        ({"url": PLAY, "events": ["issue.changed"]}, {"/events"}),
        ({"url": PLAY, "events": "issue_created"}, {"/events"}),
        ({"url": PLAY, "commandPrefix": "!"}, {"/commandPrefix"}),
        ({"url": PLAY, "priority": "high"}, {"/priority"}),
        ({"url": PLAY, "id": 10000}, {"/id"}),
        ({"url": PLAY, "enableHooks": []}, {"/enableHooks"}),
    ],
)
def test_new_state_refusals(state: dict[str, Any], bad: set[str]) -> None:
    _, issues = cloud().validate(state, existing=None, is_new=True)
    assert paths(issues) == bad


def test_the_id_comes_from_jira_never_from_the_caller() -> None:
    state, issues = cloud().validate({"url": PLAY, "id": "99999"}, existing=None, is_new=True)
    assert issues == [] and "id" not in state  # filled in by `prepare` from JIRA's answer
    existing = Connection("!r", EVENT_TYPE, PLAY, {"url": PLAY, "events": ["issue_created"], "id": "10000"})
    state, issues = cloud().validate({**existing.state, "events": ["issue_updated"]}, existing=existing, is_new=True)
    assert issues == [] and state["id"] == "10000"
    _, issues = cloud().validate({**existing.state, "id": "99999"}, existing=existing, is_new=True)
    assert paths(issues) == {"/id"}


def test_state_found_in_rooms_is_read_leniently() -> None:
    url = "https://example.org/my/test/project/TP"  # as hookshot's own e2e test writes it
    state, issues = cloud().validate({"url": url}, existing=None, is_new=False)
    assert issues == [] and state == {"url": url, "events": ["issue_created"]}
    state, issues = cloud().validate(
        {"url": url, "events": ["issue.created"], "id": "7", "priority": "x", "other": 1}, existing=None, is_new=False
    )
    assert issues == [] and state == {"url": url, "events": ["issue_created"], "id": "7"}
    state, _ = cloud().validate({"url": url, "events": ["issue_updated", "bogus"]}, existing=None, is_new=False)
    assert state["events"] == ["issue_updated"]
    # An edit through the bridge keeps a URL written that way.
    existing = Connection("!r", EVENT_TYPE, url, {"url": url, "events": ["issue_created"]})
    state, issues = cloud().validate({"url": url, "events": ["issue_updated"]}, existing=existing, is_new=True)
    assert issues == [] and state["url"] == url


def test_on_premise_projects_must_be_on_the_configured_instance() -> None:
    state, issues = on_prem().validate({"url": "https://jira.corp/ctx/projects/ops"}, existing=None, is_new=True)
    assert issues == [] and state["url"] == "https://jira.corp/ctx/projects/OPS"
    _, issues = on_prem().validate({"url": "https://jira.other/projects/OPS"}, existing=None, is_new=True)
    assert paths(issues) == {"/url"} and "https://jira.corp/ctx" in issues[0].message


async def test_the_index_follows_connections() -> None:
    projects = cloud()
    a = Connection("!a", EVENT_TYPE, PLAY, {"url": PLAY, "events": ["issue_created"], "id": "10000"})
    b = Connection("!b", EVENT_TYPE, PLAY, {"url": PLAY, "events": ["issue_created"]})
    await projects.start([a, b])
    by_key = Subject("acme.atlassian.net", "https://acme.atlassian.net", "PLAY", None)
    by_id = Subject("acme.atlassian.net", "https://acme.atlassian.net", None, "10000")
    assert [c.room_id for c in projects.connections_for(by_key)] == ["!a", "!b"]
    assert [c.room_id for c in projects.connections_for(by_id)] == ["!a"]
    assert projects.connections_for(Subject("other.atlassian.net", "https://other.atlassian.net", "PLAY", "10000")) == []
    await projects.on_unloaded(a)
    assert [c.room_id for c in projects.connections_for(by_key)] == ["!b"]
    assert projects.connections_for(by_id) == []
