from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from fakes.gitflic import FakeGitFlicState, make_app
from hookshot_py.gitflic.client import PUBLIC_API_URL, GitFlicClient, GitFlicError, Webhook, default_api_url

HOOK_URL = "https://bridge.example.org/gitflic/webhook"
BASE = "/project/acme/widgets/setting/webhook"


@pytest.fixture
def state() -> FakeGitFlicState:
    s = FakeGitFlicState()
    s.add_token("admin-token", "ivan")
    s.add_token("member-token", "petr")
    s.add_project("acme", "widgets", admins=("ivan",), members=("petr",))
    s.add_project("acme", "secret-plans", admins=("olga",), private=True)
    return s


@pytest.fixture
async def server(state: FakeGitFlicState, aiohttp_server: Any) -> TestServer:
    return await aiohttp_server(make_app(state))


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


MakeClient = Callable[..., GitFlicClient]


@pytest.fixture
def make_client(server: TestServer, session: aiohttp.ClientSession) -> MakeClient:
    def make(token: str = "admin-token", **kwargs: Any) -> GitFlicClient:
        return GitFlicClient(str(server.make_url("")), token, session, **kwargs)

    return make


async def test_create_sends_the_seed_body(make_client: MakeClient, state: FakeGitFlicState) -> None:
    hook = await make_client().create_webhook("acme", "widgets", HOOK_URL, "s3cret", ["PUSH", "ISSUE_CREATE"])
    assert isinstance(hook, Webhook)
    assert hook.url == HOOK_URL and hook.secret == "s3cret"
    assert hook.events == {"PUSH", "ISSUE_CREATE"}
    assert hook.project_id == state.project("acme", "widgets").id
    [request] = state.api_requests("POST")
    assert request.path == BASE
    assert request.headers["Authorization"] == "token admin-token"
    assert request.body["url"] == HOOK_URL and request.body["secret"] == "s3cret"
    assert len(request.body["events"]) == 16
    assert {k for k, v in request.body["events"].items() if v} == {"PUSH", "ISSUE_CREATE"}
    assert state.project("acme", "widgets").webhooks[hook.id].events["PUSH"] is True


async def test_update_is_a_post_to_the_hook_and_turns_flags_off(
    make_client: MakeClient, state: FakeGitFlicState
) -> None:
    existing = state.add_webhook("acme", "widgets", HOOK_URL, "old", ("PUSH", "TAG_CREATE"))
    hook = await make_client().update_webhook("acme", "widgets", existing.id, HOOK_URL, "new", ["ISSUE_CREATE"])
    assert hook.id == existing.id and hook.secret == "new"
    assert hook.events == {"ISSUE_CREATE"}
    [request] = state.api_requests("POST")
    assert request.path == f"{BASE}/{existing.id}"


async def test_delete_is_a_post_to_delete(make_client: MakeClient, state: FakeGitFlicState) -> None:
    existing = state.add_webhook("acme", "widgets", HOOK_URL, "x", ("PUSH",))
    await make_client().delete_webhook("acme", "widgets", existing.id)
    assert state.project("acme", "widgets").webhooks == {}
    [request] = state.api_requests("POST")
    assert request.path == f"{BASE}/{existing.id}/delete"
    with pytest.raises(GitFlicError) as err:
        await make_client().delete_webhook("acme", "widgets", existing.id)
    assert err.value.status == 404


async def test_list_follows_every_page(make_client: MakeClient, state: FakeGitFlicState) -> None:
    created = [state.add_webhook("acme", "widgets", f"https://h{i}.example.org/", "s", ("PUSH",)) for i in range(23)]
    hooks = await make_client(page_size=10).list_webhooks("acme", "widgets")
    assert sorted(h.id for h in hooks) == sorted(h.id for h in created)
    pages = [r.query["page"] for r in state.api_requests("GET")]
    assert pages == ["0", "1", "2"]
    assert all(r.query["size"] == "10" for r in state.api_requests("GET"))


async def test_list_of_a_project_without_hooks(make_client: MakeClient, state: FakeGitFlicState) -> None:
    assert await make_client().list_webhooks("acme", "widgets") == []
    assert len(state.api_requests("GET")) == 1


async def test_ensure_creates_when_absent(make_client: MakeClient, state: FakeGitFlicState) -> None:
    state.add_webhook("acme", "widgets", "https://ci.example.org/hook", "other", ("PUSH",))
    hook = await make_client().ensure_webhook("acme", "widgets", HOOK_URL, "s", ["PUSH"])
    assert len(state.project("acme", "widgets").webhooks) == 2
    assert state.project("acme", "widgets").webhooks[hook.id].url == HOOK_URL


