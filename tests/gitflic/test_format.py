from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hookshot_py.gitflic.models import DELIVERED_ACTIONS
from hookshot_py.gitflic.format import format_delivery
from hookshot_py.gitflic.delivery import parse_delivery
from hookshot_py.gitflic.models import Delivery

FIXTURES = Path(__file__).parent / "fixtures"
INSTANCE = "https://gitflic.ru"
P = "https://gitflic.ru/project/acme/widgets"
PROJECT = f"[acme/widgets]({P})"
PROJECT_HTML = f'<a href="{P}">acme/widgets</a>'


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def fmt(payload: dict[str, Any], project: str | None = None) -> tuple[str, str]:
    delivery = parse_delivery(json.dumps(payload).encode())
    return format_delivery(delivery, instance_url=INSTANCE, project=project)


def body(name: str) -> str:
    return fmt(load(name))[0]


def body_of(payload: dict[str, Any]) -> str:
    return fmt(payload)[0]


def test_there_is_a_fixture_for_every_documented_action() -> None:
    actions = {load(p.stem)["action"] for p in FIXTURES.glob("*.json")}
    assert actions == set(DELIVERED_ACTIONS)


def test_issue_created() -> None:
    text, html = fmt(load("issue_create"))
    assert text == f'📥 **ivan** created issue [acme/widgets#12]({P}/issue/12): "Crash on empty config"'
    assert html == (
        f'📥 <strong>ivan</strong> created issue <a href="{P}/issue/12">acme/widgets#12</a>: '
        "&quot;Crash on empty config&quot;"
    )


def test_issue_updated_shows_status() -> None:
    assert body("issue_update") == (
        f'✏️ **ivan** updated issue [acme/widgets#12]({P}/issue/12): "Crash on empty config" (status: CLOSED)'
    )


def test_issue_note_quotes_the_comment() -> None:
    text, html = fmt(load("new_issue_note"))
    assert text == (
        f'🗣 **petr** commented on issue [acme/widgets#12]({P}/issue/12): "Crash on empty config"\n'
        "> I can reproduce this on 1.4.2.\n"
        "> The stack trace points at `load_config`."
    )
    assert html == (
        f'<p>🗣 <strong>petr</strong> commented on issue <a href="{P}/issue/12">acme/widgets#12</a>: '
        '"Crash on empty config"</p>\n<blockquote>\n<p>I can reproduce this on 1.4.2.\n'
        "The stack trace points at <code>load_config</code>.</p>\n</blockquote>"
    )


def test_merge_request_created() -> None:
    text, html = fmt(load("merge_request_create"))
    assert text == (
        f'🔵 **maria** opened merge request [acme/widgets!5]({P}/merge-request/5): "Add retry to uploader"'
        " (`feature/retry` → `master`)"
    )
    assert "(<code>feature/retry</code> → <code>master</code>)" in html


@pytest.mark.parametrize(
    ("name", "start"),
    [
        ("merge_request_update", "✏️ **maria** updated merge request"),
        ("merge_request_accept", "✅ **maria** approved merge request"),
        ("merge", "✳️ **maria** merged merge request"),
        ("merge_request_close", "⚫ **maria** closed merge request"),
        ("merge_request_cancel", "🚫 **maria** cancelled merge request"),
    ],
)
def test_merge_request_state_changes(name: str, start: str) -> None:
    assert body(name).startswith(f'{start} [acme/widgets!5]({P}/merge-request/5): "Add retry to uploader"')


def test_discussion() -> None:
    assert body("discussion_create") == (
        f'💬 **ivan** commented on merge request [acme/widgets!5]({P}/merge-request/5): "Add retry to uploader"\n'
        "> Could the retry count be configurable?"
    )


