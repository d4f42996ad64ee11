"""`/gitlab/webhook`: the token is checked before anything is answered, a project's token opens
that project's rooms only, deliveries are deduplicated, and each room gets what it filters for."""

from __future__ import annotations

import json
from typing import Any

from fakes.gitlab import FakeGitLabState
from hookshot_py.gitlab.inbound import delivery_id

from .conftest import CONFIG_SECRET, FIXTURE_PATH, ROUTE, payload

ALICE, DAVE = "@alice:test", "@dave:test"


def fixture(stack: Any, name: str, path: str = FIXTURE_PATH) -> dict[str, Any]:
    return payload(name, base=stack.gl.base_url, path=path)


async def test_refused_before_anything_is_read(make_stack) -> None:
    stack = await make_stack()
    await stack.login(ALICE, "alice")
    await stack.connect("!room:test", ALICE)
    big = {"object_kind": "push", "padding": "x" * (12 * 1024 * 1024)}
    for token in (None, "", "wrong", CONFIG_SECRET + "x"):
        status, body = await stack.post(big, token)
        assert status == 401 and body["errcode"] == "HS_BAD_TOKEN", (token, status)
    assert await stack.bodies("!room:test") == []


async def test_the_project_token_posts_to_its_rooms(make_stack, gl: FakeGitLabState) -> None:
    stack = await make_stack(secret=None, public_url=ROUTE)
    await stack.login(ALICE, "alice")
    await stack.connect("!a:test", ALICE, enableHooks=["merge_request", "push"])
    await stack.connect("!b:test", ALICE, enableHooks=["push"])
    token = gl.project(FIXTURE_PATH).hooks[next(iter(gl.project(FIXTURE_PATH).hooks))].token
    status, body = await stack.post(fixture(stack, "merge_request.open"), token)
    assert (status, body["posted"]) == (200, 1)
    [message] = await stack.messages("!a:test")
    assert message["body"].startswith("**alice** opened a new MR [acme/widgets!12](")
    assert message["formatted_body"].startswith("<strong>alice</strong> opened a new MR <a href=")
    assert message["external_url"] == f"{gl.base_url}/acme/widgets/-/merge_requests/12"
    assert await stack.bodies("!b:test") == []
    # The same delivery through GitLab's own machinery (the fake's hook, with its token)
    await stack.hooks.store.load()
    [sent] = await gl.emit(FIXTURE_PATH, fixture(stack, "push.single"))
    assert sent.status == 200 and json.loads(sent.response)["posted"] == 2
    assert (await stack.bodies("!b:test"))[0].startswith("**Alice Liddell** pushed [1 commit](")


async def test_a_projects_token_does_not_open_another_project(make_stack, gl: FakeGitLabState) -> None:
    stack = await make_stack(secret=None)
    await stack.login(ALICE, "alice")
    await stack.connect("!widgets:test", ALICE)
    await stack.connect("!public:test", ALICE, path="acme/public")
    widgets_token = next(iter(gl.project(FIXTURE_PATH).hooks.values())).token
    status, body = await stack.post(fixture(stack, "issue.open", path="acme/public"), widgets_token)
    assert status == 401 and "another project's webhook token" in body["error"]
    assert await stack.bodies("!public:test") == []


async def test_the_config_secret_opens_every_project(make_stack) -> None:
    stack = await make_stack(secret=CONFIG_SECRET)
    await stack.login(DAVE, "dave")
    await stack.connect("!room:test", DAVE)  # no hook: set up by hand, with hookshot's secret
    status, body = await stack.post(fixture(stack, "issue.open"), CONFIG_SECRET)
    assert (status, body["posted"]) == (200, 1)
    assert (await stack.bodies("!room:test"))[0].startswith("📥 **alice** created new issue")


async def test_the_token_given_for_a_hand_made_hook_works(make_stack) -> None:
    stack = await make_stack(secret=None)
    await stack.login(DAVE, "dave")
    conn, outcome = await stack.connect("!room:test", DAVE)
    token = outcome.secrets["webhook"]["token"]
    assert (await stack.post(fixture(stack, "issue.close"), token))[0] == 200
    assert (await stack.bodies("!room:test"))[0].startswith("⬛ **bob** closed issue")


async def test_redeliveries_are_posted_once(make_stack, gl: FakeGitLabState) -> None:
    stack = await make_stack(public_url=ROUTE)
    await stack.login(ALICE, "alice")
    await stack.connect("!room:test", ALICE)
    body = fixture(stack, "merge_request.merge")
    first = await stack.post(body, CONFIG_SECRET, **{"Idempotency-Key": "k-1", "X-Gitlab-Webhook-UUID": "u-1"})
    again = await stack.post(body, CONFIG_SECRET, **{"Idempotency-Key": "k-1", "X-Gitlab-Webhook-UUID": "u-2"})
    assert first[1]["posted"] == 1 and again[1] == {"ok": True, "handled": True, "posted": 0, "queued": 0,
                                                      "duplicate": True}
    # Without Idempotency-Key (GitLab before 17.4), the webhook UUID identifies it.
    assert (await stack.post(body, CONFIG_SECRET, **{"X-Gitlab-Webhook-UUID": "u-3"}))[1]["posted"] == 1
    assert (await stack.post(body, CONFIG_SECRET, **{"X-Gitlab-Webhook-UUID": "u-3"}))[1]["posted"] == 0
    assert len(await stack.bodies("!room:test")) == 2
    # Older GitLab sends neither header: the body identifies a retry.
    reopened = fixture(stack, "merge_request.reopen")
    assert (await stack.post(reopened, CONFIG_SECRET))[1]["posted"] == 1
    assert (await stack.post(reopened, CONFIG_SECRET))[1]["duplicate"] is True
    assert len(await stack.bodies("!room:test")) == 3
    # GitLab's "Resend request" keeps the Idempotency-Key
    await stack.hooks.store.load()
    [sent] = await gl.emit(FIXTURE_PATH, fixture(stack, "merge_request.close"))
    resent = await gl.redeliver(sent)
    assert json.loads(sent.response)["posted"] == 1 and json.loads(resent.response)["duplicate"] is True
    assert sent.headers["Idempotency-Key"] == resent.headers["Idempotency-Key"]
    assert sent.headers["X-Gitlab-Webhook-UUID"] != resent.headers["X-Gitlab-Webhook-UUID"]
    assert len(await stack.bodies("!room:test")) == 4


