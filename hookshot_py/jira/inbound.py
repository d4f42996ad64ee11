"""Inbound JIRA deliveries: `POST /jira/webhook`, from JIRA's admin webhooks.

JIRA signs with the one `jira.webhook.secret` (`X-Hub-Signature: sha256=<hex HMAC of the raw
body>`, no `-256`), or, as hookshot also accepts, the secret comes as `?secret=`. Either is
checked in constant time before anything else: a request with neither is refused from its
headers, a wrong `?secret=` before its body is read, a wrong signature before its body is
parsed — 401 `HS_BAD_TOKEN`, nothing posted (hookshot answers a bad signature after the fact).
The body (10 MiB at most) is then parsed with a depth limit.

A delivery names its project by the REST URL of the issue (`issue.self`: scheme, host and
context path are the instance) and `issue.fields.project.key`, or, for versions, by
`version.self` and `version.projectId`; it is routed with one look-up in the connection type's
index and posted to each room whose `events` include it. The answer (200) comes once the
messages are committed outbox rows, each deduplicated per room by the delivery's
`X-Atlassian-Webhook-Identifier` (JIRA's retries reuse it; without one, by the body's hash), so
a retried delivery is acknowledged again but posted once.

Payload text is the stranger's: rendering the notices' markdown runs in the CPU pool
(`services.cpu`), with a deadline; past it the notice is posted with escaped plain text.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass

from aiohttp import web

from hookshot_py.connections.base import Connection
from hookshot_py.cpu_pool import CpuPool, CpuPoolError
from hookshot_py.errors import ApiError, ErrCode
from hookshot_py.forges.inbound import read_body, read_payload, token_matches, verify_off_loop
from hookshot_py.forges.payload import Payload
from hookshot_py.jira.connection import JiraProjectType
from hookshot_py.jira.format import Notice, PayloadError, event_name, format_delivery, subject_of
from hookshot_py.markdown import render_markdown
from hookshot_py.matrix.outbox import Outbox, OutgoingEvent

__all__ = ["DELIVERY_HEADER", "MAX_BODY_BYTES", "SIGNATURE_HEADER", "WEBHOOK_PATH", "JiraWebhookRoute"]

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/jira/webhook"
SIGNATURE_HEADER = "X-Hub-Signature"
DELIVERY_HEADER = "X-Atlassian-Webhook-Identifier"
#: An issue payload carries every field of the issue; a few MiB at the very most.
MAX_BODY_BYTES = 10 * 1024 * 1024
_DELIVERY_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_REFUSED = "Invalid secret: the delivery is not signed with the bridge's JIRA webhook secret."


def dedupe_key(delivery_id: str | None, raw: bytes) -> str:
    """The outbox's per-room key for this delivery: JIRA's identifier, else the body's hash (a
    body carries its `timestamp`, so two occurrences never share one)."""
    if delivery_id is not None and _DELIVERY_ID.match(delivery_id):
        return f"jira:{delivery_id}"
    return "jira:sha256:" + hashlib.sha256(raw).hexdigest()[:40]


@dataclass
class JiraWebhookRoute:
    secret: str  # `jira.webhook.secret`
    projects: JiraProjectType
    outbox: Outbox
    cpu: CpuPool

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(WEBHOOK_PATH, self.handle)

    async def _verified_body(self, request: web.Request) -> bytes:
        query_secret = request.query.get("secret")
        signature = request.headers.get(SIGNATURE_HEADER)
        if query_secret is not None:
            if not token_matches(query_secret, self.secret):
                log.warning("Refusing a JIRA delivery: wrong ?secret=")
                raise ApiError(ErrCode.BAD_TOKEN, _REFUSED)
            return await read_body(request, MAX_BODY_BYTES)
        if not signature:
            log.warning("Refusing a JIRA delivery without a signature or ?secret=")
            raise ApiError(ErrCode.BAD_TOKEN, _REFUSED)
        raw = await read_body(request, MAX_BODY_BYTES)
        # JIRA's header is GitHub's SHA-256 one without the `-256` (sha256=<hex>).
        if await verify_off_loop([self.secret], raw, signature, None) is None:
            log.warning("Refusing JIRA delivery %s: bad signature", request.headers.get(DELIVERY_HEADER))
            raise ApiError(ErrCode.BAD_TOKEN, _REFUSED)
        return raw

    async def handle(self, request: web.Request) -> web.Response:
        raw = await self._verified_body(request)
        payload = await read_payload(self.cpu, raw)
        webhook_event = payload.get("webhookEvent")
        if not isinstance(webhook_event, str) or not webhook_event:
            raise ApiError(ErrCode.BAD_VALUE, "Missing webhookEvent in body")
        event = event_name(webhook_event)
        if event is None:
            log.info("Ignoring JIRA %s delivery: not an event the bridge posts", webhook_event[:64])
            return web.json_response({"ok": True, "handled": False})
        body = Payload(payload)
        try:
            subject = subject_of(event, body)
            conns = [c for c in self.projects.connections_for(subject) if self.projects.wants(c, event)]
            notices = [
                (conn, notice)
                for conn in conns
                if (notice := self._format(event, body, conn)) is not None
            ]
        except PayloadError as exc:
            raise ApiError(ErrCode.BAD_VALUE, f"Malformed {webhook_event} payload: {exc}") from exc
        key = dedupe_key(request.headers.get(DELIVERY_HEADER), raw)
        rendered: dict[tuple[str, bool], str] = {}
        out: list[OutgoingEvent] = []
        for conn, notice in notices:
            if (notice.markdown, notice.inline) not in rendered:
                rendered[(notice.markdown, notice.inline)] = await self._render(notice)
            html = rendered[(notice.markdown, notice.inline)]
            out.append(OutgoingEvent(conn.room_id, notice.content(html), dedupe_key=key))
        ids = await self.outbox.enqueue(out)
        duplicate = bool(out) and not ids
        if duplicate:
            log.info("JIRA delivery %s was already handled; not posting it again", key)
        log.info("JIRA %s for %s/%s: posted to %d room(s)", event, subject.host, subject.key or subject.project_id,
                 len(ids))
        return web.json_response({"ok": True, "handled": True, "posted": len(ids), "duplicate": duplicate})

    def _format(self, event: str, body: Payload, conn: Connection) -> Notice | None:
        config = self.projects.config_of(conn)
        return format_delivery(event, body, project=config.ref, project_url=config.url)

    async def _render(self, notice: Notice) -> str:
        """The notice's markdown as HTML, in a worker process: payload text is the stranger's."""
        try:
            return await self.cpu.run(render_markdown, notice.markdown, inline=notice.inline)
        except CpuPoolError as e:
            log.warning("Rendering a JIRA notice failed (%s); posting it as plain text", e)
            return notice.fallback_html()
