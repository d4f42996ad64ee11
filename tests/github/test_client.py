import json
import socket
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from fakes.github import FakeGitHubState, FakeHook
from hookshot_py.forges.http import parse_next_link
from hookshot_py.github.client import API_VERSION, GitHubClient, GitHubError
from hookshot_py.forges.inbound import verify_signature

from .conftest import Receiver

ClientFor = Callable[[str], GitHubClient]
SECRET = "hook-secret"
OWNER, REPO = "octo-org", "hello-world"


# --- users, repositories, permissions -----------------------------------------------------------


async def test_get_user_sends_github_headers(client_for: ClientFor, gh: FakeGitHubState) -> None:
    user = await client_for("alice").get_user()
    assert (user.login, user.id) == ("alice", gh.users["alice"].id)
    headers = gh.requests[-1].headers
    assert headers["Authorization"] == "Bearer tok-alice"
    assert headers["Accept"] == "application/vnd.github+json"
    assert headers["X-GitHub-Api-Version"] == API_VERSION


async def test_bad_token_is_401(client_for: ClientFor) -> None:
    with pytest.raises(GitHubError) as info:
        await client_for("not-a-token").get_user()
    assert info.value.status == 401
    assert info.value.message == "Bad credentials"
    assert "Log in to GitHub again" in info.value.describe()


async def test_get_repo(client_for: ClientFor) -> None:
    repo = await client_for("alice").get_repo("Octo-Org", "Hello-World")
    assert repo.full_name == "octo-org/hello-world"
    assert repo.owner == "octo-org" and not repo.private
    assert repo.permissions["admin"] is True
    bob_view = await client_for("bob").get_repo(OWNER, REPO)
    assert bob_view.permissions["admin"] is False and bob_view.permissions["push"] is True


async def test_private_repo_is_404_for_strangers(client_for: ClientFor) -> None:
    with pytest.raises(GitHubError) as info:
        await client_for("dave").get_repo(OWNER, "secret")
    assert info.value.status == 404
    assert info.value.describe() == (
        "Cannot access octo-org/secret: it does not exist or your GitHub account may not use it this way."
    )


@pytest.mark.parametrize("who, level", [("alice", "admin"), ("bob", "write"), ("carol", "read"), ("dave", "read")])
async def test_collaborator_permission(client_for: ClientFor, who: str, level: str) -> None:
    assert await client_for("alice").get_collaborator_permission(OWNER, REPO, who) == level


async def test_path_segments_are_escaped(client_for: ClientFor, gh: FakeGitHubState) -> None:
    with pytest.raises(GitHubError) as info:
        await client_for("alice").get_repo("octo-org", "../../user")
    assert info.value.status == 404
    assert gh.requests[-1].path == "/repos/octo-org/../../user"  # one segment, not a traversal
    assert all(r.path != "/user" for r in gh.requests)


# --- hooks ------------------------------------------------------------------------------------


async def test_create_hook_and_ping_delivery(
    client_for: ClientFor, gh: FakeGitHubState, receiver: Receiver
) -> None:
    hook = await client_for("alice").create_hook(OWNER, REPO, receiver.url, SECRET, ["push", "issues"])
    assert hook.url == receiver.url
    assert hook.events == ("issues", "push")
    assert hook.active and hook.has_secret
    assert (hook.content_type, hook.insecure_ssl) == ("json", "0")
    sent = gh.requests_to("POST", "/hooks")[-1].body
    assert sent == {
        "name": "web",
        "active": True,
        "events": ["push", "issues"],
        "config": {"url": receiver.url, "content_type": "json", "secret": SECRET, "insecure_ssl": "0"},
    }
    await gh.drain()
    assert receiver.events() == ["ping"]
    ping = receiver.received[0]
    assert verify_signature(SECRET, ping.body, ping.headers["X-Hub-Signature-256"], None)
    assert verify_signature(SECRET, ping.body, None, ping.headers["X-Hub-Signature"])
    assert ping.headers["X-GitHub-Hook-ID"] == str(hook.id)
    assert ping.headers["User-Agent"].startswith("GitHub-Hookshot/")
    assert json.loads(ping.body)["hook_id"] == hook.id


@pytest.mark.parametrize("who", ["bob", "carol", "dave"])
async def test_hooks_need_admin(client_for: ClientFor, who: str) -> None:
    with pytest.raises(GitHubError) as info:
        await client_for(who).create_hook(OWNER, REPO, "https://example.org/hook", SECRET, ["push"])
    assert info.value.status == 404
    assert info.value.describe() == (
        "No admin access to octo-org/hello-world: check that the repository exists "
        "and that your GitHub account can administer it."
    )


