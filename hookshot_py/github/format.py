"""GitHub webhook events → Matrix notices, worded like hookshot's `GitHubRepoConnection`.

`format_event` is pure: it takes the event name (`X-GitHub-Event`), the parsed payload and the
connection's typed config (`RepoConfig`, parsed once when the connection was loaded), applies
the connection's filters and returns the message, or None when the connection does not want it.
Things hookshot does with side effects are left to the caller: debouncing `issues.labeled`
(5 s), fetching a PR diff (pass it as `pr_diff`, see `pr_diff_url`) and looking up a closing
comment. `build_event` is the same without the markdown rendering, which costs CPU the sender
controls: the webhook route renders its `Draft`s off the event loop.

Filters, in order:
- `enableHooks` through `HookFilter`, with the candidate names of `candidate_hooks`. Events that
  hookshot has no name for (fork, star, watch, create, delete, gollum, member, public,
  commit_comment, ping) have no candidates and are always posted: the bridge subscribes to them
  only because we format them (see `github_events_for_hooks`).
- `includingLabels` / `excludingLabels` on issue, issue comment, PR and PR review events only.
- `workflowRun.matchingBranch` (regex search, like JS `String.match`), `includingWorkflows`,
  `excludingWorkflows` on `workflow_run`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import quote

from hookshot_py.forges.filters import labels_allowed
from hookshot_py.forges.payload import Payload, PayloadError
from hookshot_py.github.labels import format_labels
from hookshot_py.github.state import RepoConfig, RepoSettings
from hookshot_py.markdown import MarkdownJob, render_markdown

__all__ = [
    "COMMENT_KEY",
    "Draft",
    "FormattedMessage",
    "ISSUE_KEY",
    "PR_KEY",
    "PUSH_KEY",
    "PayloadError",
    "REPO_KEY",
    "build_event",
    "candidate_hooks",
    "format_event",
    "pr_diff_url",
    "with_pr_diff",
]

REPO_KEY = "uk.half-shot.matrix-hookshot.github.repo"
ISSUE_KEY = "uk.half-shot.matrix-hookshot.github.issue"
PR_KEY = "uk.half-shot.matrix-hookshot.github.pull_request"
PUSH_KEY = "uk.half-shot.matrix-hookshot.github.push"
COMMENT_KEY = "uk.half-shot.matrix-hookshot.github.comment"

TRUNCATE_COMMENT_SIZE = 256
MAX_PUSH_COMMITS_SHOWN = 5
#: hookshot skips a `labeled` event this close to the issue's creation (the labels are
#: already in the "created" message). We compare with the issue's `updated_at`, so the
#: decision depends on the payload alone.
CREATED_GRACE_PERIOD_S = 6

WORKFLOW_CONCLUSION_TO_NOTICE: dict[str, str] = {
    "success": "completed successfully 🎉",
    "failure": "failed 😟",
    "neutral": "completed neutrally 😐",
    "cancelled": "was cancelled 🙅",
    "timed_out": "timed out ⏰",
    "action_required": "requires further action 🖱️",
    "stale": "completed, but is stale 🍞",
    "skipped": "skipped ⏭️",
}


@dataclass(frozen=True)
class FormattedMessage:
    """A notice ready to send: `extra` holds the `uk.half-shot.matrix-hookshot.github.*` keys.
    `html` is None for the plain-text fallback (the markdown could not be rendered in time)."""

    body: str
    html: str | None
    external_url: str | None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_content(self) -> dict[str, Any]:
        """The `m.room.message` content, as hookshot sends it."""
        content: dict[str, Any] = {"msgtype": "m.notice", "body": self.body}
        if self.html is not None:
            content["format"] = "org.matrix.custom.html"
            content["formatted_body"] = self.html
        if self.external_url is not None:
            content["external_url"] = self.external_url
        content.update(self.extra)
        return content


@dataclass(frozen=True)
class Draft:
    """A message whose markdown is not rendered yet. Rendering costs CPU that the sender
    controls (release notes, titles, comments), so the webhook route renders `job` off the
    event loop (`markdown.render_off_loop`) and calls `finish` with the HTML, or `plain`."""

    text: str  # markdown: the body, and the source of the HTML
    inline: bool
    external_url: str | None
    extra: dict[str, Any]
    labels_plain: str = ""
    labels_html: str = ""
    suffix_text: str = ""
    suffix_html: str = ""

    @property
    def job(self) -> MarkdownJob:
        return MarkdownJob(self.text, inline=self.inline)

    def _body(self) -> str:
        labels = f" with labels {self.labels_plain}" if self.labels_plain else ""
        return self.text + labels + self.suffix_text

    def finish(self, html: str) -> FormattedMessage:
        """The message, `html` being `job` rendered."""
        labels = f" with labels {self.labels_html}" if self.labels_plain else ""
        return FormattedMessage(self._body(), html + labels + self.suffix_html, self.external_url, self.extra)

    def render(self) -> FormattedMessage:
        """The message rendered here and now (for trusted or short text)."""
        return self.finish(render_markdown(self.text, inline=self.inline))

    def plain(self) -> FormattedMessage:
        """The message without HTML: what is posted when rendering failed."""
        return FormattedMessage(self._body(), None, self.external_url, self.extra)


@dataclass(frozen=True)
class _Ctx:
    event: str
    action: str | None
    p: Payload
    config: RepoConfig
    domain: str
    pr_diff: str | None

    @property
    def sender(self) -> str:
        return self.p.obj("sender").text("login")

    @property
    def repo(self) -> Payload:
        return self.p.obj("repository")

    @property
    def repo_name(self) -> str:
        return self.repo.text("full_name")


# --- shared pieces ----------------------------------------------------------------------------


def _message(
    text: str,
    *,
    inline: bool,
    external_url: str | None,
    extra: dict[str, Any],
    labels: list[Payload] | None = None,
    suffix_text: str = "",
    suffix_html: str = "",
) -> Draft:
    labels_plain = labels_html = ""
    if labels:
        rendered = format_labels(label.raw for label in labels)
        labels_plain, labels_html = rendered.plain, rendered.html
    return Draft(
        text,
        inline,
        external_url,
        extra,
        labels_plain=labels_plain,
        labels_html=labels_html,
        suffix_text=suffix_text,
        suffix_html=suffix_html,
    )


def _repo_extra(repo: Payload) -> dict[str, Any]:
    return {
        REPO_KEY: {
            "id": repo.integer("id"),
            "name": repo.text("full_name"),
            "url": repo.text("html_url"),
        }
    }


def _issue_extra(repo: Payload, issue: Payload) -> dict[str, Any]:
    return {
        **_repo_extra(repo),
        ISSUE_KEY: {
            "id": issue.integer("id"),
            "number": issue.integer("number"),
            "title": issue.text("title"),
            "url": issue.text("html_url"),
        },
    }


def _pr_extra(repo: Payload, pr: Payload) -> dict[str, Any]:
    details = {
        "id": pr.integer("id"),
        "number": pr.integer("number"),
        "title": pr.text("title"),
        "url": pr.text("html_url"),
    }
    # ISSUE_KEY too: a PR is an issue for reactions and hotlinks, as in hookshot.
    return {**_repo_extra(repo), ISSUE_KEY: dict(details), PR_KEY: details}


def _ref(ctx: _Ctx, item: Payload) -> str:
    """`[owner/repo#12](url)`"""
    return f"[{ctx.repo_name}#{item.integer('number')}]({item.text('html_url')})"


def _quote(text: str) -> str:
    """The first 256 characters as a Markdown quote (every line, so blank lines stay quoted)."""
    truncated = text[:TRUNCATE_COMMENT_SIZE] + ("…" if len(text) > TRUNCATE_COMMENT_SIZE else "")
    return "\n".join(f"> {line}" if line else ">" for line in truncated.splitlines() or [""])


def _label_names(item: Payload) -> set[str]:
    return {label.text("name") for label in item.objs("labels")}


def _matches_label_filter(config: RepoConfig, item: Payload) -> bool:
    """hookshot's `matchesLabelFilter`: excluded labels veto; included labels are required."""
    return labels_allowed(_label_names(item), config.including_labels, config.excluding_labels)


