import json
import math

import pytest

from hookshot_py.generic.format import (
    MAX_EVENT_SIZE_BYTES,
    WEBHOOK_DATA_KEY,
    content_size,
    fit_to_event_size,
    js_number,
    render_message,
    sanitise_for_matrix,
    to_json,
)

HTML = "org.matrix.custom.html"


def render(data: object, include_hook_body: bool = False, **kwargs: str) -> dict[str, object]:
    return render_message(data, hook_name="my-hook", include_hook_body=include_hook_body, **kwargs)


def assert_no_floats(value: object) -> None:
    """Matrix canonical JSON has no floats and no integers beyond ±(2**53 - 1)."""
    if isinstance(value, float):
        raise AssertionError(f"float {value!r} in event content")
    if isinstance(value, int) and not isinstance(value, bool):
        assert abs(value) <= 2**53 - 1
    if isinstance(value, dict):
        for item in value.values():
            assert_no_floats(item)
    if isinstance(value, list):
        for item in value:
            assert_no_floats(item)


# --- JavaScript-compatible JSON -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.5, "1.5"),
        (2.0, "2"),
        (-0.0, "0"),
        (0.1 + 0.2, "0.30000000000000004"),
        (123456.789, "123456.789"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1.5e300, "1.5e+300"),
        (1e-6, "0.000001"),
        (1e-7, "1e-7"),
        (-2.5e-10, "-2.5e-10"),
        (5e-324, "5e-324"),
        (math.nan, "NaN"),
        (math.inf, "Infinity"),
        (-math.inf, "-Infinity"),
    ],
)
def test_js_number(value: float, text: str) -> None:
    assert js_number(value) == text


def test_to_json_pretty_matches_json_stringify() -> None:
    data = {"a": [1, {"b": None, "c": 2.5}], "e": {}, "f": [], "g": "é\n\"", "h": True}
    assert to_json(data, 2) == (
        '{\n  "a": [\n    1,\n    {\n      "b": null,\n      "c": 2.5\n    }\n  ],\n'
        '  "e": {},\n  "f": [],\n  "g": "é\\n\\"",\n  "h": true\n}'
    )


def test_to_json_compact_and_javascript_numbers() -> None:
    assert to_json({"x": [2.0, 1e21, math.nan, math.inf], "y": (1, "z")}) == '{"x":[2,1e+21,null,null],"y":[1,"z"]}'


def test_to_json_scalars() -> None:
    assert [to_json(v) for v in (None, False, 7, "s")] == ["null", "false", "7", '"s"']


def test_to_json_refuses_non_json_data() -> None:
    with pytest.raises(TypeError, match="set is not JSON data"):
        to_json({"a": {1, 2}})


# --- sanitise_for_matrix ------------------------------------------------------------------------


def test_floats_become_strings_and_integral_floats_ints() -> None:
    assert sanitise_for_matrix({"a": 1.5, "b": 2.0, "c": [0.25, -3.0], "d": 1e21, "e": 1}) == {
        "a": "1.5",
        "b": 2,
        "c": ["0.25", -3],
        "d": "1e+21",
        "e": 1,
    }


def test_non_finite_floats_become_strings() -> None:
    assert sanitise_for_matrix([math.nan, math.inf, -math.inf]) == ["NaN", "Infinity", "-Infinity"]


def test_integers_outside_canonical_json_become_strings() -> None:
    assert sanitise_for_matrix([2**53 - 1, 2**53, -(2**53), 10**30]) == [
        2**53 - 1,
        "9007199254740992",
        "-9007199254740992",
        "1000000000000000000000000000000",
    ]


def test_primitives_are_unchanged() -> None:
    assert sanitise_for_matrix({"s": "x", "t": True, "n": None}) == {"s": "x", "t": True, "n": None}
    assert sanitise_for_matrix("plain") == "plain"


def nest(levels: int) -> dict[str, object]:
    node: dict[str, object] = {"leaf": 1.5}
    for _ in range(levels):
        node = {"a": node}
    return node


def test_depth_ten_is_walked() -> None:
    result = sanitise_for_matrix(nest(10))
    for _ in range(10):
        assert isinstance(result, dict)
        result = result["a"]
    assert result == {"leaf": "1.5"}


