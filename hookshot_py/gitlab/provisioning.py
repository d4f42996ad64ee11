"""The GitLab routes of provisioning API v1, like the GitHub ones: what a client needs to offer
a user the projects they may connect.

- `GET /v1/gitlab/instances?userId=` → `{"instances": [{name, url, loggedIn}]}`: the configured
  instances, and whether the user has a token for each.
- `GET /v1/gitlab/instances/{name}/projects?userId=&search=&page=&perPage=` → `{"loggedIn": true,
  "projects": [{name, path, url, avatarUrl, description, state: {instance, path}}], "nextPage"}`:
  the projects the user may connect (Developer or more), most recently active first, paged by
  GitLab (`nextPage` from its `X-Next-Page`; null on the last page). `state` is what to PUT as
  the connection. `{"loggedIn": false}` when the user has no valid token there.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hookshot_py.config import GitLabConfig
from hookshot_py.errors import ApiError, ErrCode
from hookshot_py.gitlab.accounts import GitLabAccounts, api_error
from hookshot_py.gitlab.client import GitLabError
from hookshot_py.gitlab.models import AccessLevel, Project
from hookshot_py.provisioning.params import paging, user_id

__all__ = ["GitLabProvisioning", "MAX_SEARCH_LENGTH"]

MAX_SEARCH_LENGTH = 100


def project_json(instance: str, project: Project) -> dict[str, Any]:
    return {
        "name": project.name or project.path_with_namespace,
        "path": project.path_with_namespace,
        "url": project.web_url,
        "avatarUrl": project.avatar_url,
        "description": project.description,
        "state": {"instance": instance, "path": project.path_with_namespace},
    }


class GitLabProvisioning:
    def __init__(self, config: GitLabConfig, accounts: GitLabAccounts) -> None:
        self.config = config
        self.accounts = accounts

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/gitlab/instances", self.get_instances)
        app.router.add_get("/v1/gitlab/instances/{name}/projects", self.get_projects)

    async def get_instances(self, request: web.Request) -> web.Response:
        user = user_id(request)
        instances = [
            {"name": name, "url": inst.url, "loggedIn": await self.accounts.get(user, name) is not None}
            for name, inst in self.config.instances.items()
        ]
        return web.json_response({"instances": instances})

    async def get_projects(self, request: web.Request) -> web.Response:
        user = user_id(request)
        name = request.match_info["name"]
        if name not in self.config.instances:
            raise ApiError(ErrCode.NOT_FOUND, f"There is no GitLab instance named {name!r} on this bridge.")
        page, per_page = paging(request)
        search = request.query.get("search") or None
        if search is not None and len(search) > MAX_SEARCH_LENGTH:
            raise ApiError(ErrCode.BAD_VALUE, f"`search` must be at most {MAX_SEARCH_LENGTH} characters.")
        client = await self.accounts.client_for(user, name)
        if client is None:
            return web.json_response({"loggedIn": False})
        try:
            listing = await client.list_projects(
                min_access_level=AccessLevel.DEVELOPER, search=search, page=page, per_page=per_page
            )
        except GitLabError as e:
            if e.status == 401:
                return web.json_response({"loggedIn": False})
            raise api_error(e) from e
        return web.json_response({
            "loggedIn": True,
            "projects": [project_json(name, p) for p in listing.projects],
            "nextPage": listing.next_page,
        })
