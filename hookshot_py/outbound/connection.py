"""The outbound webhook connection type (`uk.half-shot.matrix-hookshot.outbound-hook`).

State as hookshot has it: `name` (3–64 characters, the state key), `url` (http or https) and
`method` (`PUT` or `POST`, default `PUT`); other keys are dropped. The URL must pass the
outbound-URL guard: a literal internal address is refused in any state, and a URL set through the
bridge (command, API) is also resolved and refused when its host resolves only to internal
addresses. The token (`hs-ob-<uuid>`) is never in room state: see `tokens.py`.

The type wants room events: each non-state event from someone other than the bridge's users is
queued in Postgres (in the homeserver's transaction) and the sender is woken to deliver it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from yarl import URL

from hookshot_py.connections.base import Connection, ConnectionType, Outcome
from hookshot_py.errors import ApiError, ErrCode, ValidationIssue
from hookshot_py.matrix.gateway import MatrixGateway
from hookshot_py.net.guard import BlockedUrl, UrlPolicy, check_url_resolved
from hookshot_py.outbound.queue import MAX_PENDING, OutboundQueue
from hookshot_py.outbound.tokens import HookshotTokenCodec, account_data_type, new_token

log = logging.getLogger(__name__)

EVENT_TYPE = "uk.half-shot.matrix-hookshot.outbound-hook"
METHODS = ("PUT", "POST")
MAX_URL_LENGTH = 2048


@dataclass(frozen=True)
class OutboundHookConfig:
    name: str
    url: str
    method: str


class OutboundHookType(ConnectionType[OutboundHookConfig]):
    # hookshot calls this type "Webhook" too; the name must be unique here (connectiontypes,
    # metrics), and clients tell the two apart by eventType and service, which match hookshot.
    type_name = "OutboundWebhook"
    event_type = EVENT_TYPE
    service = "generic"  # permissions: hookshot checks the generic service for `outbound-hook`
    display_service = "genericOutbound"
    service_label = "outbound webhooks"
    wants_room_events = True

    def __init__(
        self,
        queue: OutboundQueue,
        codec: HookshotTokenCodec | None,
        gateway: MatrixGateway,
        policy: UrlPolicy,
        wake: Callable[[], None],
    ) -> None:
        self.queue = queue
        self.codec = codec  # None: no passFile, so no copy of tokens in hookshot's account data
        self.gateway = gateway
        self.policy = policy
        self.wake = wake
        self._tokens: dict[str, str] = {}  # connection id → token
        self._targets: dict[str, tuple[str, str]] = {}  # connection id → (url, method) stored

    # -- state --------------------------------------------------------------------------------------

    def validate(
        self, state: dict[str, Any], *, existing: Connection | None, is_new: bool
    ) -> tuple[dict[str, Any], list[ValidationIssue]]:
        issues: list[ValidationIssue] = []
        name, url, method = state.get("name"), state.get("url"), state.get("method", "PUT")
        if not isinstance(name, str):
            issues.append(ValidationIssue("/name", "A webhook name must be a string."))
        elif is_new and not 3 <= len(name) <= 64:
            issues.append(ValidationIssue("/name", "A webhook name must be between 3-64 characters."))
        if not isinstance(url, str):
            issues.append(ValidationIssue("/url", "Outbound URL must be a string"))
        elif len(url) > MAX_URL_LENGTH:
            issues.append(ValidationIssue("/url", f"Outbound URL must be at most {MAX_URL_LENGTH} characters"))
        else:
            issues.extend(self._url_issues(url))
        if method is None:
            method = "PUT"
        if method not in METHODS:
            issues.append(ValidationIssue("/method", "Outbound Method must be one of PUT,POST"))
        return {"name": name, "url": url, "method": method}, issues

    def _url_issues(self, url: str) -> list[ValidationIssue]:
        try:
            parsed = URL(url)
        except (ValueError, TypeError):
            return [ValidationIssue("/url", "Outbound URL is invalid")]
        if parsed.scheme not in ("http", "https") or not parsed.raw_host:
            return [ValidationIssue("/url", "Outbound URL protocol must be http or https")]
        try:
            self.policy.check_url(parsed)
        except BlockedUrl as e:
            return [ValidationIssue("/url", f"Outbound URL is not allowed: {e.reason}")]
        return []

    def state_key(self, state: dict[str, Any]) -> str:
        return str(state["name"])

    def parse(self, state: dict[str, Any]) -> OutboundHookConfig:
        return OutboundHookConfig(str(state.get("name", "")), str(state["url"]), str(state.get("method") or "PUT"))

    def label(self, conn: Connection) -> str:
        return conn.state.get("name") or conn.state_key

    def secrets(self, conn: Connection) -> dict[str, Any] | None:
        token = self._tokens.get(conn.id)
        return {"token": token} if token else None

    # -- lifecycle ----------------------------------------------------------------------------------

    async def prepare(self, conn: Connection, *, existing: Connection | None, user_id: str | None) -> Outcome:
        hook = self.config_of(conn)
        if existing is None or self.config_of(existing).url != hook.url:
            try:
                await check_url_resolved(self.policy, hook.url)
            except BlockedUrl as e:
                raise ApiError(
                    ErrCode.BAD_VALUE,
                    f"Outbound URL is not allowed: {e.reason}",
                    {"validationErrors": [{"path": "/url", "message": e.reason}]},
                ) from e
        if existing is None:
            # A fresh token for every new hook, even if one of that name existed before.
            await self._save(conn, new_token(), backup=True)
        return Outcome(secrets=self.secrets(conn) or {})

    async def start(self, conns: list[Connection]) -> None:
        tokens = await self.queue.tokens([c.id for c in conns])
        for conn in conns:
            if conn.id in tokens:
                self._tokens[conn.id] = tokens[conn.id]
        for conn in conns:
            await self.on_loaded(conn)

    async def on_loaded(self, conn: Connection) -> None:
        hook = self.config_of(conn)
        if conn.id in self._tokens:
            if self._targets.get(conn.id) != (hook.url, hook.method):
                await self._save(conn, None)
            return
        stored = await self.queue.tokens([conn.id])
        if conn.id in stored:
            self._tokens[conn.id] = stored[conn.id]
            await self._save(conn, None)
            return
        adopted = await self._from_account_data(conn)
        if adopted is not None:
            log.info("Outbound hook %s in %s: adopted hookshot's token from account data", conn.state_key, conn.room_id)
            await self._save(conn, adopted, replace=False)
            return
        log.warning("Outbound hook %s in %s had no token; generated one (see the provisioning API's secrets)",
                    conn.state_key, conn.room_id)
        await self._save(conn, new_token(), backup=True, replace=False)

    async def on_unloaded(self, conn: Connection) -> None:
        self._tokens.pop(conn.id, None)
        self._targets.pop(conn.id, None)

    async def on_removed(self, conn: Connection, *, user_id: str | None) -> list[str]:
        self._tokens.pop(conn.id, None)
        self._targets.pop(conn.id, None)
        try:
            await self.queue.remove_hook(conn.id)
            await self.gateway.set_account_data(account_data_type(conn.room_id, conn.state_key), {"deleted": True})
        except Exception as e:
            log.warning("Cleaning up outbound hook %s in %s failed: %s", conn.state_key, conn.room_id, e)
            return [f"The outbound webhook's token could not be fully cleaned up: {e}"]
        return []

    async def on_room_event(self, conn: Connection, event: dict[str, Any]) -> None:
        if not isinstance(event.get("event_id"), str):
            return
        if await self.queue.enqueue(conn.id, event):
            self.wake()
        elif await self.queue.pending(conn.id) >= MAX_PENDING:
            log.error("Outbound hook %s in %s has %d events waiting: dropped %s",
                      conn.state_key, conn.room_id, MAX_PENDING, event["event_id"])

    # -- the token ----------------------------------------------------------------------------------

    async def _save(self, conn: Connection, token: str | None, *, backup: bool = False, replace: bool = True) -> None:
        """Store the hook's row (the token only when given; see `OutboundQueue.save_hook` for
        `replace`) and, with `backup`, hookshot's copy of the token."""
        hook = self.config_of(conn)
        stored = await self.queue.save_hook(
            conn.id, conn.room_id, conn.state_key, hook.url, hook.method, token, replace=replace
        )
        self._targets[conn.id] = (hook.url, hook.method)
        if stored is None:
            return
        self._tokens[conn.id] = stored
        if backup and stored == token and self.codec is not None:
            try:
                await self.gateway.set_account_data(
                    account_data_type(conn.room_id, conn.state_key), self.codec.encrypt(stored)
                )
            except Exception as e:  # Postgres has it; account data is the backup copy
                log.warning("Could not back up the token of outbound hook %s to account data: %s", conn.state_key, e)

    async def _from_account_data(self, conn: Connection) -> str | None:
        if self.codec is None:
            return None
        try:
            stored = await self.gateway.account_data(account_data_type(conn.room_id, conn.state_key))
        except Exception as e:
            log.warning("Could not read the token of outbound hook %s from account data: %s", conn.state_key, e)
            return None
        return self.codec.decrypt(stored) if stored else None
