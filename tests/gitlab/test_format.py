"""GitLab deliveries → messages: hookshot's wording, ours for what hookshot never posted, and
the room's filters (enableHooks, labels, pushTagsRegex)."""

from __future__ import annotations

from typing import Any

import pytest

from hookshot_py.gitlab.format import (
    KINDS,
    Message,
    PayloadError,
    ReviewItem,
    classify,
    render,
    render_fallback,
    review_reply,
    review_summary,
)
from hookshot_py.gitlab.models import ALLOWED_EVENTS
from hookshot_py.gitlab.state import RepoConfig, validate_state

from .conftest import fixture_names, payload

H = "https://gitlab.example.com/acme/widgets"
MR = f"[acme/widgets!12]({H}/-/merge_requests/12)"
ISSUE = f"[acme/widgets#34]({H}/-/issues/34)"
SHA1, SHA2 = "1a2b3c4d" * 5, "5e6f7a8b" * 5


def config(**state: Any) -> RepoConfig:
    normalized, issues = validate_state(
        {"instance": "gl", "path": "acme/widgets", **state}, instances=["gl"], is_new=True
    )
    assert not issues, issues
    return RepoConfig.from_state(normalized)


EVERYTHING = config(enableHooks=list(ALLOWED_EVENTS))

EXPECTED: dict[str, str | None] = {
    "push": (
        f"**Alice Liddell** pushed [2 commits]({H}/-/commits/main) to [`main`]({H}/-/tree/main) for acme/widgets\n"
        f" - [`5e6f7a8b`]({H}/-/commit/{SHA2}) Fix the readme by Bob Builder\n"
        f" - [`1a2b3c4d`]({H}/-/commit/{SHA1}) Add the sprocket by Alice Liddell\n"
    ),
    "push.single": (
        f"**Alice Liddell** pushed [1 commit]({H}/-/commits/main) to [`main`]({H}/-/tree/main) for acme/widgets: "
        f"[`1a2b3c4d`]({H}/-/commit/{SHA1}) Add the sprocket"
    ),
    "push.many": (
        f"**Alice Liddell** pushed [42 commits]({H}/-/commits/main) to [`main`]({H}/-/tree/main) for acme/widgets: "
        f"[`a5b6c7d8`]({H}/-/commit/{'a5b6c7d8' * 5}) Change number 6, and [41 more]({H}/-/commits/main) commits"
    ),
    "push.created": f"**Alice Liddell** created branch [`new-feature`]({H}/-/tree/new-feature) for acme/widgets",
    "push.deleted": "**Alice Liddell** deleted branch `old-feature` for acme/widgets",
    "tag_push": f"**Alice Liddell** pushed tag [`v1.2.0`]({H}/-/tree/v1.2.0) for acme/widgets",
    "tag_push.deleted": "**Alice Liddell** deleted tag `v0.9.0` for acme/widgets",
    "merge_request.open": f'**alice** opened a new MR {MR}: "Add sprockets"',
    "merge_request.close": f'**alice** closed MR {MR}: "Add sprockets"',
    "merge_request.reopen": f'**alice** reopened MR {MR}: "Add sprockets"',
    "merge_request.merge": f'**alice** merged MR {MR}: "Add sprockets"',
    "merge_request.update.ready": f'**alice** marked MR {MR} as ready for review "Add sprockets"',
    "merge_request.update.draft": f'**alice** marked MR {MR} as draft "Draft: Add sprockets"',
    "merge_request.update.description": None,
    "merge_request.test": None,
    "issue.open": f'📥 **alice** created new issue {ISSUE}: "Sprocket squeaks"',
    "issue.close": f'⬛ **bob** closed issue {ISSUE}: "Sprocket squeaks"',
    "issue.reopen": f'🔷 **alice** reopened issue {ISSUE}: "Sprocket squeaks"',
    "issue.update": f'✏️ **alice** edited issue {ISSUE}: "Sprocket squeaks"',
    "issue.update.labels": f'🗃 **alice** changed the labels of issue {ISSUE}: "Sprocket squeaks" (now bug, docs)',
    "issue.update.assignee": None,
    "issue.open.confidential": None,
    "note.issue": (
        f"🗣 **bob** [commented]({H}/-/issues/34#note_701) on {ISSUE}\n"
        "> I can reproduce this on every sprocket since 1.1."
    ),
    "note.commit": (
        f"🗣 **bob** [commented]({H}/-/commit/{SHA1}#note_702) on commit [`1a2b3c4d`]({H}/-/commit/{SHA1}) "
        "of acme/widgets\n> This breaks the build on ARM."
    ),
    "note.snippet": None,
    "release.create": (
        f"**Alice Liddell** 🪄 released [Widgets 1.2.0]({H}/-/releases/v1.2.0) for acme/widgets\n\n"
        "## Changes\n\n- Sprockets\n- Fewer squeaks"
    ),
    "release.update": None,
    "wiki_page.create": (
        f'**alice** created new wiki page "[Sprocket care]({H}/-/wikis/sprocket-care)" for acme/widgets '
        '"Add a page on sprockets"'
    ),
    "wiki_page.update": (
        f'**alice** updated wiki page "[Sprocket care]({H}/-/wikis/sprocket-care)" for acme/widgets "Mention grease"'
    ),
    "wiki_page.delete": f'**alice** deleted wiki page "[Sprocket care]({H}/-/wikis/sprocket-care)" for acme/widgets',
    "pipeline.canceled": f"⏹️ Pipeline [#31]({H}/-/pipelines/3101) was canceled for branch [`main`]({H}/-/tree/main) "
                         "of acme/widgets",
    "pipeline.failed": f'❌ Pipeline [#31]({H}/-/pipelines/3101) failed for MR {MR}: "Add sprockets"',
    "pipeline.success": f"✅ Pipeline [#31]({H}/-/pipelines/3101) succeeded for branch [`main`]({H}/-/tree/main) "
                        "of acme/widgets",
    "pipeline.running": None,
    "build": None,
}
REVIEW_ITEMS = {
    "merge_request.approved": ("approved", "approved:delivery-1"),
    "merge_request.approval": ("approved", "approval:delivery-1"),
    "merge_request.unapproved": ("unapproved", "unapproved:delivery-1"),
    "merge_request.unapproval": ("unapproved", "unapproval:delivery-1"),
    "note.merge_request": ("comment", "note:700"),
}


