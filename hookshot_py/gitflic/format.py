"""Room messages for GitFlic deliveries, in hookshot's style (emoji, **user**, verb, link).

GitFlic documents the envelope (`action`, `project_id`, `project{...}`) and little of the
event objects, so every field is looked up among plausible spellings (snake_case and
camelCase, nested user objects) and a missing one only shortens the sentence.

Links come from URLs in the payload when present (http/https only). Otherwise they are built,
as a best effort, from the project's web address — its clone URL without `.git`, else
`{instance}/project/{owner}/{project}` — and these page paths:
`/issue/{n}`, `/merge-request/{n}`, `/commit/{sha}`, `/file?branch={ref}` (branches and tags),
`/cicd/pipeline/{n}`, and `{instance}/user/{alias}`. These paths are our understanding of
GitFlic's web pages, not a documented API.

A message is built from small typed pieces rendered to a markdown `body` in which payload text
is escaped (titles, names and branches can never inject markup or links); the HTML is that body
through `render_markdown`, as for every other service. Quoted comments are the exception: they
are the author's markdown and are rendered as such, then sanitised. `delivery_job` stops before
the rendering, which the webhook route does off the event loop.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from hookshot_py.gitflic.models import Delivery
from hookshot_py.markdown import MarkdownJob, one_line, render_jobs

QUOTE_LIMIT = 256
COMMIT_LIST_LIMIT = 5
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>~])")
_CAMEL = re.compile(r"_([a-z])")


# -- pieces ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Text:
    text: str


@dataclass(frozen=True)
class _Bold:
    text: str


@dataclass(frozen=True)
class _Code:
    text: str


@dataclass(frozen=True)
class _Link:
    text: str
    url: str | None  # None renders as plain text: a link we could not build
    code: bool = False


_Piece = _Text | _Bold | _Code | _Link


@dataclass
class _Message:
    line: list[_Piece]
    quote: str | None = None
    items: list[list[_Piece]] = field(default_factory=list)


def _md_escape(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", text)


def _md_code(text: str) -> str:
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_url(url: str) -> str:
    return url.replace(" ", "%20").replace("(", "%28").replace(")", "%29")


def _piece_md(piece: _Piece) -> str:
    text = one_line(piece.text)
    if isinstance(piece, _Text):
        return _md_escape(text)
    if isinstance(piece, _Bold):
        return f"**{_md_escape(text)}**"
    if isinstance(piece, _Code):
        return _md_code(text)
    label = _md_code(text) if piece.code else _md_escape(text)
    return f"[{label}]({_md_url(piece.url)})" if piece.url else label


def _job(msg: _Message) -> MarkdownJob:
    """The markdown body, and how its HTML is rendered like every other hookshot message."""
    body = "".join(_piece_md(p) for p in msg.line)
    if msg.quote:
        # The excerpt is the author's own markdown: quoted as written, like hookshot does.
        body += "".join(f"\n> {line}" for line in msg.quote.splitlines())
    if msg.items:
        body += "".join("\n- " + "".join(_piece_md(p) for p in item) for item in msg.items)
    if "\n" not in body:
        return MarkdownJob(body, inline=True)
    # Quoted markdown is someone else's: keep only what Matrix allows (no foreign images...).
    return MarkdownJob(body, sanitize=True)


# -- reading the payload ---------------------------------------------------------------------------


def _variants(key: str) -> tuple[str, ...]:
    camel = _CAMEL.sub(lambda m: m.group(1).upper(), key)
    return (key, camel) if camel != key else (key,)


def _get(obj: Any, *keys: str) -> Any:
    """The first present, non-empty value among `keys` (each also tried in camelCase)."""
    if not isinstance(obj, dict):
        return None
    for key in keys:
        for variant in _variants(key):
            value = obj.get(variant)
            if value is not None and value != "" and value != [] and value != {}:
                return value
    return None


def _str(obj: Any, *keys: str) -> str | None:
    """The first of `keys` holding text (or a number); objects under a key are skipped."""
    for key in keys:
        if (text := _scalar(_get(obj, key))) is not None:
            return text
    return None


def _scalar(value: Any) -> str | None:
    """A string or number as display text; anything else (objects, booleans) is no text."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _obj(obj: Any, *keys: str) -> dict[str, Any]:
    """The first of `keys` holding an object, else `{}` so lookups in it simply find nothing."""
    for key in keys:
        if isinstance(value := _get(obj, key), dict):
            return value
    return {}


