"""JIRA webhook deliveries → Matrix notices, worded as hookshot's `JiraProjectConnection`.

`format_delivery` is pure: it takes our event name, the parsed payload and the connection's
project, and returns a `Notice` (or None when the delivery has nothing to say). hookshot's
texts (reference §6):

- `{creator} created a new JIRA issue [{KEY}]({url}): "{summary}"`
- `{user} updated JIRA [{KEY}]({url}): **field** changed from 'a' to 'b'` (several changes as
  a list)
- `Version **created|updated|released** for project [{KEY}]({projectUrl}): [{name}]({url}) (_{desc}_)`

and ours for `comment_created`, which hookshot never posts:
`{author} commented on JIRA [{KEY}]({url}): "{summary}"` with the comment's start quoted.

A notice has two texts: `body`, hookshot's words with the payload's text as it came (the plain
body clients show), and `markdown`, the same with every piece of payload text escaped, which
is rendered to the HTML (in a worker process: `inbound.py`). So no summary, name or comment
can turn into markup, a link or a mention. Long values are cut (`MAX_VALUE_CHARS`), and so is
the list of changes (`MAX_CHANGES`).

Links: an issue's page is `{instance}/browse/{KEY}`, where the instance is its REST `self` URL
before `/rest/` (hookshot keeps only scheme and host, which loses an on-premise context path);
a version's is `{instance}/projects/{KEY}/versions/{id}` (hookshot puts the project's numeric
id where JIRA's page has the key).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import Any
from urllib.parse import quote

from hookshot_py.forges.payload import Payload, PayloadError
from hookshot_py.jira.models import ProjectRef, instance_base
from hookshot_py.markdown import escape_markdown, one_line

__all__ = [
    "ISSUE_KEY",
    "PROJECT_KEY",
    "VERSION_KEY",
    "Notice",
    "PayloadError",
    "Subject",
    "Text",
    "event_name",
    "format_delivery",
    "subject_of",
]

ISSUE_KEY = "uk.half-shot.matrix-hookshot.jira.issue"
PROJECT_KEY = "uk.half-shot.matrix-hookshot.jira.project"
VERSION_KEY = "uk.half-shot.matrix-hookshot.jira.version"

MAX_VALUE_CHARS = 256
MAX_CHANGES = 20
QUOTE_CHARS = 256
#: The most ADF nodes read to find a comment's text (an ADF document can nest deeply).
MAX_ADF_NODES = 2000
ELLIPSIS = "…"

#: `webhookEvent` → our event name (the names of the connection's `events`).
_EVENTS = {
    "jira:issue_created": "issue_created",
    "jira:issue_updated": "issue_updated",
    "comment_created": "comment_created",
    "jira:comment_created": "comment_created",
    "jira:version_created": "version_created",
    "jira:version_updated": "version_updated",
    "jira:version_released": "version_released",
}


def event_name(webhook_event: Any) -> str | None:
    """Our name for a delivery's `webhookEvent`; None for one the bridge does not post."""
    return _EVENTS.get(webhook_event) if isinstance(webhook_event, str) else None