def test_every_fixture_has_an_expectation() -> None:
    assert set(fixture_names()) == set(EXPECTED) | set(REVIEW_ITEMS)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_message_wording(name: str) -> None:
    data = payload(name)
    result = classify(data["object_kind"], data, EVERYTHING, delivery="delivery-1")
    expected = EXPECTED[name]
    if expected is None:
        assert result is None
    else:
        assert isinstance(result, Message)
        assert result.markdown == expected


@pytest.mark.parametrize("name", sorted(REVIEW_ITEMS))
def test_review_items(name: str) -> None:
    data = payload(name)
    result = classify(data["object_kind"], data, config(includeCommentBody=True), delivery="delivery-1")
    assert isinstance(result, ReviewItem)
    assert (result.kind, result.key) == REVIEW_ITEMS[name]
    assert result.batch == "acme/widgets!12/bob"
    assert result.data["mr"] == {"iid": 12, "url": f"{H}/-/merge_requests/12", "title": "Add sprockets"}
    assert result.data["author"] == "Bob Builder"


def test_comment_body_is_kept_only_with_include_comment_body() -> None:
    note = payload("note.merge_request")
    with_body = classify("note", note, config(includeCommentBody=True))
    without = classify("note", note, config())
    assert isinstance(with_body, ReviewItem) and isinstance(without, ReviewItem)
    assert with_body.data["note"].startswith("Could the sprocket be **smaller**?")
    assert "note" not in without.data
    assert with_body.data["discussion"] == "d1" + "0" * 38


def test_default_hooks_post_issues_but_not_pipelines_or_comments() -> None:
    default = config()
    assert isinstance(classify("issue", payload("issue.open"), default), Message)
    assert isinstance(classify("merge_request", payload("merge_request.open"), default), Message)
    assert classify("pipeline", payload("pipeline.failed"), default) is None
    assert classify("note", payload("note.issue"), default) is None
    # hookshot's default list includes review comments
    assert isinstance(classify("note", payload("note.merge_request"), default), ReviewItem)


@pytest.mark.parametrize(
    ("hooks", "name", "posted"),
    [
        (["merge_request.open"], "merge_request.open", True),
        (["merge_request.open"], "merge_request.close", False),
        (["merge_request"], "merge_request.merge", True),
        (["merge_request"], "note.merge_request", True),
        (["merge_request.review"], "merge_request.approved", True),
        # hookshot's #957: without `merge_request.review.comments`, comments are not collected
        (["merge_request.review"], "note.merge_request", False),
        (["merge_request.review.comments"], "note.merge_request", True),
        (["merge_request.review"], "merge_request.approval", False),
        (["merge_request.review.individual"], "merge_request.approval", True),
        (["merge_request.ready_for_review"], "merge_request.update.ready", True),
        (["issue.close"], "issue.close", True),
        (["issue.close"], "issue.open", False),
        (["note.commit"], "note.commit", True),
        (["note.commit"], "note.issue", False),
        (["pipeline.failed"], "pipeline.failed", True),
        (["pipeline.failed"], "pipeline.success", False),
        (["wiki.delete"], "wiki_page.create", False),
        (["wiki"], "wiki_page.create", True),
        (["release.created"], "release.create", True),
        (["push"], "tag_push", False),
    ],
)
def test_enable_hooks(hooks: list[str], name: str, posted: bool) -> None:
    data = payload(name)
    assert (classify(data["object_kind"], data, config(enableHooks=hooks)) is not None) is posted