def test_push_lists_commits() -> None:
    text, html = fmt(load("branch_update"))
    assert text == (
        f"⬆️ **ivan** pushed 3 commits to [`master`]({P}/file?branch=master) for {PROJECT}\n"
        f"- [`9f2c4e1a`]({P}/commit/9f2c4e1a7b3d5f6e8a0c2e4f6a8b0d2f4e6a8c0e) Retry uploads on 5xx\n"
        f"- [`1a2b3c4d`]({P}/commit/1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b) Document the retry setting\n"
        f"- [`abcdef01`]({P}/commit/abcdef0123456789abcdef0123456789abcdef01) Fix typo in README"
    )
    assert html.startswith(
        f'<p>⬆️ <strong>ivan</strong> pushed 3 commits to <a href="{P}/file?branch=master"><code>master</code></a>'
        f" for {PROJECT_HTML}</p>\n<ul>\n<li>"
    )
    assert html.count("<li>") == 3 and html.endswith("</code></a> Fix typo in README</li>\n</ul>")


def test_push_of_many_commits_is_truncated() -> None:
    payload = load("branch_update")
    commit = payload["push"]["commits"][0]
    payload["push"]["commits"] = [dict(commit, id=f"{i:040x}", message=f"change {i}") for i in range(20)]
    payload["push"]["total_commits_count"] = 25
    payload["push"]["compare_url"] = "https://gitflic.ru/project/acme/widgets/compare?from=a&to=b"
    text, _ = fmt(payload)
    lines = text.splitlines()
    assert lines[0].startswith(f"⬆️ **ivan** pushed [25 commits]({P}/compare?from=a&to=b)")
    assert len(lines) == 1 + 5 + 1
    assert lines[-1] == "- … and 20 more"


def test_push_delivered_as_push_action() -> None:
    payload = load("branch_update")
    payload["action"] = "PUSH"
    assert fmt(payload)[0] == body("branch_update")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("tag_create", f"🏷 **ivan** created tag [`v1.4.0`]({P}/file?branch=v1.4.0) for {PROJECT}"),
        ("tag_delete", f"🗑 **ivan** deleted tag `v1.4.0-rc1` from {PROJECT}"),
        (
            "branch_create",
            f"🌱 **maria** created branch [`feature/retry`]({P}/file?branch=feature%2Fretry) in {PROJECT}",
        ),
        ("branch_delete", f"🗑 **maria** deleted branch `feature/old-ui` in {PROJECT}"),
        ("collaborator_add", f"👋 **ivan** added [petr](https://gitflic.ru/user/petr) to {PROJECT} as **DEVELOPER**"),
        (
            "collaborator_update",
            f"🔑 **ivan** changed the role of [petr](https://gitflic.ru/user/petr) in {PROJECT} to **MAINTAINER**",
        ),
        ("collaborator_delete", f"🚪 **ivan** removed [petr](https://gitflic.ru/user/petr) from {PROJECT}"),
        ("pipeline_new", f"🚀 [Pipeline #42]({P}/cicd/pipeline/42) started for {PROJECT} on `master`"),
        ("pipeline_success", f"✅ [Pipeline #42]({P}/cicd/pipeline/42) succeeded for {PROJECT} on `master` 🎉"),
        ("pipeline_fail", f"❌ [Pipeline #42]({P}/cicd/pipeline/42) failed for {PROJECT} on `master` 😟"),
        (
            "pipeline_warning",
            f"⚠️ [Pipeline #42]({P}/cicd/pipeline/42) finished with warnings for {PROJECT} on `master`",
        ),
    ],
)
def test_refs_members_pipelines(name: str, expected: str) -> None:
    assert body(name) == expected


def test_test_webhook_with_only_a_project_id_uses_the_connection_project() -> None:
    assert fmt(load("test_webhook"), project="acme/widgets")[0] == (
        f"🔔 GitFlic test delivery for {PROJECT}: the webhook reaches the bridge."
    )
    assert fmt(load("test_webhook"))[0] == (
        "🔔 GitFlic test delivery for project 5f0c2b7e-1d3a-4c8e-9b61-2a7d4e9f0c13: the webhook reaches the bridge."
    )


def test_unknown_action_gets_a_generic_message() -> None:
    payload = load("tag_create")
    payload["action"] = "RELEASE_CREATE"
    payload["release"] = payload.pop("tag")
    text, html = fmt(payload)
    assert text == f"📦 GitFlic event `RELEASE_CREATE` in {PROJECT} by **ivan**"
    assert html == f"📦 GitFlic event <code>RELEASE_CREATE</code> in {PROJECT_HTML} by <strong>ivan</strong>"
    assert fmt({"action": "SOMETHING", "project_id": "p1"})[0] == "📦 GitFlic event `SOMETHING` in project p1"