def test_deeper_than_ten_is_stringified() -> None:
    result = sanitise_for_matrix(nest(11))
    for _ in range(11):
        assert isinstance(result, dict)
        result = result["a"]
    assert result == '{"leaf":1.5}'


def test_array_entries_past_the_fiftieth_index_are_stringified() -> None:
    data = [{"i": i / 2} for i in range(52)] + [0.5]
    result = sanitise_for_matrix(data)
    assert isinstance(result, list)
    assert result[50] == {"i": 25}
    assert result[51] == '{"i":25.5}'
    assert result[52] == "0.5"  # primitives are always converted, whatever their position


def test_object_entries_past_the_fiftieth_key_are_stringified() -> None:
    data = {f"k{n}": [n + 0.5] for n in range(1, 53)}
    result = sanitise_for_matrix(data)
    assert isinstance(result, dict)
    assert result["k50"] == ["50.5"]
    assert result["k51"] == "[51.5]"
    assert result["k52"] == "[52.5]"


# --- render_message: the hookshot rules ---------------------------------------------------------


def test_string_body() -> None:
    assert render("hello *w*", include_hook_body=True) == {
        "msgtype": "m.notice",
        "body": "Received webhook data: hello *w*",
        "formatted_body": "<p>Received webhook data: hello <em>w</em></p>",
        "format": HTML,
        WEBHOOK_DATA_KEY: "hello *w*",
    }


def test_text_is_markdown() -> None:
    assert render({"text": "Build **passed**\n\n- one"}) == {
        "msgtype": "m.notice",
        "body": "Build **passed**\n\n- one",
        "formatted_body": "<p>Build <strong>passed</strong></p>\n<ul>\n<li>one</li>\n</ul>",
        "format": HTML,
    }


def test_text_with_username() -> None:
    assert render({"text": "Hi **there**", "username": "ci-bot"}) == {
        "msgtype": "m.notice",
        "body": "**ci-bot**: Hi **there**",
        "formatted_body": "<p><strong>ci-bot</strong>: Hi <strong>there</strong></p>",
        "format": HTML,
    }


def test_username_cannot_inject_markdown_or_html() -> None:
    content = render({"text": "hi", "username": "[x](https://e.org)*<b>"})
    assert content["body"] == "**[x](https://e.org)*<b>**: hi"
    assert content["formatted_body"] == "<p><strong>[x](https://e.org)*&lt;b&gt;</strong>: hi</p>"


def test_text_with_html_uses_the_sanitised_html() -> None:
    content = render({"text": "fallback", "html": '<b onclick="x()">Bold</b><script>alert(1)</script>'})
    assert content == {"msgtype": "m.notice", "body": "fallback", "formatted_body": "<b>Bold</b>", "format": HTML}


def test_text_with_html_and_username() -> None:
    content = render({"text": "t", "html": "<i>h</i>", "username": "A&B"})
    assert content["body"] == "**A&B**: t"
    assert content["formatted_body"] == "<strong>A&amp;B</strong>: <i>h</i>"


def test_html_without_text_gets_a_plain_body() -> None:
    assert render({"html": "<p>Only <i>html</i></p><p>and <a href='https://e.org'>more</a></p>"}) == {
        "msgtype": "m.notice",
        "body": "Only html\n\nand more (https://e.org)",
        "formatted_body": '<p>Only <i>html</i></p><p>and <a href="https://e.org">more</a></p>',
        "format": HTML,
    }


def test_html_without_text_and_username() -> None:
    content = render({"html": "<p>x</p>", "username": "<u>"})
    assert content["body"] == "**<u>**: x"
    assert content["formatted_body"] == "<strong>&lt;u&gt;</strong>: <p>x</p>"


def test_blank_html_with_text_falls_back_to_markdown() -> None:
    assert render({"text": "*t*", "html": ""})["formatted_body"] == "<p><em>t</em></p>"


def test_html_that_sanitises_to_nothing_is_shown_as_data() -> None:
    assert render({"html": "<script>x</script>"}) == {
        "msgtype": "m.notice",
        "body": 'Received webhook data:\n\n```json\n\n{\n  "html": "<script>x</script>"\n}\n\n```',
        "formatted_body": '<p>Received webhook data:</p><pre><code class="language-json">'
        '{\n  "html": "&lt;script&gt;x&lt;/script&gt;"\n}</code></pre>',
        "format": HTML,
    }


