import copy
import json
from pathlib import Path
from typing import Any

import pytest

from hookshot_py.github.format import (
    COMMENT_KEY,
    ISSUE_KEY,
    PR_KEY,
    PUSH_KEY,
    REPO_KEY,
    FormattedMessage,
    PayloadError,
    candidate_hooks,
    format_event,
    pr_diff_url,
)
from hookshot_py.github.state import ALLOWED_EVENTS, RepoConfig, validate_repo_state

FIXTURES = Path(__file__).parent / "fixtures"
REPO = "octo-org/hello-world"
WEB = "https://github.com/octo-org/hello-world"
ISSUE = f"[{REPO}#42]({WEB}/issues/42)"
PR = f"[{REPO}#7]({WEB}/pull/7)"
ISSUE_TITLE = '"Spelling error in the README file"'
PR_TITLE = '"Update the README with new information"'


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def state_with(**options: Any) -> RepoConfig:
    state, issues = validate_repo_state({"org": "Octo-Org", "repo": "Hello-World", **options}, is_new=True)
    assert issues == []
    return RepoConfig.from_state(state)


ALL = state_with(enableHooks=list(ALLOWED_EVENTS))


def fmt(name: str, state: RepoConfig = ALL, payload: dict[str, Any] | None = None, **kw: Any) -> FormattedMessage | None:
    event = name.split(".")[0]
    return format_event(event, payload if payload is not None else load(name), config=state, domain="example.org", **kw)


def body(name: str, state: RepoConfig = ALL, **kw: Any) -> str:
    message = fmt(name, state, **kw)
    assert message is not None, f"{name} was filtered out"
    return message.body


# --- exact bodies -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("issues.opened", f"📥 **alice** created new issue {ISSUE}: {ISSUE_TITLE} assigned to bob with labels bug, ui"),
        ("issues.closed", f"⬛ **bob** closed issue {ISSUE}: {ISSUE_TITLE}"),
        ("issues.reopened", f"🔷 **carol** reopened issue {ISSUE}: {ISSUE_TITLE}"),
        ("issues.edited", f"✏️ **alice** edited issue {ISSUE}: {ISSUE_TITLE}"),
        ("pull_request.opened", f"🔵 **alice** opened a new PR {PR}: {PR_TITLE} with labels documentation"),
        (
            "pull_request.opened_draft",
            f'⚪ **alice** drafted a new PR [{REPO}#8]({WEB}/pull/8): {PR_TITLE}',
        ),
        ("pull_request.ready_for_review", f"🔬 **alice** has marked {PR} as ready to review {PR_TITLE}"),
        ("pull_request.converted_to_draft", f"⚪ **alice** has marked {PR} as a draft {PR_TITLE}"),
        ("pull_request.closed", f"⚫ **bob** closed PR {PR}: {PR_TITLE}"),
        ("pull_request.merged", f"✳️ **bob** merged PR {PR}: {PR_TITLE}"),
        ("pull_request.reopened", f"🔷 **bob** reopened PR {PR}: {PR_TITLE}"),
        ("pull_request.review_requested", f"👀 **alice** requested a review from **carol** on {PR}: {PR_TITLE}"),
        ("pull_request_review.approved", f"✅ **bob** approved {PR} {PR_TITLE}"),
        ("pull_request_review.changes_requested", f"🔴 **bob** changes_requested {PR} {PR_TITLE}"),
        (
            "release.published",
            f"📣 **alice** released [Version 1.2.0]({WEB}/releases/tag/v1.2.0) for {REPO}"
            "\n\n## What's changed\n* Fix typo by @alice",
        ),
        (
            "release.created_draft",
            f"📝 **alice** drafted release [Version 1.2.0]({WEB}/releases/tag/v1.2.0) for {REPO}"
            "\n\n## What's changed\n* Fix typo by @alice",
        ),
        (
            "workflow_run.completed",
            f"✅ Workflow **CI** [completed successfully 🎉]({WEB}/actions/runs/8912345678) for {REPO} on branch `main`",
        ),
        ("create.branch", f"🌱 **alice** created branch [`feature/login`]({WEB}/tree/feature/login) in {REPO}"),
        ("create.tag", f"🏷️ **alice** created tag [`v1.2.0`]({WEB}/releases/tag/v1.2.0) in {REPO}"),
        ("delete.branch", f"🗑️ **alice** deleted branch `feature/login` in {REPO}"),
        ("delete.tag", f"🗑️ **alice** deleted tag `v1.2.0` in {REPO}"),
        ("fork", f"🍴 **carol** forked {REPO} to [carol/hello-world](https://github.com/carol/hello-world)"),
        ("watch.started", f"⭐ **carol** starred {REPO}"),
        ("star.created", f"⭐ **carol** starred {REPO}"),
        ("star.deleted", f"💔 **carol** unstarred {REPO}"),
        (
            "gollum",
            f"📖 **bob** updated 2 wiki pages in {REPO}: edited [Home]({WEB}/wiki/Home), "
            f"created [Getting Started]({WEB}/wiki/Getting-Started)",
        ),
        ("member.added", f"👥 **alice** added **carol** as a collaborator to {REPO}"),
        ("member.removed", f"👥 **alice** removed **carol** as a collaborator from {REPO}"),
        ("member.edited", f"👥 **alice** changed the permissions of **carol** on {REPO} to admin"),
        ("public", f"🌍 **alice** made [{REPO}]({WEB}) public"),
        ("ping", f"🏓 GitHub webhook for {REPO} is set up (Design for failure.)"),
        ("push.deleted", f"**alice** deleted branch `feature/login` for {REPO}"),
        ("push.tag", f"**alice** pushed tag [`v1.2.0`]({WEB}/compare/v1.2.0) for {REPO}"),
    ],
)
def test_exact_body(name: str, expected: str) -> None:
    assert body(name) == expected


