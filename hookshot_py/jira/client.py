"""A small JIRA REST client for what the bridge does with a user's token, on the forge HTTP base.

One class for both deployments: JIRA Cloud's API v3 through Atlassian's gateway
(`{api}/ex/jira/{cloudId}/rest/api/3`, the user's OAuth access token) and JIRA Server/Data
Center's API v2 (`{url}/rest/api/2`, a personal access token); both take `Authorization:
Bearer`. Where they differ — issue descriptions (Atlassian Document Format on v3, text on v2),
users (`accountId` or `name`), the project listing (`project/search` pages on cloud, the whole
`project` list on-premise, where older servers lack the search) — the client hides it.

Every failure, including network errors and answers that do not fit their model, is a
`JiraError`, whose `describe()` is a sentence fit for a room reply.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp

from hookshot_py.forges.http import NO_RESPONSE, ForgeHttp, ForgeHttpError, RateLimits, Response
from hookshot_py.forges.models import Model, ModelError, convert
from hookshot_py.jira.models import CreatedIssue, Issue, Project, ProjectPage, User

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "INVALID",
    "JiraClient",
    "JiraError",
    "NO_RESPONSE",
    "adf_paragraphs",
    "as_jira_error",
    "read_json",
    "read_list",
    "read_model",
]

DEFAULT_TIMEOUT_S = 20.0
#: The most entries one listing call asks JIRA for (JIRA caps `maxResults` at 50 or 100).
MAX_PAGE = 50
#: `JiraError.kind` of an answer that came but did not fit its model.
INVALID = "invalid"

M = TypeVar("M", bound=Model)


class JiraError(ForgeHttpError):
    """JIRA (or Atlassian's OAuth server) refused a request, or could not be reached (`status` 0)."""

    def summary(self) -> str:
        return f"JIRA error {self.status}: {self.message}"

    @property
    def refused(self) -> bool:
        """The request itself was refused (a 4xx other than a rate limit): trying again as is
        will not help."""
        return 400 <= self.status < 500 and not self.rate_limited

    def describe(self) -> str:
        """A reply for the room: what went wrong and what the user can do about it."""
        if self.kind == INVALID:
            return f"JIRA's answer was not understood: {self.message}"
        if self.status == NO_RESPONSE and not self.rate_limited:
            return f"Could not reach JIRA: {self.message}"
        if self.rate_limited:
            wait = f" for about {int(self.retry_after) + 1} s" if self.retry_after else ""
            return f"JIRA is rate limiting the bridge{wait}; try again later."
        if self.status == 401:
            return "JIRA rejected your login (it expired or was revoked): log in to JIRA again."
        detail = "; ".join(self.details) if self.details else self.message
        if self.status == 403:
            return f"JIRA refused the request: {detail}"
        if self.status == 404:
            return f"Not found on JIRA: {detail}"
        if self.status == 400:
            return f"JIRA refused the request: {detail}"
        return f"JIRA answered {self.status}: {detail}"


def as_jira_error(exc: ForgeHttpError) -> JiraError:
    return JiraError(
        exc.status, exc.message, details=exc.details, retry_after=exc.retry_after, kind=exc.kind,
        from_forge=exc.from_forge, body=exc.body,
    )


def adf_paragraphs(text: str) -> dict[str, Any]:
    """Plain text as an Atlassian Document Format document (API v3 wants descriptions so): one
    paragraph per blank-line-separated block, line breaks kept."""
    content: list[dict[str, Any]] = []
    for block in (b for b in text.replace("\r\n", "\n").split("\n\n") if b.strip()):
        nodes: list[dict[str, Any]] = []
        for i, line in enumerate(block.split("\n")):
            if i:
                nodes.append({"type": "hardBreak"})
            if line:
                nodes.append({"type": "text", "text": line})
        content.append({"type": "paragraph", "content": nodes})
    return {"type": "doc", "version": 1, "content": content}


class JiraClient:
    """Calls to one JIRA site with one user's token. `cloud` picks API v3 conventions."""

    def __init__(
        self,
        base_url: str,
        token: str,
        session: aiohttp.ClientSession,
        *,
        cloud: bool,
        limits: RateLimits | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.cloud = cloud
        self.http = ForgeHttp(
            base_url,
            session,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
            limits=limits,
        )

    async def _request(
        self, method: str, path: str, *, params: Mapping[str, str | int] | None = None, json: Any = None
    ) -> Response:
        try:
            return await self.http.request(method, path, params=params, json=json)
        except ForgeHttpError as exc:
            raise as_jira_error(exc) from exc

    async def _get(self, path: str, model: type[M], params: Mapping[str, str | int] | None = None) -> M:
        return read_model(await self._request("GET", path, params=params), model)

    # -- who and what -------------------------------------------------------------------------------

    async def myself(self) -> User:
        return await self._get("/myself", User)

    async def project(self, key: str) -> Project:
        """The project (with its issue types); 404 when it does not exist or the user may not
        browse it (JIRA never says which)."""
        return await self._get(f"/project/{quote(key, safe='')}", Project)

    async def projects(self, start_at: int, max_results: int, query: str | None = None) -> ProjectPage:
        """One page of the projects the user can browse, from `start_at`."""
        max_results = max(1, min(max_results, MAX_PAGE))
        if self.cloud:
            params: dict[str, str | int] = {"startAt": start_at, "maxResults": max_results, "orderBy": "key"}
            if query:
                params["query"] = query
            page = await self._get("/project/search", ProjectPage, params)
            if page.is_last is None:
                done = page.total is not None and start_at + len(page.values) >= page.total
                page = ProjectPage(page.values, page.start_at, page.max_results, page.total, done or not page.values)
            return page
        everything = read_list(await self._request("GET", "/project"), Project)
        if query:
            needle = _fold(query)
            everything = [p for p in everything if needle in _fold(p.key) or needle in _fold(p.name)]
        chunk = tuple(everything[start_at:start_at + max_results])
        return ProjectPage(chunk, start_at, max_results, len(everything), start_at + max_results >= len(everything))

    async def issue(self, key: str) -> Issue:
        return await self._get(f"/issue/{quote(key, safe='')}", Issue, {"fields": "summary"})

    # -- changes --------------------------------------------------------------------------------------

    async def create_issue(
        self, project_key: str, issue_type_id: str, summary: str, description: str | None, labels: list[str]
    ) -> CreatedIssue:
        fields: dict[str, Any] = {
            "project": {"key": project_key},
            "issuetype": {"id": issue_type_id},
            "summary": summary,
        }
        if description:
            fields["description"] = adf_paragraphs(description) if self.cloud else description
        if labels:
            fields["labels"] = labels
        return read_model(await self._request("POST", "/issue", json={"fields": fields}), CreatedIssue)

    async def assignable_users(self, issue_key: str, text: str, limit: int = 5) -> list[User]:
        """Users who may be assigned the issue and match `text` (a name, an e-mail address)."""
        params: dict[str, str | int] = {"issueKey": issue_key, "maxResults": limit}
        params["query" if self.cloud else "username"] = text
        return read_list(await self._request("GET", "/user/assignable/search", params=params), User)

    async def assign(self, issue_key: str, user: User) -> None:
        body = {"accountId": user.account_id} if self.cloud else {"name": user.name}
        await self._request("PUT", f"/issue/{quote(issue_key, safe='')}/assignee", json=body)


def _fold(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalnum())


def read_json(response: Response) -> Any:
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        raise JiraError(response.status, "it is not JSON", kind=INVALID) from None


def read_model(response: Response, model: type[M]) -> M:
    try:
        return convert(read_json(response), model)
    except ModelError as e:
        raise JiraError(response.status, f"its {model.what} has no valid '{e.path or 'value'}'", kind=INVALID) from None


def read_list(response: Response, model: type[M]) -> list[M]:
    data = read_json(response)
    if not isinstance(data, list):
        raise JiraError(response.status, f"expected a list of {model.what}s", kind=INVALID)
    try:
        return [convert(item, model) for item in data]
    except ModelError as e:
        raise JiraError(response.status, f"its {model.what} has no valid '{e.path or 'value'}'", kind=INVALID) from None