def test_other_objects_are_a_json_dump() -> None:
    assert render({"status": "ok", "load": 0.75, "ids": [1, 2]}) == {
        "msgtype": "m.notice",
        "body": 'Received webhook data:\n\n```json\n\n{\n  "status": "ok",\n  "load": 0.75,\n'
        '  "ids": [\n    1,\n    2\n  ]\n}\n\n```',
        "formatted_body": '<p>Received webhook data:</p><pre><code class="language-json">'
        '{\n  "status": "ok",\n  "load": 0.75,\n  "ids": [\n    1,\n    2\n  ]\n}</code></pre>',
        "format": HTML,
    }


def test_json_dump_with_username() -> None:
    content = render({"username": "u", "value": 1})
    assert content["body"] == (
        '**u**: Received webhook data:\n\n```json\n\n{\n  "username": "u",\n  "value": 1\n}\n\n```'
    )
    assert content["formatted_body"] == (
        '<strong>u</strong>: <p>Received webhook data:</p><pre><code class="language-json">'
        '{\n  "username": "u",\n  "value": 1\n}</code></pre>'
    )


def test_non_string_text_is_a_json_dump() -> None:
    assert render({"text": 5})["body"] == 'Received webhook data:\n\n```json\n\n{\n  "text": 5\n}\n\n```'


@pytest.mark.parametrize(("data", "dump"), [([], "[]"), (None, "null"), (7, "7"), (True, "true")])
def test_non_object_data_is_a_json_dump(data: object, dump: str) -> None:
    content = render(data)
    assert content["body"] == f"Received webhook data:\n\n```json\n\n{dump}\n\n```"
    assert content["formatted_body"] == f'<p>Received webhook data:</p><pre><code class="language-json">{dump}</code></pre>'


def test_empty_text_has_no_formatted_body() -> None:
    assert render({"text": ""}) == {"msgtype": "m.notice", "body": ""}


def test_msgtype_is_configurable_but_never_taken_from_the_body() -> None:
    assert render({"text": "x", "msgtype": "m.emote"})["msgtype"] == "m.notice"
    assert render({"text": "x"}, msgtype="m.text")["msgtype"] == "m.text"


def test_hook_body_is_sanitised_and_numbers_read_like_javascript() -> None:
    data = {"v": 2.0, "w": 0.5, "x": 1e21, "big": 2**60}
    content = render(data, include_hook_body=True)
    assert content[WEBHOOK_DATA_KEY] == {"v": 2, "w": "0.5", "x": "1e+21", "big": "1152921504606846976"}
    assert content["body"] == (
        'Received webhook data:\n\n```json\n\n{\n  "v": 2,\n  "w": 0.5,\n  "x": 1e+21,\n'
        '  "big": 1152921504606846976\n}\n\n```'
    )
    assert_no_floats(content)
    json.dumps(content, allow_nan=False)


def test_hook_body_is_left_out_when_disabled_or_null() -> None:
    assert WEBHOOK_DATA_KEY not in render({"a": 1}, include_hook_body=False)
    assert WEBHOOK_DATA_KEY not in render(None, include_hook_body=True)
    assert render({"text": ""}, include_hook_body=True)[WEBHOOK_DATA_KEY] == {"text": ""}


def test_non_json_data_names_the_hook() -> None:
    with pytest.raises(TypeError, match="Webhook 'my-hook': cannot render set is not JSON data"):
        render({"a": {1}})


# --- oversize handling --------------------------------------------------------------------------


def test_small_content_is_untouched() -> None:
    content = render({"text": "short", "blob": "x" * 1000}, include_hook_body=True)
    assert content[WEBHOOK_DATA_KEY] == {"text": "short", "blob": "x" * 1000}


def test_oversize_drops_the_hook_data_first() -> None:
    content = render({"text": "short", "blob": "x" * 62_000}, include_hook_body=True)
    assert content == {"msgtype": "m.notice", "body": "short", "formatted_body": "<p>short</p>", "format": HTML}


def test_oversize_then_drops_the_html() -> None:
    content = render({"text": "a" * 40_000}, include_hook_body=True)
    assert content == {"msgtype": "m.notice", "body": "a" * 40_000}


def test_oversize_finally_truncates_the_body() -> None:
    content = render({"text": "a" * 70_000})
    assert content == {"msgtype": "m.notice", "body": "a" * 30_720 + "…"}