def _short_ref(ref: str) -> tuple[str, str]:
    """(`branch`|`tag`|`ref`, name) from a full git ref."""
    for prefix, kind in (("refs/heads/", "branch"), ("refs/tags/", "tag")):
        if ref.startswith(prefix):
            return kind, ref[len(prefix):]
    return "ref", ref


def _url_path(value: str) -> str:
    return quote(value, safe="/")


# --- issues -----------------------------------------------------------------------------------


def _issue_room_link(ctx: _Ctx, number: int) -> str:
    org = ctx.config.org.lower()
    repo = ctx.config.repo.lower()
    return f" [Issue Room](https://matrix.to/#/#github_{org}_{repo}_{number}:{ctx.domain})"


def _issue_opened(ctx: _Ctx) -> Draft | None:
    issue = ctx.p.obj("issue")
    text = (
        f"📥 **{issue.obj('user').text('login')}** created new issue {_ref(ctx, issue)}: "
        f'"{issue.text("title")}"'
    )
    assignees = [a.text("login") for a in issue.objs("assignees")]
    if assignees:
        text += f" assigned to {', '.join(assignees)}"
    if ctx.config.settings.show_issue_room_link:
        text += _issue_room_link(ctx, issue.integer("number"))
    return _message(
        text,
        inline=True,
        external_url=issue.text("html_url"),
        extra=_issue_extra(ctx.repo, issue),
        labels=issue.objs("labels"),
    )


