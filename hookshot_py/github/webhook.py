"""Inbound GitHub deliveries: `POST /github/webhook`.

Unlike hookshot, the signature is checked **before** answering: a delivery that is not signed
with the repository's secret (the one the bridge generated, stored in `forge_webhooks`) or with
`github.webhook.secret` gets 401 and posts nothing. A verified delivery is answered 200 once its
messages are committed outbox rows, deduplicated per room on `X-GitHub-Delivery`, so a
redelivery is acknowledged again but posted once.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qs

import aiohttp
from aiohttp import web

from hookshot_py.errors import ApiError, ErrCode
from hookshot_py.github.connection import GithubRepoType
from hookshot_py.github.format import PayloadError, candidate_hooks, format_event, pr_diff_url
from hookshot_py.github.hooks import RepoHooks
from hookshot_py.github.verify import verify_signature
from hookshot_py.listeners.http import read_body
from hookshot_py.matrix.outbox import Outbox, OutgoingEvent
from hookshot_py.services import PushListener

__all__ = ["GitHubWebhooks", "MAX_BODY_BYTES"]

log = logging.getLogger(__name__)

#: GitHub caps payloads at 25 MB.
MAX_BODY_BYTES = 25 * 1024 * 1024
PR_DIFF_TIMEOUT_S = 5.0
MAX_PR_DIFF_BYTES = 1024 * 1024


class GitHubWebhooks:
    def __init__(
        self,
        repo_type: GithubRepoType,
        hooks: RepoHooks,
        outbox: Outbox,
        http: aiohttp.ClientSession,
        domain: str,
        config_secret: str | None,
        on_push: PushListener | None = None,
    ) -> None:
        self.repo_type = repo_type
        self.hooks = hooks
        self.outbox = outbox
        self.http = http
        self.domain = domain
        self.config_secret = config_secret
        self.on_push = on_push

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/github/webhook", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        event = request.headers.get("X-GitHub-Event")
        delivery = request.headers.get("X-GitHub-Delivery")
        if not event or not delivery:
            raise ApiError(
                ErrCode.BAD_VALUE,
                "Missing X-GitHub-Event or X-GitHub-Delivery header: this is not a GitHub delivery.",
            )
        raw = await read_body(request, MAX_BODY_BYTES)
        payload = _parse(raw, request.content_type)
        repository = payload.get("repository")
        full_name = repository.get("full_name") if isinstance(repository, dict) else None
        if not isinstance(full_name, str) or not full_name:
            full_name = None
        await self._verify(raw, request, full_name)

        if full_name is None:
            log.info("GitHub %s delivery %s names no repository; nothing to post", event, delivery)
            return web.json_response({"ok": True, "handled": False})
        if event == "push" and self.on_push is not None:
            for conn in self.repo_type.connections_for(full_name):
                await self.on_push(conn.room_id, full_name, payload)
        try:
            hooks = candidate_hooks(event, payload)
        except PayloadError as exc:
            raise ApiError(ErrCode.BAD_VALUE, f"Malformed {event} payload: {exc}") from exc
        if hooks is None:
            log.info("Ignoring GitHub %s/%s delivery %s for %s: not an event we post",
                     event, payload.get("action"), delivery, full_name)
            return web.json_response({"ok": True, "handled": False})

        conns = self.repo_type.connections_for(full_name)
        if event == "ping":
            live = {c.room_id for c in conns}
            conns += [c for c in self.repo_type.pending_for(full_name) if c.room_id not in live]
        diffs: dict[str, str | None] = {}
        out: list[OutgoingEvent] = []
        for conn in conns:
            state = self.repo_type.effective_state(conn)
            diff_url = pr_diff_url(event, payload, state)
            if diff_url is not None and diff_url not in diffs:
                diffs[diff_url] = await self._fetch_diff(diff_url)
            try:
                message = format_event(
                    event, payload, state=state, domain=self.domain,
                    pr_diff=diffs.get(diff_url) if diff_url else None,
                )
            except PayloadError as exc:
                raise ApiError(ErrCode.BAD_VALUE, f"Malformed {event} payload: {exc}") from exc
            if message is not None:
                out.append(OutgoingEvent(conn.room_id, message.to_content(), dedupe_key=f"github:{delivery}"))
        ids = await self.outbox.enqueue(out)
        if out and not ids:
            log.info("GitHub delivery %s was already handled; not posting it again", delivery)
        return web.json_response({"ok": True, "handled": True, "posted": len(ids), "duplicate": bool(out and not ids)})

    async def _verify(self, raw: bytes, request: web.Request, full_name: str | None) -> None:
        candidates: list[str] = []
        if full_name is not None and (secret := await self.hooks.secret_for(full_name)):
            candidates.append(secret)
        if self.config_secret:
            candidates.append(self.config_secret)
        if not candidates:
            log.warning("Refusing a GitHub delivery for %s: no webhook secret is known for it", full_name)
            raise ApiError(ErrCode.BAD_TOKEN, "No webhook secret is configured for this repository on the bridge.")
        sig256 = request.headers.get("X-Hub-Signature-256")
        sig1 = request.headers.get("X-Hub-Signature")
        if not any(verify_signature(secret, raw, sig256, sig1) for secret in candidates):
            log.warning(
                "Refusing GitHub delivery %s for %s: %s", request.headers.get("X-GitHub-Delivery"), full_name,
                "bad signature" if sig256 or sig1 else "no signature",
            )
            raise ApiError(ErrCode.BAD_TOKEN, "The delivery's signature (X-Hub-Signature-256) is missing or wrong.")

    async def _fetch_diff(self, url: str) -> str | None:
        """The PR diff for `prDiff` rooms; best effort, since GitHub waits 10 s at most."""
        try:
            async with self.http.get(url, timeout=aiohttp.ClientTimeout(total=PR_DIFF_TIMEOUT_S)) as resp:
                if resp.status != 200:
                    log.info("Fetching %s answered %d; posting without the diff", url, resp.status)
                    return None
                data = await resp.content.read(MAX_PR_DIFF_BYTES)
                return data.decode("utf-8", "replace")
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.info("Fetching %s failed (%s); posting without the diff", url, exc)
            return None


def _parse(raw: bytes, content_type: str) -> dict[str, Any]:
    """JSON, or the form encoding (`payload=<json>`) a hook may be configured with."""
    text: str | bytes = raw
    if content_type == "application/x-www-form-urlencoded":
        try:
            values = parse_qs(raw.decode("utf-8"), strict_parsing=True).get("payload")
        except (UnicodeDecodeError, ValueError):
            values = None
        if not values:
            raise ApiError(ErrCode.BAD_VALUE, "A form-encoded delivery must carry a `payload` field.")
        text = values[0]
    try:
        payload = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ApiError(ErrCode.BAD_VALUE, f"The delivery's body is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise ApiError(ErrCode.BAD_VALUE, "The delivery's body must be a JSON object.")
    return payload