def _url(value: Any) -> str | None:
    """A payload URL we are willing to link to (absolute http/https only)."""
    if not isinstance(value, str):
        return None
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return None
    return value.strip() if parts.scheme in ("http", "https") and parts.netloc else None


def _payload_url(obj: Any) -> str | None:
    return _url(_get(obj, "url", "web_url", "html_url", "link", "href"))


def _name_of(value: Any) -> str | None:
    """A user's alias from a string or a user object."""
    if isinstance(value, str):
        return value.strip() or None
    return _str(value, "alias", "user_alias", "username", "login", "name", "full_name")


def _actor_in(obj: Any) -> str | None:
    name = _str(
        obj,
        "updated_by_alias",
        "user_alias",
        "author_alias",
        "creator_alias",
        "username",
        "user_name",
        "author_name",
    )
    if name:
        return name
    for key in ("updated_by", "user", "author", "creator"):
        if name := _name_of(_get(obj, key)):
            return name
    return None


def _strip_ref(ref: str) -> str:
    for prefix in ("refs/heads/", "refs/tags/"):
        if ref.startswith(prefix):
            return ref[len(prefix) :]
    return ref


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _excerpt(text: str | None) -> str | None:
    if not text or not text.strip():
        return None
    text = text.strip()
    return text if len(text) <= QUOTE_LIMIT else text[:QUOTE_LIMIT].rstrip() + "…"


@dataclass
class _Ctx:
    payload: dict[str, Any]
    project: str | None  # "owner/project" as the payload spells it
    project_id: str | None
    project_url: str | None
    root: str  # web root of the instance

    def actor(self, *objs: Any) -> str | None:
        """Who did it: a top-level actor first, then the event objects.

        An object's `user_alias` names its author (GitFlic documents it so for issues), who is
        not necessarily the user who updated or closed it; it is the last resort.
        """
        for key in ("initiator", "sender", "pusher", "user", "author"):
            if name := _name_of(_get(self.payload, key)):
                return name
        if name := _str(self.payload, "sender_alias", "user_alias", "author_alias"):
            return name
        for obj in objs:
            if name := _actor_in(obj):
                return name
        return None

    def actor_pieces(self, *objs: Any) -> list[_Piece]:
        name = self.actor(*objs)
        return [_Bold(name)] if name else [_Text("Someone")]

    def project_pieces(self) -> list[_Piece]:
        if self.project:
            return [_Link(self.project, self.project_url)]
        if self.project_id:
            return [_Text(f"project {self.project_id}")]
        return [_Text("a GitFlic project")]

    def path_url(self, suffix: str) -> str | None:
        return f"{self.project_url}{suffix}" if self.project_url else None

    def user_url(self, alias: str) -> str:
        return f"{self.root}/user/{quote(alias, safe='')}"


def _context(delivery: Delivery, instance_url: str, fallback_project: str | None) -> _Ctx:
    payload = delivery.raw
    project = _obj(payload, "project")
    owner, alias = _str(project, "owner_alias"), _str(project, "alias")
    key = f"{owner}/{alias}" if owner and alias else (delivery.project_key or fallback_project)
    root = instance_url.rstrip("/")
    project_url: str | None = None
    transport = _url(_get(project, "http_transport_url"))
    if transport and "/project/" in transport:
        web = transport[:-4] if transport.endswith(".git") else transport.rstrip("/")
        root, project_url = web.split("/project/", 1)[0], web
    elif key and "/" in key:
        owner_part, alias_part = key.split("/", 1)
        project_url = f"{root}/project/{quote(owner_part, safe='')}/{quote(alias_part, safe='')}"
    return _Ctx(payload, key, delivery.project_id, project_url, root)


# -- messages --------------------------------------------------------------------------------------


def _number(obj: Any) -> str | None:
    return _str(obj, "local_id", "number", "iid")


def _title_pieces(obj: Any) -> list[_Piece]:
    title = _str(obj, "title", "name")
    return [_Text(f': "{title}"')] if title else []