def _issue_state_change(ctx: _Ctx) -> Draft | None:
    issue = ctx.p.obj("issue")
    verb, icon = ("reopened", "🔷") if ctx.action == "reopened" else ("closed", "⬛")
    text = f'{icon} **{ctx.sender}** {verb} issue {_ref(ctx, issue)}: "{issue.text("title")}"'
    return _message(
        text, inline=False, external_url=issue.text("html_url"), extra=_issue_extra(ctx.repo, issue)
    )


def _issue_edited(ctx: _Ctx) -> Draft | None:
    issue = ctx.p.obj("issue")
    text = f'✏️ **{ctx.sender}** edited issue {_ref(ctx, issue)}: "{issue.text("title")}"'
    return _message(
        text, inline=True, external_url=issue.text("html_url"), extra=_issue_extra(ctx.repo, issue)
    )


def _issue_labeled(ctx: _Ctx) -> Draft | None:
    # hookshot posts "labeled" only for rooms that opted into specific labels.
    including = ctx.config.including_labels
    label = ctx.p.opt_obj("label")
    if not including or label is None or label.text("name") not in including:
        return None
    issue = ctx.p.obj("issue")
    if _label_names(issue) & ctx.config.excluding_labels:
        return None
    if _within_creation_grace(issue):
        return None
    text = f'🗃 **{ctx.sender}** labeled issue {_ref(ctx, issue)}: "{issue.text("title")}"'
    return _message(
        text,
        inline=True,
        external_url=issue.text("html_url"),
        extra=_issue_extra(ctx.repo, issue),
        labels=issue.objs("labels"),
    )


def _within_creation_grace(issue: Payload) -> bool:
    created, updated = issue.opt_text("created_at"), issue.opt_text("updated_at")
    if created is None or updated is None:
        return False
    try:
        delta = datetime.fromisoformat(updated) - datetime.fromisoformat(created)
    except ValueError:
        return False
    return delta.total_seconds() < CREATED_GRACE_PERIOD_S


def _issue_comment(ctx: _Ctx) -> Draft | None:
    issue = ctx.p.obj("issue")
    comment = ctx.p.obj("comment")
    comment_url = comment.opt_text("html_url") or issue.text("html_url")
    text = (
        f"🗣 **{comment.obj('user').text('login')}** [commented]({comment_url}) on "
        f"{_ref(ctx, issue)}  \n{_quote(comment.text('body'))}"
    )
    extra = _issue_extra(ctx.repo, issue)
    extra[COMMENT_KEY] = {"id": comment.integer("id")}
    return _message(text, inline=False, external_url=comment_url, extra=extra)


