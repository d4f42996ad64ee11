"""The GitHub routes of provisioning API v1 (seed 000): `/v1/github/{oauth, account,
orgs/{orgName}/repositories, repositories}`.

Listings are paged with `page` (default 1) and `perPage` (default 10) passed through to
GitHub, so a client asks again until it gets fewer than `perPage` entries. A user without a
(valid) stored token gets `{"loggedIn": false}`.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from hookshot_py.config import GitHubConfig
from hookshot_py.errors import ApiError, ErrCode
from hookshot_py.github.accounts import GitHubAccounts, api_error
from hookshot_py.github.client import GitHubClient, GitHubError
from hookshot_py.github.models import Installation, Page, Repo
from hookshot_py.github.oauth import GitHubOAuthFlow
from hookshot_py.provisioning.params import DEFAULT_PER_PAGE, MAX_PER_PAGE, paging
from hookshot_py.provisioning.params import user_id as _user_id

__all__ = ["DEFAULT_PER_PAGE", "GitHubProvisioning", "MAX_PER_PAGE", "paging"]

_ORG = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")


def repo_json(repo: Repo) -> dict[str, Any]:
    return {
        "name": repo.name,
        "owner": repo.owner,
        "fullName": repo.full_name,
        "avatarUrl": repo.owner_avatar_url,
        "description": repo.description,
    }


class _LoggedOut(Exception):
    """No stored token, or GitHub refused it."""


class GitHubProvisioning:
    def __init__(self, config: GitHubConfig, accounts: GitHubAccounts, oauth: GitHubOAuthFlow) -> None:
        self.config = config
        self.accounts = accounts
        self.oauth = oauth

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/v1/github/oauth", self.get_oauth)
        r.add_get("/v1/github/account", self.get_account)
        r.add_get("/v1/github/orgs/{org}/repositories", self.get_org_repositories)
        r.add_get("/v1/github/repositories", self.get_repositories)

    async def _client(self, user_id: str) -> GitHubClient:
        client = await self.accounts.client_for(user_id)
        if client is None:
            raise _LoggedOut()
        return client

    @staticmethod
    def _github_failure(exc: GitHubError) -> Exception:
        return _LoggedOut() if exc.status == 401 else api_error(exc)

    async def get_oauth(self, request: web.Request) -> web.Response:
        user_id = _user_id(request)
        url = await self.oauth.begin(user_id)
        return web.json_response([{"user_url": url, "org_url": self.oauth.org_url()}])

    async def get_account(self, request: web.Request) -> web.Response:
        user_id = _user_id(request)
        page, per_page = paging(request)
        try:
            client = await self._client(user_id)
            try:
                orgs = await client.list_user_orgs(page, per_page)
            except GitHubError as exc:
                raise self._github_failure(exc) from exc
        except _LoggedOut:
            return web.json_response({"loggedIn": False})
        return web.json_response(
            {
                "loggedIn": True,
                "organisations": [{"name": o.login, "avatarUrl": o.avatar_url} for o in orgs.items],
            }
        )

    async def get_org_repositories(self, request: web.Request) -> web.Response:
        user_id = _user_id(request)
        org = request.match_info["org"]
        if not _ORG.match(org):
            raise ApiError(ErrCode.BAD_VALUE, f"{org!r} is not a valid GitHub organisation name.")
        page, per_page = paging(request)
        try:
            client = await self._client(user_id)
            try:
                repos = await client.list_org_repos(org, page, per_page)
            except GitHubError as exc:
                if exc.status == 404:
                    raise ApiError(ErrCode.NOT_FOUND, f"There is no GitHub organisation named {org}.") from exc
                raise self._github_failure(exc) from exc
        except _LoggedOut:
            return web.json_response({"loggedIn": False})
        return web.json_response({"loggedIn": True, "repositories": [repo_json(r) for r in repos.items]})

    async def get_repositories(self, request: web.Request) -> web.Response:
        user_id = _user_id(request)
        page, per_page = paging(request)
        try:
            client = await self._client(user_id)
            try:
                repos, install = await self._user_repositories(client, page, per_page)
            except GitHubError as exc:
                raise self._github_failure(exc) from exc
        except _LoggedOut:
            return web.json_response({"loggedIn": False})
        body: dict[str, Any] = {"loggedIn": True, "repositories": [repo_json(r) for r in repos.items]}
        if install is not None and install.repository_selection == "selected":
            body["changeSelectionUrl"] = f"{self.config.oauth_url}/settings/installations/{install.id}"
        return web.json_response(body)

    async def _user_repositories(
        self, client: GitHubClient, page: int, per_page: int
    ) -> tuple[Page[Repo], Installation | None]:
        """With a GitHub App, the repositories of the App's installation on the user's own
        account (the user chose them: `changeSelectionUrl` widens the choice); otherwise, or
        when the App is not installed there, every repository the token can see."""
        if self.config.auth is not None:
            me = await client.get_user()
            installs = await client.list_installations()
            own = next((i for i in installs if i.account_login.lower() == me.login.lower()), None)
            if own is not None:
                return await client.list_installation_repos(own.id, page, per_page), own
        return await client.list_user_repos(page, per_page), None
