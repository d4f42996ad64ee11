from html.parser import HTMLParser

import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from hookshot_py.markdown import (
    ALLOWED_ATTRIBUTES,
    ALLOWED_TAGS,
    MAX_HTML_CHARS,
    MAX_NESTING,
    html_to_text,
    render_markdown,
    sanitize_html,
)

# --- render_markdown ----------------------------------------------------------------------------


def test_paragraph_with_emphasis_has_no_trailing_newline() -> None:
    assert render_markdown("Hello *there* **you**\n") == "<p>Hello <em>there</em> <strong>you</strong></p>"


def test_two_paragraphs() -> None:
    assert render_markdown("one\n\ntwo") == "<p>one</p>\n<p>two</p>"


def test_raw_html_is_escaped() -> None:
    assert render_markdown("a <script>x</script>") == "<p>a &lt;script&gt;x&lt;/script&gt;</p>"


def test_tables_are_enabled() -> None:
    assert render_markdown("| a | b |\n|---|---|\n| 1 | 2 |") == (
        "<table>\n<thead>\n<tr>\n<th>a</th>\n<th>b</th>\n</tr>\n</thead>\n"
        "<tbody>\n<tr>\n<td>1</td>\n<td>2</td>\n</tr>\n</tbody>\n</table>"
    )


def test_strikethrough_is_enabled() -> None:
    assert render_markdown("~~gone~~") == "<p><s>gone</s></p>"


def test_linkify_is_off_and_links_render() -> None:
    assert render_markdown("see https://example.org") == "<p>see https://example.org</p>"
    assert render_markdown("[x](https://example.org)") == '<p><a href="https://example.org">x</a></p>'


def test_javascript_links_are_not_links() -> None:
    assert render_markdown("[x](javascript:alert(1))") == "<p>[x](javascript:alert(1))</p>"


def test_hard_break_and_rule_use_html_not_xhtml() -> None:
    # markdown-it's JS default preset (hookshot's): `<br>`, `<hr>`, not `<br />`.
    assert render_markdown("a  \nb\n\n---") == "<p>a<br>\nb</p>\n<hr>"


def test_fenced_code_gets_language_class() -> None:
    assert render_markdown("```json\n{\"a\": 1}\n```") == (
        '<pre><code class="language-json">{&quot;a&quot;: 1}\n</code></pre>'
    )


def test_typographer_is_off() -> None:
    assert render_markdown('"quoted" -- (c)') == "<p>&quot;quoted&quot; -- (c)</p>"


def test_inline_has_no_paragraph() -> None:
    assert render_markdown("**a** <i>", inline=True) == "<strong>a</strong> &lt;i&gt;"


def test_empty_markdown_is_empty() -> None:
    assert render_markdown("") == ""


def test_markdown_images_only_from_mxc() -> None:
    assert render_markdown("![cat](mxc://hs/abc)") == '<p><img src="mxc://hs/abc" alt="cat"></p>'
    # Any other source would let its host see who reads the room: only the alt text is shown.
    assert render_markdown("![a <b>](https://evil.example/p.png) x") == "<p>a &lt;b&gt; x</p>"
    assert render_markdown("[![badge](https://ci/b.svg)](https://ci/run)") == '<p><a href="https://ci/run">badge</a></p>'


@pytest.mark.parametrize(
    ("markdown", "html"),
    [
        ("[x](https://e.org)", '<p><a href="https://e.org">x</a></p>'),
        ("[x](mailto:a@b.c)", '<p><a href="mailto:a@b.c">x</a></p>'),
        ("[x](matrix:r/room:e.org)", '<p><a href="matrix:r/room:e.org">x</a></p>'),
        ("[x](ftp://f)", "<p>[x](ftp://f)</p>"),
        ("[x](/relative)", "<p>[x](/relative)</p>"),
        ("[x](mxc://hs/abc)", "<p><a>x</a></p>"),
        ("<https://e.org>", '<p><a href="https://e.org">https://e.org</a></p>'),
        ("<ftp://f>", "<p>&lt;ftp://f&gt;</p>"),
    ],
)
def test_markdown_links_only_to_http_mailto_and_matrix(markdown: str, html: str) -> None:
    assert render_markdown(markdown) == html


# --- sanitize_html ------------------------------------------------------------------------------


def test_script_and_style_are_dropped_with_their_content() -> None:
    assert sanitize_html("<p>Hi<script>alert(1)</script><style>p{color:red}</style>!</p>") == "<p>Hi!</p>"


def test_event_handler_attributes_are_dropped() -> None:
    assert sanitize_html('<b onclick="steal()">x</b>') == "<b>x</b>"