def _commit_comment(ctx: _Ctx) -> Draft | None:
    comment = ctx.p.obj("comment")
    sha = comment.text("commit_id")
    commit_url = f"{ctx.repo.text('html_url')}/commit/{sha}"
    comment_url = comment.opt_text("html_url") or commit_url
    text = (
        f"🗣 **{comment.obj('user').text('login')}** [commented]({comment_url}) on commit "
        f"[`{sha[:7]}`]({commit_url}) in {ctx.repo_name}  \n{_quote(comment.text('body'))}"
    )
    extra = _repo_extra(ctx.repo)
    extra[COMMENT_KEY] = {"id": comment.integer("id")}
    return _message(text, inline=False, external_url=comment_url, extra=extra)


# --- pull requests ----------------------------------------------------------------------------


def _pr_opened(ctx: _Ctx) -> Draft | None:
    pr = ctx.p.obj("pull_request")
    verb, icon = ("drafted", "⚪") if pr.flag("draft") else ("opened", "🔵")
    text = f'{icon} **{ctx.sender}** {verb} a new PR {_ref(ctx, pr)}: "{pr.text("title")}"'
    draft = _message(
        text, inline=True, external_url=pr.text("html_url"), extra=_pr_extra(ctx.repo, pr), labels=pr.objs("labels")
    )
    return with_pr_diff(draft, ctx.pr_diff, ctx.config.settings)


def with_pr_diff(draft: Draft, diff: str | None, settings: RepoSettings) -> Draft:
    """An opened PR's message with its diff appended, for a room with `prDiff` enabled and a
    diff short enough. (Escaped, not rendered: no CPU the sender controls.)"""
    # hookshot counts lines with split("/n") and so never enforces maxLines; we do.
    if not settings.pr_diff_enabled or diff is None or len(diff.splitlines()) > settings.pr_diff_max_lines:
        return draft
    return replace(
        draft,
        suffix_text=f"\n``` diff\n{diff}\n```",
        suffix_html=f'\n<pre><code class="language-diff">{escape(diff)}\n</code></pre>',
    )


def _pr_simple(template: str, *, inline: bool) -> Callable[[_Ctx], Draft | None]:
    """A PR message: `template` filled with `sender`, `ref` (the linked PR) and `title`."""

    def handler(ctx: _Ctx) -> Draft | None:
        pr = ctx.p.obj("pull_request")
        text = template.format(sender=ctx.sender, ref=_ref(ctx, pr), title=pr.text("title"))
        return _message(
            text, inline=inline, external_url=pr.text("html_url"), extra=_pr_extra(ctx.repo, pr)
        )

    return handler


def _pr_closed(ctx: _Ctx) -> Draft | None:
    pr = ctx.p.obj("pull_request")
    verb, icon = ("merged", "✳️") if pr.flag("merged") else ("closed", "⚫")
    text = f'{icon} **{ctx.sender}** {verb} PR {_ref(ctx, pr)}: "{pr.text("title")}"'
    return _message(
        text, inline=False, external_url=pr.text("html_url"), extra=_pr_extra(ctx.repo, pr)
    )


def _pr_review_requested(ctx: _Ctx) -> Draft | None:
    pr = ctx.p.obj("pull_request")
    reviewer = ctx.p.opt_obj("requested_reviewer")
    team = ctx.p.opt_obj("requested_team")
    if reviewer is not None:
        who = reviewer.text("login")
    elif team is not None:
        who = team.text("name")
    else:
        raise PayloadError("requested_reviewer", "expected object, got null")
    text = (
        f"👀 **{ctx.sender}** requested a review from **{who}** on {_ref(ctx, pr)}: "
        f'"{pr.text("title")}"'
    )
    return _message(
        text, inline=True, external_url=pr.text("html_url"), extra=_pr_extra(ctx.repo, pr)
    )