def test_issue_comment() -> None:
    message = fmt("issue_comment.created")
    assert message is not None
    url = f"{WEB}/issues/42#issuecomment-1986141234"
    assert message.body == (
        f"🗣 **bob** [commented]({url}) on {ISSUE}  \n"
        "> Good catch! I'll fix it.\n>\n> Also the second paragraph has a typo."
    )
    assert message.external_url == url
    assert message.extra[COMMENT_KEY] == {"id": 1986141234}
    assert "<blockquote>" in message.html and "second paragraph" in message.html


def test_issue_comment_truncated_at_256_characters() -> None:
    payload = load("issue_comment.created")
    payload["comment"]["body"] = "x" * 300
    assert body("issue_comment.created", payload=payload).endswith("\n> " + "x" * 256 + "…")
    payload["comment"]["body"] = "y" * 256
    assert body("issue_comment.created", payload=payload).endswith("\n> " + "y" * 256)


def test_commit_comment() -> None:
    sha = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
    assert body("commit_comment.created") == (
        f"🗣 **carol** [commented]({WEB}/commit/{sha}#commitcomment-141234567) on commit "
        f"[`6dcb09b`]({WEB}/commit/{sha}) in {REPO}  \n> This broke the build on Windows."
    )


def test_push_lists_five_commits_and_the_rest() -> None:
    message = fmt("push", state_with(enableHooks=["push"]))
    assert message is not None
    payload = load("push")
    lines = message.body.split("\n")
    assert lines[0] == f"**alice** pushed [7 commits]({payload['compare']}) to `main` for {REPO}"
    first = payload["commits"][0]
    assert lines[1] == f"- [`{first['id'][:7]}`]({first['url']}) Fix typo in README"
    assert [line[:2] for line in lines[1:6]] == ["- "] * 5
    assert lines[6:] == ["", "and 2 more"]
    assert message.external_url == payload["compare"]
    assert message.extra[PUSH_KEY] == {
        "commits": [c["id"] for c in payload["commits"]],
        "ref": "refs/heads/main",
        "base_ref": None,
        "pusher": "alice <alice@example.com>",
    }
    assert message.html.count("<li>") == 5


def test_push_single_commit() -> None:
    payload = load("push.single")
    commit = payload["commits"][0]
    assert body("push.single") == (
        f"**alice** pushed [1 commit]({payload['compare']}) to `feature/login` for {REPO}\n"
        f"- [`{commit['id'][:7]}`]({commit['url']}) Fix typo in README"
    )


def test_push_branch_deleted_when_head_commit_null() -> None:
    payload = load("push.deleted")
    del payload["deleted"]
    assert body("push.deleted", payload=payload) == f"**alice** deleted branch `feature/login` for {REPO}"


