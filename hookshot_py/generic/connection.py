"""The generic webhook connection type (`uk.half-shot.matrix-hookshot.generic.hook`).

The hook's secret id never goes into room state: it lives in Postgres and, like hookshot, in the
bot's room account data (`{hookId: stateKey}`), so a wiped database is rebuilt from Matrix alone.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hookshot_py.config import GenericConfig
from hookshot_py.connections.base import Connection, ConnectionType, Outcome
from hookshot_py.db.database import Database
from hookshot_py.errors import ApiError, ErrCode, ValidationIssue
from hookshot_py.matrix.gateway import MatrixGateway

log = logging.getLogger(__name__)

EVENT_TYPE = "uk.half-shot.matrix-hookshot.generic.hook"
LEGACY_EVENT_TYPE = "uk.half-shot.matrix-github.generic.hook"
ACCOUNT_DATA_TYPE = EVENT_TYPE
_KEPT_KEYS = ("name", "transformationFunction", "waitForComplete", "includeHookBody", "expirationDate")


def parse_expiry(value: str) -> datetime | None:
    """hookshot's `yyyy-MM-dd'T'HH:mm:ss.SSSXX`; any ISO 8601 time with a zone is accepted."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


@dataclass(frozen=True)
class HookConfig:
    """A hook's state with the config's defaults applied."""

    name: str
    wait_for_complete: bool
    include_hook_body: bool
    expires_at: datetime | None
    transformation_function: str | None

    def expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or datetime.now(UTC))


