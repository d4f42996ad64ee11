"""Markdown → Matrix HTML, and the HTML safety net for HTML we did not write ourselves.

`render_markdown` matches hookshot's `new markdownit()` (markdown-it's JS default preset: CommonMark
plus tables and strikethrough, raw HTML escaped, no linkify, no typographer), so messages look the
same as hookshot's. `sanitize_html` cuts foreign HTML down to the tag/attribute subset the Matrix
spec allows in `formatted_body`; `html_to_text` produces the plain `body` fallback for such HTML.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

from markdown_it import MarkdownIt

__all__ = ["html_to_text", "render_markdown", "sanitize_html"]

# "js-default" is markdown-it-py's copy of markdown-it's JS default preset, the one hookshot uses.
_md = MarkdownIt("js-default")


def render_markdown(text: str, *, inline: bool = False) -> str:
    """Render markdown to HTML, trimmed as hookshot trims it (`md.render(text).trim()`).

    `inline=True` renders inline content only (no `<p>` wrapper, no trailing newline), for text
    embedded in other HTML; it is returned untrimmed.
    """
    if inline:
        return _md.renderInline(text)
    return _md.render(text).strip()


# --- sanitising -------------------------------------------------------------------------------

# https://spec.matrix.org/v1.11/client-server-api/#mroommessage-msgtypes (m.text, HTML subset)
ALLOWED_TAGS = frozenset(
    {
        "font", "del", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "p", "a", "ul", "ol",
        "sup", "sub", "li", "b", "i", "u", "strong", "em", "s", "code", "hr", "br", "div",
        "table", "thead", "tbody", "tr", "th", "td", "caption", "pre", "span", "img", "details",
        "summary",
    }
)  # fmt: skip
VOID_TAGS = frozenset({"br", "hr", "img"})
# Elements whose *content* is not text meant for a reader.
_DROP_CONTENT_TAGS = frozenset({"script", "style"})
# The spec asks clients to limit nesting to 100 levels; deeper tags are dropped (text kept).
MAX_NESTING = 100

_HREF_SCHEMES = ("http", "https", "ftp", "mailto", "magnet")
_HEX_COLOUR = re.compile(r"#[0-9A-Fa-f]{6}")
_FONT_COLOUR = re.compile(r"#[0-9A-Fa-f]{3}|#[0-9A-Fa-f]{6}|[A-Za-z]{1,20}")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")


def _href_ok(value: str) -> bool:
    match = _SCHEME.match(value.strip())
    return match is not None and match.group(1).lower() in _HREF_SCHEMES


def _allowed_attribute(tag: str, name: str, value: str) -> bool:
    """The spec's per-tag attribute allowlist, with the value checks it prescribes."""
    if name in ("data-mx-color", "data-mx-bg-color") and tag in ("font", "span"):
        return _HEX_COLOUR.fullmatch(value) is not None
    if tag == "font" and name == "color":
        return _FONT_COLOUR.fullmatch(value) is not None
    if tag == "span" and name == "data-mx-spoiler":
        return True
    if tag in ("span", "div") and name == "data-mx-maths":
        return True
    if tag == "a":
        return name == "target" or (name == "href" and _href_ok(value))
    if tag == "img":
        if name == "src":
            return value.startswith("mxc://")
        return name in ("width", "height", "alt", "title")
    if tag == "ol" and name == "start":
        return value.strip().lstrip("-").isdigit()
    if tag == "code" and name == "class":
        return all(part.startswith("language-") for part in value.split()) and bool(value.split())
    return False


class _Sanitizer(HTMLParser):
    """Rebuilds the document from allowed tags only; the output is always balanced."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.open: list[str] = []  # allowed tags we emitted and have not closed yet
        self.skipping = 0  # depth inside <script>/<style>

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROP_CONTENT_TAGS:
            self.skipping += 1
            return
        if self.skipping or tag not in ALLOWED_TAGS:
            return
        if tag not in VOID_TAGS and len(self.open) >= MAX_NESTING:
            return
        kept = "".join(
            f' {name}="{html.escape(value or "", quote=True)}"'
            for name, value in attrs
            if _allowed_attribute(tag, name, value or "")
        )
        self.out.append(f"<{tag}{kept}>")
        if tag not in VOID_TAGS:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROP_CONTENT_TAGS:
            return  # `<script/>` has no content to skip
        depth = len(self.open)
        self.handle_starttag(tag, attrs)
        if len(self.open) > depth:  # it was emitted (allowed, not too deep): close it at once
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROP_CONTENT_TAGS:
            self.skipping = max(0, self.skipping - 1)
            return
        if self.skipping or tag not in self.open:
            return
        while self.open:
            closing = self.open.pop()
            self.out.append(f"</{closing}>")
            if closing == tag:
                break

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.out.append(html.escape(data, quote=False))

    def result(self) -> str:
        self.close()
        self.out.extend(f"</{tag}>" for tag in reversed(self.open))
        self.open.clear()
        return "".join(self.out)


def sanitize_html(source: str) -> str:
    """Reduce `source` to the Matrix-allowed HTML subset.

    Disallowed tags are removed but their text is kept (except inside `<script>`/`<style>`);
    disallowed attributes, links with other schemes than http(s)/ftp/mailto/magnet, and images
    not on `mxc://` are dropped. Comments and declarations disappear.
    """
    parser = _Sanitizer()
    parser.feed(source)
    return parser.result()


# --- plain text -------------------------------------------------------------------------------

# Blocks separated from their neighbours by a blank line, and those that only start a new line.
_PARAGRAPH_TAGS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "ul", "ol", "table", "details"}
)
_LINE_TAGS = frozenset({"div", "li", "tr", "thead", "tbody", "caption", "summary", "hr"})


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
        if self.pre:
            self.parts.append(text)
            return
        # Outside <pre>, runs of whitespace are one space, as a browser would show them.
        text = re.sub(r"\s+", " ", text)
        if self._at_line_start():
            text = text.lstrip(" ")
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
            if _href_ok(href) and href not in (text, f"mailto:{text}"):
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
