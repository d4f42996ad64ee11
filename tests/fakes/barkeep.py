"""A fake Barkeep server: the REST API of seed 004, checked the way ooyala/barkeep checks it.

Modelled on `lib/api_routes.rb`, `lib/api.rb` and `models/commit.rb` of ooyala/barkeep:

- `/api/commits/...` needs no signature; every other `/api/*` route goes through the same
  checks, in the server's order: `api_key` present (400 "No API key provided."), known (400
  "Bad API key provided."), `timestamp` and `signature` present (400 "Missing required
  parameter 'x'."), `timestamp` all digits (400 "Bad timestamp."), not in the future at all
  (400 "Bad timestamp."), at most 5 minutes old (400 "Timestamp too stale."), signature right
  (400 "Bad signature."), then 403 "Admin only." for `/api/add_repo`. Bodies `{"error": msg}`.
- Parameters are Rack's: query string and form body merged (the body wins), both split on
  `&` and `;`, `+` meaning a space. The signature covers all of them but `signature`.
- The escaping, sorting and HMAC are written here from the contract, independently of
  `hookshot_py.barkeep.signing`, so that a bug there makes the tests fail.

Known differences: a sha prefix is matched with `startswith` (the server uses SQL `LIKE`, where
`%` and `_` are wildcards); `add_repo` answers 202 and adds the repository at once (the server
queues a clone — and at its last commit the route refers to an undefined `repo_name`, so the
real answer may well be a 500 after the clone was queued).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from aiohttp import web

STALENESS_LIMIT_MINUTES = 5
REPOS_ROOT = "/var/barkeep/repos"
UNSIGNED_PREFIX = "/api/commits/"
ADMIN_ROUTES = ("/api/add_repo",)

# Ruby's URI.encode keeps RFC 2396 unreserved and reserved characters, nothing else.
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_KEPT_BYTES = frozenset((_ALNUM + "-_.!~*'()" + ";/?:@&=+$,[]").encode("ascii"))


def ruby_uri_encode(value: str) -> str:
    """Ruby's legacy URI.encode, byte by byte: kept bytes as they are, the rest as %XX."""
    return "".join(chr(b) if b in _KEPT_BYTES else "%{:02X}".format(b) for b in value.encode("utf-8"))


def expected_signature(method: str, path: str, params: dict[str, str], api_secret: str) -> str:
    """What the server computes: HMAC-SHA1 hex of "METHOD path?k=v&..." over sorted keys."""
    pairs = [f"{k}={ruby_uri_encode(params[k])}" for k in sorted(params, key=lambda k: k.encode()) if k != "signature"]
    canonical = f"{method.upper()} {path}" + (f"?{'&'.join(pairs)}" if pairs else "")
    return hmac.new(api_secret.encode(), canonical.encode(), hashlib.sha1).hexdigest()


def rack_parse(text: str) -> dict[str, str]:
    """Rack's `parse_query` for plain keys: split on `&`/`;` (and spaces after them), later
    keys win, `+` is a space. A key without `=` gets an empty value."""
    out: dict[str, str] = {}
    for part in re.split(r"[&;] *", text):
        if not part:
            continue
        key, _, value = part.partition("=")
        out[unquote_plus(key)] = unquote_plus(value)
    return out


@dataclass
class FakeUser:
    api_key: str
    api_secret: str
    admin: bool = False
    name: str = "Jane Doe"
    email: str = "jane@example.org"

    @property
    def display(self) -> str:
        return f"{self.name} <{self.email}>"


@dataclass
class FakeComment:
    user: str  # "Name <email>"
    text: str
    filename: str | None = None
    line_number: int | None = None


@dataclass
class FakeCommit:
    sha: str
    approved_by: str | None = None  # "Name <email>"
    approved_at: int | None = None
    comments: list[FakeComment] = field(default_factory=list)

    @property
    def approved(self) -> bool:
        return self.approved_by is not None


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    status: int = 0

    @property
    def params(self) -> dict[str, str]:
        return {**self.query, **self.form}


