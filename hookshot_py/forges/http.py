"""One HTTP client base for forge APIs: JSON in and out, one error type, rate limits, paging.

A forge's `client.py` holds a `ForgeHttp` (base URL, auth headers, the integration's shared
`RateLimits`) and turns `ForgeHttpError` into its own subclass with texts for its users. What
every forge gets from here:

- **One error type.** Every failure — no answer (`status` 0: network, timeout), a status the
  call did not expect, an answer too large — is a `ForgeHttpError` carrying the status, the
  forge's own message and listed problems (GitHub's and GitLab's `message`/`errors`, Spring's
  `errors`/`violations`, JIRA's `errorMessages`/`errors`, Barkeep's `error`) and, when the
  forge said when to come back, `retry_after`. Nothing from aiohttp escapes.
- **Rate limits honoured.** `Retry-After` (seconds or a date), GitHub's
  `X-RateLimit-Remaining`/`-Reset` and GitLab's `RateLimit-Remaining`/`-Reset` are read from
  every answer into `RateLimits` (per token, shared by the clients of one integration): a call
  made while the limit is spent waits for the reset when that is near (`max_wait`), else fails
  at once with status 429 and `retry_after`, without sending; a 429 (or GitHub's 403 with no
  requests left) is retried once after a short `Retry-After`.
- **Paging** along `Link: <...>; rel="next"` (`pages`), on the same origin only, with a page cap.
- **Timeouts** on every call, and a cap on the size of an answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Container, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp

from hookshot_py.net.retry_after import retry_after_seconds

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "ForgeHttp",
    "ForgeHttpError",
    "NO_RESPONSE",
    "RateLimits",
    "Response",
    "error_text",
    "parse_next_link",
]

#: `status` of a failure without an answer (network error, timeout) or refused before sending.
NO_RESPONSE = 0
DEFAULT_TIMEOUT_S = 30.0
#: The largest answer read (a hostile or broken instance must not fill our memory).
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
#: The longest a call waits for a rate limit before failing instead.
DEFAULT_MAX_WAIT_S = 10.0
DEFAULT_MAX_PAGES = 20
SUCCESS = range(200, 300)

_MESSAGE_KEYS = ("message", "error_description", "error", "detail", "title", "errorMessage")
_DETAIL_KEYS = ("errors", "violations", "fieldErrors", "errorMessages")
_ITEM_TEXT_KEYS = ("defaultMessage", "message", "detail", "error", "title")
_ITEM_NAME_KEYS = ("field", "propertyPath", "name")


class ForgeHttpError(Exception):
    """A forge API call failed.

    `status`: the HTTP status, `NO_RESPONSE` (0) when none came. `message`: the forge's own words
    when it gave some (`from_forge` true), else a short description ("HTTP 502", "the request
    timed out"). `details`: problems the forge listed (validation errors). `retry_after`: seconds
    after which trying again may work, when the forge said so. `kind`: "status" (an unexpected
    status), "network", "timeout", "too_large" or "rate_limited" (refused before sending).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        details: list[str] | None = None,
        retry_after: float | None = None,
        kind: str = "status",
        from_forge: bool = False,
        body: Any = None,
    ) -> None:
        self.status = status
        self.message = message
        self.details = list(details or [])
        self.retry_after = retry_after
        self.kind = kind
        self.from_forge = from_forge
        self.body = body
        super().__init__(self.summary())

    def summary(self) -> str:
        """The exception's `str()`; subclasses word it their way."""
        return f"{self.status}: {self.message}"

    @property
    def rate_limited(self) -> bool:
        return self.kind == "rate_limited" or self.status == 429


# -- reading answers ----------------------------------------------------------------------------------


_LINK_RE = re.compile(r'<([^>]*)>\s*;\s*rel="([^"]*)"')


def parse_next_link(header: str | None) -> str | None:
    """The `rel="next"` URL of a `Link` header, if any."""
    if not header:
        return None
    for url, rels in _LINK_RE.findall(header):
        if "next" in rels.split():
            return url
    return None


def _item_text(item: Any) -> str | None:
    if isinstance(item, str):
        return item or None
    if not isinstance(item, dict):
        return None
    text = next((item[k] for k in _ITEM_TEXT_KEYS if isinstance(item.get(k), str) and item[k]), None)
    name = next((item[k] for k in _ITEM_NAME_KEYS if isinstance(item.get(k), str) and item[k]), None)
    if text is None:
        # GitHub's `{"resource": "Issue", "field": "title", "code": "missing_field"}`
        words = [str(item[k]) for k in ("resource", "field", "code") if isinstance(item.get(k), str) and item[k]]
        return " ".join(words) or None
    return f"{name}: {text}" if name else text