async def test_duplicate_hook_is_a_422_with_details(client_for: ClientFor, receiver: Receiver) -> None:
    alice = client_for("alice")
    await alice.create_hook(OWNER, REPO, receiver.url, SECRET, ["push"])
    with pytest.raises(GitHubError) as info:
        await alice.create_hook(OWNER, REPO, receiver.url, SECRET, ["push"])
    assert info.value.status == 422
    assert info.value.describe() == (
        "GitHub could not accept the request: Validation Failed (Hook already exists on this repository)"
    )


async def test_edit_hook_events_and_secret(client_for: ClientFor, gh: FakeGitHubState, receiver: Receiver) -> None:
    alice = client_for("alice")
    hook = await alice.create_hook(OWNER, REPO, receiver.url, SECRET, ["issues", "push"])
    edited = await alice.edit_hook(
        OWNER, REPO, hook.id, secret=SECRET, url=receiver.url, add_events=["release"], remove_events=["push"]
    )
    assert edited.events == ("issues", "release")
    body = gh.requests_to("PATCH", f"/hooks/{hook.id}")[-1].body
    assert body["config"]["secret"] == SECRET
    assert body["add_events"] == ["release"] and body["remove_events"] == ["push"]
    assert "events" not in body
    assert gh.hooks[hook.id].secret == SECRET and gh.secret_drops == []

    replaced = await alice.edit_hook(OWNER, REPO, hook.id, secret=SECRET, url=receiver.url, events=["push"], active=False)
    assert replaced.events == ("push",) and replaced.active is False
    assert gh.hooks[hook.id].secret == SECRET