def test_issue_room_link() -> None:
    state = state_with(enableHooks=["issue"], showIssueRoomLink=True)
    assert body("issues.opened", state) == (
        f"📥 **alice** created new issue {ISSUE}: {ISSUE_TITLE} assigned to bob "
        "[Issue Room](https://matrix.to/#/#github_octo-org_hello-world_42:example.org) with labels bug, ui"
    )
    from_config, _ = validate_repo_state(
        {"org": "Octo-Org", "repo": "Hello-World"}, is_new=True, default_options={"showIssueRoomLink": True}
    )
    assert "[Issue Room]" in body("issues.opened", RepoConfig.from_state(from_config))
    assert "[Issue Room]" not in body("issues.opened", state_with())


def test_issue_opened_html_and_extras() -> None:
    message = fmt("issues.opened")
    assert message is not None
    assert message.html.startswith(
        f'📥 <strong>alice</strong> created new issue <a href="{WEB}/issues/42">{REPO}#42</a>'
    )
    assert message.html.endswith(
        ' with labels <span data-mx-bg-color="#d73a4a" data-mx-color="#000000" '
        'title="Something isn&#x27;t working">bug</span> '
        '<span data-mx-bg-color="#0e8a16" data-mx-color="#000000">ui</span>'
    )
    assert message.external_url == f"{WEB}/issues/42"
    assert message.extra == {
        REPO_KEY: {"id": 186853002, "name": REPO, "url": WEB},
        ISSUE_KEY: {"id": 2273481234, "number": 42, "title": "Spelling error in the README file", "url": f"{WEB}/issues/42"},
    }
    content = message.to_content()
    assert content["msgtype"] == "m.notice"
    assert content["format"] == "org.matrix.custom.html"
    assert content["external_url"] == f"{WEB}/issues/42"
    assert content[ISSUE_KEY]["number"] == 42


def test_pr_extras() -> None:
    message = fmt("pull_request.opened")
    assert message is not None
    assert message.extra[PR_KEY] == {
        "id": 1865301234,
        "number": 7,
        "title": "Update the README with new information",
        "url": f"{WEB}/pull/7",
    }
    assert message.extra[ISSUE_KEY] == message.extra[PR_KEY]


def test_block_messages_render_as_paragraphs() -> None:
    closed = fmt("issues.closed")
    assert closed is not None and closed.html.startswith("<p>⬛ <strong>bob</strong>")
    release = fmt("release.published")
    assert release is not None and "<h2>What's changed</h2>" in release.html


def test_markdown_in_titles_cannot_inject_html() -> None:
    payload = load("issues.edited")
    payload["issue"]["title"] = "<script>alert(1)</script>"
    message = fmt("issues.edited", payload=payload)
    assert message is not None
    assert "<script>" not in message.html and "&lt;script&gt;" in message.html


# --- events that post nothing -------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["issues.unlabeled", "pull_request.synchronize", "pull_request_review.commented", "release.created"],
)
def test_ignored_actions(name: str) -> None:
    assert fmt(name) is None


def test_unknown_event_is_ignored() -> None:
    assert format_event("deployment_status", {"action": "created"}, config=ALL, domain="x") is None
    assert candidate_hooks("deployment_status", {}) is None


# --- enableHooks ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, enabled, posted",
    [
        ("issues.opened", ["issue.created"], True),
        ("issues.opened", ["issue"], True),
        ("issues.opened", ["issue.changed"], False),
        ("issues.closed", ["issue.changed"], True),
        ("issues.edited", ["issue.changed"], False),
        ("issue_comment.created", ["issue"], False),
        ("issue_comment.created", ["issue.comment"], True),
        ("pull_request.merged", ["pull_request.merged"], True),
        ("pull_request.merged", ["pull_request.closed"], True),
        ("pull_request.closed", ["pull_request.merged"], False),
        ("pull_request_review.approved", ["pull_request.reviewed"], True),
        ("pull_request_review.approved", ["pull_request.opened"], False),
        ("push", ["issue"], False),
        ("push", ["push"], True),
        ("release.published", ["release.created"], True),
        ("release.published", ["release.drafted"], False),
        ("release.created_draft", ["release.drafted"], True),
        ("release.created_draft", ["release.created"], False),
        ("workflow_run.completed", ["workflow.run.success"], True),
        ("workflow_run.completed", ["workflow.run.failure"], False),
        ("workflow_run.completed", ["workflow"], True),
        # Events hookshot has no name for are always posted.
        ("fork", [], True),
        ("ping", [], True),
        ("create.branch", [], True),
    ],
)
def test_enable_hooks(name: str, enabled: list[str], posted: bool) -> None:
    assert (fmt(name, state_with(enableHooks=enabled)) is not None) is posted


