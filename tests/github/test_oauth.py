import socket
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web

from fakes.github import FakeGitHubState
from hookshot_py.github.client import GitHubClient
from hookshot_py.github.client import GitHubError
from hookshot_py.github.oauth import authorize_url, exchange_code, install_url, request_token

CLIENT_ID, CLIENT_SECRET = "Iv1.abc123", "client-secret"
REDIRECT = "https://bridge.example.org/github/oauth"


@pytest.fixture
def oauth_app(gh: FakeGitHubState) -> FakeGitHubState:
    gh.add_oauth_app(CLIENT_ID, CLIENT_SECRET)
    return gh


async def _authorize(session: aiohttp.ClientSession, url: str) -> dict[str, list[str]]:
    async with session.get(url, allow_redirects=False) as resp:
        assert resp.status == 302
        location = resp.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    return parse_qs(urlsplit(location).query)


def test_authorize_url() -> None:
    url = authorize_url("https://github.com/", CLIENT_ID, REDIRECT, "st&ate")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "github.com", "/login/oauth/authorize")
    assert parse_qs(parts.query) == {"client_id": [CLIENT_ID], "redirect_uri": [REDIRECT], "state": ["st&ate"]}


def test_install_url() -> None:
    assert install_url("https://github.com", "my-hookshot") == "https://github.com/apps/my-hookshot/installations/new"
    assert install_url("https://ghe.example", "a b", "xyz") == "https://ghe.example/apps/a%20b/installations/new?state=xyz"


async def test_full_flow(oauth_app: FakeGitHubState, base_url: str, session: aiohttp.ClientSession) -> None:
    query = await _authorize(session, authorize_url(base_url, CLIENT_ID, REDIRECT, "opaque-state") + "&login=carol")
    assert query["state"] == ["opaque-state"]
    token = await exchange_code(base_url, CLIENT_ID, CLIENT_SECRET, query["code"][0], REDIRECT, session)
    assert token.startswith("gho_")
    exchange = oauth_app.requests_to("POST", "/login/oauth/access_token")[-1]
    assert exchange.headers["Accept"] == "application/json"
    assert "client_secret=client-secret" in exchange.body
    user = await GitHubClient(base_url, token, session).get_user()
    assert user.login == "carol"


async def test_code_is_single_use(oauth_app: FakeGitHubState, base_url: str, session: aiohttp.ClientSession) -> None:
    oauth_app.oauth_login = "alice"
    code = (await _authorize(session, authorize_url(base_url, CLIENT_ID, REDIRECT, "s")))["code"][0]
    token = await request_token(base_url, CLIENT_ID, CLIENT_SECRET, code, REDIRECT, session)
    assert token.token_type == "bearer"
    with pytest.raises(GitHubError) as info:
        await exchange_code(base_url, CLIENT_ID, CLIENT_SECRET, code, REDIRECT, session)
    assert info.value.status == 400
    assert info.value.message == "bad_verification_code: The code passed is incorrect or expired."
    assert info.value.docs_url is not None and info.value.docs_url.endswith("#bad_verification_code")


async def test_wrong_client_secret(oauth_app: FakeGitHubState, base_url: str, session: aiohttp.ClientSession) -> None:
    oauth_app.oauth_login = "alice"
    code = (await _authorize(session, authorize_url(base_url, CLIENT_ID, REDIRECT, "s")))["code"][0]
    with pytest.raises(GitHubError) as info:
        await exchange_code(base_url, CLIENT_ID, "wrong", code, REDIRECT, session)
    assert info.value.message.startswith("incorrect_client_credentials")


async def test_redirect_uri_must_match(oauth_app: FakeGitHubState, base_url: str, session: aiohttp.ClientSession) -> None:
    oauth_app.oauth_login = "alice"
    code = (await _authorize(session, authorize_url(base_url, CLIENT_ID, REDIRECT, "s")))["code"][0]
    with pytest.raises(GitHubError) as info:
        await exchange_code(base_url, CLIENT_ID, CLIENT_SECRET, code, "https://evil.example/cb", session)
    assert info.value.message.startswith("redirect_uri_mismatch")


async def test_unreachable(session: aiohttp.ClientSession) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(GitHubError) as info:
        await exchange_code(f"http://127.0.0.1:{port}", CLIENT_ID, CLIENT_SECRET, "c", REDIRECT, session)
    assert info.value.status == 0


@pytest.mark.parametrize(
    "status, body, message",
    [
        (200, b"access_token=x&token_type=bearer", "token exchange answered 200 without JSON"),
        (200, b'{"token_type": "bearer"}', "token exchange answered without an access_token"),
        (500, b'{"message": "boom"}', "HTTP 500"),
    ],
)
async def test_odd_token_answers(
    aiohttp_server: Any, session: aiohttp.ClientSession, status: int, body: bytes, message: str
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, body=body)

    app = web.Application()
    app.router.add_post("/login/oauth/access_token", handler)
    server = await aiohttp_server(app)
    with pytest.raises(GitHubError) as info:
        await exchange_code(str(server.make_url("")), CLIENT_ID, CLIENT_SECRET, "c", REDIRECT, session)
    assert info.value.message == message
