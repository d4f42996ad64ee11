"""Markdown → Matrix HTML, and the HTML safety net for HTML we did not write ourselves.

`render_markdown` matches hookshot's `new markdownit()` (markdown-it's JS default preset: CommonMark
plus tables and strikethrough, raw HTML escaped, no linkify, no typographer), so messages look the
same as hookshot's, except where the Matrix spec is stricter: links only to http(s), mailto and
matrix URIs, and images only from `mxc://` (any other image is shown as its alt text).
`sanitize_html` cuts foreign HTML down to the tag/attribute subset the Matrix spec allows in
`formatted_body` (with nh3, the Ammonia sanitizer); `html_to_text` produces the plain `body`
fallback for such HTML.

Rendering markdown costs CPU that a stranger controls (markdown-it is superlinear on inputs
such as `[` × 32 KiB): callers handling untrusted text run it off the event loop with a deadline
(`hookshot_py.cpu_pool`). `sanitize_html` and `html_to_text` are linear in their input, which
`sanitize_html` caps. `render_off_loop` renders a batch of `MarkdownJob`s in a worker, for the
routes that format forge deliveries.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from html.parser import HTMLParser
from typing import TYPE_CHECKING

import nh3
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

from hookshot_py.cpu_pool import CpuPoolError

if TYPE_CHECKING:
    from hookshot_py.cpu_pool import CpuPool

__all__ = [
    "MarkdownJob", "escape_markdown", "html_to_text", "one_line", "render_jobs", "render_markdown", "render_off_loop",
    "sanitize_html",
]

log = logging.getLogger(__name__)

# https://spec.matrix.org/v1.11/client-server-api/#mroommessage-msgtypes (m.text, HTML subset)
LINK_SCHEMES = frozenset({"http", "https", "mailto", "matrix"})
IMAGE_PREFIX = "mxc://"
_SCHEME = re.compile(r"\s*([A-Za-z][A-Za-z0-9+.\-]*):")
_ASCII_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def link_allowed(url: str) -> bool:
    """An absolute URL with a scheme a Matrix message may link to."""
    match = _SCHEME.match(url)
    return match is not None and match.group(1).lower() in LINK_SCHEMES


class _MatrixMarkdown(MarkdownIt):
    def validateLink(self, url: str) -> bool:
        # mxc:// is for images; `_render_image` and `_render_link_open` keep it there.
        return link_allowed(url) or url.startswith(IMAGE_PREFIX)


def _render_image(
    renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    """`![alt](mxc://...)` is an image; any other is its alt text (the spec allows only `mxc://`
    images, and a foreign one would let its host see who reads the room)."""
    token = tokens[idx]
    if str(token.attrGet("src") or "").startswith(IMAGE_PREFIX):
        return renderer.image(tokens, idx, options, env)
    return escape(renderer.renderInlineAsText(token.children or [], options, env), quote=False)


def _render_link_open(
    renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]
    if not link_allowed(str(token.attrGet("href") or "")):
        token.attrs.pop("href", None)  # `[x](mxc://...)`: not a link target
    return renderer.renderToken(tokens, idx, options, env)


# "js-default" is markdown-it-py's copy of markdown-it's JS default preset, the one hookshot uses.
_md = _MatrixMarkdown("js-default")
_md.add_render_rule("image", _render_image)
_md.add_render_rule("link_open", _render_link_open)


def render_markdown(text: str, *, inline: bool = False) -> str:
    """Render markdown to HTML, trimmed as hookshot trims it (`md.render(text).trim()`).

    `inline=True` renders inline content only (no `<p>` wrapper, no trailing newline), for text
    embedded in other HTML; it is returned untrimmed.
    """
    if inline:
        return _md.renderInline(text)
    return _md.render(text).strip()


def escape_markdown(text: str) -> str:
    """`text` as literal markdown: every ASCII punctuation character backslash-escaped (CommonMark
    allows it for all of them), so no title or name someone else wrote can become markup, a
    link, a list or a heading, wherever it is put."""
    return _ASCII_PUNCTUATION.sub(r"\\\1", text)


def one_line(text: str) -> str:
    """Payload text on a single line: a newline in a title must not start a markdown block."""
    return " ".join(text.split()) if "\n" in text or "\r" in text else text


@dataclass(frozen=True)
class MarkdownJob:
    """One text to render: `inline` as for `render_markdown`; `sanitize` passes the HTML through
    `sanitize_html` (markdown that quotes someone else's text, which may hold raw HTML)."""

    text: str
    inline: bool = False
    sanitize: bool = False


def render_jobs(jobs: Sequence[MarkdownJob]) -> list[str]:
    """The HTML of each job, in order (one CPU-pool call renders a delivery for all its rooms)."""
    out = []
    for job in jobs:
        html = render_markdown(job.text, inline=job.inline)
        out.append(sanitize_html(html) if job.sanitize else html)
    return out


# Texts longer than this in all render in the CPU pool's heavy lane, never holding up short ones.
LIGHT_JOB_CHARS = 4 * 1024


async def render_off_loop(cpu: CpuPool, jobs: Sequence[MarkdownJob], *, what: str) -> list[str] | None:
    """`render_jobs` in a CPU-pool worker with its deadline: the text is a stranger's and
    markdown-it is superlinear on some inputs. None when the worker failed or ran out of time
    (logged with `what`, a description safe to log): the caller posts plain text instead."""
    if not jobs:
        return []
    heavy = sum(len(job.text) for job in jobs) > LIGHT_JOB_CHARS
    try:
        return await (cpu.run_heavy if heavy else cpu.run)(render_jobs, list(jobs))
    except CpuPoolError as e:
        log.warning("%s: %s; posting it as plain text", what, e)
        return None


# --- sanitising -------------------------------------------------------------------------------

ALLOWED_TAGS = frozenset(
    {
        "font", "del", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "p", "a", "ul", "ol",
        "sup", "sub", "li", "b", "i", "u", "strong", "em", "s", "strike", "code", "hr", "br", "div",
        "table", "thead", "tbody", "tr", "th", "td", "caption", "pre", "span", "img", "details",
        "summary",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES: dict[str, frozenset[str]] = {
    "font": frozenset({"data-mx-bg-color", "data-mx-color", "color"}),
    "span": frozenset({"data-mx-bg-color", "data-mx-color", "data-mx-spoiler", "data-mx-maths"}),
    "div": frozenset({"data-mx-maths"}),
    "a": frozenset({"name", "target", "href"}),
    "img": frozenset({"width", "height", "alt", "title", "src"}),
    "ol": frozenset({"start"}),
    "code": frozenset({"class"}),
}
# Elements whose *content* is not text meant for a reader.
_DROP_CONTENT_TAGS = frozenset({"script", "style"})
# The spec asks clients to limit nesting to 100 levels; deeper tags are dropped (text kept).
# It also bounds the sanitiser's work: html5ever's cost grows with depth × size.
MAX_NESTING = 100
# Far more than fits in an event (65,536 bytes); the rest of a longer document is cut off
# before sanitising, so a stranger's megabyte of markup costs a bounded amount of work.
MAX_HTML_CHARS = 128 * 1024

_HEX_COLOUR = re.compile(r"#[0-9A-Fa-f]{6}")
_FONT_COLOUR = re.compile(r"#[0-9A-Fa-f]{3}|#[0-9A-Fa-f]{6}|[A-Za-z]{1,20}")
_INTEGER = re.compile(r"-?[0-9]{1,9}")


def _attribute_filter(tag: str, name: str, value: str) -> str | None:
    """The value checks the spec prescribes for the allowed attributes (None drops one)."""
    if name in ("data-mx-color", "data-mx-bg-color"):
        ok = _HEX_COLOUR.fullmatch(value) is not None
    elif tag == "font" and name == "color":
        ok = _FONT_COLOUR.fullmatch(value) is not None
    elif tag == "a" and name == "href":
        ok = link_allowed(value)
    elif tag == "img" and name == "src":
        ok = value.startswith(IMAGE_PREFIX)
    elif tag == "ol" and name == "start":
        ok = _INTEGER.fullmatch(value.strip()) is not None
    elif tag == "code" and name == "class":
        ok = bool(value.split()) and all(part.startswith("language-") for part in value.split())
    else:
        ok = True
    return value if ok else None


_cleaner = nh3.Cleaner(
    tags=set(ALLOWED_TAGS),
    clean_content_tags=set(_DROP_CONTENT_TAGS),
    attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
    attribute_filter=_attribute_filter,
    strip_comments=True,
    link_rel=None,
    url_schemes=set(LINK_SCHEMES) | {"mxc"},
    url_relative="deny",
)

# Elements that never have content, per HTML.
_VOID_TAGS = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"}
)
# A start tag of these closes an open element of the same name (`<li>a<li>b`).
_SIBLING_CLOSING_TAGS = frozenset({"p", "li", "dt", "dd", "tr", "td", "th", "option"})
# A tag as far as the next `<` or `>`: every scan stops at the next `<`, so this is linear.
_TAG = re.compile(r"<(/?)([A-Za-z][^\s/<>]*)([^<>]*)>")


def _prepare(source: str) -> str:
    """Bound the nesting (dropping start tags past `MAX_NESTING` and their end tags), and read
    `<x/>` on a non-void element as an empty element, as XHTML writers mean it (HTML would
    open it, so `<script/>` would swallow the rest of the message).

    An approximation of HTML's tree building, good enough to bound nh3's work; nh3 still
    sanitises whatever comes out of it.
    """
    open_tags: list[str] = []
    dropped: dict[str, int] = {}

    def tag(match: re.Match[str]) -> str:
        closing, name, rest = match.group(1), match.group(2).lower(), match.group(3)
        if closing:
            if dropped.get(name):
                dropped[name] -= 1
                return ""
            if name in open_tags:
                while open_tags.pop() != name:
                    pass
            return match.group(0)
        if name in _VOID_TAGS:
            return match.group(0)
        if open_tags and open_tags[-1] == name and name in _SIBLING_CLOSING_TAGS:
            open_tags.pop()
        if rest.endswith("/"):
            return "" if len(open_tags) >= MAX_NESTING else f"<{name}{rest[:-1]}></{name}>"
        if len(open_tags) >= MAX_NESTING:
            dropped[name] = dropped.get(name, 0) + 1
            return ""
        open_tags.append(name)
        return match.group(0)

    return _TAG.sub(tag, source)


def sanitize_html(source: str) -> str:
    """Reduce `source` to the Matrix-allowed HTML subset (well-formed, at most 100 levels deep).

    Disallowed tags are removed but their text is kept (except inside `<script>`/`<style>`);
    disallowed attributes, links other than http(s)/mailto/matrix URIs, and images not on
    `mxc://` are dropped. Comments and declarations disappear. Only the first
    `MAX_HTML_CHARS` characters are read.
    """
    return _cleaner.clean(_prepare(source[:MAX_HTML_CHARS]))


# --- plain text -------------------------------------------------------------------------------

# Blocks separated from their neighbours by a blank line, and those that only start a new line.
_PARAGRAPH_TAGS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "ul", "ol", "table", "details"}
)
_LINE_TAGS = frozenset({"div", "li", "tr", "thead", "tbody", "caption", "summary", "hr"})
_WHITESPACE = re.compile(r"\s+")