def _pr_reviewed(ctx: _Ctx) -> Draft | None:
    pr = ctx.p.obj("pull_request")
    review_state = ctx.p.obj("review").text("state").lower()
    # "commented" reviews fire for every review comment; hookshot ignores them, so do we.
    icon = {"approved": "✅", "changes_requested": "🔴"}.get(review_state)
    if icon is None:
        return None
    text = f'{icon} **{ctx.sender}** {review_state} {_ref(ctx, pr)} "{pr.text("title")}"'
    return _message(
        text, inline=True, external_url=pr.text("html_url"), extra=_pr_extra(ctx.repo, pr)
    )


# --- push, refs -------------------------------------------------------------------------------


def _push(ctx: _Ctx) -> Draft | None:
    p = ctx.p
    ref = p.text("ref")
    kind, name = _short_ref(ref)
    compare = p.opt_text("compare")
    commits = p.objs("commits")
    extra = _repo_extra(ctx.repo)
    pusher = p.opt_obj("pusher")
    pusher_name = pusher.opt_text("name") if pusher else None
    pusher_email = pusher.opt_text("email") if pusher else None
    extra[PUSH_KEY] = {
        "commits": [c.text("id") for c in commits],
        "ref": ref,
        "base_ref": p.opt_text("base_ref"),
        "pusher": f"{pusher_name or ctx.sender} <{pusher_email or ''}>",
    }
    # `deleted` is the flag; a null head_commit with an all-zero `after` means the same.
    after = p.opt_text("after") or "0"
    if p.flag("deleted") or (not p.has("head_commit") and set(after) == {"0"}):
        text = f"**{ctx.sender}** deleted {kind} `{name}` for {ctx.repo_name}"
        return _message(text, inline=True, external_url=ctx.repo.text("html_url"), extra=extra)
    if kind == "tag":
        link = f"[`{name}`]({compare})" if compare else f"`{name}`"
        text = f"**{ctx.sender}** pushed tag {link} for {ctx.repo_name}"
        return _message(text, inline=True, external_url=compare, extra=extra)

    count = len(commits)
    noun = "commit" if count == 1 else "commits"
    summary = f"[{count} {noun}]({compare})" if compare else f"{count} {noun}"
    text = f"**{ctx.sender}** pushed {summary} to `{name}` for {ctx.repo_name}"
    if not commits:
        return _message(text, inline=True, external_url=compare, extra=extra)
    lines = [text]
    for commit in commits[:MAX_PUSH_COMMITS_SHOWN]:
        sha = commit.text("id")
        first_line = (commit.text("message").splitlines() or [""])[0]
        url = commit.opt_text("url")
        short = f"[`{sha[:7]}`]({url})" if url else f"`{sha[:7]}`"
        lines.append(f"- {short} {first_line}".rstrip())
    body = "\n".join(lines)
    if count > MAX_PUSH_COMMITS_SHOWN:
        body += f"\n\nand {count - MAX_PUSH_COMMITS_SHOWN} more"
    return _message(body, inline=False, external_url=compare, extra=extra)


def _ref_created(ctx: _Ctx) -> Draft | None:
    ref = ctx.p.text("ref")
    kind = ctx.p.text("ref_type")
    base = ctx.repo.text("html_url")
    if kind == "tag":
        url = f"{base}/releases/tag/{_url_path(ref)}"
        icon = "🏷️"
    else:
        url = f"{base}/tree/{_url_path(ref)}"
        icon = "🌱"
    text = f"{icon} **{ctx.sender}** created {kind} [`{ref}`]({url}) in {ctx.repo_name}"
    return _message(text, inline=True, external_url=url, extra=_repo_extra(ctx.repo))


def _ref_deleted(ctx: _Ctx) -> Draft | None:
    ref = ctx.p.text("ref")
    kind = ctx.p.text("ref_type")
    text = f"🗑️ **{ctx.sender}** deleted {kind} `{ref}` in {ctx.repo_name}"
    return _message(
        text, inline=True, external_url=ctx.repo.text("html_url"), extra=_repo_extra(ctx.repo)
    )


