"""The provisioning API for GitLab: the instances, the projects a user may connect, and a
connection created with hookshot's state (Developer to connect, Maintainer for the hook)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from fakes.gitlab import DEVELOPER
from hookshot_py.gitlab.accounts import StoredToken
from hookshot_py.gitlab.models import EVENT_TYPE
from support.bridge import PROVISIONING_SECRET
from support.fixtures import room_with_bot

from .conftest import TOKENS, GitLabBridge


async def login(env: GitLabBridge, user_id: str, username: str) -> None:
    stored = StoredToken(TOKENS[username], username, env.gl.user(username).id)
    await env.services.tokens.put(user_id, "gitlab", stored.to_json(), instance=env.gl.base_url)


async def test_instances_and_projects(gitlab_bridge) -> None:
    env: GitLabBridge = await gitlab_bridge()
    dave = "@dave:hookshot.test"
    status, body = await env.rest("GET", "/gitlab/instances", dave)
    assert (status, body) == (200, {"instances": [{"name": "gl", "url": env.gl.base_url, "loggedIn": False}]})
    status, body = await env.rest("GET", "/gitlab/instances/gl/projects", dave)
    assert (status, body) == (200, {"loggedIn": False})

    await login(env, dave, "dave")
    for i in range(3):
        env.gl.add_project(f"acme/more-{env.path[-6:]}-{i}", {"dave": DEVELOPER})
    env.gl.add_project(f"acme/reports-{env.path[-6:]}", {"dave": 20})
    status, body = await env.rest("GET", "/gitlab/instances", dave)
    assert body["instances"][0]["loggedIn"] is True
    status, body = await env.rest("GET", "/gitlab/instances/gl/projects", dave, search=env.path[-6:])
    assert status == 200 and body["loggedIn"] is True and body["nextPage"] is None
    paths = [p["path"] for p in body["projects"]]
    assert env.path in paths and len(paths) == 4 and not any("reports" in p for p in paths)
    mine = next(p for p in body["projects"] if p["path"] == env.path)
    assert mine["state"] == {"instance": "gl", "path": env.path} and mine["url"] == f"{env.gl.base_url}/{env.path}"
    status, first = await env.rest("GET", "/gitlab/instances/gl/projects", dave, search=env.path[-6:], perPage="3")
    status, second = await env.rest("GET", "/gitlab/instances/gl/projects", dave, search=env.path[-6:], perPage="3",
                                    page="2")
    assert (first["nextPage"], second["nextPage"]) == (2, None) and len(first["projects"] + second["projects"]) == 4

    assert (await env.rest("GET", "/gitlab/instances/nope/projects", dave))[0] == 404
    status, body = await env.rest("GET", "/gitlab/instances/gl/projects", dave, perPage="1000")
    assert status == 400 and "perPage" in body["error"]
    assert (await env.rest("GET", "/gitlab/instances", "not-a-user"))[0] == 400


async def test_connecting_over_the_api(gitlab_bridge, make_user) -> None:
    env: GitLabBridge = await gitlab_bridge()
    owner = await make_user("owner")
    room = await room_with_bot(owner)
    path = f"/{room}/connections/{EVENT_TYPE}"
    state = {"instance": "gl", "path": env.path, "enableHooks": ["push", "issue"]}

    status, body = await env.rest("PUT", path, owner.user_id, state)
    assert status == 403 and "not logged into the GitLab instance gl" in body["error"]
    await login(env, owner.user_id, "carol")  # carol is no member of this test's project
    status, body = await env.rest("PUT", path, owner.user_id, state)
    assert status == 403 and "does the project exist?" in body["error"]
    status, body = await env.rest("PUT", path, owner.user_id, {**state, "ignoreHooks": ["push"]})
    assert status == 400 and body["validationErrors"][0]["path"] == "/ignoreHooks"

    # A Developer may connect; what a Maintainer must enter by hand comes back.
    await login(env, owner.user_id, "dave")
    status, body = await env.rest("PUT", path, owner.user_id, state)
    assert status == 200, body
    assert body["config"] == state and body["service"] == "gitlab" and body["type"] == "GitLabRepo"
    assert "Cannot create webhook: you have insufficient permissions" in body["warning"]["message"]
    assert body["secrets"]["managed"] is False and body["secrets"]["webhookEvents"] == ["push_events", "issues_events"]
    assert env.gl.project(env.path).hooks == {}

    # A Maintainer's edit registers the hook.
    await login(env, owner.user_id, "alice")
    status, body = await env.rest("PATCH", f"/{room}/connections/{body['id']}", owner.user_id,
                                  {"enableHooks": ["push", "issue", "pipeline"]})
    assert status == 200 and "warning" not in body, body
    [hook] = env.gl.project(env.path).hooks.values()
    assert hook.token == body["secrets"]["webhookToken"] and hook.flags["pipeline_events"]


async def test_schemathesis_on_the_gitlab_routes(gitlab_bridge, tmp_path) -> None:
    env: GitLabBridge = await gitlab_bridge()
    st = Path(sys.executable).with_name("st")
    proc = await asyncio.create_subprocess_exec(
        str(st), "run", f"{env.harness.base_url}/v1/openapi.json",
        "--url", env.harness.base_url,
        "--include-path-regex", "^/v1/gitlab/",
        "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        "--header", f"Authorization: Bearer {PROVISIONING_SECRET}",
        "--max-examples", "30",
        "--generation-deterministic",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=300)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-6000:]
