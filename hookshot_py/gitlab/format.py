"""GitLab webhook deliveries → what a room gets, worded like hookshot's `GitLabRepoConnection`.

`classify` is pure: it takes the delivery's `object_kind`, the parsed payload and the
connection's typed config (`RepoConfig`), applies the connection's filters and returns a
`Message` to post, a `ReviewItem` for the review debouncer (comments on a merge request and
approvals, `review.py`), or None when the room does not want it. Payloads are read with
`forges.payload.Payload`, so a missing or mistyped field is a `PayloadError` naming it.

Messages are markdown; `render` turns one into Matrix content and is meant to run in the CPU
pool (`services.cpu`): titles, descriptions and comments are a stranger's text.

hookshot's wording is kept where it has one (merge requests, pushes, tags, wiki pages, releases,
review summaries); issues, comments outside reviews and pipelines are ours, worded like
hookshot's GitHub messages. Filters, as hookshot applies them: `enableHooks` (`HookFilter`, with
each event's candidate names), `includingLabels`/`excludingLabels` on merge requests and issues
(and comments on them), `pushTagsRegex` on tag pushes. Confidential issues and comments are
never posted: they are for project members, and a room is not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import Any

from hookshot_py.forges.payload import Payload, PayloadError
from hookshot_py.gitlab.state import RepoConfig
from hookshot_py.markdown import render_markdown

__all__ = [
    "KINDS",
    "Message",
    "PayloadError",
    "ReviewItem",
    "classify",
    "project_path",
    "render",
    "render_fallback",
    "review_summary",
]

#: The `object_kind`s a connection may post.
KINDS = frozenset({"push", "tag_push", "merge_request", "issue", "note", "release", "wiki_page", "pipeline"})

PUSH_MAX_COMMITS = 5  # hookshot's
QUOTE_CHARS = 256  # a comment quoted under its notice, as hookshot quotes GitHub comments
MAX_TEXT_CHARS = 8000  # a release description or a comment posted whole, at most
#: A message's markdown at most (titles are the sender's too): far below Matrix's 64 KiB event.
MAX_MESSAGE_CHARS = 10_000
ZERO_SHA = "0" * 40


@dataclass(frozen=True)
class Message:
    """A notice to post: markdown, rendered inline (one line) or as a block."""

    markdown: str
    inline: bool = True
    external_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReviewItem:
    """A comment on a merge request, or an approval, waiting to be summed up with the others its
    author makes within `commentDebounceMs` (`review.py`)."""

    batch: str  # "{project}!{iid}/{username}": one summary per author and merge request
    kind: str  # "comment", "approved" or "unapproved"
    key: str  # what makes it unique in the connection (a note id; an approval's delivery)
    data: dict[str, Any]  # what the summary needs: author, mr {iid, url, title}, project, note...


# -- reading payloads -----------------------------------------------------------------------------------


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def project_path(payload: dict[str, Any]) -> str | None:
    """`project.path_with_namespace`, where every delivery we post names its project."""
    project = payload.get("project")
    path = project.get("path_with_namespace") if isinstance(project, dict) else None
    return path if isinstance(path, str) and path else None


def _homepage(project: Payload) -> str:
    return (project.opt_text("homepage") or project.opt_text("web_url") or "").rstrip("/")


def _labels(*sources: Payload | None) -> list[str]:
    """Label titles from the first source that lists labels."""
    for source in sources:
        if source is not None and source.has("labels"):
            return [label.text("title") for label in source.objs("labels") if label.has("title")]
    return []


def _user(payload: Payload) -> str:
    user = payload.opt_obj("user")
    if user is not None:
        return user.opt_text("username") or user.opt_text("name") or "someone"
    return payload.opt_text("user_username") or payload.opt_text("user_name") or "someone"


def _short_ref(ref: str, prefix: str) -> str:
    return ref[len(prefix):] if ref.startswith(prefix) else ref


# -- pushes -------------------------------------------------------------------------------------------------


def _push(p: Payload, config: RepoConfig) -> Message | None:
    if not config.wants("push"):
        return None
    project = p.obj("project")
    path = project.text("path_with_namespace")
    home = _homepage(project)
    branch = _short_ref(p.text("ref"), "refs/heads/")
    commits_url, branch_url = f"{home}/-/commits/{branch}", f"{home}/-/tree/{branch}"
    user = p.opt_text("user_name") or p.opt_text("user_username") or "someone"
    total = p.integer("total_commits_count")
    if p.opt_text("after") == ZERO_SHA:
        return Message(f"**{user}** deleted branch `{branch}` for {path}")
    if total == 0:
        verb = "created branch" if p.opt_text("before") == ZERO_SHA else "updated"
        return Message(f"**{user}** {verb} [`{branch}`]({branch_url}) for {path}", external_url=branch_url)
    commits = p.objs("commits")
    pusher_email = p.opt_text("user_email")
    should_name = not all(c.obj("author").opt_text("email") == pusher_email for c in commits)
    too_many = total > PUSH_MAX_COMMITS
    shown = 1 if too_many else min(total, PUSH_MAX_COMMITS)
    lines = []
    for commit in list(reversed(commits))[:shown]:  # GitLab lists them oldest first
        sha = commit.text("id")
        title = commit.opt_text("title") or (commit.opt_text("message") or "").split("\n", 1)[0]
        by = f" by {commit.obj('author').opt_text('name') or 'someone'}" if should_name else ""
        lines.append(f"[`{sha[:8]}`]({home}/-/commit/{sha}) {title}{by}")
    content = (
        f"**{user}** pushed [{total} commit{'s' if total > 1 else ''}]({commits_url})"
        f" to [`{branch}`]({branch_url}) for {path}"
    )
    if len(lines) >= 2:
        content += "\n - " + "\n - ".join(lines) + "\n"
    elif lines:
        content += f": {lines[0]}"
        if too_many:
            content += f", and [{total - 1} more]({commits_url}) commits"
    return Message(content, inline=False, external_url=commits_url)


def _tag_push(p: Payload, config: RepoConfig) -> Message | None:
    if not config.wants("tag_push"):
        return None
    project = p.obj("project")
    path = project.text("path_with_namespace")
    tag = _short_ref(p.text("ref"), "refs/tags/")
    if not config.tag_allowed(tag):
        return None
    user = p.opt_text("user_name") or p.opt_text("user_username") or "someone"
    if p.opt_text("after") == ZERO_SHA:
        return Message(f"**{user}** deleted tag `{tag}` for {path}")
    url = f"{_homepage(project)}/-/tree/{tag}"
    return Message(f"**{user}** pushed tag [`{tag}`]({url}) for {path}", external_url=url)


# -- merge requests ------------------------------------------------------------------------------------------


def _mr_link(path: str, mr: Payload) -> tuple[str, str]:
    url = mr.text("url")
    return f"[{path}!{mr.integer('iid')}]({url})", url


def _review_item(kind: str, key: str, p: Payload, mr: Payload, path: str, **extra: Any) -> ReviewItem:
    user = p.obj("user")
    username = user.opt_text("username") or user.opt_text("name") or "someone"
    iid = mr.integer("iid")
    data = {
        "author": user.opt_text("name") or username,
        "project": path,
        "mr": {"iid": iid, "url": mr.text("url"), "title": mr.text("title")},
        **extra,
    }
    return ReviewItem(f"{path.lower()}!{iid}/{username}", kind, key, data)


def _merge_request(p: Payload, config: RepoConfig, delivery: str | None) -> Message | ReviewItem | None:
    mr = p.obj("object_attributes")
    action = mr.opt_text("action")
    if action is None:
        return None  # the "test" button: hookshot drops these too
    if not config.labels_allowed(_labels(p, mr)):
        return None
    path = p.obj("project").text("path_with_namespace")
    user = _user(p)
    link, url = _mr_link(path, mr)
    title = mr.text("title")
    verbs = {"open": "opened a new MR", "reopen": "reopened MR", "close": "closed MR", "merge": "merged MR"}
    if action in verbs:
        if not config.wants("merge_request", f"merge_request.{action}"):
            return None
        return Message(f'**{user}** {verbs[action]} {link}: "{title}"', external_url=url)
    if action == "update":
        if not config.wants("merge_request", "merge_request.ready_for_review"):
            return None
        changes = p.opt_obj("changes")
        change = None if changes is None else (changes.opt_obj("draft") or changes.opt_obj("work_in_progress"))
        if change is None:
            return None
        state = "as draft" if change.flag("current") else "as ready for review"
        return Message(f'**{user}** marked MR {link} {state} "{title}"', external_url=url)
    if action in ("approved", "unapproved", "approval", "unapproval"):
        individual = action in ("approval", "unapproval")
        names = ("merge_request.review.individual",) if individual else ("merge_request.review",
                                                                         f"merge_request.{action}")
        if not config.wants("merge_request", *names):
            return None
        kind = "approved" if action in ("approved", "approval") else "unapproved"
        key = f"{action}:{delivery or mr.opt_text('updated_at') or ''}"
        return _review_item(kind, key, p, mr, path)
    return None


# -- issues ------------------------------------------------------------------------------------------------------


def _issue(p: Payload, config: RepoConfig) -> Message | None:
    issue = p.obj("object_attributes")
    action = issue.opt_text("action")
    if action is None or p.opt_text("event_type") == "confidential_issue" or issue.flag("confidential"):
        return None
    if not config.wants("issue", f"issue.{action}") or not config.labels_allowed(_labels(p, issue)):
        return None
    path = p.obj("project").text("path_with_namespace")
    url = issue.text("url")
    link = f"[{path}#{issue.integer('iid')}]({url})"
    title, user = issue.text("title"), _user(p)
    if action == "open":
        text = f'📥 **{user}** created new issue {link}: "{title}"'
    elif action == "close":
        text = f'⬛ **{user}** closed issue {link}: "{title}"'
    elif action == "reopen":
        text = f'🔷 **{user}** reopened issue {link}: "{title}"'
    elif action == "update":
        changes = p.opt_obj("changes")
        changed = set(changes.raw) if changes is not None else set()
        if changed & {"title", "description"}:
            text = f'✏️ **{user}** edited issue {link}: "{title}"'
        elif "labels" in changed:
            labels = ", ".join(_labels(p, issue))
            text = f'🗃 **{user}** changed the labels of issue {link}: "{title}"' + (
                f" (now {labels})" if labels else ""
            )
        else:
            return None  # assignees, milestones, time tracking...: not worth a message
    else:
        return None
    return Message(text, external_url=url)


# -- comments ------------------------------------------------------------------------------------------------------


def _quote(text: str) -> str:
    clipped = _clip(text.strip(), QUOTE_CHARS)
    return "\n> " + clipped.replace("\n", "\n> ")


def _note(p: Payload, config: RepoConfig) -> Message | ReviewItem | None:
    note = p.obj("object_attributes")
    if note.opt_text("action") not in (None, "create") or note.flag("system"):
        return None  # an edited comment, or GitLab's own ("changed the description")
    if p.opt_text("event_type") == "confidential_note" or note.flag("confidential") or note.flag("internal"):
        return None
    path = p.obj("project").text("path_with_namespace")
    noteable = note.text("noteable_type")
    body, url = note.text("note"), note.text("url")
    user = _user(p)
    if noteable == "MergeRequest":
        mr = p.obj("merge_request")
        if not config.wants("merge_request", "merge_request.review.comments"):
            return None
        if not config.labels_allowed(_labels(mr)):
            return None
        extra: dict[str, Any] = {"noteUrl": url, "discussion": note.opt_text("discussion_id")}
        if config.include_comment_body:
            extra["note"] = _clip(body, MAX_TEXT_CHARS)
        return _review_item("comment", f"note:{note.integer('id')}", p, mr, path, **extra)
    if noteable == "Issue":
        issue = p.obj("issue")
        if issue.flag("confidential") or not config.wants("note", "note.issue"):
            return None
        if not config.labels_allowed(_labels(issue)):
            return None
        target = f"[{path}#{issue.integer('iid')}]({issue.opt_text('url') or url.split('#', 1)[0]})"
    elif noteable == "Commit":
        if not config.wants("note", "note.commit"):
            return None
        commit = p.obj("commit")
        sha = commit.text("id")
        target = f"commit [`{sha[:8]}`]({commit.opt_text('url') or url.split('#', 1)[0]}) of {path}"
    else:
        return None  # snippets
    return Message(f"🗣 **{user}** [commented]({url}) on {target}{_quote(body)}", inline=False, external_url=url)


# -- releases, wiki pages, pipelines ------------------------------------------------------------------------------


def _release(p: Payload, config: RepoConfig) -> Message | None:
    if p.opt_text("action") != "create" or not config.wants("release", "release.created"):
        return None
    path = p.obj("project").text("path_with_namespace")
    commit = p.opt_obj("commit")
    author = commit.obj("author").opt_text("name") if commit is not None and commit.has("author") else None
    name = p.opt_text("name") or p.text("tag")
    url = p.text("url")
    description = _clip(p.opt_text("description") or "", MAX_TEXT_CHARS)
    return Message(
        f"**{author or 'someone'}** 🪄 released [{name}]({url}) for {path}\n\n{description}".rstrip(),
        inline=False, external_url=url,
    )


_WIKI_STATEMENTS = {"create": "created new wiki page", "delete": "deleted wiki page"}


def _wiki_page(p: Payload, config: RepoConfig) -> Message | None:
    page = p.obj("object_attributes")
    action = page.opt_text("action") or "update"
    if not config.wants("wiki", f"wiki.{action}"):
        return None
    path = p.obj("project").text("path_with_namespace")
    statement = _WIKI_STATEMENTS.get(action, "updated wiki page")
    message = page.opt_text("message")
    url = page.text("url")
    text = f'**{_user(p)}** {statement} "[{page.text("title")}]({url})" for {path}'
    return Message(text + (f' "{message}"' if message else ""), external_url=url)


_PIPELINE = {"success": ("✅", "succeeded"), "failed": ("❌", "failed"), "canceled": ("⏹️", "was canceled")}


def _pipeline(p: Payload, config: RepoConfig) -> Message | None:
    pipeline = p.obj("object_attributes")
    status = pipeline.text("status")
    if status not in _PIPELINE or not config.wants("pipeline", f"pipeline.{status}"):
        return None
    project = p.obj("project")
    path = project.text("path_with_namespace")
    icon, verb = _PIPELINE[status]
    iid = pipeline.raw.get("iid")
    number = iid if isinstance(iid, int) and not isinstance(iid, bool) else pipeline.integer("id")
    url = pipeline.opt_text("url") or f"{_homepage(project)}/-/pipelines/{pipeline.integer('id')}"
    mr = p.opt_obj("merge_request")
    if mr is not None:
        link, _ = _mr_link(path, mr)
        target = f'MR {link}: "{mr.text("title")}"'
    else:
        ref = pipeline.text("ref")
        kind = "tag" if pipeline.flag("tag") else "branch"
        target = f"{kind} [`{ref}`]({_homepage(project)}/-/tree/{ref}) of {path}"
    return Message(f"{icon} Pipeline [#{number}]({url}) {verb} for {target}", external_url=url)


# -- entry points ----------------------------------------------------------------------------------------------------


def classify(
    kind: str, payload: dict[str, Any], config: RepoConfig, *, delivery: str | None = None
) -> Message | ReviewItem | None:
    """What `config`'s room gets for a delivery; raises PayloadError for a malformed payload.
    `delivery`: the delivery's id, which tells approvals apart."""
    p = Payload(payload)
    if kind == "push":
        return _push(p, config)
    if kind == "tag_push":
        return _tag_push(p, config)
    if kind == "merge_request":
        return _merge_request(p, config, delivery)
    if kind == "issue":
        return _issue(p, config)
    if kind == "note":
        return _note(p, config)
    if kind == "release":
        return _release(p, config)
    if kind == "wiki_page":
        return _wiki_page(p, config)
    if kind == "pipeline":
        return _pipeline(p, config)
    return None