# -- who the delivery is about ----------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    """The project a delivery is about: its instance (`host`, `base` its web address), and its
    key (issue events) or numeric id (versions carry only `projectId`; issues carry both)."""

    host: str
    base: str
    key: str | None
    project_id: str | None


def _id_text(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def subject_of(event: str, payload: Payload) -> Subject:
    """Where to route a delivery; raises PayloadError when the payload does not say."""
    if event.startswith("version_"):
        version = payload.obj("version")
        base = instance_base(version.text("self"))
        project_id = _id_text(version.raw.get("projectId"))
        if base is None or project_id is None:
            raise PayloadError("version", "needs an http(s) `self` and a `projectId`")
        return Subject(_host(base), base, None, project_id)
    issue = payload.obj("issue")
    project = issue.obj("fields").obj("project")
    base = instance_base(issue.text("self")) or instance_base(project.opt_text("self") or "")
    if base is None:
        raise PayloadError("issue.self", "expected an http(s) URL")
    return Subject(_host(base), base, project.text("key").upper(), _id_text(project.raw.get("id")))


def _host(base: str) -> str:
    return base.split("://", 1)[1].split("/", 1)[0].lower()


# -- the notice ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Notice:
    body: str
    markdown: str
    inline: bool
    extra: dict[str, Any] = field(default_factory=dict)

    def content(self, html: str) -> dict[str, Any]:
        return {
            "msgtype": "m.notice",
            "body": self.body,
            "format": "org.matrix.custom.html",
            "formatted_body": html,
            **self.extra,
        }

    def fallback_html(self) -> str:
        """HTML without markdown rendering (when the worker could not render it)."""
        return escape(self.body).replace("\n", "<br>")


class Text:
    """A notice's two texts, built together: trusted markup goes to both as is; payload text
    goes to `body` as it came and to `markdown` escaped."""

    def __init__(self) -> None:
        self._plain: list[str] = []
        self._md: list[str] = []

    def raw(self, markup: str) -> Text:
        self._plain.append(markup)
        self._md.append(markup)
        return self

    def text(self, value: str) -> Text:
        value = one_line(value)
        self._plain.append(value)
        self._md.append(escape_markdown(value))
        return self

    def link(self, label: str, url: str) -> Text:
        label = one_line(label)
        self._plain.append(f"[{label}]({url})")
        self._md.append(f"[{escape_markdown(label)}]({_md_url(url)})")
        return self

    def quote(self, excerpt: str) -> Text:
        for line in excerpt.splitlines() or [""]:
            self._plain.append(f"\n> {line}")
            self._md.append(f"\n> {escape_markdown(line)}")
        return self

    def notice(self, *, inline: bool, extra: dict[str, Any]) -> Notice:
        return Notice("".join(self._plain), "".join(self._md), inline, extra)


def _cut(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + ELLIPSIS


def _md_url(url: str) -> str:
    return url.replace(" ", "%20").replace("(", "%28").replace(")", "%29").replace("<", "%3C").replace(">", "%3E")


def _name(person: Payload | None) -> str:
    if person is None:
        return "Someone"
    for key in ("displayName", "name", "accountId"):
        value = person.raw.get(key)
        if isinstance(value, str) and value.strip():
            return _cut(value.strip(), 128)
    return "Someone"


def _issue_parts(payload: Payload) -> tuple[Payload, Payload, str, str, dict[str, Any]]:
    """(issue, fields, key, web link, the event's hookshot keys)."""
    issue = payload.obj("issue")
    fields = issue.obj("fields")
    key = issue.text("key")
    api_url = issue.text("self")
    base = instance_base(api_url) or ""
    url = f"{base}/browse/{quote(key, safe='')}"
    project = fields.obj("project")
    extra = {
        ISSUE_KEY: {"id": _id_text(issue.raw.get("id")) or "", "key": key, "api_url": api_url},
        PROJECT_KEY: {
            "id": _id_text(project.raw.get("id")) or "",
            "key": project.text("key"),
            "api_url": project.opt_text("self") or "",
        },
        "external_url": url,
    }
    return issue, fields, key, url, extra


def _value(change: Payload, key: str) -> str:
    value = change.raw.get(key)
    if isinstance(value, str) and value:
        return _cut(value)
    return "not set"


def _issue_created(payload: Payload) -> Notice:
    _, fields, key, url, extra = _issue_parts(payload)
    creator = fields.opt_obj("creator") or fields.opt_obj("reporter") or payload.opt_obj("user")
    text = Text().text(_name(creator)).raw(" created a new JIRA issue ").link(key, url).raw(': "')
    text.text(_cut(fields.opt_text("summary") or "")).raw('"')
    return text.notice(inline=True, extra=extra)


def _issue_updated(payload: Payload) -> Notice | None:
    _, _, key, url, extra = _issue_parts(payload)
    changelog = payload.opt_obj("changelog")
    items = changelog.objs("items") if changelog is not None else []
    if not items:
        return None  # a comment or a worklog: JIRA says so without a changelog
    text = Text().text(_name(payload.opt_obj("user"))).raw(" updated JIRA ").link(key, url).raw(": ")
    shown = items[:MAX_CHANGES]
    for i, change in enumerate(shown):
        if len(shown) > 1:
            text.raw("\n - " if i == 0 else "\n  - ")
        field_name = change.raw.get("field")
        name = _cut(field_name, 128) if isinstance(field_name, str) and field_name else "a field"
        text.raw("**").text(name).raw("**")
        text.raw(" changed from '").text(_value(change, "fromString")).raw("' to '")
        text.text(_value(change, "toString")).raw("'")
    if len(items) > len(shown):
        text.raw(f"\n  - and {len(items) - len(shown)} more changes")
    return text.notice(inline=False, extra=extra)  # hookshot renders updates as a block


def _adf_text(node: Any) -> str:
    """The text of an Atlassian Document Format document, paragraphs on their own lines."""
    out: list[str] = []
    stack: list[Any] = [node]
    seen = 0
    while stack and seen < MAX_ADF_NODES:
        item = stack.pop()
        seen += 1
        if isinstance(item, str):  # a separator pushed below
            out.append(item)
            continue
        if not isinstance(item, dict):
            continue
        if item.get("type") == "text" and isinstance(item.get("text"), str):
            out.append(item["text"])
        elif item.get("type") == "hardBreak":
            out.append("\n")
        children = item.get("content")
        if isinstance(children, list):
            if item.get("type") in ("paragraph", "heading", "listItem", "codeBlock", "blockquote"):
                stack.append("\n")
            stack.extend(reversed(children))
    return "".join(out).strip()


def _comment_created(payload: Payload) -> Notice:
    _, fields, key, url, extra = _issue_parts(payload)
    comment = payload.obj("comment")
    comment_id = _id_text(comment.raw.get("id"))
    link = f"{url}?focusedCommentId={quote(comment_id, safe='')}" if comment_id else url
    body = comment.raw.get("body")
    said = body if isinstance(body, str) else _adf_text(body) if isinstance(body, dict) else ""
    text = Text().text(_name(comment.opt_obj("author") or payload.opt_obj("user")))
    text.raw(" commented on JIRA ").link(key, link).raw(': "').text(_cut(fields.opt_text("summary") or "")).raw('"')
    excerpt = _cut(said.strip(), QUOTE_CHARS)
    if excerpt:
        text.quote(excerpt)
    extra["external_url"] = link
    return text.notice(inline=not excerpt, extra=extra)


def _version(event: str, payload: Payload, project: ProjectRef | None, project_url: str | None) -> Notice:
    version = payload.obj("version")
    base = instance_base(version.text("self")) or ""
    version_id = _id_text(version.raw.get("id")) or ""
    where = project.key if project is not None else _id_text(version.raw.get("projectId")) or ""
    url = f"{base}/projects/{quote(where, safe='')}/versions/{quote(version_id, safe='')}"
    text = Text().raw(f"Version **{event.removeprefix('version_')}**")
    if project is not None and project_url:
        text.raw(" for project ").link(project.key, project_url)
    text.raw(": ").link(_cut(version.opt_text("name") or version_id), url)
    description = version.opt_text("description")
    if description and description.strip():
        text.raw(" (_").text(_cut(description.strip())).raw("_)")
    extra = {VERSION_KEY: {"id": version_id, "name": version.opt_text("name") or ""}, "external_url": url}
    return text.notice(inline=True, extra=extra)


def format_delivery(
    event: str, payload: Payload, *, project: ProjectRef | None = None, project_url: str | None = None
) -> Notice | None:
    """The notice for one room: `project` and `project_url` are the connection's (version
    messages name them). Raises PayloadError for a payload missing what the event needs."""
    if event == "issue_created":
        return _issue_created(payload)
    if event == "issue_updated":
        return _issue_updated(payload)
    if event == "comment_created":
        return _comment_created(payload)
    if event in ("version_created", "version_updated", "version_released"):
        return _version(event, payload, project, project_url)
    return None