class _TextExtractor(HTMLParser):
    """Collects readable text: block elements become lines, `<br>` a line break."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0
        self.pre = 0
        self.links: list[tuple[str | None, int]] = []  # (href, index of the link's first part)

    def _at_line_start(self) -> bool:
        last = next((part for part in reversed(self.parts) if part), "")
        return last == "" or last.endswith((" ", "\n"))

    def _newline(self) -> None:
        while self.parts and self.parts[-1].endswith(" "):
            self.parts[-1] = self.parts[-1].rstrip(" ")
            if not self.parts[-1]:
                self.parts.pop()
        self.parts.append("\n")

    def _break(self, tag: str) -> None:
        """End the current line (and leave a blank one after a paragraph-like block)."""
        wanted = 2 if tag in _PARAGRAPH_TAGS else 1
        tail = "".join(self.parts[-2:])
        have = len(tail) - len(tail.rstrip("\n")) if self.parts else wanted
        for _ in range(wanted - have):
            self._newline()

    def _text(self, text: str) -> None:
        if not self.pre:
            # Outside <pre>, runs of whitespace are one space, as a browser would show them.
            text = _WHITESPACE.sub(" ", text)
            if self._at_line_start():
                text = text.lstrip(" ")
        if text:  # no empty parts: `_at_line_start` looks at the last one (linear time)
            self.parts.append(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROP_CONTENT_TAGS:
            self.skipping += 1
        elif self.skipping:
            return
        elif tag == "br":
            self._newline()
        elif tag in _PARAGRAPH_TAGS or tag in _LINE_TAGS:
            self._break(tag)
            if tag == "li":
                self.parts.append("- ")
            elif tag == "pre":
                self.pre += 1
        elif tag in ("td", "th"):
            self._text(" ")
        elif tag == "a":
            self.links.append((dict(attrs).get("href"), len(self.parts)))
        elif tag == "img":
            self._text(dict(attrs).get("alt") or "")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROP_CONTENT_TAGS:
            return
        self.handle_starttag(tag, attrs)
        if tag == "a":
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROP_CONTENT_TAGS:
            self.skipping = max(0, self.skipping - 1)
        elif self.skipping:
            return
        elif tag in _PARAGRAPH_TAGS or tag in _LINE_TAGS:
            if tag == "pre":
                self.pre = max(0, self.pre - 1)
            self._break(tag)
        elif tag == "a" and self.links:
            href, start = self.links.pop()
            href = (href or "").strip()
            text = "".join(self.parts[start:]).strip()
            # Keep the target when the reader could not otherwise see it.
            if link_allowed(href) and href not in (text, f"mailto:{text}"):
                self._text(f" ({href})")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self._text(data)


def html_to_text(source: str) -> str:
    """A readable plain-text rendering of `source`, for a message's `body`."""
    parser = _TextExtractor()
    parser.feed(source)
    parser.close()
    text = "".join(parser.parts)
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n")
