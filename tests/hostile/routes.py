"""Every HTTP route a stranger (or a room member, through the homeserver) can reach, as one table.

A `Route` knows how to make a request *authentic enough to be parsed*: a generic hook's secret
URL, a GitHub delivery signed with the hook's secret, GitFlic's secret header, the provisioning
Bearer secret, the homeserver's `hs_token`. Hostile bodies are then tried against what each route
does after its checks, not just against its front door. `markdown` builds a valid request whose
text ends up rendered (None when the route renders nothing a sender wrote).

A route added to the bridge (GitLab, JIRA) is one more entry in `ROUTES`.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from hookshot_py.forges.inbound import sign_sha256
from hookshot_py.generic.connection import EVENT_TYPE as GENERIC_TYPE

from .conftest import GITHUB_REPO, GITHUB_SECRET, GITLAB_SECRET, JIRA_SECRET, HostileEnv

GITHUB_FIXTURES = Path(__file__).parents[1] / "github" / "fixtures"
GITFLIC_FIXTURES = Path(__file__).parents[1] / "gitflic" / "fixtures"
KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes = b""


Auth = Callable[[HostileEnv, bytes], dict[str, str]]


def _no_auth(env: HostileEnv, body: bytes) -> dict[str, str]:
    return {}


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    url: Callable[[HostileEnv], str]
    auth: Auth = _no_auth
    limit: int | None = None  # the route's body limit; None: it reads no body
    markdown: Callable[[HostileEnv, str], Request] | None = None
    # Headers any request of this route carries (an event name...).
    headers: dict[str, str] = field(default_factory=dict)
    # Its 4xx answers are `{errcode, error}` JSON (not so for a browser page, nor for the
    # homeserver's routes, which speak the Matrix spec's error format).
    json_errors: bool = True

    def request(self, env: HostileEnv, body: bytes, content_type: str | None = "application/json") -> Request:
        headers = {**self.headers, **self.auth(env, body)}
        if content_type is not None:
            headers["Content-Type"] = content_type
        return Request(self.method, self.url(env), headers, body)


# -- authentic requests --------------------------------------------------------------------------------


def _github_auth(env: HostileEnv, body: bytes) -> dict[str, str]:
    return {"X-GitHub-Delivery": secrets.token_hex(8), "X-Hub-Signature-256": sign_sha256(GITHUB_SECRET, body)}


def _gitflic_auth(env: HostileEnv, body: bytes) -> dict[str, str]:
    return {"Gitflic-Webhook-Secret": env.gitflic_secret}


def _gitlab_auth(env: HostileEnv, body: bytes) -> dict[str, str]:
    return {"X-Gitlab-Token": GITLAB_SECRET, "X-Gitlab-Event": "Push Hook",
            "X-Gitlab-Webhook-UUID": secrets.token_hex(8)}


def _jira_auth(env: HostileEnv, body: bytes) -> dict[str, str]:
    return {"X-Hub-Signature": sign_sha256(JIRA_SECRET, body),
            "X-Atlassian-Webhook-Identifier": secrets.token_hex(8)}


def _provisioning_auth(env: HostileEnv, body: bytes) -> dict[str, str]:
    return env.provisioning_auth


def _hs_auth(env: HostileEnv, body: bytes) -> dict[str, str]:
    return {"Authorization": f"Bearer {env.hs_token}"}


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def _generic_markdown(env: HostileEnv, text: str) -> Request:
    return GENERIC.request(env, _json({"text": text}))


def _legacy_markdown(env: HostileEnv, text: str) -> Request:
    return LEGACY_GENERIC.request(env, _json({"text": text}))


def github_payload(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GITHUB_FIXTURES / f"{name}.json").read_text())
    data["repository"]["full_name"] = GITHUB_REPO
    data["repository"]["name"] = GITHUB_REPO.split("/")[1]
    data["repository"]["html_url"] = f"https://github.com/{GITHUB_REPO}"
    return data


def github_request(env: HostileEnv, event: str, payload: dict[str, Any]) -> Request:
    request = GITHUB.request(env, _json(payload))
    return Request(request.method, request.url, {**request.headers, "X-GitHub-Event": event}, request.body)


def _github_markdown(env: HostileEnv, text: str) -> Request:
    payload = github_payload("release.published")
    payload["release"]["body"] = text
    return github_request(env, "release", payload)


def gitflic_payload(env: HostileEnv, name: str) -> dict[str, Any]:
    text = (GITFLIC_FIXTURES / f"{name}.json").read_text().replace('"acme"', f'"{env.gitflic_owner}"')
    data: dict[str, Any] = json.loads(text.replace("/acme/", f"/{env.gitflic_owner}/"))
    data.pop("project_id", None)
    data["project"].pop("project_id", None)
    return data


def _gitflic_markdown(env: HostileEnv, text: str) -> Request:
    payload = gitflic_payload(env, "new_issue_note")
    payload["note"]["message"] = text
    return GITFLIC.request(env, _json(payload))


def _provisioning_create_url(env: HostileEnv) -> str:
    return f"{env.base_url}/v1/{env.room}/connections/{GENERIC_TYPE}?userId={quote(env.alice)}"


def _provisioning_markdown(env: HostileEnv, text: str) -> Request:
    # A hook's name is echoed in the room's notice about the new connection.
    return PROVISIONING_CREATE.request(env, _json({"name": text[:4000]}))


def transaction_url(env: HostileEnv) -> str:
    return f"{env.as_url}/_matrix/app/v1/transactions/hostile-{secrets.token_hex(8)}"


def command_event(env: HostileEnv, body: str) -> dict[str, Any]:
    return {
        "type": "m.room.message",
        "room_id": env.room,
        "sender": env.alice,
        "event_id": f"$hostile-{secrets.token_hex(8)}",
        "origin_server_ts": 1,
        "content": {"msgtype": "m.text", "body": body},
    }


def _transaction_markdown(env: HostileEnv, text: str) -> Request:
    # A command the bot answers, quoting what it did not understand.
    return TRANSACTION.request(env, _json({"events": [command_event(env, f"!hookshot {text}")]}))


# -- the table -----------------------------------------------------------------------------------------

GENERIC = Route("generic /webhook/{id}", "POST", lambda env: env.hook_url, limit=MIB, markdown=_generic_markdown)
LEGACY_GENERIC = Route(
    "generic /{id}", "POST", lambda env: env.hook_url.replace("/webhook/", "/"), limit=MIB, markdown=_legacy_markdown
)
GITHUB = Route(
    "/github/webhook", "POST", lambda env: f"{env.base_url}/github/webhook", _github_auth, limit=25 * MIB,
    markdown=_github_markdown, headers={"X-GitHub-Event": "push"},
)
GITHUB_OAUTH = Route(
    "/github/oauth", "GET", lambda env: f"{env.base_url}/github/oauth?code=x&state={'%00' * 8}{'A' * 2000}",
    json_errors=False,
)
GITHUB_OAUTH_STATE = Route(
    "/github/oauth (unknown state)", "GET", lambda env: f"{env.base_url}/github/oauth?code=x&state={'A' * 2000}",
    json_errors=False,
)
GITFLIC = Route(
    "/gitflic/webhook", "POST", lambda env: f"{env.base_url}/gitflic/webhook", _gitflic_auth, limit=5 * MIB,
    markdown=_gitflic_markdown,
)
GITLAB = Route(
    "/gitlab/webhook", "POST", lambda env: f"{env.base_url}/gitlab/webhook", _gitlab_auth, limit=10 * MIB,
)
JIRA = Route("/jira/webhook", "POST", lambda env: f"{env.base_url}/jira/webhook", _jira_auth, limit=10 * MIB)
PROVISIONING_CREATE = Route(
    "PUT /v1/{room}/connections/{type}", "PUT", _provisioning_create_url, _provisioning_auth, limit=64 * KIB,
    markdown=_provisioning_markdown,
)
PROVISIONING_UPDATE = Route(
    "PATCH /v1/{room}/connections/{id}", "PATCH",
    lambda env: f"{env.base_url}/v1/{env.room}/connections/nope?userId={quote(env.alice)}",
    _provisioning_auth, limit=64 * KIB,
)
PROVISIONING_LIST = Route(
    "GET /v1/{room}/connections", "GET",
    lambda env: f"{env.base_url}/v1/{env.room}/connections?userId={quote(env.alice)}", _provisioning_auth,
)
PROVISIONING_OPENAPI = Route("GET /v1/openapi.json", "GET", lambda env: f"{env.base_url}/v1/openapi.json")
METRICS = Route("/metrics", "GET", lambda env: f"{env.base_url}/metrics")
LIVE = Route("/live", "GET", lambda env: f"{env.base_url}/live")
READY = Route("/ready", "GET", lambda env: f"{env.base_url}/ready")
TRANSACTION = Route(
    "PUT /_matrix/app/v1/transactions/{txnId}", "PUT", transaction_url, _hs_auth, limit=32 * MIB,
    markdown=_transaction_markdown, json_errors=False,
)
AS_PING = Route(
    "POST /_matrix/app/v1/ping", "POST", lambda env: f"{env.as_url}/_matrix/app/v1/ping", _hs_auth, limit=64 * KIB,
    json_errors=False,
)
AS_USER = Route(
    "GET /_matrix/app/v1/users/{userId}", "GET",
    lambda env: f"{env.as_url}/_matrix/app/v1/users/{quote('@_webhooks_x:' + 'a' * 3000)}", _hs_auth,
    json_errors=False,
)
AS_ROOM = Route(
    "GET /_matrix/app/v1/rooms/{alias}", "GET", lambda env: f"{env.as_url}/_matrix/app/v1/rooms/%23x%00y", _hs_auth,
    json_errors=False,
)
AS_LIVE = Route("appservice /live", "GET", lambda env: f"{env.as_url}/live", json_errors=False)

ROUTES: tuple[Route, ...] = (
    GENERIC, LEGACY_GENERIC, GITHUB, GITHUB_OAUTH, GITHUB_OAUTH_STATE, GITFLIC, GITLAB, JIRA,
    PROVISIONING_CREATE, PROVISIONING_UPDATE,
    PROVISIONING_LIST, PROVISIONING_OPENAPI, METRICS, LIVE, READY, TRANSACTION, AS_PING, AS_USER, AS_ROOM, AS_LIVE,
)  # fmt: skip
BODY_ROUTES = tuple(r for r in ROUTES if r.limit is not None)
MARKDOWN_ROUTES = tuple(r for r in ROUTES if r.markdown is not None)
