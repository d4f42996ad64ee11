"""PR diffs are fetched from the delivery's own repository on the configured GitHub only, and
whatever that redirects to goes through the outbound-URL guard."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from hookshot_py.github.diffs import MAX_PR_DIFF_BYTES, PrDiffs
from hookshot_py.net.guard import UrlPolicy

DIFF = "diff --git a/README.md b/README.md\n-Helo\n+Hello\n"


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://github.com/octo-org/hello-world/pull/7.diff", True),
        ("https://GitHub.com/Octo-Org/Hello-World/pull/7.diff", True),
        ("https://github.com/octo-org/other/pull/7.diff", False),
        ("https://github.com/octo-org/hello-world/pull/7.patch", False),
        ("https://github.com/octo-org/hello-world/pull/7.diff?x=1", False),
        ("https://github.com/octo-org/hello-world/pull/../../../evil/pull/7.diff", False),
        ("https://github.com/octo-org/hello-world/pull/7/../8.diff", False),
        ("https://github.com.evil.example/octo-org/hello-world/pull/7.diff", False),
        ("https://user@github.com/octo-org/hello-world/pull/7.diff", False),
        ("http://github.com/octo-org/hello-world/pull/7.diff", False),
        ("http://127.0.0.1/octo-org/hello-world/pull/7.diff", False),
        ("http://169.254.169.254/octo-org/hello-world/pull/7.diff", False),
        ("file:///octo-org/hello-world/pull/7.diff", False),
        ("not a url at all", False),
    ],
)
def test_only_the_repositorys_own_pull_diffs_belong(url: str, ok: bool) -> None:
    assert PrDiffs("https://github.com", UrlPolicy()).belongs(url, "octo-org/hello-world") is ok


def test_enterprise_web_address_with_a_path() -> None:
    diffs = PrDiffs("https://ghe.corp.example/github/", UrlPolicy())
    assert diffs.belongs("https://ghe.corp.example/github/o/r/pull/1.diff", "o/r")
    assert not diffs.belongs("https://ghe.corp.example/o/r/pull/1.diff", "o/r")


@pytest.fixture
async def github_web(aiohttp_server: Any) -> Any:
    """The configured GitHub's web host: serves one diff, a big one, and redirects."""
    hits: list[str] = []

    async def diff(request: web.Request) -> web.StreamResponse:
        hits.append(request.path)
        number = request.match_info["n"]
        if number == "1":
            return web.Response(text=DIFF)
        if number == "2":
            return web.Response(body=b"+" * (MAX_PR_DIFF_BYTES + 1))
        raise web.HTTPFound(request.query.get("to") or f"http://127.0.0.2:{request.url.port}/o/r/pull/1.diff")

    app = web.Application()
    app.router.add_get("/o/r/pull/{n}.diff", diff)
    server = await aiohttp_server(app, host="127.0.0.1")
    server.hits = hits
    return server


async def test_the_configured_host_may_be_internal_what_it_redirects_to_may_not(github_web: Any) -> None:
    web_url = f"http://127.0.0.1:{github_web.port}"
    diffs = PrDiffs(web_url, UrlPolicy())
    try:
        assert await diffs.fetch(f"{web_url}/o/r/pull/1.diff", "o/r") == DIFF
        assert await diffs.fetch(f"{web_url}/o/r/pull/2.diff", "o/r") is None  # too large to post
        # redirected to another loopback address: refused by the guard, posted without the diff
        assert await diffs.fetch(f"{web_url}/o/r/pull/3.diff", "o/r") is None
        assert github_web.hits == ["/o/r/pull/1.diff", "/o/r/pull/2.diff", "/o/r/pull/3.diff"]
    finally:
        await diffs.close()


async def test_a_diff_url_elsewhere_is_never_fetched(github_web: Any) -> None:
    diffs = PrDiffs("https://github.com", UrlPolicy())
    try:
        assert await diffs.fetch(f"http://127.0.0.1:{github_web.port}/o/r/pull/1.diff", "o/r") is None
        assert github_web.hits == []
    finally:
        await diffs.close()