# --- releases, workflows ----------------------------------------------------------------------


def _release(
    icon: str, verb: str, *, drafts_only: bool
) -> Callable[[_Ctx], Draft | None]:
    def handler(ctx: _Ctx) -> Draft | None:
        release = ctx.p.obj("release")
        if drafts_only and not release.flag("draft"):
            # A published release also arrives as `release.published`; post that one only.
            return None
        title = release.opt_text("name") or release.text("tag_name")
        url = release.text("html_url")
        text = f"{icon} **{ctx.sender}** {verb} [{title}]({url}) for {ctx.repo_name}"
        notes = release.opt_text("body")
        if notes:
            text += f"\n\n{notes}"
        return _message(text, inline=False, external_url=url, extra=_repo_extra(ctx.repo))

    return handler


def _workflow_run(ctx: _Ctx) -> Draft | None:
    run = ctx.p.obj("workflow_run")
    workflow = ctx.p.opt_obj("workflow")
    name = run.opt_text("name") or (workflow.text("name") if workflow else run.text("name"))
    branch = run.opt_text("head_branch") or ""
    if not ctx.config.workflow.allows(name, branch):
        return None
    conclusion = run.opt_text("conclusion") or "unknown"
    notice = WORKFLOW_CONCLUSION_TO_NOTICE.get(conclusion, f"completed ({conclusion})")
    url = run.text("html_url")
    text = (
        f"✅ Workflow **{name}** [{notice}]({url}) for {ctx.repo_name} on branch `{branch}`"
    )
    return _message(text, inline=True, external_url=url, extra=_repo_extra(ctx.repo))


# --- repository activity ----------------------------------------------------------------------


def _fork(ctx: _Ctx) -> Draft | None:
    forkee = ctx.p.obj("forkee")
    url = forkee.text("html_url")
    text = f"🍴 **{ctx.sender}** forked {ctx.repo_name} to [{forkee.text('full_name')}]({url})"
    return _message(text, inline=True, external_url=url, extra=_repo_extra(ctx.repo))


def _starred(ctx: _Ctx) -> Draft | None:
    text = f"⭐ **{ctx.sender}** starred {ctx.repo_name}"
    return _message(
        text, inline=True, external_url=ctx.repo.text("html_url"), extra=_repo_extra(ctx.repo)
    )


def _unstarred(ctx: _Ctx) -> Draft | None:
    text = f"💔 **{ctx.sender}** unstarred {ctx.repo_name}"
    return _message(
        text, inline=True, external_url=ctx.repo.text("html_url"), extra=_repo_extra(ctx.repo)
    )


def _gollum(ctx: _Ctx) -> Draft | None:
    pages = ctx.p.objs("pages")
    if not pages:
        return None
    links = [
        (page.text("action"), f"[{page.opt_text('title') or page.text('page_name')}]"
         f"({page.text('html_url')})")
        for page in pages
    ]
    if len(links) == 1:
        action, link = links[0]
        text = f"📖 **{ctx.sender}** {action} wiki page {link} in {ctx.repo_name}"
        url = pages[0].text("html_url")
    else:
        listed = ", ".join(f"{action} {link}" for action, link in links)
        text = f"📖 **{ctx.sender}** updated {len(links)} wiki pages in {ctx.repo_name}: {listed}"
        url = ctx.repo.text("html_url")
    return _message(text, inline=True, external_url=url, extra=_repo_extra(ctx.repo))


def _member(ctx: _Ctx) -> Draft | None:
    member = ctx.p.obj("member").text("login")
    if ctx.action == "added":
        text = f"👥 **{ctx.sender}** added **{member}** as a collaborator to {ctx.repo_name}"
    elif ctx.action == "removed":
        text = f"👥 **{ctx.sender}** removed **{member}** as a collaborator from {ctx.repo_name}"
    else:
        text = f"👥 **{ctx.sender}** changed the permissions of **{member}** on {ctx.repo_name}"
        changes = ctx.p.opt_obj("changes")
        permission = changes.opt_obj("permission") if changes else None
        new_level = permission.opt_text("to") if permission else None
        if new_level:
            text += f" to {new_level}"
    return _message(
        text, inline=True, external_url=ctx.repo.text("html_url"), extra=_repo_extra(ctx.repo)
    )