def _object_ref(ctx: _Ctx, obj: Any, noun: str, sep: str, path: str) -> list[_Piece]:
    """`issue [owner/project#12](url)`, or `an issue in [owner/project](url)` without a number."""
    number = _number(obj)
    url = _payload_url(obj)
    if number and ctx.project:
        return [_Text(f"{noun} "), _Link(f"{ctx.project}{sep}{number}", url or ctx.path_url(f"/{path}/{number}"))]
    if number:
        return [_Text(f"{noun} "), _Link(f"{sep}{number}", url)]
    article = "an" if noun[0] in "aeiou" else "a"
    if url:
        return [_Text(f"{article} "), _Link(noun, url), _Text(" in "), *ctx.project_pieces()]
    return [_Text(f"{article} {noun} in "), *ctx.project_pieces()]


def _status_pieces(obj: Any) -> list[_Piece]:
    status = _get(obj, "status", "state")
    text = _str(status, "title", "name", "id") if isinstance(status, dict) else _str(obj, "status", "state")
    return [_Text(f" (status: {text})")] if text else []


def _issue(emoji: str, verb: str) -> Callable[[_Ctx], _Message]:
    def build(ctx: _Ctx) -> _Message:
        issue = _obj(ctx.payload, "issue")
        line = [_Text(f"{emoji} "), *ctx.actor_pieces(issue), _Text(f" {verb} ")]
        line += _object_ref(ctx, issue, "issue", "#", "issue") + _title_pieces(issue)
        if verb == "updated":
            line += _status_pieces(issue)
        return _Message(line)

    return build


def _comment_text(obj: Any) -> str | None:
    return _str(obj, "message", "text", "body", "note", "content", "comment")


def _issue_note(ctx: _Ctx) -> _Message:
    issue = _obj(ctx.payload, "issue")
    note = _obj(ctx.payload, "note", "issue_note", "comment")
    note_url = _payload_url(note)
    line: list[_Piece] = [_Text("🗣 "), *ctx.actor_pieces(note), _Text(" ")]
    line += [_Link("commented", note_url), _Text(" on ")] if note_url else [_Text("commented on ")]
    line += _object_ref(ctx, issue, "issue", "#", "issue") + _title_pieces(issue)
    return _Message(line, quote=_excerpt(_comment_text(note)))


def _branches(mr: Any) -> list[_Piece]:
    source = _str(mr, "source_branch") or _str(_obj(mr, "source"), "branch", "ref")
    target = _str(mr, "target_branch") or _str(_obj(mr, "target"), "branch", "ref")
    if source and target:
        return [_Text(" ("), _Code(_strip_ref(source)), _Text(" → "), _Code(_strip_ref(target)), _Text(")")]
    return []


def _merge_request(emoji: str, verb: str, with_branches: bool = False) -> Callable[[_Ctx], _Message]:
    def build(ctx: _Ctx) -> _Message:
        mr = _obj(ctx.payload, "merge_request", "mergeRequest")
        line = [_Text(f"{emoji} "), *ctx.actor_pieces(mr), _Text(f" {verb} ")]
        line += _object_ref(ctx, mr, "merge request", "!", "merge-request") + _title_pieces(mr)
        if with_branches:
            line += _branches(mr)
        return _Message(line)

    return build


def _discussion(ctx: _Ctx) -> _Message:
    discussion = _obj(ctx.payload, "discussion", "comment", "note")
    mr = _obj(ctx.payload, "merge_request") or _obj(discussion, "merge_request")
    url = _payload_url(discussion)
    line: list[_Piece] = [_Text("💬 "), *ctx.actor_pieces(discussion), _Text(" ")]
    line += [_Link("commented", url)] if url else [_Text("commented")]
    if mr:
        line += [_Text(" on "), *_object_ref(ctx, mr, "merge request", "!", "merge-request"), *_title_pieces(mr)]
    else:
        line += [_Text(" in a discussion of "), *ctx.project_pieces()]
    return _Message(line, quote=_excerpt(_comment_text(discussion)))


def _ref_name(ctx: _Ctx, obj: Any) -> str | None:
    name = _str(obj, "name", "title", "ref", "branch", "tag") or _str(
        ctx.payload, "ref", "branch", "branch_name", "tag", "tag_name"
    )
    if name is None:
        name = _str(_obj(ctx.payload, "push"), "ref")
    return _strip_ref(name) if name else None