@pytest.mark.parametrize(
    ("including", "excluding", "posted"),
    [
        ([], [], True),
        (["bug"], [], True),
        (["docs"], [], False),
        ([], ["bug"], False),
        (["bug"], ["bug"], False),
    ],
)
@pytest.mark.parametrize("name", ["merge_request.open", "issue.open", "note.issue", "note.merge_request",
                                  "merge_request.approved"])
def test_label_filters(name: str, including: list[str], excluding: list[str], posted: bool) -> None:
    cfg = config(enableHooks=list(ALLOWED_EVENTS), includingLabels=including, excludingLabels=excluding)
    data = payload(name)
    assert (classify(data["object_kind"], data, cfg) is not None) is posted


def test_label_filters_do_not_apply_to_pushes() -> None:
    cfg = config(includingLabels=["nope"])
    assert classify("push", payload("push"), cfg) is not None


@pytest.mark.parametrize(("pattern", "posted"), [(None, True), ("^v1\\.", True), ("^v2", False), ("rc", False)])
def test_push_tags_regex(pattern: str | None, posted: bool) -> None:
    cfg = config(**({"pushTagsRegex": pattern} if pattern else {}))
    assert (classify("tag_push", payload("tag_push"), cfg) is not None) is posted


def test_a_hand_written_pattern_re2_refuses_matches_nothing() -> None:
    cfg = RepoConfig.from_state({"instance": "gl", "path": "acme/widgets", "pushTagsRegex": "(?=v)v1"})
    assert cfg.push_tags_broken
    assert classify("tag_push", payload("tag_push"), cfg) is None


def test_malformed_payloads_name_the_field() -> None:
    data = payload("merge_request.open")
    data["object_attributes"]["iid"] = "twelve"
    with pytest.raises(PayloadError, match="object_attributes.iid: expected integer, got string"):
        classify("merge_request", data, EVERYTHING)
    data = payload("push")
    del data["total_commits_count"]
    with pytest.raises(PayloadError, match="total_commits_count"):
        classify("push", data, EVERYTHING)


def test_unknown_kinds_and_known_ones() -> None:
    assert "pipeline" in KINDS and "build" not in KINDS
    assert classify("deployment", {"object_kind": "deployment"}, EVERYTHING) is None


def test_comments_and_descriptions_are_bounded() -> None:
    note = payload("note.issue")
    note["object_attributes"]["note"] = "x" * 100_000
    message = classify("note", note, EVERYTHING)
    assert isinstance(message, Message) and len(message.markdown) < 1000
    release = payload("release.create")
    release["description"] = "y" * 100_000
    message = classify("release", release, EVERYTHING)
    assert isinstance(message, Message) and len(message.markdown) < 10_000
    mr = payload("merge_request.open")
    mr["object_attributes"]["title"] = "t" * 100_000
    content = render(classify("merge_request", mr, EVERYTHING))  # type: ignore[arg-type]
    assert len(content["body"]) <= 10_000 and len(content["formatted_body"]) < 20_000
    mr_note = payload("note.merge_request")
    mr_note["object_attributes"]["note"] = "z" * 100_000
    item = classify("note", mr_note, config(includeCommentBody=True))
    assert isinstance(item, ReviewItem) and len(item.data["note"]) <= 8000


def _item(kind: str, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "author": "Bob Builder", "project": "acme/widgets",
            "mr": {"iid": 12, "url": f"{H}/-/merge_requests/12", "title": "Add sprockets"}, **extra}


def test_review_summaries_in_hookshot_wording() -> None:
    three = [_item("comment"), _item("comment"), _item("comment")]
    assert review_summary(three, in_thread=False).markdown == (
        f'**Bob Builder** commented on MR {MR}: "Add sprockets" with 3 comments'
    )
    assert review_summary([_item("comment")], in_thread=False).markdown.endswith(" with one comment")
    approved = [_item("comment"), _item("approved")]
    assert review_summary(approved, in_thread=False).markdown == (
        f'**Bob Builder** ✅ approved MR {MR}: "Add sprockets" with one comment'
    )
    assert review_summary([_item("unapproved")], in_thread=False).markdown == (
        f'**Bob Builder** 🔴 requested changes MR {MR}: "Add sprockets"'
    )
    assert review_summary([_item("comment")], in_thread=True).markdown == "**Bob Builder** replied with one comment"


def test_rendering() -> None:
    content = render(Message("**a** [b](https://x.example/)", external_url="https://x.example/"))
    assert content["msgtype"] == "m.notice" and content["format"] == "org.matrix.custom.html"
    assert content["formatted_body"] == '<strong>a</strong> <a href="https://x.example/">b</a>'
    assert content["external_url"] == "https://x.example/"
    reply = render(review_reply(_item("comment", note="**big** <script>x</script>", noteUrl=f"{H}#note_1")))
    assert "<strong>big</strong>" in reply["formatted_body"] and "<script>" not in reply["formatted_body"]
    fallback = render_fallback(Message("<b>&\nline"))
    assert fallback["formatted_body"] == "&lt;b&gt;&amp;<br>line" and fallback["body"] == "<b>&\nline"