@pytest.mark.parametrize(
    "href",
    [
        "javascript:alert(1)", " JavaScript:alert(1)", "data:text/html,x", "vbscript:x", "/relative", "//host/x",
        # The spec would allow these; the bridge keeps to http(s), mailto and matrix (issue 16).
        "ftp://f", "magnet:?xt=1", "mxc://hs/media",
    ],
)
def test_unsafe_or_relative_hrefs_are_dropped(href: str) -> None:
    assert sanitize_html(f'<a href="{href}">x</a>') == "<a>x</a>"


@pytest.mark.parametrize(
    "href", ["https://example.org/?a=1&b=2", "http://x", "mailto:a@b.c", "matrix:r/room:example.org", "HTTPS://X"]
)
def test_allowed_hrefs_are_kept_and_escaped(href: str) -> None:
    escaped = href.replace("&", "&amp;")
    assert sanitize_html(f'<a href="{href}" target="_blank" rel="x">x</a>') == (
        f'<a href="{escaped}" target="_blank">x</a>'
    )


def test_link_name_and_strike_are_allowed() -> None:
    assert sanitize_html('<a name="top">t</a><strike>old</strike>') == '<a name="top">t</a><strike>old</strike>'


def test_input_beyond_the_size_cap_is_cut_off() -> None:
    html = "<b>" + "a" * MAX_HTML_CHARS + "</b>tail"
    assert sanitize_html(html) == "<b>" + "a" * (MAX_HTML_CHARS - 3) + "</b>"


def test_deep_nesting_of_unknown_tags_is_bounded_too() -> None:
    # nh3's work grows with depth × size: unknown tags count towards the nesting limit as well.
    html = "<x-a>" * 20_000 + "<b>deep</b>" + "</x-a>" * 20_000
    assert sanitize_html(html) == "deep"


def test_images_only_from_mxc() -> None:
    assert sanitize_html('<img src="https://evil/x.png" alt="a">') == '<img alt="a">'
    assert sanitize_html('<img src="mxc://hs/abc" width="10" height="5" title="t" onerror="x">') == (
        '<img src="mxc://hs/abc" width="10" height="5" title="t">'
    )


def test_disallowed_tags_are_removed_but_text_kept() -> None:
    assert sanitize_html("<iframe>f</iframe><custom-el>c</custom-el><center>m</center>") == "fcm"


def test_colour_attributes_are_validated() -> None:
    assert sanitize_html(
        '<span data-mx-color="#00ff00" data-mx-bg-color="red" style="x">a</span>'
        '<font color="#abc">b</font><font color="expression(x)">c</font>'
    ) == '<span data-mx-color="#00ff00">a</span><font color="#abc">b</font><font>c</font>'


def test_spoiler_maths_ol_start_and_code_class() -> None:
    assert sanitize_html(
        '<span data-mx-spoiler>s</span><div data-mx-maths="x^2">m</div><ol start="3" reversed><li>i</li></ol>'
        '<code class="language-python">p</code><code class="evil">e</code>'
    ) == (
        '<span data-mx-spoiler="">s</span><div data-mx-maths="x^2">m</div><ol start="3"><li>i</li></ol>'
        '<code class="language-python">p</code><code>e</code>'
    )


def test_output_is_balanced() -> None:
    assert sanitize_html("<b><i>unclosed") == "<b><i>unclosed</i></b>"
    assert sanitize_html("</b>stray<i>x</b>y") == "stray<i>xy</i>"
    # Misnested tags are read as a browser reads them (HTML's adoption agency): y stays italic.
    assert sanitize_html("<b><i>x</b>y</i>") == "<b><i>x</i></b><i>y</i>"


def test_void_and_self_closing_tags() -> None:
    assert sanitize_html("a<br/>b<hr><p/>c") == "a<br>b<hr><p></p>c"


def test_self_closing_script_does_not_swallow_text() -> None:
    assert sanitize_html("<script/>after") == "after"


def test_comments_and_declarations_disappear() -> None:
    assert sanitize_html("<!DOCTYPE html><!-- hidden --><p>x</p><![CDATA[y]]>") == "<p>x</p>"


def test_text_and_attribute_values_are_reescaped() -> None:
    assert sanitize_html('a &lt;b&gt; &amp; <img src="mxc://a/b" alt="&quot;q&quot; <x>">') == (
        'a &lt;b&gt; &amp; <img src="mxc://a/b" alt="&quot;q&quot; &lt;x&gt;">'
    )


def test_nesting_deeper_than_the_spec_limit_is_flattened() -> None:
    html = "<div>" * (MAX_NESTING + 5) + "x" + "</div>" * (MAX_NESTING + 5)
    assert sanitize_html(html) == "<div>" * MAX_NESTING + "x" + "</div>" * MAX_NESTING