def _ref_event(kind: str, emoji: str, verb: str, preposition: str) -> Callable[[_Ctx], _Message]:
    """Tag and branch creation/deletion. Deleted refs are not linked: the page is gone."""

    def build(ctx: _Ctx) -> _Message:
        obj = _obj(ctx.payload, kind)
        name = _ref_name(ctx, obj)
        line: list[_Piece] = [_Text(f"{emoji} "), *ctx.actor_pieces(obj, _obj(ctx.payload, "push"))]
        line.append(_Text(f" {verb} {kind}"))
        if name:
            if verb == "deleted":
                line += [_Text(" "), _Code(name)]
            else:
                url = _payload_url(obj) or ctx.path_url(f"/file?branch={quote(name, safe='')}")
                line += [_Text(" "), _Link(name, url, code=True)]
        line += [_Text(f" {preposition} "), *ctx.project_pieces()]
        return _Message(line)

    return build


def _commit_item(ctx: _Ctx, commit: Any) -> list[_Piece] | None:
    sha = _str(commit, "id", "sha", "hash", "commit_id")
    message = _first_line(_str(commit, "message", "title") or "")
    if not sha and not message:
        return None
    item: list[_Piece] = []
    if sha:
        url = _payload_url(commit) or ctx.path_url(f"/commit/{quote(sha, safe='')}")
        item.append(_Link(sha[:8], url, code=True))
    if message:
        item.append(_Text((" " if item else "") + message))
    return item


def _push(ctx: _Ctx) -> _Message:
    push = _obj(ctx.payload, "push") or _obj(ctx.payload, "branch")
    commits_value = _get(push, "commits")
    if commits_value is None:
        commits_value = _get(ctx.payload, "commits")
    commits = commits_value if isinstance(commits_value, list) else []
    count_value = _get(push, "total_commits_count", "commits_count") or _get(
        ctx.payload, "total_commits_count", "commits_count"
    )
    count = count_value if isinstance(count_value, int) and not isinstance(count_value, bool) else len(commits)
    branch = _ref_name(ctx, push)
    line: list[_Piece] = [_Text("⬆️ "), *ctx.actor_pieces(push), _Text(" pushed")]
    if count:
        label = f"{count} commit" + ("" if count == 1 else "s")
        compare = _url(_get(push, "compare_url", "compare")) or _payload_url(push)
        line += [_Text(" "), _Link(label, compare)]
    if branch:
        line += [_Text(" to "), _Link(branch, ctx.path_url(f"/file?branch={quote(branch, safe='')}"), code=True)]
    line += [_Text(" for " if branch else " to "), *ctx.project_pieces()]
    items = [item for c in commits[:COMMIT_LIST_LIMIT] if (item := _commit_item(ctx, c))]
    if count > len(items) and items:
        items.append([_Text(f"… and {count - len(items)} more")])
    return _Message(line, items=items)


def _collaborator(emoji: str, action: str) -> Callable[[_Ctx], _Message]:
    def build(ctx: _Ctx) -> _Message:
        member = _obj(ctx.payload, "collaborator", "member")
        alias = _name_of(member) or _str(ctx.payload, "collaborator_alias")
        role_value = _get(member, "role", "permission", "access_level") or _get(ctx.payload, "role")
        role = _str(role_value, "title", "name", "id") if isinstance(role_value, dict) else _scalar(role_value)
        who: list[_Piece] = [_Link(alias, ctx.user_url(alias))] if alias else [_Text("a collaborator")]
        line: list[_Piece] = [_Text(f"{emoji} "), *ctx.actor_pieces()]
        if action == "add":
            line += [_Text(" added "), *who, _Text(" to "), *ctx.project_pieces()]
            line += [_Text(" as "), _Bold(role)] if role else []
        elif action == "update":
            line += [_Text(" changed the role of "), *who, _Text(" in "), *ctx.project_pieces()]
            line += [_Text(" to "), _Bold(role)] if role else []
        else:
            line += [_Text(" removed "), *who, _Text(" from "), *ctx.project_pieces()]
        return _Message(line)

    return build


