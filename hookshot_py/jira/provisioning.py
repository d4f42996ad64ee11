"""The JIRA routes of provisioning API v1 (seed 000): `/v1/jira/{oauth, account,
instances/{instanceName}/projects}`.

- `oauth` → `{url}`: a fresh login link for the user (JIRA Cloud with `jira.oauth`; otherwise
  `HS_DISABLED_FEATURE`, saying how to log in instead).
- `account` → `{loggedIn, instances: [{name, url, id}]}`: the sites the user's login reaches
  (`{"loggedIn": false}` without a working login).
- `instances/{instanceName}/projects` → `[{key, name, id, url}]`: the projects the user can
  see on that site (by name, as `account` lists it; its id or host also do); `url` is what a
  JiraProject connection is created with. Without `page`/`perPage` every project is listed
  (JIRA's pages walked, up to `MAX_PROJECTS`), as hookshot does; with either, one page of
  `perPage` (default 10) projects, so a client asks again until it gets fewer. `search`
  filters by name or key. A user who has not logged in gets `HS_FORBIDDEN_USER`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hookshot_py.errors import ApiError, ErrCode
from hookshot_py.jira.accounts import JiraAccounts, Site, api_error, user_login
from hookshot_py.jira.client import MAX_PAGE, JiraClient, JiraError
from hookshot_py.jira.models import Project
from hookshot_py.jira.oauth import JiraOAuthFlow
from hookshot_py.provisioning.params import DEFAULT_PER_PAGE, MAX_PER_PAGE, int_param, user_id

__all__ = ["MAX_PROJECTS", "JiraProvisioning"]

#: The most projects one unpaged listing returns.
MAX_PROJECTS = 1000
MAX_SEARCH_CHARS = 200


class JiraProvisioning:
    def __init__(self, accounts: JiraAccounts, oauth: JiraOAuthFlow) -> None:
        self.accounts = accounts
        self.oauth = oauth

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/v1/jira/oauth", self.get_oauth)
        r.add_get("/v1/jira/account", self.get_account)
        r.add_get("/v1/jira/instances/{instance}/projects", self.get_projects)

    async def get_oauth(self, request: web.Request) -> web.Response:
        return web.json_response({"url": await self.oauth.begin(user_id(request))})

    async def get_account(self, request: web.Request) -> web.Response:
        user = user_id(request)
        try:
            login = await self.accounts.login(user)
            if login is None:
                return web.json_response({"loggedIn": False})
            sites = await login.sites()
        except JiraError as exc:
            if exc.status == 401:
                return web.json_response({"loggedIn": False})
            raise ApiError(
                ErrCode.UNKNOWN, f"Could not fetch accessible resources for JIRA user: {exc.describe()}", status=502
            ) from exc
        return web.json_response({"loggedIn": True, "instances": [s.to_json() for s in sites]})

    async def get_projects(self, request: web.Request) -> web.Response:
        user = user_id(request)
        paged = "page" in request.query or "perPage" in request.query
        page = int_param(request, "page", 1)
        per_page = int_param(request, "perPage", DEFAULT_PER_PAGE, MAX_PER_PAGE)
        search = request.query.get("search") or None
        if search is not None and len(search) > MAX_SEARCH_CHARS:
            raise ApiError(ErrCode.BAD_VALUE, f"`search` must be at most {MAX_SEARCH_CHARS} characters.")
        login = await user_login(self.accounts, user)
        name = request.match_info["instance"]
        try:
            site = await login.site_named(name)
        except JiraError as exc:
            raise api_error(exc) from exc
        if site is None:
            raise ApiError(ErrCode.FORBIDDEN_USER, "Instance not known or not accessible to this user.")
        start, count = ((page - 1) * per_page, per_page) if paged else (0, MAX_PROJECTS)
        try:
            projects = await _collect(login.client(site), start, count, search)
        except JiraError as exc:
            if exc.status in (401, 403):
                raise api_error(exc) from exc
            raise ApiError(
                ErrCode.UNKNOWN, f"Could not fetch accessible projects for JIRA user: {exc.describe()}", status=502
            ) from exc
        return web.json_response([_project_json(site, p) for p in projects])


async def _collect(client: JiraClient, start: int, count: int, search: str | None) -> list[Project]:
    """`count` projects from the `start`th, walking JIRA's pages (`startAt`, `isLast`)."""
    found: list[Project] = []
    while len(found) < count:
        page = await client.projects(start + len(found), min(MAX_PAGE, count - len(found)), search)
        found.extend(page.values)
        if page.is_last or not page.values:
            break
    return found[:count]


def _project_json(site: Site, project: Project) -> dict[str, Any]:
    return {"key": project.key, "name": project.name, "id": project.id, "url": f"{site.url}/projects/{project.key}"}