def test_default_hooks() -> None:
    defaults = state_with()
    assert fmt("issues.opened", defaults) is not None
    assert fmt("pull_request.merged", defaults) is not None
    assert fmt("release.published", defaults) is not None
    assert fmt("push", defaults) is None
    assert fmt("workflow_run.completed", defaults) is None
    assert fmt("release.created_draft", defaults) is None
    assert fmt("issue_comment.created", defaults) is None


def test_candidate_hooks() -> None:
    assert candidate_hooks("issues", load("issues.opened")) == ("issue.created", "issue")
    assert candidate_hooks("pull_request", load("pull_request.merged")) == (
        "pull_request.merged", "pull_request.closed", "pull_request")
    assert candidate_hooks("workflow_run", load("workflow_run.completed")) == (
        "workflow", "workflow.run", "workflow.run.success")
    assert candidate_hooks("star", load("star.created")) == ()


# --- label filters --------------------------------------------------------------------------------


def test_including_labels() -> None:
    bug = state_with(includingLabels=["bug"])
    assert fmt("issues.opened", bug) is not None
    assert fmt("pull_request.opened", bug) is None  # the PR only has "documentation"
    assert fmt("pull_request.opened", state_with(includingLabels=["documentation", "x"])) is not None


def test_excluding_labels() -> None:
    no_ui = state_with(excludingLabels=["ui"])
    assert fmt("issues.opened", no_ui) is None
    assert fmt("issues.closed", no_ui) is None
    assert fmt("issue_comment.created", state_with(enableHooks=["issue.comment"], excludingLabels=["ui"])) is None
    assert fmt("pull_request.opened", no_ui) is not None
    # Excluding wins over including.
    assert fmt("issues.opened", state_with(includingLabels=["bug"], excludingLabels=["ui"])) is None


def test_label_filters_do_not_apply_to_push_release_workflow() -> None:
    state = state_with(enableHooks=["push", "release", "workflow"], includingLabels=["nothing-has-this"])
    assert fmt("push", state) is not None
    assert fmt("release.published", state) is not None
    assert fmt("workflow_run.completed", state) is not None


def test_labeled_needs_including_labels() -> None:
    assert fmt("issues.labeled", state_with()) is None
    assert fmt("issues.labeled", state_with(includingLabels=["ui"])) is None  # the added label is "bug"
    assert body("issues.labeled", state_with(includingLabels=["bug"])) == (
        f"🗃 **bob** labeled issue {ISSUE}: {ISSUE_TITLE} with labels bug, ui"
    )


def test_labeled_skipped_right_after_creation() -> None:
    payload = load("issues.labeled")
    payload["issue"]["created_at"] = "2024-05-02T08:00:00Z"
    payload["issue"]["updated_at"] = "2024-05-02T08:00:03Z"
    assert fmt("issues.labeled", state_with(includingLabels=["bug"]), payload=payload) is None


# --- workflow filters -----------------------------------------------------------------------------


def test_workflow_filters() -> None:
    def run(**workflow_run: Any) -> FormattedMessage | None:
        return fmt("workflow_run.completed", state_with(enableHooks=["workflow"], workflowRun=workflow_run))

    assert run(matchingBranch="^main$") is not None
    assert run(matchingBranch="ai") is not None  # a search, like JS String.match
    assert run(matchingBranch="^release/") is None
    assert run(matchingBranch="^(a+)+$") is None  # linear (RE2), not 2**len(branch)
    assert run(includingWorkflows=["CI"]) is not None
    assert run(includingWorkflows=["Deploy"]) is None
    assert run(includingWorkflows=[]) is None
    assert run(excludingWorkflows=["CI"]) is None
    assert run(excludingWorkflows=["Deploy"]) is not None