def review_summary(items: list[dict[str, Any]], *, in_thread: bool) -> Message:
    """hookshot's summary of one author's review of one merge request: `items` are the
    `ReviewItem.data` of the batch with their `kind`, oldest first."""
    first = items[0]
    mr = first["mr"]
    comments = sum(1 for i in items if i["kind"] == "comment")
    approvals = [i["kind"] for i in items if i["kind"] != "comment"]
    action = "replied" if in_thread else "commented on"
    if approvals:
        action = "✅ approved" if approvals[-1] == "approved" else "🔴 requested changes"
    target = "" if in_thread else f' MR [{first["project"]}!{mr["iid"]}]({mr["url"]}): "{mr["title"]}"'
    suffix = "" if comments == 0 else " with one comment" if comments == 1 else f" with {comments} comments"
    return Message(f"**{first['author']}** {action}{target}{suffix}", external_url=mr["url"])


def review_reply(item: dict[str, Any]) -> Message:
    """One comment of a review, posted whole as a reply in the summary's thread."""
    return Message(f"**{item['author']}** [commented]({item['noteUrl']}):\n\n{item['note']}", inline=False,
                   external_url=item.get("noteUrl"))


def render(message: Message) -> dict[str, Any]:
    """The Matrix content of a message (markdown rendered: run it in the CPU pool)."""
    markdown = _clip(message.markdown, MAX_MESSAGE_CHARS)
    content: dict[str, Any] = {
        "msgtype": "m.notice",
        "body": markdown,
        "format": "org.matrix.custom.html",
        "formatted_body": render_markdown(markdown, inline=message.inline),
        **message.extra,
    }
    if message.external_url:
        content["external_url"] = message.external_url
    return content


def render_fallback(message: Message) -> dict[str, Any]:
    """The message as escaped text, when rendering it took too long."""
    content = render(Message("", extra=message.extra, external_url=message.external_url))
    content["body"] = markdown = _clip(message.markdown, MAX_MESSAGE_CHARS)
    content["formatted_body"] = escape(markdown).replace("\n", "<br>")
    return content


def render_all(messages: list[Message]) -> list[dict[str, Any]]:
    """`render` for several messages in one CPU-pool call."""
    return [render(m) for m in messages]
