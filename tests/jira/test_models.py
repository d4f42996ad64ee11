"""Project URLs as hookshot accepts them, and where an instance's web address is."""

from __future__ import annotations

import pytest

from hookshot_py.jira.models import ProjectRef, ProjectUrlError, instance_base, parse_project_url, project_url


@pytest.mark.parametrize(
    ("url", "origin", "key"),
    [
        ("https://acme.atlassian.net/projects/PLAY", "https://acme.atlassian.net", "PLAY"),
        ("https://acme.atlassian.net/jira/software/c/projects/play/boards/1", "https://acme.atlassian.net", "PLAY"),
        ("https://acme.atlassian.net/projects/PLAY/", "https://acme.atlassian.net", "PLAY"),
        ("https://jira.corp:8443/ctx/secure/RapidBoard.jspa?rapidView=3&projectKey=OPS", "https://jira.corp:8443",
         "OPS"),
        ("http://127.0.0.1:8080/projects/OPS_2?x=1", "http://127.0.0.1:8080", "OPS_2"),
    ],
)
def test_project_urls_hookshot_accepts(url: str, origin: str, key: str) -> None:
    assert parse_project_url(url) == ProjectRef(origin, key)


@pytest.mark.parametrize(
    "url",
    [
        "acme.atlassian.net/projects/PLAY",
        "ftp://acme.atlassian.net/projects/PLAY",
        "https://acme.atlassian.net/browse/PLAY-1",
        "https://acme.atlassian.net/projects/",
        "https://acme.atlassian.net/projects/1ABC",
        "https:///projects/PLAY",
        "not a url at all",
    ],
)
def test_not_project_urls(url: str) -> None:
    with pytest.raises(ProjectUrlError):
        parse_project_url(url)


def test_lenient_reading_takes_the_last_segment_as_hookshot_does() -> None:
    # hookshot's own e2e test connects a room with the project's REST `self` URL.
    url = "https://example.org/my/test/project/TP"
    with pytest.raises(ProjectUrlError):
        parse_project_url(url)
    assert parse_project_url(url, lenient=True) == ProjectRef("https://example.org", "TP")
    assert ProjectRef("https://Example.ORG:8443", "TP").host == "example.org:8443"


def test_canonical_url_keeps_an_on_premise_context_path() -> None:
    ref = parse_project_url("https://jira.corp/ctx/projects/ops/summary")
    assert project_url(ref) == "https://jira.corp/projects/OPS"
    assert project_url(ref, "https://jira.corp/ctx") == "https://jira.corp/ctx/projects/OPS"
    assert project_url(ref, "https://other.corp") == "https://jira.corp/projects/OPS"


@pytest.mark.parametrize(
    ("rest", "base"),
    [
        ("https://acme.atlassian.net/rest/api/2/issue/10042", "https://acme.atlassian.net"),
        ("https://jira.corp:8443/ctx/rest/api/2/issue/1", "https://jira.corp:8443/ctx"),
        ("https://example.org/TP-8", "https://example.org"),
        ("https://my-test-jira:9995/", "https://my-test-jira:9995"),
        ("javascript:alert(1)", None),
        ("/rest/api/2/issue/1", None),
    ],
)
def test_instance_base(rest: str, base: str | None) -> None:
    assert instance_base(rest) == base