@pytest.mark.parametrize(
    "conclusion, notice",
    [
        ("failure", "failed 😟"),
        ("neutral", "completed neutrally 😐"),
        ("cancelled", "was cancelled 🙅"),
        ("timed_out", "timed out ⏰"),
        ("action_required", "requires further action 🖱️"),
        ("stale", "completed, but is stale 🍞"),
        ("skipped", "skipped ⏭️"),
    ],
)
def test_workflow_conclusions(conclusion: str, notice: str) -> None:
    payload = load("workflow_run.completed")
    payload["workflow_run"]["conclusion"] = conclusion
    assert body("workflow_run.completed", payload=payload) == (
        f"✅ Workflow **CI** [{notice}]({WEB}/actions/runs/8912345678) for {REPO} on branch `main`"
    )


def test_workflow_in_progress_ignored() -> None:
    payload = load("workflow_run.completed")
    payload["action"] = "requested"
    assert fmt("workflow_run.completed", payload=payload) is None


# --- PR diff --------------------------------------------------------------------------------------

DIFF = "diff --git a/README.md b/README.md\n--- a/README.md\n+++ b/README.md\n@@ -1 +1 @@\n-Helo\n+Hello"


def test_pr_diff_appended_when_enabled_and_short() -> None:
    state = state_with(prDiff={"enabled": True, "maxLines": 6})
    assert pr_diff_url("pull_request", load("pull_request.opened"), state) == f"{WEB}/pull/7.diff"
    message = fmt("pull_request.opened", state, pr_diff=DIFF)
    assert message is not None
    assert message.body.endswith(f"with labels documentation\n``` diff\n{DIFF}\n```")
    assert message.html.endswith('<pre><code class="language-diff">' + DIFF.replace(">", "&gt;") + "\n</code></pre>")


def test_pr_diff_omitted_when_too_long_or_disabled() -> None:
    short = state_with(prDiff={"enabled": True, "maxLines": 5})
    assert "```" not in body("pull_request.opened", short, pr_diff=DIFF)
    assert "```" not in body("pull_request.opened", state_with(), pr_diff=DIFF)
    assert pr_diff_url("pull_request", load("pull_request.opened"), state_with()) is None
    assert pr_diff_url("pull_request", load("pull_request.closed"), short) is None


# --- malformed payloads ---------------------------------------------------------------------------


def test_missing_field_is_a_precise_error() -> None:
    payload = load("issues.opened")
    del payload["issue"]["number"]
    with pytest.raises(PayloadError, match=r"^issue\.number: expected integer, got null$"):
        fmt("issues.opened", payload=payload)


def test_wrong_types_are_precise_errors() -> None:
    payload = load("push")
    payload["commits"][2]["message"] = 5
    with pytest.raises(PayloadError, match=r"^commits\[2\]\.message: expected string, got integer$"):
        fmt("push", payload=payload)
    with pytest.raises(PayloadError, match=r"^payload: expected object, got array$"):
        format_event("push", [], config=ALL, domain="x")  # type: ignore[arg-type]
    broken = copy.deepcopy(load("pull_request.opened"))
    broken["pull_request"]["labels"] = "documentation"
    with pytest.raises(PayloadError, match=r"^pull_request\.labels: expected array, got string$"):
        fmt("pull_request.opened", payload=broken)


def test_push_without_commits_is_not_a_deletion() -> None:
    payload = load("push.deleted")
    payload.update(deleted=False, after="1" * 40)
    assert body("push.deleted", payload=payload).startswith("**alice** pushed [0 commits](")


# --- rendering off the event loop -------------------------------------------------------------


@pytest.mark.parametrize("name", ["issues.opened", "issue_comment.created", "pull_request.opened", "push", "release.published"])
def test_a_draft_finished_elsewhere_is_the_same_message(name: str) -> None:
    from hookshot_py.github.format import build_event
    from hookshot_py.markdown import render_jobs

    event = name.split(".")[0]
    draft = build_event(event, load(name), config=ALL, domain="example.org", pr_diff=DIFF)
    assert draft is not None
    assert draft.finish(render_jobs([draft.job])[0]) == fmt(name, pr_diff=DIFF)


def test_the_plain_fallback_keeps_everything_but_the_html() -> None:
    from hookshot_py.github.format import build_event

    draft = build_event("issues", load("issues.opened"), config=ALL, domain="example.org")
    assert draft is not None
    rendered, plain = draft.render().to_content(), draft.plain().to_content()
    assert "format" not in plain and "formatted_body" not in plain
    assert {k: v for k, v in rendered.items() if k not in ("format", "formatted_body")} == plain
