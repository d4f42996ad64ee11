"""JIRA deliveries → notices, worded as hookshot's JiraProjectConnection; payload text escaped."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from hookshot_py.forges.payload import Payload, PayloadError
from hookshot_py.jira.format import (
    ISSUE_KEY,
    MAX_CHANGES,
    PROJECT_KEY,
    Subject,
    event_name,
    format_delivery,
    subject_of,
)
from hookshot_py.jira.models import ProjectRef
from hookshot_py.markdown import render_markdown

from .conftest import fixture

PLAY = ProjectRef("https://acme.atlassian.net", "PLAY")
PLAY_URL = "https://acme.atlassian.net/projects/PLAY"


def fmt(event: str, data: dict[str, Any]) -> Any:
    return format_delivery(event, Payload(data), project=PLAY, project_url=PLAY_URL)


def html(notice: Any) -> str:
    return render_markdown(notice.markdown, inline=notice.inline)


def test_event_names() -> None:
    assert event_name("jira:issue_created") == "issue_created"
    assert event_name("comment_created") == "comment_created"
    assert event_name("jira:version_released") == "version_released"
    assert event_name("jira:issue_deleted") is None
    assert event_name(None) is None


def test_issue_created_as_hookshot_words_it_with_the_summary_escaped() -> None:
    notice = fmt("issue_created", fixture("issue_created"))
    summary = "Rabbit hole *leads* [nowhere](https://evil.example) <b>"
    assert notice.body == (
        f'Alice Liddell created a new JIRA issue [PLAY-42](https://acme.atlassian.net/browse/PLAY-42): "{summary}"'
    )
    rendered = html(notice)
    assert rendered.startswith('Alice Liddell created a new JIRA issue <a href="https://acme.atlassian.net/browse/PLAY-42">')
    assert "evil.example\"" not in rendered and "<em>" not in rendered and "<b>" not in rendered
    assert "[nowhere](https://evil.example) &lt;b&gt;" in rendered
    assert notice.extra[ISSUE_KEY] == {
        "id": "10042", "key": "PLAY-42", "api_url": "https://acme.atlassian.net/rest/api/2/issue/10042",
    }
    assert notice.extra[PROJECT_KEY]["key"] == "PLAY"
    assert notice.extra["external_url"] == "https://acme.atlassian.net/browse/PLAY-42"
    content = notice.content(rendered)
    assert content["msgtype"] == "m.notice" and content["format"] == "org.matrix.custom.html"


def test_hookshots_own_e2e_payload_gives_its_expected_text() -> None:
    data = fixture("issue_created")
    data["issue"]["self"] = "https://example.org/TP-8"
    data["issue"]["key"] = "TP-8"
    data["issue"]["fields"]["summary"] = "Test issue"
    data["issue"]["fields"]["creator"]["displayName"] = "Test User"
    assert fmt("issue_created", data).body == (
        'Test User created a new JIRA issue [TP-8](https://example.org/browse/TP-8): "Test issue"'
    )


def test_issue_updated_names_each_changed_field() -> None:
    notice = fmt("issue_updated", fixture("issue_updated"))
    assert notice.body == (
        "Bob updated JIRA [PLAY-42](https://acme.atlassian.net/browse/PLAY-42): "
        "\n - **status** changed from 'To Do' to 'In Progress'"
        "\n  - **assignee** changed from 'not set' to 'Bob'"
    )
    assert not notice.inline
    rendered = html(notice)
    assert rendered.count("<li>") == 2 and "<strong>status</strong>" in rendered


def test_one_change_stays_on_one_line() -> None:
    data = fixture("issue_updated")
    data["changelog"]["items"] = data["changelog"]["items"][:1]
    assert fmt("issue_updated", data).body.endswith("): **status** changed from 'To Do' to 'In Progress'")


def test_long_values_and_many_changes_are_cut() -> None:
    data = fixture("issue_updated")
    item = {"field": "description", "fromString": "x" * 5000, "toString": "line one\nline two"}
    data["changelog"]["items"] = [item] * (MAX_CHANGES + 5)
    body = fmt("issue_updated", data).body
    assert body.count("**description**") == MAX_CHANGES
    assert "and 5 more changes" in body
    assert "x" * 300 not in body and "…" in body
    assert "'line one line two'" in body


def test_an_update_without_changelog_posts_nothing() -> None:
    data = fixture("issue_updated")
    del data["changelog"]
    assert fmt("issue_updated", data) is None
    data["changelog"] = {"id": "1", "items": []}
    assert fmt("issue_updated", data) is None


def test_comment_created_quotes_the_comment_escaped() -> None:
    notice = fmt("comment_created", fixture("comment_created"))
    link = "https://acme.atlassian.net/browse/PLAY-42?focusedCommentId=10100"
    assert notice.body == (
        f'Bob commented on JIRA [PLAY-42]({link}): "Rabbit hole"'
        "\n> I found the *bottom*.\n> It is [here|https://example.org]."
    )
    rendered = html(notice)
    assert "<blockquote>" in rendered and "<em>" not in rendered
    assert notice.extra["external_url"] == link


def test_comment_body_in_atlassian_document_format() -> None:
    data = fixture("comment_created")
    data["comment"]["body"] = {
        "type": "doc", "version": 1,
        "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": "First"}, {"type": "hardBreak"},
                                               {"type": "text", "text": "second"}]},
            {"type": "paragraph", "content": [{"type": "text", "text": "Third"}]},
        ],
    }
    assert fmt("comment_created", data).body.endswith("\n> First\n> second\n> Third")


def test_version_released_names_the_rooms_project() -> None:
    notice = fmt("version_released", fixture("version_released"))
    assert notice.body == (
        "Version **released** for project [PLAY](https://acme.atlassian.net/projects/PLAY): "
        "[1.0](https://acme.atlassian.net/projects/PLAY/versions/10200) (_The one with the rabbit_)"
    )
    data = fixture("version_released")
    data["version"]["description"] = ""
    assert fmt("version_created", data).body.startswith("Version **created** for project")
    assert "(_" not in fmt("version_created", data).body


def test_subjects_route_by_instance_and_key_or_id() -> None:
    assert subject_of("issue_created", Payload(fixture("issue_created"))) == Subject(
        "acme.atlassian.net", "https://acme.atlassian.net", "PLAY", "10000"
    )
    assert subject_of("comment_created", Payload(fixture("comment_created"))).key == "PLAY"
    assert subject_of("version_released", Payload(fixture("version_released"))) == Subject(
        "acme.atlassian.net", "https://acme.atlassian.net", None, "10000"
    )
    on_prem = fixture("issue_created")
    on_prem["issue"]["self"] = "https://jira.corp:8443/ctx/rest/api/2/issue/10042"
    subject = subject_of("issue_created", Payload(on_prem))
    assert (subject.host, subject.base) == ("jira.corp:8443", "https://jira.corp:8443/ctx")
    assert fmt("issue_created", on_prem).body.count("https://jira.corp:8443/ctx/browse/PLAY-42") == 1


@pytest.mark.parametrize(
    ("event", "change", "path"),
    [
        ("issue_created", lambda d: d["issue"].pop("key"), "issue.key"),
        ("issue_created", lambda d: d["issue"]["fields"].pop("project"), "issue.fields.project"),
        ("issue_created", lambda d: d["issue"].update(self=5), "issue.self"),
        ("version_released", lambda d: d["version"].pop("self"), "version.self"),
    ],
)
def test_malformed_payloads_name_the_field(event: str, change: Any, path: str) -> None:
    data = copy.deepcopy(fixture(event if event != "version_released" else "version_released"))
    change(data)
    with pytest.raises(PayloadError) as err:
        subject_of(event, Payload(data))
        fmt(event, data)
    assert err.value.path == path


def test_missing_names_read_as_someone() -> None:
    data = fixture("issue_created")
    del data["issue"]["fields"]["creator"], data["issue"]["fields"]["reporter"], data["user"]
    assert fmt("issue_created", data).body.startswith("Someone created a new JIRA issue")