def _pipeline(emoji: str, outcome: str, tail: str = "") -> Callable[[_Ctx], _Message]:
    def build(ctx: _Ctx) -> _Message:
        pipeline = _obj(ctx.payload, "pipeline")
        number = _str(pipeline, "local_id", "number", "iid")
        url = _payload_url(pipeline) or (ctx.path_url(f"/cicd/pipeline/{number}") if number else None)
        line: list[_Piece] = [_Text(f"{emoji} ")]
        label = f"Pipeline #{number}" if number else "Pipeline"
        line += [_Link(label, url), _Text(f" {outcome} for "), *ctx.project_pieces()]
        ref = _str(pipeline, "ref", "branch", "branch_name")
        if ref:
            line += [_Text(" on "), _Code(_strip_ref(ref))]
        if tail:
            line.append(_Text(f" {tail}"))
        return _Message(line)

    return build


def _test(ctx: _Ctx) -> _Message:
    line = [_Text("🔔 GitFlic test delivery for "), *ctx.project_pieces(), _Text(": the webhook reaches the bridge.")]
    return _Message(line)


def _generic(action: str) -> Callable[[_Ctx], _Message]:
    def build(ctx: _Ctx) -> _Message:
        line: list[_Piece] = [_Text("📦 GitFlic event "), _Code(action), _Text(" in "), *ctx.project_pieces()]
        objects = [v for k, v in ctx.payload.items() if isinstance(v, dict) and k != "project"]
        if name := ctx.actor(*objects):
            line += [_Text(" by "), _Bold(name)]
        return _Message(line)

    return build


_BUILDERS: dict[str, Callable[[_Ctx], _Message]] = {
    "TEST_WEBHOOK": _test,
    "ISSUE_CREATE": _issue("📥", "created"),
    "ISSUE_UPDATE": _issue("✏️", "updated"),
    "NEW_ISSUE_NOTE": _issue_note,
    "MERGE_REQUEST_CREATE": _merge_request("🔵", "opened", with_branches=True),
    "MERGE_REQUEST_UPDATE": _merge_request("✏️", "updated"),
    "MERGE_REQUEST_ACCEPT": _merge_request("✅", "approved"),
    "MERGE": _merge_request("✳️", "merged", with_branches=True),
    "MERGE_REQUEST_CLOSE": _merge_request("⚫", "closed"),
    "MERGE_REQUEST_CANCEL": _merge_request("🚫", "cancelled"),
    "DISCUSSION_CREATE": _discussion,
    "TAG_CREATE": _ref_event("tag", "🏷", "created", "for"),
    "TAG_DELETE": _ref_event("tag", "🗑", "deleted", "from"),
    "BRANCH_CREATE": _ref_event("branch", "🌱", "created", "in"),
    "BRANCH_DELETE": _ref_event("branch", "🗑", "deleted", "in"),
    "BRANCH_UPDATE": _push,
    "PUSH": _push,
    "COLLABORATOR_ADD": _collaborator("👋", "add"),
    "COLLABORATOR_UPDATE": _collaborator("🔑", "update"),
    "COLLABORATOR_DELETE": _collaborator("🚪", "delete"),
    "PIPELINE_NEW": _pipeline("🚀", "started"),
    "PIPELINE_SUCCESS": _pipeline("✅", "succeeded", "🎉"),
    "PIPELINE_FAIL": _pipeline("❌", "failed", "😟"),
    "PIPELINE_WARNING": _pipeline("⚠️", "finished with warnings"),
}


def delivery_job(delivery: Delivery, *, instance_url: str, project: str | None = None) -> MarkdownJob:
    """The message for a delivery before its markdown is rendered: `text` is the body, and
    rendering it costs CPU the sender controls (the route does it off the event loop).
    Unknown actions get a generic message.

    `instance_url` is the instance's web address (`https://gitflic.ru`); `project` is the
    connection's `owner/project`, used when the payload does not name the project itself.
    """
    ctx = _context(delivery, instance_url, project)
    build = _BUILDERS.get(delivery.action) or _generic(delivery.action)
    return _job(build(ctx))


def format_delivery(
    delivery: Delivery, *, instance_url: str, project: str | None = None
) -> tuple[str, str]:
    """(markdown body, HTML) for a delivery: `delivery_job`, rendered on the spot."""
    job = delivery_job(delivery, instance_url=instance_url, project=project)
    return job.text, render_jobs([job])[0]
