from __future__ import annotations

import pytest

from hookshot_py.config import GitFlicConfig, GitFlicInstance, GitFlicWebhook
from hookshot_py.gitflic.hooks import project_web_url, webhook_url
from hookshot_py.gitflic.models import (
    ProjectRef,
    ProjectRefError,
    instance_for_host,
    is_alias,
    parse_project,
    project_key,
)


def config(public_url: str | None = None) -> GitFlicConfig:
    return GitFlicConfig(
        instances={
            "gitflic": GitFlicInstance(url="https://gitflic.ru", api_url="https://api.gitflic.ru"),
            "corp": GitFlicInstance(url="https://git.corp.example", api_url="https://git.corp.example/rest-api"),
        },
        webhook=GitFlicWebhook(public_url=public_url),
        default_instance="gitflic",
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("acme/widgets", ProjectRef("gitflic", "acme", "widgets")),
        ("  acme/widgets ", ProjectRef("gitflic", "acme", "widgets")),
        ("https://gitflic.ru/project/acme/widgets", ProjectRef("gitflic", "acme", "widgets")),
        ("https://www.gitflic.ru/project/acme/widgets/issue/3", ProjectRef("gitflic", "acme", "widgets")),
        ("https://gitflic.ru/project/acme/widgets.git", ProjectRef("gitflic", "acme", "widgets")),
        ("https://git.corp.example/project/team_1/my.lib", ProjectRef("corp", "team_1", "my.lib")),
        ("http://GIT.CORP.EXAMPLE/project/a/b/", ProjectRef("corp", "a", "b")),
    ],
)
def test_parse_project(text: str, expected: ProjectRef) -> None:
    assert parse_project(text, config()) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("widgets", "not of the form owner/project"),
        ("acme/widgets/extra", "not of the form owner/project"),
        ("acme/", "not a valid GitFlic project alias"),
        ("/widgets", "not a valid GitFlic owner alias"),
        ("ac me/widgets", "not a valid GitFlic owner alias"),
        ("acme/..", "not a valid GitFlic project alias"),
        ("https://github.com/project/acme/widgets", "github.com is not a GitFlic instance this bridge knows"),
        ("https://gitflic.ru/acme/widgets", "is not a project address"),
        ("https://gitflic.ru/project/acme", "is not a project address"),
        ("ftp://gitflic.ru/project/acme/widgets", "is not an http(s) URL"),
        ("https://gitflic.ru/project/acme/wid%2Fgets", "not a valid GitFlic project alias"),
    ],
)
def test_parse_project_refuses(text: str, message: str) -> None:
    with pytest.raises(ProjectRefError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_project(text, config())


def test_aliases() -> None:
    assert is_alias("my-project_2.0")
    assert not is_alias("")
    assert not is_alias("a/b")
    assert not is_alias("a..b")
    assert not is_alias(".hidden")
    assert not is_alias(3)
    assert not is_alias("x" * 101)


def test_project_key_ignores_case() -> None:
    assert project_key("Acme", "Widgets") == project_key("acme", "widgets") == "acme/widgets"


@pytest.mark.parametrize(
    ("public_url", "expected"),
    [
        (None, None),
        ("https://bridge.example/", "https://bridge.example/gitflic/webhook"),
        ("https://bridge.example/hooks/", "https://bridge.example/hooks/gitflic/webhook"),
        ("https://bridge.example/gitflic/webhook/", "https://bridge.example/gitflic/webhook"),
        ("https://bridge.example/x/gitflic/webhook/", "https://bridge.example/x/gitflic/webhook"),
    ],
)
def test_webhook_url(public_url: str | None, expected: str | None) -> None:
    assert webhook_url(config(public_url)) == expected


def test_instance_lookup_and_web_url() -> None:
    cfg = config()
    assert instance_for_host(cfg, "www.gitflic.ru") == "gitflic"
    assert instance_for_host(cfg, "example.org") is None
    assert project_web_url(cfg, "corp", "a", "b") == "https://git.corp.example/project/a/b"
    assert project_web_url(cfg, "gone", "a", "b") is None