async def test_ensure_reuses_an_identical_hook_without_writing(
    make_client: MakeClient, state: FakeGitFlicState
) -> None:
    existing = state.add_webhook("acme", "widgets", HOOK_URL, "s", ("PUSH", "ISSUE_CREATE"))
    hook = await make_client().ensure_webhook("acme", "widgets", HOOK_URL, "s", ["ISSUE_CREATE", "PUSH"])
    assert hook.id == existing.id
    assert state.api_requests("POST") == []


@pytest.mark.parametrize(
    ("secret", "events"),
    [("s", ["PUSH"]), ("rotated", ["PUSH", "ISSUE_CREATE"])],
)
async def test_ensure_updates_a_hook_with_our_url_that_differs(
    make_client: MakeClient, state: FakeGitFlicState, secret: str, events: list[str]
) -> None:
    existing = state.add_webhook("acme", "widgets", HOOK_URL + "/", "s", ("PUSH", "ISSUE_CREATE"))
    hook = await make_client().ensure_webhook("acme", "widgets", HOOK_URL, secret, events)
    assert hook.id == existing.id
    assert len(state.project("acme", "widgets").webhooks) == 1
    stored = state.project("acme", "widgets").webhooks[existing.id]
    assert stored.url == HOOK_URL and stored.secret == secret
    assert {k for k, v in stored.events.items() if v} == set(events)
    assert [r.path for r in state.api_requests("POST")] == [f"{BASE}/{existing.id}"]


async def test_401_unknown_token(make_client: MakeClient) -> None:
    with pytest.raises(GitFlicError) as err:
        await make_client("nope").list_webhooks("acme", "widgets")
    assert err.value.status == 401
    text = err.value.describe()
    assert "refused the token" in text and "admin rights on acme/widgets" in text


async def test_403_token_without_admin(make_client: MakeClient) -> None:
    with pytest.raises(GitFlicError) as err:
        await make_client("member-token").create_webhook("acme", "widgets", HOOK_URL, "s", ["PUSH"])
    assert err.value.status == 403
    assert err.value.describe() == (
        "The GitFlic token has no admin rights on acme/widgets: "
        "only project administrators can manage its webhooks."
    )


@pytest.mark.parametrize("project", ["missing", "secret-plans"])
async def test_404_unknown_or_invisible_project(make_client: MakeClient, project: str) -> None:
    with pytest.raises(GitFlicError) as err:
        await make_client(instance="gitflic.example").ensure_webhook("acme", project, HOOK_URL, "s", ["PUSH"])
    assert err.value.status == 404
    assert err.value.describe() == f"Project acme/{project} not found on gitflic.example (or the token cannot see it)."


async def test_404_names_the_api_host_by_default(make_client: MakeClient, server: TestServer) -> None:
    with pytest.raises(GitFlicError) as err:
        await make_client().list_webhooks("nobody", "nothing")
    assert f"not found on {server.host}:{server.port}" in err.value.describe()


async def test_422_lists_the_validation_errors(make_client: MakeClient) -> None:
    with pytest.raises(GitFlicError) as err:
        await make_client().create_webhook("acme", "widgets", "not a url", "s", ["PUSH"])
    assert err.value.status == 422
    assert err.value.errors == ["url: must be a valid URL"]
    assert err.value.describe() == "GitFlic rejected the webhook for acme/widgets: url: must be a valid URL."


async def test_fake_422_for_unknown_flag_and_missing_fields(server: TestServer, session: aiohttp.ClientSession) -> None:
    """The client never sends these bodies; the fake must still refuse them like GitFlic."""
    headers = {"Authorization": "token admin-token"}
    bad_flag = {"url": HOOK_URL, "events": {"NOPE": True}}
    async with session.post(server.make_url(BASE), json=bad_flag, headers=headers) as r:
        assert r.status == 422
        body = await r.json()
    assert body["errors"] == [{"field": "events.NOPE", "rejectedValue": True, "defaultMessage": "unknown event"}]
    async with session.post(server.make_url(BASE), json={"secret": "s"}, headers=headers) as r:
        assert r.status == 422
        fields = [e["field"] for e in (await r.json())["errors"]]
    assert fields == ["url", "events"]
    async with session.post(server.make_url(BASE), data=b"{", headers=headers) as r:
        assert r.status == 422