class GenericHookType(ConnectionType[HookConfig]):
    type_name = "Webhook"
    event_type = EVENT_TYPE
    legacy_event_types = (LEGACY_EVENT_TYPE,)
    service = "generic"
    display_service = "webhook"

    def __init__(self, config: GenericConfig, db: Database, gateway: MatrixGateway) -> None:
        self.config = config
        self.db = db
        self.gateway = gateway
        self._hook_ids: dict[str, str] = {}  # connection id → hook id
        self._by_hook: dict[str, Connection] = {}

    # -- state --------------------------------------------------------------------------------------

    def validate(
        self, state: dict[str, Any], *, existing: Connection | None, is_new: bool
    ) -> tuple[dict[str, Any], list[ValidationIssue]]:
        issues: list[ValidationIssue] = []
        name = state.get("name")
        if not isinstance(name, str):
            issues.append(ValidationIssue("/name", "is required and must be a string"))
        elif not 3 <= len(name) <= 64:
            issues.append(ValidationIssue("/name", "must be between 3 and 64 characters long"))
        for key in ("waitForComplete", "includeHookBody"):
            if key in state and state[key] is not None and not isinstance(state[key], bool):
                issues.append(ValidationIssue(f"/{key}", "must be a boolean"))
        transformation = state.get("transformationFunction")
        if transformation is not None:
            if not isinstance(transformation, str):
                issues.append(ValidationIssue("/transformationFunction", "must be a string"))
            elif is_new:
                raise ApiError(
                    ErrCode.DISABLED_FEATURE,
                    "Transformation functions are not supported by this bridge.",
                )
        expiry = state.get("expirationDate")
        if expiry is not None:
            parsed = parse_expiry(expiry) if isinstance(expiry, str) else None
            if parsed is None:
                issues.append(
                    ValidationIssue("/expirationDate", "must be an ISO 8601 date-time with a time zone")
                )
            elif is_new and (existing is None or existing.state.get("expirationDate") != expiry):
                now = datetime.now(UTC)
                if parsed < now + timedelta(hours=1):
                    issues.append(ValidationIssue("/expirationDate", "must be at least one hour in the future"))
                max_ms = self.config.max_expiry_time
                if max_ms is not None and parsed > now + timedelta(milliseconds=max_ms):
                    issues.append(
                        ValidationIssue("/expirationDate", f"must be at most {max_ms // 3_600_000} hours away")
                    )
        elif is_new and self.config.require_expiry_time:
            issues.append(ValidationIssue("/expirationDate", "is required on this bridge"))
        normalized = {k: state[k] for k in _KEPT_KEYS if k in state and state[k] is not None}
        return normalized, issues

    def state_key(self, state: dict[str, Any]) -> str:
        return str(state["name"])

    def parse(self, state: dict[str, Any]) -> HookConfig:
        expiry = state.get("expirationDate")
        wait, include = state.get("waitForComplete"), state.get("includeHookBody")
        script = state.get("transformationFunction")
        return HookConfig(
            name=str(state.get("name", "")),
            wait_for_complete=wait if isinstance(wait, bool) else self.config.wait_for_complete,
            include_hook_body=include if isinstance(include, bool) else self.config.include_hook_body,
            expires_at=parse_expiry(expiry) if isinstance(expiry, str) else None,
            transformation_function=script if isinstance(script, str) else None,
        )

    # -- hook ids -----------------------------------------------------------------------------------

    def url_for(self, hook_id: str) -> str:
        prefix = self.config.url_prefix
        return f"{prefix}{'' if prefix.endswith('/') else '/'}{hook_id}"

    def hook_id(self, conn: Connection) -> str | None:
        return self._hook_ids.get(conn.id)

    def connection_for_hook(self, hook_id: str) -> Connection | None:
        return self._by_hook.get(hook_id)

    def secrets(self, conn: Connection) -> dict[str, Any] | None:
        hook_id = self._hook_ids.get(conn.id)
        if hook_id is None:
            return None
        out: dict[str, Any] = {"hookId": hook_id, "url": self.url_for(hook_id)}
        expiry = conn.state.get("expirationDate")
        if isinstance(expiry, str) and (parsed := parse_expiry(expiry)) is not None:
            out["timeRemainingMs"] = max(0, int((parsed - datetime.now(UTC)).total_seconds() * 1000))
        return out

    async def start(self, conns: list[Connection]) -> None:
        rows = await self.db.fetch("SELECT hook_id, room_id, state_key FROM generic_hooks")
        ids = {(r["room_id"], r["state_key"]): r["hook_id"] for r in rows}
        for conn in conns:
            hook_id = ids.get((conn.room_id, conn.state_key))
            if hook_id is None:
                await self.on_loaded(conn)
            else:
                self._index(conn, hook_id)

    async def prepare(self, conn: Connection, *, existing: Connection | None, user_id: str | None) -> Outcome:
        if existing is None:
            # A fresh secret for every new hook, even if one of that name existed before.
            await self._store(conn, str(uuid.uuid4()))
        return Outcome(secrets=self.secrets(conn) or {})

    async def on_loaded(self, conn: Connection) -> None:
        if conn.id in self._hook_ids:
            self._index(conn, self._hook_ids[conn.id])
            return
        hook_id = await self.db.fetchval(
            "SELECT hook_id FROM generic_hooks WHERE room_id = $1 AND state_key = $2",
            conn.room_id, conn.state_key,
        )
        if hook_id is None:
            hook_id = await self._from_account_data(conn)
        if hook_id is None:
            hook_id = str(uuid.uuid4())
            log.info("Webhook %s in %s had no id yet; generated one", conn.state_key, conn.room_id)
        await self._store(conn, str(hook_id))

    async def on_unloaded(self, conn: Connection) -> None:
        hook_id = self._hook_ids.pop(conn.id, None)
        if hook_id is not None:
            self._by_hook.pop(hook_id, None)

    async def on_removed(self, conn: Connection, *, user_id: str | None) -> list[str]:
        try:
            await self.db.execute(
                "DELETE FROM generic_hooks WHERE room_id = $1 AND state_key = $2",
                conn.room_id, conn.state_key,
            )
            data = await self.gateway.room_account_data(conn.room_id, ACCOUNT_DATA_TYPE) or {}
            remaining = {k: v for k, v in data.items() if v != conn.state_key}
            if remaining != data:
                await self.gateway.set_room_account_data(conn.room_id, ACCOUNT_DATA_TYPE, remaining)
        except Exception as e:
            log.warning("Cleaning up webhook %s in %s failed: %s", conn.state_key, conn.room_id, e)
            return [f"The webhook's secret could not be fully cleaned up: {e}"]
        return []

    async def _from_account_data(self, conn: Connection) -> str | None:
        try:
            data = await self.gateway.room_account_data(conn.room_id, ACCOUNT_DATA_TYPE) or {}
        except Exception as e:
            log.warning("Could not read webhook ids of %s from account data: %s", conn.room_id, e)
            return None
        for hook_id, state_key in data.items():
            if state_key == conn.state_key and hook_id not in self._by_hook:
                return hook_id
        return None

    async def _store(self, conn: Connection, hook_id: str) -> None:
        await self.db.execute(
            """
            INSERT INTO generic_hooks (hook_id, room_id, state_key) VALUES ($1, $2, $3)
            ON CONFLICT (room_id, state_key) DO UPDATE SET hook_id = EXCLUDED.hook_id, created_at = now()
            """,
            hook_id, conn.room_id, conn.state_key,
        )
        old = self._hook_ids.get(conn.id)
        if old is not None and old != hook_id:
            self._by_hook.pop(old, None)
        self._index(conn, hook_id)
        try:
            data = await self.gateway.room_account_data(conn.room_id, ACCOUNT_DATA_TYPE) or {}
            data = {k: v for k, v in data.items() if v != conn.state_key}
            data[hook_id] = conn.state_key
            await self.gateway.set_room_account_data(conn.room_id, ACCOUNT_DATA_TYPE, data)
        except Exception as e:  # the database has it; account data is the backup copy
            log.warning("Could not back up webhook id of %s to account data: %s", conn.state_key, e)

    def _index(self, conn: Connection, hook_id: str) -> None:
        self._hook_ids[conn.id] = hook_id
        self._by_hook[hook_id] = conn