async def test_fake_drops_secret_when_patch_omits_it(
    client_for: ClientFor, gh: FakeGitHubState, base_url: str, session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    """Why edit_hook always re-sends the secret: GitHub replaces the whole config."""
    hook = await client_for("alice").create_hook(OWNER, REPO, receiver.url, SECRET, ["push"])
    async with session.patch(
        f"{base_url}/repos/{OWNER}/{REPO}/hooks/{hook.id}",
        json={"config": {"url": receiver.url, "content_type": "json"}},
        headers={"Authorization": "Bearer tok-alice"},
    ) as resp:
        assert resp.status == 200
        assert "secret" not in (await resp.json())["config"]
    assert gh.secret_drops == [hook.id]
    assert gh.hooks[hook.id].secret is None


async def test_test_hook_redelivers_latest_push(client_for: ClientFor, gh: FakeGitHubState, receiver: Receiver) -> None:
    alice = client_for("alice")
    hook = await alice.create_hook(OWNER, REPO, receiver.url, SECRET, ["push"])
    await alice.test_hook(OWNER, REPO, hook.id)
    await gh.drain()
    assert receiver.events() == ["ping", "push"]
    push = receiver.received[1]
    assert verify_signature(SECRET, push.body, push.headers["X-Hub-Signature-256"], None)
    payload = json.loads(push.body)
    assert payload["ref"] == "refs/heads/main"
    assert isinstance(payload["repository"]["created_at"], int)


async def test_test_hook_without_push_subscription_delivers_nothing(
    client_for: ClientFor, gh: FakeGitHubState, receiver: Receiver
) -> None:
    alice = client_for("alice")
    hook = await alice.create_hook(OWNER, REPO, receiver.url, SECRET, ["issues"])
    await alice.test_hook(OWNER, REPO, hook.id)
    await gh.drain()
    assert receiver.events() == ["ping"]


async def test_test_hook_falls_back_to_legacy_path(aiohttp_server: Any, session: aiohttp.ClientSession) -> None:
    calls: list[str] = []

    async def legacy(request: web.Request) -> web.Response:
        calls.append(request.path)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/repos/o/r/hooks/{id}/test", legacy)
    server = await aiohttp_server(app)
    await GitHubClient(str(server.make_url("")), "t", session).test_hook("o", "r", 5)
    assert calls == ["/repos/o/r/hooks/5/test"]


async def test_ping_and_delete(client_for: ClientFor, gh: FakeGitHubState, receiver: Receiver) -> None:
    alice = client_for("alice")
    hook = await alice.create_hook(OWNER, REPO, receiver.url, SECRET, ["push"])
    await alice.ping_hook(OWNER, REPO, hook.id)
    await gh.drain()
    assert receiver.events() == ["ping", "ping"]
    assert [h.id for h in await alice.list_hooks(OWNER, REPO)] == [hook.id]
    await alice.delete_hook(OWNER, REPO, hook.id)
    assert await alice.list_hooks(OWNER, REPO) == []
    with pytest.raises(GitHubError) as info:
        await alice.delete_hook(OWNER, REPO, hook.id)
    assert info.value.status == 404


async def test_list_hooks_follows_pages(client_for: ClientFor, gh: FakeGitHubState) -> None:
    repo = gh.repos[(OWNER, REPO)]
    for i in range(105):
        hook_id = gh.next_id()
        gh.hooks[hook_id] = FakeHook(hook_id, repo, ["push"], True, {"url": f"https://h/{i}"}, "t", "t")
    hooks = await client_for("alice").list_hooks(OWNER, REPO)
    assert len(hooks) == 105
    assert [h.url for h in hooks[-2:]] == ["https://h/103", "https://h/104"]
    assert len(gh.requests_to("GET", "/hooks")) == 2


# --- issues -----------------------------------------------------------------------------------


async def test_issue_commands(client_for: ClientFor, gh: FakeGitHubState) -> None:
    bob = client_for("bob")
    issue = await bob.create_issue(OWNER, REPO, "Crash on start", "Steps...", ["bug"])
    assert (issue.number, issue.title, issue.state) == (1, "Crash on start", "open")
    assert gh.requests_to("POST", "/issues")[-1].body == {"title": "Crash on start", "body": "Steps...", "labels": ["bug"]}
    await bob.add_assignees(OWNER, REPO, issue.number, ["carol"])
    closed = await bob.close_issue(OWNER, REPO, issue.number, "Fixed in #2")
    assert closed.state == "closed"
    stored = gh.issues[(OWNER, REPO)][0]
    assert stored.assignees == ["carol"] and stored.comments == ["Fixed in #2"]


async def test_reader_cannot_close(client_for: ClientFor) -> None:
    carol = client_for("carol")
    issue = await carol.create_issue(OWNER, REPO, "Question")
    with pytest.raises(GitHubError) as info:
        await carol.close_issue(OWNER, REPO, issue.number)
    assert info.value.status == 403


# --- listings -----------------------------------------------------------------------------------


async def test_list_user_repos_pages(client_for: ClientFor, gh: FakeGitHubState) -> None:
    for i in range(3):
        gh.add_repo("alice", f"project-{i}")
    alice = client_for("alice")
    first = await alice.list_user_repos(page=1, per_page=2)
    assert [r.full_name for r in first.items] == ["alice/project-0", "alice/project-1"]
    assert first.has_next
    last = await alice.list_user_repos(page=3, per_page=2)
    assert [r.full_name for r in last.items] == ["octo-org/secret"]
    assert not last.has_next
    assert gh.requests[-1].query == {"page": "3", "per_page": "2"}


async def test_orgs_and_org_repos(client_for: ClientFor) -> None:
    orgs = await client_for("bob").list_user_orgs()
    assert [o.login for o in orgs.items] == ["octo-org"] and not orgs.has_next
    assert (await client_for("carol").list_user_orgs()).items == []
    repos = await client_for("bob").list_org_repos("octo-org")
    assert [r.name for r in repos.items] == ["hello-world"]


async def test_installations(client_for: ClientFor, gh: FakeGitHubState) -> None:
    repos = [gh.repos[(OWNER, REPO)], gh.repos[(OWNER, "secret")]]
    inst = gh.add_installation("octo-org", repos)
    installations = await client_for("bob").list_installations()
    assert [(i.id, i.account_login, i.account_type) for i in installations] == [(inst.id, "octo-org", "Organization")]
    visible = await client_for("bob").list_installation_repos(inst.id, per_page=1)
    assert [r.name for r in visible.items] == ["hello-world"] and visible.total_count == 1
    everything = await client_for("alice").list_installation_repos(inst.id, per_page=1)
    assert everything.total_count == 2 and everything.has_next
    assert await client_for("carol").list_installations() == []
    with pytest.raises(GitHubError) as info:
        await client_for("carol").list_installation_repos(inst.id)
    assert info.value.status == 404


def test_parse_next_link() -> None:
    header = '<https://api.github.com/x?page=3>; rel="next", <https://api.github.com/x?page=9>; rel="last"'
    assert parse_next_link(header) == "https://api.github.com/x?page=3"
    assert parse_next_link('<https://a/?page=1>; rel="prev"') is None
    assert parse_next_link(None) is None


# --- transport failures -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unreachable_github(session: aiohttp.ClientSession) -> None:
    client = GitHubClient(f"http://127.0.0.1:{_free_port()}", "t", session)
    with pytest.raises(GitHubError) as info:
        await client.get_user()
    assert info.value.status == 0
    assert info.value.describe().startswith("Could not reach GitHub: GET /user failed")


@pytest.mark.parametrize(
    "status, body, expected",
    [
        (200, b"<html>", "GET /user: GitHub's answer is not JSON"),
        (200, b'{"login": 5}', "GitHub's user has no valid 'login'"),
        (200, b"[]", "unexpected user in GitHub's answer"),
        (502, b"<html>Bad gateway</html>", "GET /user returned 502"),
    ],
)
async def test_odd_answers(
    aiohttp_server: Any, session: aiohttp.ClientSession, status: int, body: bytes, expected: str
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/user", handler)
    server = await aiohttp_server(app)
    with pytest.raises(GitHubError) as info:
        await GitHubClient(str(server.make_url("")), "t", session).get_user()
    assert info.value.message == expected