async def test_server_error(make_client: MakeClient, state: FakeGitFlicState) -> None:
    state.fail_with = 500
    with pytest.raises(GitFlicError) as err:
        await make_client().list_webhooks("acme", "widgets")
    assert err.value.status == 500
    assert err.value.describe().startswith("GitFlic at ")
    assert "answered 500 for acme/widgets: Injected failure" in err.value.describe()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_network_failure_is_a_gitflic_error(session: aiohttp.ClientSession) -> None:
    client = GitFlicClient(f"http://127.0.0.1:{_free_port()}", "t", session, instance="gitflic.example")
    with pytest.raises(GitFlicError) as err:
        await client.list_webhooks("acme", "widgets")
    assert err.value.status == 0
    assert err.value.describe().startswith("Could not reach GitFlic at gitflic.example: ")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _odd_server(aiohttp_server: Any, handler: Handler) -> str:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return str((await aiohttp_server(app)).make_url(""))


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (200, b"<html>maintenance</html>", "not JSON"),
        (200, b'{"id": "x"}', "unexpected webhook"),
        (200, b"[]", "unexpected webhook"),
    ],
)
async def test_malformed_success_bodies(
    aiohttp_server: Any, session: aiohttp.ClientSession, status: int, body: bytes, message: str
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, body=body, content_type="application/json")

    client = GitFlicClient(await _odd_server(aiohttp_server, handler), "t", session)
    with pytest.raises(GitFlicError, match=message):
        await client.create_webhook("acme", "widgets", HOOK_URL, "s", ["PUSH"])


async def test_malformed_list_bodies(aiohttp_server: Any, session: aiohttp.ClientSession) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"_embedded": {"webhookList": {"not": "a list"}}})

    client = GitFlicClient(await _odd_server(aiohttp_server, handler), "t", session)
    with pytest.raises(GitFlicError, match="unexpected webhook list"):
        await client.list_webhooks("acme", "widgets")


async def test_list_stops_when_the_server_never_says_last(aiohttp_server: Any, session: aiohttp.ClientSession) -> None:
    calls: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        calls.append(request.query["page"])
        hook = {"id": request.query["page"], "url": "https://x.example/", "events": {}}
        return web.json_response({"_embedded": {"webhookList": [hook]}, "page": {"totalPages": 10**9}})

    client = GitFlicClient(await _odd_server(aiohttp_server, handler), "t", session)
    hooks = await client.list_webhooks("acme", "widgets")
    assert len(hooks) == len(calls) == 100


@pytest.mark.parametrize(
    ("body", "errors", "message"),
    [
        (b'{"message": "Bad", "errors": ["url is invalid"]}', ["url is invalid"], "Bad"),
        (
            b'{"detail": "Invalid body", "violations": [{"propertyPath": "url", "message": "bad"}]}',
            ["url: bad"],
            "Invalid body",
        ),
        (b'{"message": "x", "errors": {"url": ["bad", "worse"]}}', ["url: bad", "url: worse"], "x"),
        (b"plain text failure", [], "plain text failure"),
        (b"", [], "HTTP 422"),
    ],
)
async def test_422_body_shapes(
    aiohttp_server: Any, session: aiohttp.ClientSession, body: bytes, errors: list[str], message: str
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=422, body=body)

    client = GitFlicClient(await _odd_server(aiohttp_server, handler), "t", session)
    with pytest.raises(GitFlicError) as err:
        await client.create_webhook("acme", "widgets", HOOK_URL, "s", ["PUSH"])
    assert err.value.errors == errors
    assert err.value.message == message


def test_describe_rate_limit() -> None:
    assert "rate limiting" in GitFlicError(429, "Too Many Requests", "a/b", "api.gitflic.ru").describe()


def test_webhook_from_json_reads_the_seed_example() -> None:
    hook = Webhook.from_json(
        {
            "id": "a49523c3-0bac-4333-ad3f-c62efa064989",
            "url": "https://example.site/8e8ef5c6",
            "secret": "secret",
            "events": {
                "COLLABORATOR_DELETE": True,
                "ISSUE_UPDATE": False,
                "WEBHOOK_SEND": True,
                "RELEASE_CREATE": True,
            },
            "projectId": "9c3c0330-a47d-4d38-b8c5-e8a0ec834f79",
            "createdAt": "2022-10-11T22:52:46.314308Z",
            "updatedAt": "2022-10-11T22:52:46.314311Z",
        }
    )
    assert hook.events == {"COLLABORATOR_DELETE", "WEBHOOK_SEND", "RELEASE_CREATE"}
    assert hook.known_events() == {"COLLABORATOR_DELETE", "WEBHOOK_SEND"}
    assert hook.project_id == "9c3c0330-a47d-4d38-b8c5-e8a0ec834f79"
    assert hook.created_at == "2022-10-11T22:52:46.314308Z"


def test_default_api_url() -> None:
    assert default_api_url("https://gitflic.ru/") == PUBLIC_API_URL == "https://api.gitflic.ru"
    assert default_api_url("https://git.corp.example") == "https://git.corp.example/rest-api"
    assert default_api_url("https://git.corp.example/gf/") == "https://git.corp.example/gf/rest-api"
