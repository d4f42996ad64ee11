"""Inbound GitHub deliveries: `POST /github/webhook`.

Unlike hookshot, the signature is checked **before** answering, and before the body is parsed
(`forges/inbound.py` gives the order): an unsigned request is refused from its headers; a
signed one is read (25 MiB at most, GitHub's cap) and its HMAC checked over the raw bytes
against the secrets that may apply — the repository hook's, found by `X-GitHub-Hook-ID` or by
the `full_name`s a bounded scan of the bytes finds (a handful of HMACs, hashed off the event
loop for large bodies), and `github.webhook.secret`. Only a verified body is parsed (depth
limited), in a CPU-pool worker (`digest.py`: the event loop never holds a payload of up to
25 MiB), and a repository's secret must be that of the repository the body names. A verified
delivery goes to the connections of its repository, formatted per room (the markdown in one
more CPU-pool call, plain text past its deadline), and is answered 200 once its messages are
committed outbox rows, deduplicated per room on `X-GitHub-Delivery`, so a redelivery is
acknowledged again but posted once.

Why not parse first to learn the repository: a 25 MiB body costs ~10 times its size in memory
and a second of CPU to parse, for anyone who can reach the URL; scanning it for `"full_name"`
costs a few milliseconds and no memory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiohttp import web

from hookshot_py.connections.base import Connection
from hookshot_py.cpu_pool import CpuPool
from hookshot_py.errors import ApiError, ErrCode
from hookshot_py.forges.inbound import read_body, read_in_worker, string_values, verify_off_loop
from hookshot_py.github.connection import GithubRepoType
from hookshot_py.github.diffs import PrDiffs
from hookshot_py.github.digest import Candidate, digest_delivery
from hookshot_py.github.format import Draft, with_pr_diff
from hookshot_py.github.hooks import RepoHooks, project_key
from hookshot_py.github.state import RepoConfig
from hookshot_py.markdown import render_off_loop
from hookshot_py.matrix.outbox import Outbox, OutgoingEvent
from hookshot_py.services import PushListener

__all__ = ["GitHubWebhooks", "MAX_BODY_BYTES"]

log = logging.getLogger(__name__)

#: GitHub caps payloads at 25 MB.
MAX_BODY_BYTES = 25 * 1024 * 1024
#: At most this many repository names found in a body are tried (each costs an HMAC).
MAX_NAMED_REPOS = 4
#: The connections of at most this many repository names found in a body may receive it.
MAX_CANDIDATE_NAMES = 16



@dataclass
class GitHubWebhooks:
    repo_type: GithubRepoType
    hooks: RepoHooks
    outbox: Outbox
    diffs: PrDiffs
    cpu: CpuPool  # renders the messages' markdown off the event loop
    domain: str  # the homeserver's, for issue-room aliases
    config_secret: str | None  # `github.webhook.secret`
    on_push: PushListener | None = None

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
        if not request.headers.get("X-Hub-Signature-256") and not request.headers.get("X-Hub-Signature"):
            raise ApiError(ErrCode.BAD_TOKEN, "The delivery's signature (X-Hub-Signature-256) is missing or wrong.")
        raw = await read_body(request, MAX_BODY_BYTES)
        form = request.content_type == "application/x-www-form-urlencoded"
        names = string_values(raw, "full_name", form=form, limit=MAX_CANDIDATE_NAMES)
        signer = await self._verify(raw, request, names[:MAX_NAMED_REPOS])
        candidates = self._candidates(event, names)
        digest = await read_in_worker(
            self.cpu, len(raw), digest_delivery, event, raw, form=form, domain=self.domain,
            candidates=[Candidate(conn.room_id, config) for conn, config in candidates],
        )
        if digest.error is not None:
            raise ApiError(ErrCode.BAD_VALUE, digest.error)
        full_name = digest.full_name
        if signer is not None and (full_name is None or project_key(full_name) != signer):
            log.warning("Refusing GitHub delivery %s: signed with the secret of %s, names %s",
                        delivery, signer, full_name)
            raise ApiError(ErrCode.BAD_TOKEN, "The delivery is signed with another repository's webhook secret.")

        if full_name is None:
            log.info("GitHub %s delivery %s names no repository; nothing to post", event, delivery)
            return web.json_response({"ok": True, "handled": False})
        if event == "push" and self.on_push is not None:
            for conn in self.repo_type.connections_for(full_name):
                await self.on_push(conn.room_id, full_name, digest.push or {})
        if digest.payload_error is not None:
            raise ApiError(ErrCode.BAD_VALUE, digest.payload_error)
        if digest.hooks is None:
            log.info("Ignoring GitHub %s/%s delivery %s for %s: not an event we post",
                     event, digest.action, delivery, full_name)
            return web.json_response({"ok": True, "handled": False})

        diff: str | None = None
        drafts: list[tuple[str, Draft]] = []
        for index, draft in digest.drafts:
            conn, config = candidates[index]
            if digest.diff_url is not None and config.settings.pr_diff_enabled:
                if diff is None:
                    diff = await self.diffs.fetch(digest.diff_url, full_name) or ""
                draft = with_pr_diff(draft, diff or None, config.settings)
            drafts.append((conn.room_id, draft))
        html = await render_off_loop(self.cpu, [d.job for _, d in drafts], what=f"GitHub {event} delivery {delivery}")
        messages = [d.plain() if html is None else d.finish(html[i]) for i, (_, d) in enumerate(drafts)]
        out = [
            OutgoingEvent(room_id, message.to_content(), dedupe_key=f"github:{delivery}")
            for (room_id, _), message in zip(drafts, messages, strict=True)
        ]
        ids = await self.outbox.enqueue(out)
        if out and not ids:
            log.info("GitHub delivery %s was already handled; not posting it again", delivery)
        return web.json_response({"ok": True, "handled": True, "posted": len(ids), "duplicate": bool(out and not ids)})

    def _candidates(self, event: str, names: list[str]) -> list[tuple[Connection, RepoConfig]]:
        """The connections of the repositories named in the body (`ping` also reaches the ones
        being created), each once."""
        found: dict[tuple[str, str, str], Connection] = {}
        for name in names:
            conns = self.repo_type.connections_for(name)
            if event == "ping":
                conns = conns + self.repo_type.pending_for(name)
            for conn in conns:
                found.setdefault((conn.room_id, conn.event_type, conn.state_key), conn)
        return [(conn, self.repo_type.config_of(conn)) for conn in found.values()]

    async def _verify(self, raw: bytes, request: web.Request, names: list[str]) -> str | None:
        """Check the signature over the raw bytes; returns the project key whose secret signed
        it (None: the config-wide secret). Raises 401 otherwise."""
        sig256 = request.headers.get("X-Hub-Signature-256")
        sig1 = request.headers.get("X-Hub-Signature")
        candidates: dict[str, str | None] = {}  # secret → the project it belongs to
        hook_id = request.headers.get("X-GitHub-Hook-ID")
        if hook_id and (row := self.hooks.store.by_hook_id(hook_id)) is not None:
            candidates.setdefault(row.secret, row.project)
        for name in names:
            if (row := self.hooks.row_for(name)) is not None:
                candidates.setdefault(row.secret, row.project)
        if self.config_secret:
            candidates[self.config_secret] = None
        if not candidates:
            log.warning("Refusing a GitHub delivery: no webhook secret is known for it")
            raise ApiError(ErrCode.BAD_TOKEN, "No webhook secret is configured for this repository on the bridge.")
        secret = await verify_off_loop(list(candidates), raw, sig256, sig1)
        if secret is None:
            log.warning(
                "Refusing GitHub delivery %s: %s", request.headers.get("X-GitHub-Delivery"),
                "bad signature" if sig256 or sig1 else "no signature",
            )
            raise ApiError(ErrCode.BAD_TOKEN, "The delivery's signature (X-Hub-Signature-256) is missing or wrong.")
        return candidates[secret]