def test_self_closing_tag_past_the_nesting_limit_closes_nothing() -> None:
    html = "<div>" * MAX_NESTING + "<div/>x" + "</div>" * MAX_NESTING
    assert sanitize_html(html) == "<div>" * MAX_NESTING + "x" + "</div>" * MAX_NESTING


def test_all_allowed_formatting_survives() -> None:
    html = (
        "<h1>t</h1><blockquote><p><strong>s</strong><em>e</em><del>d</del><s>x</s><u>u</u><sup>1</sup>"
        "<sub>2</sub></p></blockquote><table><caption>c</caption><thead><tr><th>h</th></tr></thead>"
        "<tbody><tr><td>d</td></tr></tbody></table><details><summary>s</summary>body</details>"
        "<pre><code>  code\n</code></pre>"
    )
    assert sanitize_html(html) == html


class _Inspector(HTMLParser):
    """Collects every tag and attribute of the sanitiser's output, and the nesting depth."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.depth = self.max_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))
        if tag not in ("br", "hr", "img"):
            self.depth += 1
            self.max_depth = max(self.max_depth, self.depth)

    def handle_endtag(self, tag: str) -> None:
        self.depth -= 1


_html_pieces = st.sampled_from(
    [
        "<b>", "</b>", "<i>", "</p>", "<p>", "<div>", "</div>", "<script>", "</script>", "<style>",
        "<a href='javascript:x'>", '<a href="https://e.org" onclick="x">', "</a>", '<img src="http://e/x.png">',
        '<img src="mxc://h/m" onerror=x>', "<img/>", "<table>", "<td>", "<!--", "-->", "<x-y>", "<svg><circle/>",
        '<font color="red" style="x">', '<span data-mx-spoiler data-mx-color="#ffffff">', '<code class="language-py">',
        '<ol start="3">', "<li>", "<br/>", "<p/>", "&lt;", "&amp;", "<", ">", '"', "text", " ", "\n", "é",
        '<a href="matrix:u/a:b">', '<a href="ftp://f">', "<details><summary>", "<iframe src=x>", "<math>",
    ]
)  # fmt: skip


@given(st.lists(_html_pieces, max_size=60))
@settings(max_examples=400)
def test_output_has_only_allowed_tags_attributes_and_schemes(pieces: list[str]) -> None:
    out = _Inspector()
    out.feed(sanitize_html("".join(pieces)))
    out.close()
    assert out.max_depth <= MAX_NESTING
    for tag, attrs in out.tags:
        assert tag in ALLOWED_TAGS, tag
        for name, value in attrs:
            assert name in ALLOWED_ATTRIBUTES.get(tag, ()), (tag, name)
            if tag == "img" and name == "src":
                assert (value or "").startswith("mxc://")
            if tag == "a" and name == "href":
                assert (value or "").split(":")[0] in ("http", "https", "mailto", "matrix"), value


@given(st.text(max_size=300))
@settings(max_examples=300)
def test_any_markdown_renders_to_allowed_html(text: str) -> None:
    out = _Inspector()
    out.feed(render_markdown(text))
    out.close()
    for tag, attrs in out.tags:
        if tag == "img":
            assert (dict(attrs).get("src") or "").startswith("mxc://")
        if tag == "a" and (href := dict(attrs).get("href")) is not None:
            assert href.split(":")[0].lower() in ("http", "https", "mailto", "matrix"), href


# --- html_to_text -------------------------------------------------------------------------------


def test_paragraphs_become_blank_line_separated() -> None:
    assert html_to_text("<p>Hello <b>world</b></p><p>  second   para </p>") == "Hello world\n\nsecond para"


def test_lists_links_and_pre() -> None:
    html = 'intro<ul><li>a</li><li>b <a href="https://x.org">link</a></li></ul><pre>  code\n    indented</pre>after'
    assert html_to_text(html) == "intro\n\n- a\n- b link (https://x.org)\n\n  code\n    indented\n\nafter"


def test_link_whose_text_is_its_target_is_not_repeated() -> None:
    assert html_to_text('<a href="https://e.org">https://e.org</a> <a href="mailto:a@b.c">a@b.c</a>') == (
        "https://e.org a@b.c"
    )


def test_unsafe_link_target_is_not_shown() -> None:
    assert html_to_text('<a href="javascript:x()">click</a>') == "click"


def test_script_content_and_entities() -> None:
    assert html_to_text("<script>alert(1)</script>a &amp; &lt;b&gt;<style>p{}</style>") == "a & <b>"


def test_breaks_headings_tables_and_images() -> None:
    assert html_to_text('a<br>b<br><br>c<h2>T</h2><table><tr><td>1</td><td>2</td></tr></table><img alt="pic">') == (
        "a\nb\n\nc\n\nT\n\n1 2\n\npic"
    )


def test_empty_html_is_empty_text() -> None:
    assert html_to_text("") == ""