def _public(ctx: _Ctx) -> Draft | None:
    url = ctx.repo.text("html_url")
    text = f"🌍 **{ctx.sender}** made [{ctx.repo_name}]({url}) public"
    return _message(text, inline=True, external_url=url, extra=_repo_extra(ctx.repo))


def _ping(ctx: _Ctx) -> Draft | None:
    repo = ctx.p.opt_obj("repository")
    org = ctx.p.opt_obj("organization")
    if repo is not None:
        target = repo.text("full_name")
    elif org is not None:
        target = org.text("login")
    else:
        target = "this app"
    zen = ctx.p.opt_text("zen")
    text = f"🏓 GitHub webhook for {target} is set up" + (f" ({zen})" if zen else "")
    url = repo.opt_text("html_url") if repo else None
    return _message(text, inline=True, external_url=url, extra=_repo_extra(repo) if repo else {})


# --- dispatch ---------------------------------------------------------------------------------

_Handler = Callable[[_Ctx], Draft | None]


@dataclass(frozen=True)
class _Route:
    hooks: tuple[str, ...]  # enableHooks candidates; empty = always posted
    handler: _Handler
    label_filtered: bool = False
    label_source: str = ""  # payload key of the labelled item


_ISSUE = ("issue",)
_PR = ("pull_request",)

_ROUTES: dict[tuple[str, str | None], _Route] = {
    ("issues", "opened"): _Route(("issue.created", *_ISSUE), _issue_opened, True, "issue"),
    ("issues", "closed"): _Route(("issue.changed", *_ISSUE), _issue_state_change, True, "issue"),
    ("issues", "reopened"): _Route(
        ("issue.changed", *_ISSUE), _issue_state_change, True, "issue"
    ),
    ("issues", "edited"): _Route(("issue.edited", *_ISSUE), _issue_edited, True, "issue"),
    # Label filters for `labeled` are applied by the handler (includingLabels is required).
    ("issues", "labeled"): _Route(("issue.labeled", *_ISSUE), _issue_labeled),
    ("issue_comment", "created"): _Route(
        ("issue.comment.created", "issue.comment"), _issue_comment, True, "issue"
    ),
    ("commit_comment", "created"): _Route((), _commit_comment),
    ("pull_request", "opened"): _Route(
        ("pull_request.opened", *_PR), _pr_opened, True, "pull_request"
    ),
    ("pull_request", "reopened"): _Route(
        ("pull_request.opened", *_PR),
        _pr_simple('🔷 **{sender}** reopened PR {ref}: "{title}"', inline=False),
        True,
        "pull_request",
    ),
    ("pull_request", "ready_for_review"): _Route(
        ("pull_request.ready_for_review", *_PR),
        _pr_simple('🔬 **{sender}** has marked {ref} as ready to review "{title}"', inline=True),
        True,
        "pull_request",
    ),
    ("pull_request", "converted_to_draft"): _Route(
        ("pull_request.ready_for_review", *_PR),
        _pr_simple('⚪ **{sender}** has marked {ref} as a draft "{title}"', inline=True),
        True,
        "pull_request",
    ),
    ("pull_request", "review_requested"): _Route(
        _PR, _pr_review_requested, True, "pull_request"
    ),
    ("pull_request_review", "submitted"): _Route(
        ("pull_request.reviewed", *_PR), _pr_reviewed, True, "pull_request"
    ),
    ("push", None): _Route(("push",), _push),
    ("create", None): _Route((), _ref_created),
    ("delete", None): _Route((), _ref_deleted),
    # hookshot checks `release.created` for *published* releases (its historic meaning).
    ("release", "published"): _Route(
        ("release", "release.created"), _release("📣", "released", drafts_only=False)
    ),
    ("release", "created"): _Route(
        ("release", "release.drafted"), _release("📝", "drafted release", drafts_only=True)
    ),
    ("fork", None): _Route((), _fork),
    ("watch", "started"): _Route((), _starred),
    ("star", "created"): _Route((), _starred),
    ("star", "deleted"): _Route((), _unstarred),
    ("gollum", None): _Route((), _gollum),
    ("member", "added"): _Route((), _member),
    ("member", "removed"): _Route((), _member),
    ("member", "edited"): _Route((), _member),
    ("public", None): _Route((), _public),
    ("ping", None): _Route((), _ping),
}


