"""The GitLab client against the fake GitLab: auth, encoded project paths, access levels, paging,
hooks and issues, and its errors in words."""

from __future__ import annotations

import aiohttp
import pytest

from fakes.gitlab import FakeGitLabState
from hookshot_py.gitlab.client import GitLabClient, GitLabError
from hookshot_py.gitlab.models import AccessLevel

from .conftest import TOKENS


def client(gl: FakeGitLabState, session: aiohttp.ClientSession, who: str = "alice") -> GitLabClient:
    return GitLabClient(gl.base_url, TOKENS.get(who, who), session)


async def test_fake_accepts_private_token_and_bearer_only(gl: FakeGitLabState, gl_server, session) -> None:
    url = f"{gl.base_url}/api/v4/user"
    for headers, status in [
        ({"PRIVATE-TOKEN": TOKENS["alice"]}, 200),
        ({"Authorization": f"Bearer {TOKENS['alice']}"}, 200),
        ({"Authorization": f"token {TOKENS['alice']}"}, 401),
        ({"PRIVATE-TOKEN": "nope"}, 401),
        ({}, 401),
    ]:
        async with session.get(url, headers=headers) as resp:
            assert resp.status == status, headers


async def test_user_and_project(gl: FakeGitLabState, gl_server, session) -> None:
    me = await client(gl, session).current_user()
    assert (me.username, me.id) == ("alice", gl.user("alice").id)
    project = await client(gl, session).project("acme/widgets")
    assert project.path_with_namespace == "acme/widgets" and project.web_url == f"{gl.base_url}/acme/widgets"
    # the path travels URL-encoded, as GitLab requires
    assert gl.requests[-1].path == "/api/v4/projects/acme%2Fwidgets"


async def test_private_projects_are_invisible_to_strangers(gl: FakeGitLabState, gl_server, session) -> None:
    with pytest.raises(GitLabError) as caught:
        await client(gl, session, "erin").project("acme/widgets")
    assert caught.value.status == 404 and caught.value.message == "404 Project Not Found"
    assert "has no project acme/widgets (or the token cannot see it)" in caught.value.describe()
    with pytest.raises(GitLabError) as caught:
        await client(gl, session, "bad-token").current_user()
    assert caught.value.status == 401 and "refused the token" in caught.value.describe()


async def test_access_levels(gl: FakeGitLabState, gl_server, session) -> None:
    alice = client(gl, session)
    assert await alice.access_level("acme/widgets", gl.user("alice").id) == AccessLevel.MAINTAINER
    assert await alice.access_level("acme/widgets", gl.user("dave").id) == AccessLevel.DEVELOPER
    assert await alice.access_level("acme/widgets", gl.user("erin").id) == 0
    # erin can see the public project, but is no member of it
    assert await client(gl, session, "erin").access_level("acme/public", gl.user("erin").id) == 0


async def test_project_listing_pages(gl: FakeGitLabState, gl_server, session) -> None:
    for i in range(5):
        gl.add_project(f"acme/extra-{i}", {"dave": 30})
    gl.add_project("acme/reporting", {"dave": 20})
    dave = client(gl, session, "dave")
    first = await dave.list_projects(min_access_level=30, search=None, page=1, per_page=4)
    second = await dave.list_projects(min_access_level=30, search=None, page=2, per_page=4)
    paths = [p.path_with_namespace for p in first.projects + second.projects]
    assert len(paths) == 6 and "acme/reporting" not in paths and "acme/widgets" in paths
    assert (first.next_page, second.next_page) == (2, None)
    found = await dave.list_projects(min_access_level=30, search="extra-3", page=1, per_page=10)
    assert [p.path_with_namespace for p in found.projects] == ["acme/extra-3"]
    request = gl.requests[-1]
    assert request.query["min_access_level"] == "30" and request.query["search"] == "extra-3"


async def test_hooks(gl: FakeGitLabState, gl_server, session) -> None:
    alice = client(gl, session)
    hook = await alice.create_hook("acme/widgets", "https://bridge.example/gitlab/webhook", "tok",
                                   ["push_events", "note_events"])
    stored = gl.project("acme/widgets").hooks[hook.id]
    assert stored.token == "tok" and stored.flags["push_events"] and stored.flags["note_events"]
    assert not stored.flags["merge_requests_events"] and not stored.flags["confidential_note_events"]
    assert hook.flags == ("push_events", "note_events")
    edited = await alice.edit_hook("acme/widgets", hook.id, "https://bridge.example/gitlab/webhook", "tok2",
                                   ["merge_requests_events"])
    assert edited.flags == ("merge_requests_events",) and stored.token == "tok2"
    for i in range(25):  # more than one page of hooks (GitLab's default page is 20)
        gl.add_hook("acme/widgets", f"https://other.example/{i}")
    assert len(await alice.list_hooks("acme/widgets")) == 26
    await alice.delete_hook("acme/widgets", hook.id)
    assert hook.id not in gl.project("acme/widgets").hooks
    with pytest.raises(GitLabError) as caught:
        await alice.delete_hook("acme/widgets", hook.id)
    assert (caught.value.status, caught.value.message) == (404, "404 Not found")


async def test_hooks_need_a_maintainer(gl: FakeGitLabState, gl_server, session) -> None:
    with pytest.raises(GitLabError) as caught:
        await client(gl, session, "dave").list_hooks("acme/widgets")
    assert caught.value.status == 403
    assert "your access to the project is not enough" in caught.value.describe()


async def test_a_refused_hook_url_is_explained(gl: FakeGitLabState, gl_server, session) -> None:
    gl.refused_hosts.add("10.0.0.1")
    with pytest.raises(GitLabError) as caught:
        await client(gl, session).create_hook("acme/widgets", "http://10.0.0.1/gitlab/webhook", "t", [])
    assert caught.value.status == 422
    assert "url: is blocked: Requests to the local network are not allowed" in caught.value.describe()


async def test_issues(gl: FakeGitLabState, gl_server, session) -> None:
    dave = client(gl, session, "dave")
    issue = await dave.create_issue("acme/widgets", "Squeak", "It squeaks", ["bug", "ui"], confidential=True)
    stored = gl.project("acme/widgets").issues[issue.iid]
    assert (stored.title, stored.labels, stored.confidential) == ("Squeak", ["bug", "ui"], True)
    assert issue.web_url == f"{gl.base_url}/acme/widgets/-/issues/{issue.iid}"
    await dave.comment_issue("acme/widgets", issue.iid, "Closing: fixed")
    closed = await dave.close_issue("acme/widgets", issue.iid)
    assert closed.state == "closed" and stored.notes == ["Closing: fixed"]


async def test_outages_and_rate_limits_in_words(gl: FakeGitLabState, gl_server, session) -> None:
    gl.fail_with = 502
    with pytest.raises(GitLabError) as caught:
        await client(gl, session).project("acme/widgets")
    assert "answered 502 for project acme/widgets" in caught.value.describe()
    dead = GitLabClient("http://127.0.0.1:9", "t", session)
    with pytest.raises(GitLabError) as caught:
        await dead.current_user()
    assert caught.value.status == 0 and caught.value.describe().startswith("Could not reach GitLab at 127.0.0.1:9")
