"""`/v1/github/*` of the provisioning API (seed 000): account, org and user repositories with
`page`/`perPage`, `changeSelectionUrl`, and the logged-out answers."""

from __future__ import annotations

from typing import Any

from hookshot_py.github.accounts import StoredToken

from support.helpers import http

from .conftest import GitHubBridge, rest

ALICE = "@alice:hookshot.test"


def add_repos(bridge: GitHubBridge, count: int) -> None:
    for i in range(count):
        bridge.gh.add_repo("octo-org", f"r{i:02d}", permissions={"alice": "write"})


async def test_org_repositories_are_paged_as_seed_000_says(gh_bridge: GitHubBridge) -> None:
    add_repos(gh_bridge, 25)  # with hello-world and secret: 27 repositories for alice
    await gh_bridge.login(ALICE, "alice")
    path = "/github/orgs/octo-org/repositories"

    status, body = await rest(gh_bridge, "GET", path, ALICE)
    assert status == 200, body
    assert body["loggedIn"] is True and len(body["repositories"]) == 10  # perPage defaults to 10
    assert body["repositories"][0] == {
        "name": "hello-world",
        "owner": "octo-org",
        "fullName": "octo-org/hello-world",
        "avatarUrl": f"{gh_bridge.api}/avatars/octo-org",
        "description": "The hello-world repository",
    }
    seen: list[str] = []
    for page in range(1, 5):
        status, body = await rest(gh_bridge, "GET", path, ALICE, page=str(page), perPage="8")
        assert status == 200
        seen += [r["fullName"] for r in body["repositories"]]
        if len(body["repositories"]) < 8:
            break
    assert page == 4 and len(seen) == 27 == len(set(seen))
    asked = gh_bridge.gh.requests_to("GET", "/orgs/octo-org/repos")[-1]
    assert asked.query == {"page": "4", "per_page": "8"}

    status, body = await rest(gh_bridge, "GET", "/github/orgs/no-such-org/repositories", ALICE)
    assert status == 404 and body["errcode"] == "HS_NOTFOUND"


async def test_user_repositories_and_account(gh_bridge: GitHubBridge) -> None:
    add_repos(gh_bridge, 3)
    await gh_bridge.login(ALICE, "alice")
    status, body = await rest(gh_bridge, "GET", "/github/repositories", ALICE, page="2", perPage="2")
    assert status == 200, body
    assert [r["fullName"] for r in body["repositories"]] == ["octo-org/r01", "octo-org/r02"]
    assert "changeSelectionUrl" not in body  # no GitHub App: every repository the token sees

    status, body = await rest(gh_bridge, "GET", "/github/account", ALICE)
    assert body == {
        "loggedIn": True,
        "organisations": [{"name": "octo-org", "avatarUrl": f"{gh_bridge.api}/avatars/octo-org"}],
    }


async def test_logged_out_and_revoked_tokens_answer_logged_out(gh_bridge: GitHubBridge) -> None:
    for path in ("/github/account", "/github/repositories", "/github/orgs/octo-org/repositories"):
        assert await rest(gh_bridge, "GET", path, ALICE) == (200, {"loggedIn": False})
    await gh_bridge.services.tokens.put(ALICE, "github", StoredToken("revoked", "alice").to_json())
    assert await rest(gh_bridge, "GET", "/github/account", ALICE) == (200, {"loggedIn": False})


BAD_PAGING = [
    ({"perPage": "0"}, "`perPage` must be between 1 and 100"),
    ({"perPage": "101"}, "`perPage` must be between 1 and 100"),
    ({"page": "zero"}, "`page` must be a whole number"),
    ({"page": "-1"}, "`page` must be at least 1"),
]


async def test_bad_paging_is_a_precise_400_and_the_secret_is_required(gh_bridge: GitHubBridge) -> None:
    for query, message in BAD_PAGING:
        status, body = await rest(gh_bridge, "GET", "/github/repositories", ALICE, **query)
        assert status == 400 and body["errcode"] == "HS_BAD_VALUE" and message in body["error"], query
    status, body = await http("GET", f"{gh_bridge.harness.base_url}/v1/github/account?userId={ALICE}")
    assert status == 401 and body["errcode"] == "HS_BAD_TOKEN"


async def test_with_a_github_app_the_installation_decides_and_can_be_widened(
    start_github_bridge: Any, tmp_path: Any
) -> None:
    key = tmp_path / "app.pem"
    key.write_text("not used by these routes")
    bridge = await start_github_bridge(auth={"id": 42, "privateKeyFile": str(key)}, appSlug="hookshot-test")
    add_repos(bridge, 3)
    repos = [bridge.gh.repos[("octo-org", "r01")], bridge.gh.repos[("octo-org", "hello-world")]]
    install = bridge.gh.add_installation("alice", repos, account_type="User")
    await bridge.login(ALICE, "alice")

    status, body = await rest(bridge, "GET", "/github/repositories", ALICE, perPage="1")
    assert status == 200, body
    assert [r["fullName"] for r in body["repositories"]] == ["octo-org/r01"]
    assert body["changeSelectionUrl"] == f"{bridge.api}/settings/installations/{install.id}"

    status, [links] = await rest(bridge, "GET", "/github/oauth", ALICE)
    assert links["org_url"] == f"{bridge.api}/apps/hookshot-test/installations/new"