class FakeBarkeepState:
    """Repositories, commits, users and the requests received. `clock` is the server's time."""

    def __init__(self, hostname: str = "barkeep.test", clock: Callable[[], float] = time.time) -> None:
        self.hostname = hostname
        self.clock = clock
        self.repos: dict[str, dict[str, FakeCommit]] = {}
        self.users: dict[str, FakeUser] = {}
        self.requests: list[RecordedRequest] = []

    def now(self) -> int:
        return int(self.clock())

    # -- setup and changes between polls ---------------------------------------------------------

    def add_user(self, api_key: str, api_secret: str, *, admin: bool = False, name: str = "Jane Doe",
                 email: str = "jane@example.org") -> FakeUser:
        user = FakeUser(api_key, api_secret, admin, name, email)
        self.users[api_key] = user
        return user

    def add_repo(self, name: str) -> None:
        self.repos.setdefault(name, {})

    def add_commit(self, repo: str, sha: str | None = None) -> FakeCommit:
        self.add_repo(repo)
        commit = FakeCommit(sha or secrets.token_hex(20))
        self.repos[repo][commit.sha] = commit
        return commit

    def commit(self, repo: str, sha: str) -> FakeCommit:
        return self.repos[repo][sha]

    def approve(self, repo: str, sha: str, name: str = "Jane Doe", email: str = "jane@example.org",
                at: int | None = None) -> None:
        commit = self.commit(repo, sha)
        commit.approved_by = f"{name} <{email}>"
        commit.approved_at = self.now() if at is None else at

    def unapprove(self, repo: str, sha: str) -> None:
        commit = self.commit(repo, sha)
        commit.approved_by = commit.approved_at = None

    def add_comments(self, repo: str, sha: str, count: int = 1, author: str = "Rev Iewer <rev@example.org>") -> None:
        commit = self.commit(repo, sha)
        commit.comments.extend(FakeComment(author, f"comment {len(commit.comments) + i + 1}") for i in range(count))

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    # -- what the routes do ----------------------------------------------------------------------

    def prefix_match(self, repo: str, partial_sha: str) -> FakeCommit:
        """`Commit.prefix_match`: RuntimeError texts become the 404 bodies."""
        if repo not in self.repos:
            raise LookupError(f"No such repository: {repo}")
        found = [c for sha, c in self.repos[repo].items() if sha.startswith(partial_sha.lower())][:2]
        if len(found) > 1:
            raise LookupError(f"Ambiguous commit in {repo}: {partial_sha}")
        if not found:
            raise LookupError(f"No such commit in {repo}: {partial_sha}")
        return found[0]

    def commit_data(self, commit: FakeCommit, repo: str, fields: list[str] | None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "approved": commit.approved,
            "approved_by": commit.approved_by,
            "approved_at": commit.approved_at,
            "comment_count": len(commit.comments),
            "link": f"http://{self.hostname}/commits/{repo}/{commit.sha}",
        }
        return {k: v for k, v in data.items() if k in fields} if fields is not None else data


PARAMS = web.RequestKey("barkeep_params", dict)
USER = web.RequestKey("barkeep_user", FakeUser)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _ruby_split(text: str) -> list[str]:
    """Ruby's `String#split(",")`, which drops trailing empty strings."""
    parts = text.split(",")
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def _required(params: dict[str, str], *names: str) -> web.Response | None:
    for name in names:
        if not params.get(name, "").strip():
            return _error(400, f"Missing required parameter '{name}'.")
    return None