def _pr_closed_hooks(payload: Payload) -> tuple[str, ...]:
    # A merge is `closed` with merged=true. hookshot filtered merges by `pull_request.closed`;
    # we also honour the `pull_request.merged` name it declares but never checked.
    pr = payload.obj("pull_request")
    if pr.flag("merged"):
        return ("pull_request.merged", "pull_request.closed", *_PR)
    return ("pull_request.closed", *_PR)


def _route_for(event: str, payload: Payload) -> _Route | None:
    action = payload.opt_text("action")
    if event == "pull_request" and action == "closed":
        return _Route(_pr_closed_hooks(payload), _pr_closed, True, "pull_request")
    if event == "workflow_run":
        if action != "completed":
            return None
        conclusion = payload.obj("workflow_run").opt_text("conclusion")
        hooks = ("workflow", "workflow.run", f"workflow.run.{conclusion}")
        return _Route(hooks, _workflow_run)
    return _ROUTES.get((event, action)) or _ROUTES.get((event, None))


def candidate_hooks(event: str, payload: dict[str, Any]) -> tuple[str, ...] | None:
    """The enableHooks names that let this event through (any one suffices).

    `()` means the event has no hookshot name and is always posted; None means we do not
    format this event/action at all. Raises `PayloadError` for a malformed payload.
    """
    route = _route_for(event, Payload(payload))
    return None if route is None else route.hooks


def pr_diff_url(event: str, payload: dict[str, Any], config: RepoConfig) -> str | None:
    """The diff to fetch and pass to `format_event(pr_diff=...)`, if the room wants one."""
    if event != "pull_request" or payload.get("action") != "opened" or not config.settings.pr_diff_enabled:
        return None
    pr = payload.get("pull_request")
    url = pr.get("diff_url") if isinstance(pr, dict) else None
    return url if isinstance(url, str) else None


def build_event(
    event: str,
    payload: dict[str, Any],
    *,
    config: RepoConfig,
    domain: str,
    pr_diff: str | None = None,
) -> Draft | None:
    """One delivery's message for one repo connection, its markdown not rendered yet, or None
    if its filters drop it.

    `event` is the `X-GitHub-Event` header, `config` the connection's typed state (config
    defaults such as `showIssueRoomLink` already applied), `domain` the homeserver name (for
    issue-room aliases). Raises `PayloadError` naming the field when the payload lacks
    something the message needs. Linear in the payload: the costly part is `Draft.job`.
    """
    p = Payload(payload)
    route = _route_for(event, p)
    if route is None:
        return None
    if route.hooks and config.hooks.should_skip(*route.hooks):
        return None
    if route.label_filtered and not _matches_label_filter(config, p.obj(route.label_source)):
        return None
    ctx = _Ctx(event=event, action=p.opt_text("action"), p=p, config=config, domain=domain, pr_diff=pr_diff)
    return route.handler(ctx)


def format_event(
    event: str,
    payload: dict[str, Any],
    *,
    config: RepoConfig,
    domain: str,
    pr_diff: str | None = None,
) -> FormattedMessage | None:
    """`build_event`, rendered on the spot (the route renders off the event loop instead)."""
    draft = build_event(event, payload, config=config, domain=domain, pr_diff=pr_diff)
    return None if draft is None else draft.render()