def test_size_is_counted_in_utf8_bytes() -> None:
    # 25,000 characters (hookshot's measure fits) but 75,000 bytes: the HTML must go and the
    # body be cut until the event fits, not just to 30,720 characters.
    content = render({"text": "€" * 25_000})
    assert content == {"msgtype": "m.notice", "body": "€" * 20_468 + "…"}
    assert content_size(content) == 61_439
    content["body"] = "€" * 20_469 + "…"
    assert content_size(content) > MAX_EVENT_SIZE_BYTES


def test_json_escapes_count_towards_the_size() -> None:
    content = render({"text": "\x01" * 20_000})  # each is 6 bytes once escaped
    assert content_size(content) <= MAX_EVENT_SIZE_BYTES
    body = content["body"]
    assert isinstance(body, str) and body == "\x01" * (len(body) - 1) + "…"
    assert content_size({"msgtype": "m.notice", "body": "\x01" * len(body) + "…"}) > MAX_EVENT_SIZE_BYTES


def test_limit_is_inclusive() -> None:
    overhead = content_size({"msgtype": "m.notice", "body": ""})
    exact = {"msgtype": "m.notice", "body": "a" * (MAX_EVENT_SIZE_BYTES - overhead)}
    assert content_size(exact) == MAX_EVENT_SIZE_BYTES
    assert fit_to_event_size(dict(exact)) == exact
    over = {"msgtype": "m.notice", "body": "a" * (MAX_EVENT_SIZE_BYTES - overhead + 1)}
    assert fit_to_event_size(over) == {"msgtype": "m.notice", "body": "a" * 30_720 + "…"}


def test_content_size_is_compact_utf8_json() -> None:
    assert content_size({"body": "é"}) == len('{"body":"é"}'.encode())


# --- fallback and mentions ------------------------------------------------------------------------


def test_fallback_is_plain_text_without_html_or_hook_data() -> None:
    from hookshot_py.generic.format import render_fallback

    assert render_fallback("[" * 10) == {"msgtype": "m.notice", "body": "Received webhook data: [[[[[[[[[["}
    assert render_fallback({"text": "**x**", "username": "ci", "html": "<b>x</b>"}) == {
        "msgtype": "m.notice",
        "body": "**ci**: **x**",
    }
    assert render_fallback({"a": [1, 2.5]}) == {"msgtype": "m.notice", "body": 'Received webhook data: {"a": [1, 2.5]}'}


def test_fallback_of_a_huge_body_fits_an_event() -> None:
    from hookshot_py.generic.format import render_fallback

    content = render_fallback({"text": "[" * 1_000_000})
    assert content_size(content) <= MAX_EVENT_SIZE_BYTES
    assert content["body"].startswith("[[[") and content["body"].endswith("…")
    content = render_fallback({"items": ["é" * 100] * 10_000})
    assert content_size(content) <= MAX_EVENT_SIZE_BYTES


def test_mentions_are_set_only_when_the_hook_asks() -> None:
    assert "m.mentions" not in render({"text": "@room deploy"})
    asked = render_message({"text": "hi @a:x"}, hook_name="h", include_hook_body=False, mentions={"user_ids": ["@a:x"]})
    assert asked["m.mentions"] == {"user_ids": ["@a:x"]}


def test_html_only_body_of_a_megabyte_is_bounded() -> None:
    content = render({"html": "<b> </b>" * 130_000 + "<p>end</p>"})
    # The markup past the sanitiser's cap is cut off; what is left still fits an event.
    assert content_size(content) <= MAX_EVENT_SIZE_BYTES
    assert "end" not in content["body"]


def test_only_small_bodies_without_brackets_render_on_the_event_loop() -> None:
    from hookshot_py.generic.webhook import INLINE_BODY_BYTES, cheap_to_render

    assert cheap_to_render(b'{"text": "Build **passed** on `main`"}')
    assert not cheap_to_render(b'{"text": "[docs](https://example.org)"}')  # brackets: quadratic in markdown-it
    assert not cheap_to_render(b'{"text": "' + b"*_" * 20 + b'"}')  # too many delimiters
    assert not cheap_to_render(b'{"text": "' + b"a" * INLINE_BODY_BYTES + b'"}')  # too large