def make_app(state: FakeBarkeepState, prefix: str = "") -> web.Application:
    """The server's routes, under `prefix` when it is mounted below the root of its host (as
    behind a reverse proxy); the signed path then includes the prefix, like Rack's
    `request.path` (SCRIPT_NAME + PATH_INFO)."""
    prefix = prefix.rstrip("/")

    def params_of(request: web.Request) -> dict[str, str]:
        return request[PARAMS]

    def verify(request: web.Request, params: dict[str, str]) -> web.Response | None:
        """The `before "/api/*"` filter of api_routes.rb."""
        api_key = params.get("api_key")
        if api_key is None:
            return _error(400, "No API key provided.")
        user = state.users.get(api_key)
        if user is None:
            return _error(400, "Bad API key provided.")
        if missing := _required(params, "timestamp", "signature"):
            return missing
        if not re.fullmatch(r"[0-9]+", params["timestamp"]):
            return _error(400, "Bad timestamp.")
        staleness = (state.now() - int(params["timestamp"])) / 60.0
        if staleness < 0:
            return _error(400, "Bad timestamp.")
        if staleness > STALENESS_LIMIT_MINUTES:
            return _error(400, "Timestamp too stale.")
        wanted = expected_signature(request.method, request.path, params, user.api_secret)
        if not hmac.compare_digest(wanted.encode(), params["signature"].encode()):
            return _error(400, "Bad signature.")
        if request.path.removeprefix(prefix) in ADMIN_ROUTES and not user.admin:
            return _error(403, "Admin only.")
        request[USER] = user
        return None

    @web.middleware
    async def api_filter(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        query = rack_parse(request.query_string)
        form: dict[str, str] = {}
        content_type = request.headers.get("Content-Type", "")
        if content_type.startswith("application/x-www-form-urlencoded"):
            form = rack_parse((await request.read()).decode("utf-8", "replace"))
        elif content_type.startswith("multipart/form-data"):
            form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        record = RecordedRequest(request.method, request.path, query, form)
        state.requests.append(record)
        request[PARAMS] = {**query, **form}
        response: web.StreamResponse | None = None
        route = request.path.removeprefix(prefix)
        if route.startswith("/api/") and not route.startswith(UNSIGNED_PREFIX):
            response = verify(request, request[PARAMS])
        if response is None:
            try:
                response = await handler(request)
            except web.HTTPException as e:
                record.status = e.status
                raise
        record.status = response.status
        return response

    async def get_commit(request: web.Request) -> web.Response:
        params = params_of(request)
        repo, sha = request.match_info["repo"], request.match_info["sha"]
        fields = _ruby_split(params["fields"]) if "fields" in params else None
        try:
            commit = state.prefix_match(repo, sha)
        except LookupError as e:
            return _error(404, str(e))
        return web.json_response(state.commit_data(commit, repo, fields))

    async def get_commits(request: web.Request) -> web.Response:
        params = params_of(request)
        repo = request.match_info["repo"]
        if "shas" not in params:
            # `nil.split` in the server: an unhandled NoMethodError.
            return web.Response(status=500, text="<h1>Internal Server Error</h1>", content_type="text/html")
        fields = _ruby_split(params["fields"]) if "fields" in params else None
        out: dict[str, Any] = {}
        for sha in _ruby_split(params["shas"]):
            try:
                commit = state.prefix_match(repo, sha)
            except LookupError as e:
                return _error(404, str(e))
            out[commit.sha] = state.commit_data(commit, repo, fields)
        return web.json_response(out)

    async def add_comment(request: web.Request) -> web.Response:
        params = params_of(request)
        if missing := _required(params, "repo_name", "sha", "text"):
            return missing
        commit = state.repos.get(params["repo_name"], {}).get(params["sha"])
        if commit is None:
            return _error(400, "No such commit.")
        filename = params.get("filename") or None
        raw_line = params.get("line_number") or ""
        line_match = re.match(r"\s*[+-]?\d+", raw_line)  # Ruby's String#to_i
        line_number = int(line_match.group()) if line_match else (0 if raw_line else None)
        commit.comments.append(FakeComment(request[USER].display, params["text"], filename, line_number))
        return web.Response(status=200, body=b"", content_type="application/json")

    async def add_repo(request: web.Request) -> web.Response:
        params = params_of(request)
        if missing := _required(params, "url"):
            return missing
        url = params["url"]
        if any(c.isspace() for c in url):
            return _error(400, "This is not a valid URL.")
        base = url.rstrip("/").rsplit("/", 1)[-1]
        name = base.rsplit(".", 1)[0] if "." in base[1:] else base  # File.basename(url, ".*")
        if name in state.repos:
            return _error(400, f'There is already a folder named "{name}" in {REPOS_ROOT}.')
        state.add_repo(name)
        text = f"Repo {name} is scheduled to be cloned."
        return web.Response(status=202, text=text, content_type="application/json")

    app = web.Application(middlewares=[api_filter])
    app.router.add_get(prefix + "/api/commits/{repo}/{sha}", get_commit)
    app.router.add_post(prefix + "/api/commits/{repo}", get_commits)
    app.router.add_post(prefix + "/api/comment", add_comment)
    app.router.add_post(prefix + "/api/add_repo", add_repo)
    return app

