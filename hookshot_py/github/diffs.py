"""The diff of an opened pull request, for rooms with `prDiff` enabled.

The URL comes from the delivery (`pull_request.diff_url`), so from whoever can sign one: anyone
given a repository's webhook secret to set the hook up by hand. Fetched as is, it made the
bridge read a loopback URL and post the answer into the room. So a diff URL is fetched only if

- it is a pull request diff of the delivery's own repository on the configured GitHub's web host
  (`{github.oauthUrl}/{owner}/{repo}/pull/{n}.diff`, the form GitHub sends), and
- through the outbound-URL guard (`net/guard.py`) for whatever it redirects to (github.com
  redirects to `patch-diff.githubusercontent.com`); the configured GitHub host itself is the
  admin's choice, so it may be on an intranet (GitHub Enterprise).

Otherwise, or when the fetch fails, the message is posted without the diff.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote, urlsplit

import aiohttp

from hookshot_py import __version__
from hookshot_py.net.guard import UrlPolicy, guarded_session

__all__ = ["MAX_PR_DIFF_BYTES", "PrDiffs"]

log = logging.getLogger(__name__)

PR_DIFF_TIMEOUT_S = 5.0
MAX_PR_DIFF_BYTES = 1024 * 1024
MAX_REDIRECTS = 3
_PULL_DIFF = re.compile(r"^/pull/[1-9][0-9]{0,9}\.diff$")


class PrDiffs:
    """Fetches PR diffs from `web_url` (GitHub's web address), guarded by `policy`."""

    def __init__(self, web_url: str, policy: UrlPolicy) -> None:
        web = urlsplit(web_url.rstrip("/"))
        self._scheme = web.scheme.lower()
        self._netloc = web.netloc.lower()
        self._prefix = web.path.rstrip("/")
        self.policy = policy.allowing(web.hostname or "")
        self._session: aiohttp.ClientSession | None = None

    def belongs(self, url: str, full_name: str) -> bool:
        """`url` is a PR diff of `full_name` on the configured GitHub."""
        try:
            parts = urlsplit(url)
        except ValueError:
            return False
        if (parts.scheme.lower(), parts.netloc.lower()) != (self._scheme, self._netloc):
            return False
        if parts.query or parts.fragment:
            return False
        repo_path = f"{self._prefix}/{full_name}".lower()
        path = unquote(parts.path)
        if not path.lower().startswith(repo_path + "/"):
            return False
        return _PULL_DIFF.match(path[len(repo_path):]) is not None

    async def fetch(self, url: str, full_name: str) -> str | None:
        """The diff as text, or None (a larger one than `MAX_PR_DIFF_BYTES` too: no room wants
        that many lines): best effort, since GitHub waits 10 s at most for the answer."""
        if not self.belongs(url, full_name):
            log.warning("Not fetching the diff %s of a %s delivery: not a pull request diff of %s on %s://%s",
                        url, full_name, full_name, self._scheme, self._netloc)
            return None
        if self._session is None:
            self._session = guarded_session(
                self.policy,
                timeout=aiohttp.ClientTimeout(total=PR_DIFF_TIMEOUT_S),
                headers={"User-Agent": f"hookshot_py/{__version__}"},
                limit=8,
            )
        try:
            async with self._session.get(url, max_redirects=MAX_REDIRECTS) as resp:
                if resp.status != 200:
                    log.info("Fetching %s answered %d; posting without the diff", url, resp.status)
                    return None
                data = bytearray()
                async for chunk in resp.content.iter_chunked(65536):
                    data += chunk
                    if len(data) > MAX_PR_DIFF_BYTES:
                        log.info("The diff %s is larger than %d bytes; posting without it", url, MAX_PR_DIFF_BYTES)
                        return None
                return data.decode("utf-8", "replace")
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.info("Fetching %s failed (%s); posting without the diff", url, exc)
            return None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
