"""A client for Barkeep's REST API (seed 004).

Routes: `POST /api/commits/{repo}` (batch, unsigned), `GET /api/commits/{repo}/{sha}`
(unsigned), `POST /api/comment` and `POST /api/add_repo` (signed; the latter admin only).

Signed calls put `api_key`, `timestamp` and `signature` in the query string, as the seed
describes, and the payload in the form body; the signature covers both, as the server merges
them before verifying. Every failure — HTTP, network, malformed answer, bad input — surfaces
as `BarkeepError`, whose `describe()` is a sentence fit for a room reply.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp

from hookshot_py.barkeep.errors import BarkeepError, ErrorKind, classify
from hookshot_py.barkeep.models import COMMIT_FIELDS, Commit
from hookshot_py.barkeep.signing import API_KEY_PARAM, SIGNATURE_PARAM, TIMESTAMP_PARAM, signed_params
from hookshot_py.forges.http import ForgeHttp, ForgeHttpError, RateLimits

__all__ = ["BarkeepClient", "BarkeepError", "Commit", "COMMIT_FIELDS"]

REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30)
_SHA_PREFIX = re.compile(r"[0-9a-fA-F]{1,40}")
_FULL_SHA = re.compile(r"[0-9a-fA-F]{40}")
_QUERY_PARAMS = (API_KEY_PARAM, TIMESTAMP_PARAM, SIGNATURE_PARAM)


class BarkeepClient:
    """One Barkeep server, optionally with one user's API key and secret for signed calls."""

    def __init__(
        self,
        base_url: str,
        session: aiohttp.ClientSession,
        api_key: str | None = None,
        api_secret: str | None = None,
        clock: Callable[[], float] = time.time,
        *,
        timeout: aiohttp.ClientTimeout = REQUEST_TIMEOUT,
        limits: RateLimits | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"the Barkeep URL must be an http(s) URL with a host, not {base_url!r}")
        self.base_url = base_url.rstrip("/")
        # The server signs `request.path`, which includes any prefix the base URL carries.
        self._base_path = parts.path.rstrip("/")
        self.session = session
        self.api_key = api_key
        self.api_secret = api_secret
        self.clock = clock
        self.instance = parts.netloc
        self.http = ForgeHttp(
            self.base_url, session, headers={"Accept": "application/json"}, timeout=timeout, limits=limits
        )

    @property
    def can_sign(self) -> bool:
        return bool(self.api_key) and bool(self.api_secret)

    # -- endpoints ---------------------------------------------------------------------------------

    async def get_commit(self, repo: str, sha_or_prefix: str, fields: Iterable[str] | None = None) -> Commit:
        """One commit, found by full sha or prefix.

        This goes through the batch route rather than `GET /api/commits/{repo}/{sha}` because
        only the batch answer is keyed by the full sha; the single-commit answer does not say
        which commit a prefix matched.
        """
        found = await self.get_commits(repo, [sha_or_prefix], fields)
        if len(found) != 1:
            raise self._error(200, f"Barkeep answered {len(found)} commits for one sha", "unavailable", repo)
        return next(iter(found.values()))

    async def get_commits(
        self, repo: str, shas: list[str], fields: Iterable[str] | None = None
    ) -> dict[str, Commit]:
        """Several commits at once, keyed by full sha. A sha may be a prefix.

        Barkeep fails the whole batch with a 404 when one sha is unknown; the error's `sha` then
        names it, so a caller can drop it and ask again.
        """
        self._check_repo(repo)
        for sha in shas:
            self._check_sha(repo, sha, full=False)
        if not shas:
            return {}
        form = {"shas": ",".join(sha.lower() for sha in shas)}
        if fields is not None:
            form["fields"] = self._fields(repo, fields)
        data = await self._request(
            "POST", f"/api/commits/{quote(repo, safe='')}", form=form, repo=repo, json_only=True
        )
        if not isinstance(data, dict):
            raise self._error(200, "Barkeep returned an unexpected commit list", "unavailable", repo)
        commits: dict[str, Commit] = {}
        for sha, value in data.items():
            try:
                commits[sha] = Commit.from_json(sha, value)
            except ValueError as e:
                raise self._error(200, f"Barkeep returned an unexpected commit: {e}", "unavailable", repo) from e
        return commits

    async def add_comment(
        self,
        repo: str,
        sha: str,
        text: str,
        filename: str | None = None,
        line_number: int | None = None,
    ) -> dict[str, Any]:
        """Post a comment as the API key's user: on the commit, or on a file (and line) of it.

        Barkeep needs the full sha here (resolve a prefix with `get_commit` first). It answers
        with an empty body; the result is the JSON object it sent, if any, else `{}`.
        """
        self._check_repo(repo)
        self._check_sha(repo, sha, full=True)
        if not text.strip():
            raise self._error(0, "the comment text is empty", "bad_request", repo, sha)
        if line_number is not None and (not filename or isinstance(line_number, bool) or line_number < 1):
            raise self._error(0, "a line number needs a file name and must be 1 or more", "bad_request", repo, sha)
        form = {"repo_name": repo, "sha": sha.lower(), "text": text}
        # The server reads `filename`, though its wiki says `file_name`.
        if filename:
            form["filename"] = filename
        if line_number is not None:
            form["line_number"] = str(line_number)
        data = await self._request("POST", "/api/comment", form=form, signed=True, repo=repo, sha=sha)
        return data if isinstance(data, dict) else {}

    async def add_repo(self, url: str) -> dict[str, Any]:
        """Ask Barkeep to clone and track a git repository (admin users only).

        Barkeep answers 202 with a plain sentence; the result is `{"message": sentence}` (or
        the JSON object it sent).
        """
        if not url.strip():
            raise self._error(0, "the repository URL is empty", "bad_request")
        data = await self._request("POST", "/api/add_repo", form={"url": url}, signed=True)
        return data if isinstance(data, dict) else {}

    async def check_key(self) -> bool:
        """Check the API key and secret without changing anything; True for an admin's key.

        Barkeep has no "who am I" route. This sends a signed `POST /api/add_repo` with no `url`:
        the server checks the key, timestamp and signature first (errors as for any signed call),
        then answers 403 "Admin only." to other users, and an admin's call fails on the missing
        `url` (400) before anything is cloned.
        """
        try:
            await self._request("POST", "/api/add_repo", form={}, signed=True)
        except BarkeepError as e:
            if e.kind == "admin_only":
                return False
            if e.kind == "bad_request" and e.status == 400 and "'url'" in e.message:
                return True
            raise
        raise self._error(200, "Barkeep accepted an add_repo call without a URL", "unavailable")

    # -- plumbing ----------------------------------------------------------------------------------

    def _error(self, status: int, message: str, kind: ErrorKind, repo: str = "", sha: str = "") -> BarkeepError:
        return BarkeepError(status, message, kind, repo=repo, sha=sha, instance=self.instance)

    def _check_repo(self, repo: str) -> None:
        # A repo name is a directory name on the server: never empty, never a path.
        if not repo or repo in (".", "..") or "/" in repo or not repo.isprintable():
            raise self._error(0, f"{repo!r} is not a Barkeep repository name", "bad_request", repo)

    def _check_sha(self, repo: str, sha: str, *, full: bool) -> None:
        pattern = _FULL_SHA if full else _SHA_PREFIX
        if not pattern.fullmatch(sha):
            wanted = "a full 40-character commit sha" if full else "a commit sha (or the start of one)"
            raise self._error(0, f"{sha!r} is not {wanted}", "bad_request", repo, sha)

    def _fields(self, repo: str, fields: Iterable[str]) -> str:
        wanted = list(fields)
        unknown = [f for f in wanted if f not in COMMIT_FIELDS]
        if unknown or not wanted:
            raise self._error(
                0,
                f"unknown commit fields {', '.join(unknown) or '(none given)'}; "
                f"known ones are {', '.join(COMMIT_FIELDS)}",
                "bad_request",
                repo,
            )
        return ",".join(wanted)

    async def _request(
        self,
        method: str,
        route: str,
        *,
        form: dict[str, str] | None = None,
        signed: bool = False,
        repo: str = "",
        sha: str = "",
        json_only: bool = False,
    ) -> Any:
        """Send one call; the parsed JSON answer, None when empty, and a text answer as
        `{"message": text}` unless `json_only` (then it is an error)."""
        params: dict[str, str] | None = None
        if signed:
            if not self.api_key or not self.api_secret:
                raise self._error(0, "no API key and secret are configured", "auth", repo, sha)
            try:
                every = signed_params(
                    method, self._base_path + route, form or {}, self.api_key, self.api_secret, int(self.clock())
                )
            except ValueError as e:
                raise self._error(0, str(e), "bad_request", repo, sha) from e
            params = {k: every.pop(k) for k in _QUERY_PARAMS}
            form = every
        try:
            resp = await self.http.request(method, route, params=params, form=form)
        except ForgeHttpError as e:
            if e.kind == "status":
                raise classify(e.status, e.message, repo=repo, sha=sha, instance=self.instance) from e
            raise self._error(e.status if e.kind == "too_large" else 0, e.message, "unavailable", repo, sha) from e
        if not resp.raw.strip():
            return None
        try:
            return resp.json()
        except (ValueError, UnicodeDecodeError) as e:
            if json_only:
                text = "Barkeep returned a body that is not JSON"
                raise self._error(resp.status, text, "unavailable", repo, sha) from e
            return {"message": resp.raw[:500].decode("utf-8", "replace").strip()}
