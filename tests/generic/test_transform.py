"""A corpus of hookshot transformation scripts, run in the real sandbox, giving hookshot's messages.

The scripts and expected contents come from hookshot's own tests
(`tests/connections/GenericHook.spec.ts`, `spec/static-connection-config.spec.ts`) and its docs
(`docs/setup/webhooks.md`), plus common real-world shapes (alerting, CI).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from hookshot_py.generic.sandbox import JsError, JsResult, JsSandbox
from hookshot_py.generic.transform import (
    FAILURE_TEXT,
    TransformError,
    Transformed,
    WebhookResponse,
    failure_content,
    interpret,
    js_truthy,
    message_content,
)

QUESTION = {"question": "What is the meaning of life?", "answer": 42}
V1 = "result = `The answer to '${data.question}' is ${data.answer}`;"
V2 = "result = {plain: `The answer to '${data.question}' is ${data.answer}`, version: 'v2'}"
V2_RETURN = "result = {plain: `The answer to '${data.question}' is ${data.answer}`, version: 'v2'}; return;"
DOCS_V2 = """
if (data.counter === undefined) {
  // The API didn't give us a counter, send no message.
  result = { empty: true, version: "v2" };
} else if (data.counter > data.maxValue) {
  result = {
    plain: `**Oh no!** The counter has gone over by ${data.counter - data.maxValue}`,
    version: "v2",
  };
} else {
  result = {
    plain: `*Everything is fine*, the counter is under by ${data.maxValue - data.counter}`,
    version: "v2",
  };
}
"""
DOCS_V1 = """
if (data.counter > data.maxValue) {
  result = `**Oh no!** The counter has gone over by ${data.counter - data.maxValue}`;
} else {
  result = `*Everything is fine*, the counter is under by ${data.maxValue - data.counter}`;
}
"""
ALERTMANAGER = """
const firing = data.alerts.filter(a => a.status === "firing");
const lines = firing.map(a => `- **${a.labels.alertname}** on ${a.labels.instance}: ${a.annotations.summary}`);
result = {
  version: "v2",
  plain: `🔥 ${firing.length} alert${firing.length === 1 ? "" : "s"} firing\\n\\n${lines.join("\\n")}`,
  msgtype: "m.text",
  mentions: data.commonLabels.severity === "critical" ? { room: true } : undefined,
};
"""
CI = """
const ok = data.build.status === "success";
result = {
  version: "v2",
  plain: `${ok ? "✅" : "❌"} ${data.repo} ${data.build.branch}: ${data.build.status}`,
  html: `<b>${ok ? "✅" : "❌"} ${data.repo}</b> <code>${data.build.branch}</code>: ${data.build.status}`,
  mentions: ok ? undefined : { user_ids: [data.build.author_mxid] },
  hints: { showUrlPreviews: false },
  webhookResponse: { body: JSON.stringify({ received: data.build.id }), contentType: "application/json", statusCode: 202 },
};
"""
CHALLENGE = """
// A service that verifies the endpoint first, then posts events.
if (data.type === "url_verification") {
  result = { version: "v2", empty: true, webhookResponse: { body: data.challenge, contentType: "text/plain" } };
} else {
  result = { version: "v2", plain: `Event: ${data.event.text}` };
}
"""


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def sandbox() -> AsyncIterator[JsSandbox]:
    box = JsSandbox(workers=2)
    await box.start()
    try:
        yield box
    finally:
        await box.stop()


async def transform(box: JsSandbox, script: str, data: Any) -> Transformed:
    return interpret(await box.run(script, json.dumps(data), key="corpus"))


async def content_of(box: JsSandbox, script: str, data: Any, **kw: Any) -> dict[str, Any] | None:
    """The message hookshot would post for `data` (None: no message), or its failure notice."""
    try:
        result = await transform(box, script, data)
    except (JsError, TransformError):
        return failure_content(data, include_hook_body=True)
    if result.plain is None:
        return None
    return message_content(result, data, include_hook_body=True, **kw)


def notice(body: str, html: str, data: Any, **extra: Any) -> dict[str, Any]:
    return {
        "msgtype": "m.notice",
        "body": body,
        "format": "org.matrix.custom.html",
        "formatted_body": html,
        **extra,
        "uk.half-shot.hookshot.webhook_data": data,
    }


# -- hookshot's own tests -----------------------------------------------------------------------------


async def test_v1_string_result(sandbox: JsSandbox) -> None:
    body = "Received webhook: The answer to 'What is the meaning of life?' is 42"
    assert await content_of(sandbox, V1, QUESTION) == notice(body, f"<p>{body}</p>", QUESTION)


@pytest.mark.parametrize("script", [V2, V2_RETURN])
async def test_v2_result_with_and_without_a_top_level_return(sandbox: JsSandbox, script: str) -> None:
    body = "The answer to 'What is the meaning of life?' is 42"
    assert await content_of(sandbox, script, QUESTION) == notice(body, f"<p>{body}</p>", QUESTION)


async def test_v2_mentions_keep_only_room_and_user_ids(sandbox: JsSandbox) -> None:
    script = (
        'result = {plain: "Test test", mentions: { room: true, user_ids: ["@foo:bar"], ignored_data: true}, '
        "version: 'v2'}"
    )
    assert await content_of(sandbox, script, {}) == notice(
        "Test test", "<p>Test test</p>", {}, **{"m.mentions": {"room": True, "user_ids": ["@foo:bar"]}}
    )


async def test_v2_url_preview_hint(sandbox: JsSandbox) -> None:
    script = 'result = {"version":"v2","hints":{"showUrlPreviews":false},"plain":"hello world"}'
    assert await content_of(sandbox, script, {}) == notice(
        "hello world", "<p>hello world</p>", {}, **{"com.beeper.linkpreviews": []}
    )
    allowed = 'result = {version: "v2", hints: {showUrlPreviews: true}, plain: "x"}'
    assert "com.beeper.linkpreviews" not in (await content_of(sandbox, allowed, {}, allow_url_previews=False) or {})
    assert (await content_of(sandbox, V2, QUESTION, allow_url_previews=False) or {})["com.beeper.linkpreviews"] == []


async def test_a_script_that_does_not_run_gives_the_failure_notice(sandbox: JsSandbox) -> None:
    assert await content_of(sandbox, "bibble bobble", QUESTION) == notice(
        FAILURE_TEXT, f"<p>{FAILURE_TEXT}</p>", QUESTION
    )


async def test_static_connection_spec_script(sandbox: JsSandbox) -> None:
    script = 'result = {\n        plain: "Hello world",\n        version: "v2",\n      };'
    # hookshot's e2e test posts the text "{}" (a text/plain body): `data` is that string
    assert await content_of(sandbox, script, "{}") == notice("Hello world", "<p>Hello world</p>", "{}")


# -- hookshot's docs ------------------------------------------------------------------------------------


async def test_docs_v2_example(sandbox: JsSandbox) -> None:
    over = {"counter": 5, "maxValue": 4}
    assert await content_of(sandbox, DOCS_V2, over) == notice(
        "**Oh no!** The counter has gone over by 1", "<p><strong>Oh no!</strong> The counter has gone over by 1</p>", over
    )
    under = {"counter": 3, "maxValue": 4}
    assert await content_of(sandbox, DOCS_V2, under) == notice(
        "*Everything is fine*, the counter is under by 1",
        "<p><em>Everything is fine</em>, the counter is under by 1</p>",
        under,
    )
    assert await content_of(sandbox, DOCS_V2, {"maxValue": 4}) is None  # empty: no message


async def test_docs_v1_example(sandbox: JsSandbox) -> None:
    over = {"counter": 5, "maxValue": 4}
    assert await content_of(sandbox, DOCS_V1, over) == notice(
        "Received webhook: **Oh no!** The counter has gone over by 1",
        "<p>Received webhook: <strong>Oh no!</strong> The counter has gone over by 1</p>",
        over,
    )


@pytest.mark.parametrize("value", ["undefined", "false", "0", "7", "null", "() => 1"])
async def test_docs_v1_non_object_results_are_no_content(sandbox: JsSandbox, value: str) -> None:
    assert await content_of(sandbox, f"result = {value}", {}) == notice("No content", "<p>No content</p>", {})


async def test_floats_are_real_numbers_in_the_script_and_strings_in_the_event(sandbox: JsSandbox) -> None:
    data = {"value": 1.25, "nested": [6.789]}
    content = await content_of(sandbox, "result = `doubled: ${data.value * 2}, ${data.nested[0] + 1}`", data)
    assert content is not None and content["body"] == "Received webhook: doubled: 2.5, 7.789"
    assert content["uk.half-shot.hookshot.webhook_data"] == {"value": "1.25", "nested": ["6.789"]}


# -- real-world shapes ------------------------------------------------------------------------------------


async def test_alertmanager_script_with_room_mention(sandbox: JsSandbox) -> None:
    def alert(name: str, status: str) -> dict[str, Any]:
        return {"status": status, "labels": {"alertname": name, "instance": "db1"}, "annotations": {"summary": "down"}}

    data = {"alerts": [alert("DiskFull", "firing"), alert("Ok", "resolved")], "commonLabels": {"severity": "critical"}}
    content = await content_of(sandbox, ALERTMANAGER, data)
    assert content is not None
    assert content["msgtype"] == "m.text"
    assert content["body"] == "🔥 1 alert firing\n\n- **DiskFull** on db1: down"
    assert content["formatted_body"] == "<p>🔥 1 alert firing</p>\n<ul>\n<li><strong>DiskFull</strong> on db1: down</li>\n</ul>"
    assert content["m.mentions"] == {"room": True}
    data["commonLabels"] = {"severity": "warning"}
    assert "m.mentions" not in (await content_of(sandbox, ALERTMANAGER, data) or {})


async def test_ci_script_with_html_user_mention_hint_and_response(sandbox: JsSandbox) -> None:
    data = {"repo": "o/r", "build": {"id": 7, "status": "failure", "branch": "main", "author_mxid": "@dev:x"}}
    result = await transform(sandbox, CI, data)
    assert result.response == WebhookResponse('{"received":7}', "application/json", 202)
    content = message_content(result, data, include_hook_body=False)
    assert content == {
        "msgtype": "m.notice",
        "body": "❌ o/r main: failure",
        "format": "org.matrix.custom.html",
        "formatted_body": "<b>❌ o/r</b> <code>main</code>: failure",
        "m.mentions": {"user_ids": ["@dev:x"]},
        "com.beeper.linkpreviews": [],
    }


async def test_verification_challenge_answered_without_a_message(sandbox: JsSandbox) -> None:
    result = await transform(sandbox, CHALLENGE, {"type": "url_verification", "challenge": "abc123"})
    assert result == Transformed(plain=None, response=WebhookResponse("abc123", "text/plain", None))
    result = await transform(sandbox, CHALLENGE, {"type": "event", "event": {"text": "hi"}})
    assert (result.plain, result.response) == ("Event: hi", None)


async def test_html_from_the_script_is_sanitised(sandbox: JsSandbox) -> None:
    script = "result = {version: 'v2', plain: 'x', html: `<b>${data.name}</b><script>alert(1)</script>`}"
    content = await content_of(sandbox, script, {"name": "<img src=x onerror=alert(1)>"})
    assert content is not None
    assert "<script" not in content["formatted_body"] and "onerror" not in content["formatted_body"]
    assert content["formatted_body"].startswith("<b>")


async def test_per_hook_msgtype_is_the_default_for_script_results(sandbox: JsSandbox) -> None:
    content = await content_of(sandbox, V2, QUESTION, default_msgtype="m.emote")
    assert content is not None and content["msgtype"] == "m.emote"
    script = "result = {version: 'v2', plain: 'x', msgtype: 'm.text'}"
    content = await content_of(sandbox, script, {}, default_msgtype="m.emote")
    assert content is not None and content["msgtype"] == "m.text"


# -- results hookshot refuses, with its wording --------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ({"plain": "x"}, "didn't specify version = v2"),
        ([1, 2], "didn't specify version = v2"),
        ({"version": "v1", "plain": "x"}, "didn't specify version = v2"),
        ({"version": "v2"}, "didn't provide a string value for plain"),
        ({"version": "v2", "plain": 1}, "didn't provide a string value for plain"),
        ({"version": "v2", "plain": "x", "html": 1}, "didn't provide a string value for html"),
        ({"version": "v2", "plain": "x", "msgtype": False}, "didn't provide a string value for msgtype"),
        ({"version": "v2", "plain": "x", "mentions": {"room": "yes"}}, "provided an invalid mentions.room"),
        ({"version": "v2", "plain": "x", "mentions": {"user_ids": "@a:b"}}, "provided an invalid mentions.user_ids"),
        ({"version": "v2", "plain": "x", "mentions": {"user_ids": [1]}}, "provided an invalid mentions.user_ids"),
        ({"version": "v2", "plain": "x", "hints": {"showUrlPreviews": 0}}, "provided an invalid hints.showUrlPreviews"),
        ({"version": "v2", "empty": True, "webhookResponse": {}}, "string value for webhookResponse.body"),
        ({"version": "v2", "empty": True, "webhookResponse": "ok"}, "string value for webhookResponse.body"),
        ({"version": "v2", "empty": True, "webhookResponse": {"body": "", "statusCode": "200"}},
         "number value for webhookResponse.statusCode"),
        ({"version": "v2", "empty": True, "webhookResponse": {"body": "", "statusCode": 99}},
         "number value for webhookResponse.statusCode"),
        ({"version": "v2", "empty": True, "webhookResponse": {"body": "", "contentType": "a\r\nSet-Cookie: x"}},
         "contentType value"),
    ],
)  # fmt: skip
def test_bad_results_are_refused_with_hookshots_wording(result: Any, message: str) -> None:
    with pytest.raises(TransformError) as info:
        interpret(JsResult("object", result))
    assert str(info.value).startswith("Result returned from transformation ") and message in str(info.value)


def test_empty_and_javascript_truthiness() -> None:
    assert interpret(JsResult("object", {"version": "v2", "empty": 1})).plain is None
    assert interpret(JsResult("object", {"version": "v2", "empty": 0, "plain": "x"})).plain == "x"
    assert interpret(JsResult("object", {"version": "v2", "plain": "", "mentions": {}})).mentions == {}
    assert [js_truthy(v) for v in ([], {}, "0", 0, "", None, False, float("nan"))] == [
        True, True, True, False, False, False, False, False,
    ]  # fmt: skip


async def test_oversized_results_are_cut_like_any_message(sandbox: JsSandbox) -> None:
    content = await content_of(sandbox, "result = {version: 'v2', plain: 'x'.repeat(200000)}", {"a": 1})
    assert content is not None
    assert "uk.half-shot.hookshot.webhook_data" not in content and "formatted_body" not in content
    assert content["body"].endswith("…") and len(content["body"]) <= 30721