def _details(data: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for key in _DETAIL_KEYS:
        items = data.get(key)
        if isinstance(items, list):
            found.extend(text for item in items if (text := _item_text(item)))
        elif isinstance(items, dict):  # {"field": "problem"} or {"field": ["problem", ...]}
            for name, problem in items.items():
                problems = problem if isinstance(problem, list) else [problem]
                found.extend(f"{name}: {p}" for p in problems if isinstance(p, str))
    # GitLab answers 400 with `{"message": {"url": ["is blocked"]}}`.
    message = data.get("message")
    if isinstance(message, dict):
        for name, problem in message.items():
            problems = problem if isinstance(problem, list) else [problem]
            found.extend(f"{name}: {p}" for p in problems if isinstance(p, str))
    return found


def error_text(raw: bytes) -> tuple[str | None, list[str], bool, Any]:
    """What an error answer says: (message, details, message came from JSON, parsed JSON).

    JSON bodies of the usual shapes give their message and listed problems; a plain text body
    gives its first 200 characters; HTML (an error page) and empty bodies give no message.
    """
    try:
        data = json.loads(raw) if raw.strip() else None
    except (ValueError, UnicodeDecodeError):
        text = raw[:200].decode("utf-8", "replace").strip()
        return (None if not text or text.startswith("<") else text), [], False, None
    if not isinstance(data, dict):
        return None, [], False, data
    message = next((data[k] for k in _MESSAGE_KEYS if isinstance(data.get(k), str) and data[k]), None)
    details = _details(data)
    if message is None and details:
        message = details[0] if len(details) == 1 else "; ".join(details)
    return message, details, message is not None, data


def _reset_in(value: str, now: float) -> float | None:
    """A rate-limit reset header: Unix seconds (GitHub, GitLab) or, when small, delta-seconds."""
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return max(0.0, number - now) if number > 1_000_000_000 else max(0.0, number)


@dataclass
class _Budget:
    remaining: int | None = None
    resets_at: float | None = None


@dataclass
class RateLimits:
    """What forges said about their rate limits, per credential. One per integration, shared by
    every client it makes (clients are made per call, the limits outlive them)."""

    max_wait: float = DEFAULT_MAX_WAIT_S
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], Any] = asyncio.sleep
    _budgets: dict[str, _Budget] = field(default_factory=dict)

    def wait_before(self, key: str) -> float:
        """Seconds to wait before calling with this credential; raises when that is too long."""
        budget = self._budgets.get(key)
        if budget is None or budget.remaining is None or budget.remaining > 0 or budget.resets_at is None:
            return 0.0
        wait = budget.resets_at - self.clock()
        if wait <= 0:
            budget.remaining = None
            return 0.0
        if wait > self.max_wait:
            raise ForgeHttpError(
                429,
                f"the rate limit is used up; it resets in {int(wait) + 1} s",
                retry_after=wait,
                kind="rate_limited",
            )
        return wait

    def record(self, key: str, headers: Mapping[str, str]) -> None:
        now = self.clock()
        remaining = headers.get("X-RateLimit-Remaining") or headers.get("RateLimit-Remaining")
        reset = headers.get("X-RateLimit-Reset") or headers.get("RateLimit-Reset")
        if remaining is None:
            return
        try:
            count = int(remaining.strip())
        except ValueError:
            return
        in_s = _reset_in(reset, now) if reset else None
        self._budgets[key] = _Budget(count, None if in_s is None else now + in_s)

    def retry_after(self, status: int, headers: Mapping[str, str]) -> float | None:
        """When a refused call may be tried again, if the answer was a rate limit (or an outage
        with `Retry-After`); None when it was not."""
        now = self.clock()
        after = headers.get("Retry-After")
        waited = retry_after_seconds(after, now)
        remaining = headers.get("X-RateLimit-Remaining") or headers.get("RateLimit-Remaining")
        spent = remaining is not None and remaining.strip() == "0"
        if status == 429 or (status == 403 and (spent or waited is not None)):
            if waited is None and spent:
                reset = headers.get("X-RateLimit-Reset") or headers.get("RateLimit-Reset")
                waited = _reset_in(reset, now) if reset else None
            return waited if waited is not None else 60.0
        if status == 503 and waited is not None:
            return waited
        return None


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    raw: bytes
    url: str

    def json(self) -> Any:
        """The parsed body; None when empty. Raises ValueError when it is not JSON."""
        if not self.raw.strip():
            return None
        return json.loads(self.raw)