def test_delivery_ids() -> None:
    assert delivery_id({"Idempotency-Key": "a", "X-Gitlab-Webhook-UUID": "b"}) == "a"
    assert delivery_id({"X-Gitlab-Webhook-UUID": "b"}) == "b"
    assert delivery_id({"Idempotency-Key": "x" * 500, "X-Gitlab-Webhook-UUID": "b"}) == "b"
    assert delivery_id({}) is None


async def test_what_is_acknowledged_without_a_message(make_stack) -> None:
    stack = await make_stack()
    await stack.login(ALICE, "alice")
    await stack.connect("!room:test", ALICE, enableHooks=["merge_request", "issue"])
    for name in ("build", "merge_request.test", "issue.open.confidential", "pipeline.failed", "release.update"):
        status, body = await stack.post(fixture(stack, name), CONFIG_SECRET)
        assert status == 200 and body.get("posted", 0) == 0, name
    status, body = await stack.post({"object_kind": "deployment", "status": "success"}, CONFIG_SECRET)
    assert (status, body) == (200, {"ok": True, "handled": False})
    # A project no room is connected to
    status, body = await stack.post(fixture(stack, "push", path="acme/unknown"), CONFIG_SECRET)
    assert (status, body["posted"]) == (200, 0)
    assert await stack.bodies("!room:test") == []


async def test_bad_bodies_are_precise_400s(make_stack) -> None:
    stack = await make_stack()
    await stack.login(ALICE, "alice")
    await stack.connect("!room:test", ALICE)
    from support.helpers import http

    headers = {"X-Gitlab-Token": CONFIG_SECRET, "Content-Type": "application/json"}
    for raw, problem in [
        (b"{nope", "not valid JSON"),
        (b"[1]", "JSON object"),
        (b"{}", "object_kind"),
        (b'{"a":' * 100 + b"1" + b"}" * 100, "nested deeper"),
    ]:
        status, body = await http("POST", stack.webhook_url, data=raw, headers=headers)
        assert status == 400 and problem in body["error"], (raw[:20], body)
    broken = fixture(stack, "merge_request.open")
    broken["object_attributes"]["iid"] = "twelve"
    status, body = await stack.post(broken, CONFIG_SECRET)
    assert status == 400 and "object_attributes.iid: expected integer, got string" in body["error"]
    assert await stack.bodies("!room:test") == []


async def test_label_filters_per_room(make_stack) -> None:
    stack = await make_stack()
    await stack.login(ALICE, "alice")
    await stack.connect("!bugs:test", ALICE, includingLabels=["bug"])
    await stack.connect("!docs:test", ALICE, includingLabels=["docs"])
    await stack.connect("!nobugs:test", ALICE, excludingLabels=["bug"])
    await stack.connect("!all:test", ALICE)
    status, body = await stack.post(fixture(stack, "issue.open"), CONFIG_SECRET)  # labelled "bug"
    assert (status, body["posted"]) == (200, 2)
    assert len(await stack.bodies("!bugs:test")) == 1 and len(await stack.bodies("!all:test")) == 1
    assert await stack.bodies("!docs:test") == [] and await stack.bodies("!nobugs:test") == []


async def test_review_items_are_queued_not_posted(make_stack) -> None:
    stack = await make_stack()
    await stack.login(ALICE, "alice")
    await stack.connect("!room:test", ALICE)
    status, body = await stack.post(fixture(stack, "note.merge_request"), CONFIG_SECRET)
    assert (status, body["queued"], body["posted"]) == (200, 1, 0)
    again = await stack.post(fixture(stack, "note.merge_request"), CONFIG_SECRET)
    assert again[1]["queued"] == 0 and again[1]["duplicate"] is True
    assert await stack.bodies("!room:test") == []
    assert await stack.db.fetchval("SELECT count(*) FROM gitlab_review_items") == 1


async def test_the_instance_is_told_by_the_project_address(make_stack) -> None:
    stack = await make_stack(more_instances={"other": "https://other.example"})
    await stack.login(ALICE, "alice")
    await stack.connect("!room:test", ALICE)
    # The same path on another configured instance is another project.
    status, body = await stack.post(payload("issue.open", base="https://other.example"), CONFIG_SECRET)
    assert (status, body["posted"]) == (200, 0)
    # GitLab knowing itself by an address no instance is configured with: the path decides, as in hookshot.
    status, body = await stack.post(payload("issue.open", base="https://gitlab.internal"), CONFIG_SECRET)
    assert (status, body["posted"]) == (200, 1)