def test_payload_urls_win_over_built_ones() -> None:
    payload = load("issue_create")
    payload["issue"]["url"] = "https://gitflic.example/i/12"
    payload["project"]["http_transport_url"] = "https://git.corp.example/project/acme/widgets.git"
    assert body_of(payload) == (
        '📥 **ivan** created issue [acme/widgets#12](https://gitflic.example/i/12): "Crash on empty config"'
    )
    del payload["issue"]["url"]
    assert "(https://git.corp.example/project/acme/widgets/issue/12)" in body_of(payload)


def test_self_hosted_instance_without_transport_url() -> None:
    payload = load("issue_create")
    del payload["project"]["http_transport_url"]
    delivery = parse_delivery(json.dumps(payload).encode())
    text, _ = format_delivery(delivery, instance_url="https://git.corp.example/", project=None)
    assert "(https://git.corp.example/project/acme/widgets/issue/12)" in text


def test_top_level_actor_beats_the_issue_author() -> None:
    payload = load("issue_update")
    payload["sender"] = {"alias": "olga"}
    assert body_of(payload).startswith("✏️ **olga** updated issue")


def test_unsafe_and_markup_text_is_escaped() -> None:
    payload = load("issue_create")
    payload["issue"]["title"] = 'Use <script>alert(1)</script> *now* [x](y)'
    payload["issue"]["user_alias"] = "ev_il"
    payload["issue"]["url"] = "javascript:alert(1)"
    text, html = fmt(payload)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "javascript:" not in html and "javascript:" not in text
    assert r"\<script\>alert(1)\</script\> \*now\* \[x\](y)" in text
    assert "**ev\\_il**" in text


def test_newlines_in_payload_text_stay_on_the_line() -> None:
    payload = load("issue_create")
    payload["issue"]["title"] = "Broken\n# not a heading\n> nor a quote"
    text, html = fmt(payload)
    assert "\n" not in text
    assert text.endswith(': "Broken # not a heading \\> nor a quote"')
    assert "<h1>" not in html and "<blockquote>" not in html


def test_quoted_markdown_is_rendered_then_sanitised() -> None:
    payload = load("new_issue_note")
    payload["note"]["message"] = (
        "**Same here** ![x](https://evil.example/pixel.png) <b>raw</b> [go](javascript:alert(1))"
    )
    _, html = fmt(payload)
    assert "<strong>Same here</strong>" in html
    assert "evil.example" not in html
    assert "<b>" not in html
    assert 'href="javascript' not in html
    assert "&lt;b&gt;raw&lt;/b&gt;" in html


def test_long_comment_is_cut() -> None:
    payload = load("new_issue_note")
    payload["note"]["message"] = "word " * 200
    text, _ = fmt(payload)
    quote = text.split("\n> ", 1)[1]
    assert quote.endswith("…") and len(quote) <= 257


def test_missing_user_and_number() -> None:
    payload = load("issue_create")
    del payload["issue"]["user_alias"]
    del payload["issue"]["local_id"]
    assert body_of(payload) == f'📥 Someone created an issue in {PROJECT}: "Crash on empty config"'


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield prefix + (key,)
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield prefix + (index,)
            yield from _paths(item, prefix + (index,))


_DELETE = object()


@pytest.mark.parametrize("name", sorted(p.stem for p in FIXTURES.glob("*.json")))
def test_any_field_missing_or_mistyped_never_fails(name: str) -> None:
    original = load(name)
    for path in _paths(original):
        if path == ("action",):
            continue
        for replacement in (_DELETE, None, 0, "", [], {}, True, "x", [1], {"a": 1}):
            payload = copy.deepcopy(original)
            parent = payload
            for step in path[:-1]:
                parent = parent[step]
            if replacement is _DELETE:
                del parent[path[-1]]
            else:
                parent[path[-1]] = replacement
            delivery = Delivery(action=original["action"], project_key=None, project_id=None, raw=payload)
            text, html = format_delivery(delivery, instance_url=INSTANCE)
            assert text and html, (path, replacement)