class ForgeHttp:
    """Calls to one forge API with one set of credentials (the `headers`).

    `request` sends JSON (`json=`) or a form (`form=`) and answers a `Response` for an expected
    status, raising `ForgeHttpError` for anything else.
    """

    def __init__(
        self,
        base_url: str,
        session: aiohttp.ClientSession,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float | aiohttp.ClientTimeout = DEFAULT_TIMEOUT_S,
        limits: RateLimits | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.headers = dict(headers or {})
        self.timeout = timeout if isinstance(timeout, aiohttp.ClientTimeout) else aiohttp.ClientTimeout(total=timeout)
        self.limits = limits if limits is not None else RateLimits()
        self.max_response_bytes = max_response_bytes
        credential = "\n".join(f"{k}:{v}" for k, v in sorted(self.headers.items()))
        origin = urlsplit(self.base_url)
        # Budgets are per credential and host; the key never holds the credential itself.
        self._limit_key = hashlib.sha256(f"{origin.netloc}\n{credential}".encode()).hexdigest()[:24]

    def url(self, path: str) -> str:
        """`path` under the base URL, or an absolute URL as is."""
        return path if "://" in path else self.base_url + path

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        expect: Container[int] = SUCCESS,
    ) -> Response:
        query = {k: str(v) for k, v in (params or {}).items()} or None
        sent_headers = {**self.headers, **(headers or {})}
        for attempt in (1, 2):
            wait = self.limits.wait_before(self._limit_key)
            if wait:
                await self.limits.sleep(wait)
            response = await self._send(method, self.url(path), query, json, form, sent_headers)
            self.limits.record(self._limit_key, response.headers)
            if response.status in expect:
                return response
            retry_after = self.limits.retry_after(response.status, response.headers)
            if attempt == 1 and retry_after is not None and retry_after <= self.limits.max_wait:
                await self.limits.sleep(retry_after)
                continue
            raise self._status_error(response, retry_after)
        raise AssertionError("unreachable")

    async def pages(
        self,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        max_pages: int = DEFAULT_MAX_PAGES,
    ) -> AsyncIterator[Response]:
        """GET `path`, then every `rel="next"` page its `Link` headers name, up to `max_pages`.
        A next URL on another origin is not followed (it would be sent our credentials)."""
        response = await self.request("GET", path, params=params)
        origin = urlsplit(self.base_url)[:2]
        for _ in range(max_pages - 1):
            yield response
            following = parse_next_link(response.headers.get("Link"))
            if following is None:
                return
            following = urljoin(response.url, following)
            if urlsplit(following)[:2] != origin:
                return
            response = await self.request("GET", following)
        yield response

    async def _send(
        self,
        method: str,
        url: str,
        query: dict[str, str] | None,
        body: Any,
        form: Mapping[str, str] | None,
        headers: dict[str, str],
    ) -> Response:
        try:
            async with self.session.request(
                method, url, params=query, json=body, data=form, headers=headers, timeout=self.timeout
            ) as resp:
                if resp.content_length is not None and resp.content_length > self.max_response_bytes:
                    raise self._too_large(resp.status)
                raw = bytearray()
                async for chunk in resp.content.iter_chunked(65536):
                    raw += chunk
                    if len(raw) > self.max_response_bytes:
                        raise self._too_large(resp.status)
                return Response(resp.status, resp.headers, bytes(raw), str(resp.url))
        except TimeoutError as e:
            raise ForgeHttpError(NO_RESPONSE, "the request timed out", kind="timeout") from e
        except (aiohttp.ClientError, OSError) as e:
            raise ForgeHttpError(NO_RESPONSE, str(e) or type(e).__name__, kind="network") from e

    def _too_large(self, status: int) -> ForgeHttpError:
        return ForgeHttpError(status, f"the answer is larger than {self.max_response_bytes} bytes", kind="too_large")

    @staticmethod
    def _status_error(response: Response, retry_after: float | None) -> ForgeHttpError:
        message, details, from_forge, body = error_text(response.raw)
        return ForgeHttpError(
            response.status,
            message or f"HTTP {response.status}",
            details=details,
            retry_after=retry_after,
            from_forge=from_forge,
            body=body,
        )
