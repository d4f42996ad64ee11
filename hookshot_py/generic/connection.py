"""The generic webhook connection type (`uk.half-shot.matrix-hookshot.generic.hook`).

The hook's secret id never goes into room state: it lives in Postgres and, like hookshot, in the
bot's room account data (`{hookId: stateKey}`), so a wiped database is rebuilt from Matrix alone.
Static hooks (the config's `connections:`) use their state key as hook id, as in hookshot.

Beyond hookshot's fields, a hook may carry `displayName` and `avatarUrl` (its ghost user's
profile, set when the state changes, never per message) and `msgtype` (without a script).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hookshot_py.config import ConfigError, GenericConfig, StaticConnection
from hookshot_py.connections.base import Connection, ConnectionType, Outcome
from hookshot_py.db.database import Database
from hookshot_py.errors import ApiError, ErrCode, ValidationIssue
from hookshot_py.generic.expiry import ExpiryNotices, parse_expiry
from hookshot_py.generic.sandbox import JsSandbox
from hookshot_py.markdown import render_markdown
from hookshot_py.matrix.gateway import MatrixGateway
from hookshot_py.matrix.outbox import Outbox, OutgoingEvent
from hookshot_py.matrix.profiles import Profile, Profiles

log = logging.getLogger(__name__)

EVENT_TYPE = "uk.half-shot.matrix-hookshot.generic.hook"
LEGACY_EVENT_TYPE = "uk.half-shot.matrix-github.generic.hook"
ACCOUNT_DATA_TYPE = EVENT_TYPE
_KEPT_KEYS = (
    "name", "transformationFunction", "waitForComplete", "includeHookBody", "expirationDate",
    "displayName", "avatarUrl", "msgtype",
)  # fmt: skip
MSGTYPES = ("m.notice", "m.text", "m.emote")
MAX_DISPLAY_NAME = 256
_MXC = re.compile(r"mxc://[A-Za-z0-9.\-]+(?::[0-9]{1,5})?/[A-Za-z0-9_\-]+")
_GHOST_LOCALPART_DROP = re.compile(r"[^a-z0-9\-.=_]+")


def ghost_user_id(prefix: str, name: str, domain: str) -> str:
    """hookshot's per-hook user: the name lower-cased, without what a localpart can't hold."""
    localpart = _GHOST_LOCALPART_DROP.sub("", name.lower()) or "bot"
    return f"@{prefix}{localpart}:{domain}"


@dataclass(frozen=True)
class HookConfig:
    """A hook's state with the config's defaults applied."""

    name: str
    wait_for_complete: bool
    include_hook_body: bool
    expires_at: datetime | None
    transformation_function: str | None  # None also for ""
    msgtype: str = "m.notice"
    display_name: str | None = None
    avatar_url: str | None = None

    def expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or datetime.now(UTC))


class GenericHookType(ConnectionType[HookConfig]):
    type_name = "Webhook"
    event_type = EVENT_TYPE
    legacy_event_types = (LEGACY_EVENT_TYPE,)
    service = "generic"
    display_service = "webhook"

    def __init__(
        self,
        config: GenericConfig,
        db: Database,
        gateway: MatrixGateway,
        outbox: Outbox,
        profiles: Profiles,
        *,
        domain: str,
        sandbox: JsSandbox | None = None,
        static: list[StaticConnection] | None = None,
        expiry: ExpiryNotices | None = None,
    ) -> None:
        self.config = config
        self.db = db
        self.gateway = gateway
        self.outbox = outbox
        self.profiles = profiles
        self.domain = domain
        self.sandbox = sandbox  # None: transformation functions are off
        self.static = static or []
        self.expiry = expiry
        self._hook_ids: dict[str, str] = {}  # connection id → hook id
        self._by_hook: dict[str, Connection] = {}
        self._checked_scripts: dict[str, str] = {}  # connection id → the script last compiled
        self._tasks: set[asyncio.Task[None]] = set()

    # -- identity -----------------------------------------------------------------------------------

    def sender_for(self, conn: Connection) -> str | None:
        """The hook's own user (`generic.userIdPrefix`), or None: the bridge bot posts."""
        if not self.config.user_id_prefix:
            return None
        return ghost_user_id(self.config.user_id_prefix, self.config_of(conn).name, self.domain)

    def profile_for(self, conn: Connection) -> Profile:
        hook = self.config_of(conn)
        return (hook.display_name or f"{hook.name or conn.state_key}{self.config.displayname_suffix}", hook.avatar_url)

    async def _refresh_identity(self, conn: Connection) -> None:
        """Record the ghost's wanted profile and apply it now, in the background (not per message)."""
        sender = self.sender_for(conn)
        if sender is None:
            return
        if await self.profiles.want(sender, *self.profile_for(conn)):
            self._spawn(self.profiles.ensure_applied(sender), f"profile of {sender}")

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
            elif not self.config.allow_js_transformation_functions and transformation:
                if is_new:
                    raise ApiError(ErrCode.DISABLED_FEATURE, "Transformation functions are not allowed")
                issues.append(ValidationIssue(
                    "/transformationFunction",
                    "transformation functions are not allowed on this bridge "
                    "(generic.allowJsTransformationFunctions is off)",
                ))
        issues.extend(self._identity_issues(state, is_new=is_new))
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
        if normalized.get("transformationFunction") == "":
            del normalized["transformationFunction"]  # hookshot: `transformationFunction || undefined`
        return normalized, issues

    def _identity_issues(self, state: dict[str, Any], *, is_new: bool) -> list[ValidationIssue]:
        issues: list[ValidationIssue] = []
        name, avatar, msgtype = state.get("displayName"), state.get("avatarUrl"), state.get("msgtype")
        if name is not None and (not isinstance(name, str) or not 1 <= len(name.strip()) <= MAX_DISPLAY_NAME):
            issues.append(ValidationIssue("/displayName", f"must be a string of 1 to {MAX_DISPLAY_NAME} characters"))
        if avatar is not None and (not isinstance(avatar, str) or not _MXC.fullmatch(avatar)):
            issues.append(ValidationIssue("/avatarUrl", "must be an mxc:// URI (upload the image to Matrix first)"))
        if msgtype is not None and msgtype not in MSGTYPES:
            issues.append(ValidationIssue("/msgtype", f"must be one of {', '.join(MSGTYPES)}"))
        if is_new and (name is not None or avatar is not None) and not self.config.user_id_prefix:
            issues.append(ValidationIssue(
                "/displayName" if name is not None else "/avatarUrl",
                "needs generic.userIdPrefix in the bridge config: without it webhooks post as the bridge bot",
            ))
        return issues

    def state_key(self, state: dict[str, Any]) -> str:
        return str(state["name"])

    def parse(self, state: dict[str, Any]) -> HookConfig:
        expiry = state.get("expirationDate")
        wait, include = state.get("waitForComplete"), state.get("includeHookBody")
        script, msgtype = state.get("transformationFunction"), state.get("msgtype")
        name, avatar = state.get("displayName"), state.get("avatarUrl")
        return HookConfig(
            name=str(state.get("name", "")),
            wait_for_complete=wait if isinstance(wait, bool) else self.config.wait_for_complete,
            include_hook_body=include if isinstance(include, bool) else self.config.include_hook_body,
            expires_at=parse_expiry(expiry) if isinstance(expiry, str) else None,
            transformation_function=script if isinstance(script, str) and script else None,
            msgtype=msgtype if msgtype in MSGTYPES else "m.notice",
            display_name=name if isinstance(name, str) and name.strip() else None,
            avatar_url=avatar if isinstance(avatar, str) else None,
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

    def static_connections(self) -> list[Connection]:
        out = []
        for i, declared in enumerate(self.static):
            normalized, issues = self.validate(declared.state, existing=None, is_new=False)
            if issues:
                problems = "; ".join(f"{issue.path}: {issue.message}" for issue in issues)
                raise ConfigError(f"connections[{i}].state", f"connection state did not validate: {problems}")
            normalized.setdefault("name", declared.state_key)
            out.append(Connection(declared.room_id, EVENT_TYPE, declared.state_key, normalized, static=True))
        return out

    async def start(self, conns: list[Connection]) -> None:
        if self.sandbox is not None:
            await self.sandbox.start()
        rows = await self.db.fetch("SELECT hook_id, room_id, state_key FROM generic_hooks")
        ids = {(r["room_id"], r["state_key"]): r["hook_id"] for r in rows}
        for conn in conns:
            script = conn.state.get("transformationFunction")
            if isinstance(script, str):
                self._checked_scripts[conn.id] = script  # checked when it was set
            if conn.static:
                continue
            hook_id = ids.get((conn.room_id, conn.state_key))
            if hook_id is None:
                await self.on_loaded(conn)
            else:
                self._index(conn, hook_id)
        for conn in conns:
            if conn.static:  # last, so a static hook id wins
                self._index(conn, conn.state_key)
        wanted = {s: self.profile_for(c) for c in conns if (s := self.sender_for(c)) is not None}
        await self.profiles.want_many(wanted)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.sandbox is not None:
            await self.sandbox.stop()

    async def prepare(self, conn: Connection, *, existing: Connection | None, user_id: str | None) -> Outcome:
        script = conn.state.get("transformationFunction")
        if isinstance(script, str) and self._checked_scripts.get(conn.id) != script:
            await self._refuse_broken_script(script)
        if existing is None:
            # A fresh secret for every new hook, even if one of that name existed before.
            await self._store(conn, str(uuid.uuid4()))
        if isinstance(script, str):
            self._checked_scripts[conn.id] = script
        if self.expiry is not None and conn.state.get("expirationDate") != (existing.state if existing else {}).get(
            "expirationDate"
        ):
            await self.expiry.on_expiry_set(conn)
        return Outcome(secrets=self.secrets(conn) or {})

    async def _refuse_broken_script(self, script: str) -> None:
        assert self.sandbox is not None, "validate() refuses scripts when they are off"
        error = await self.sandbox.compile_error(script)
        if error is not None:
            raise ApiError(
                ErrCode.BAD_VALUE,
                f"Could not compile transformation function: {error}",
                {"validationErrors": [{"path": "/transformationFunction", "message": error}]},
            )

    async def _check_edited_script(self, conn: Connection, script: str) -> None:
        """A script set by editing the room state: say so in the room if it does not compile."""
        assert self.sandbox is not None
        error = await self.sandbox.compile_error(script)
        if error is None:
            return
        name = conn.state.get("name", conn.state_key)
        text = f"Could not compile the transformation function of webhook **{name}**:\n\n```\n{error}\n```"
        content = {"msgtype": "m.notice", "body": text, "format": "org.matrix.custom.html",
                   "formatted_body": render_markdown(text)}
        # Once per script: not again from every bridge process, nor after each restart.
        digest = hashlib.sha256(script.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        await self.outbox.enqueue([OutgoingEvent(conn.room_id, content, dedupe_key=f"script:{conn.id}:{digest}")])

    def _spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> None:
        async def guarded() -> None:
            try:
                await coro
            except Exception as e:
                log.warning("Updating %s failed: %s", what, e)

        task = asyncio.create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def on_loaded(self, conn: Connection) -> None:
        await self._refresh_identity(conn)
        script = conn.state.get("transformationFunction")
        if isinstance(script, str) and self.sandbox is not None and self._checked_scripts.get(conn.id) != script:
            self._checked_scripts[conn.id] = script
            self._spawn(self._check_edited_script(conn, script), f"the script check of {conn.state_key}")
        if conn.static:
            self._index(conn, conn.state_key)
            return
        if conn.id in self._hook_ids:
            self._index(conn, self._hook_ids[conn.id])
            return
        hook_id = await self._stored_id(conn)
        if hook_id is None:
            hook_id = await self._claim(conn, await self._from_account_data(conn))
        await self._store(conn, hook_id)

    async def _stored_id(self, conn: Connection) -> str | None:
        hook_id = await self.db.fetchval(
            "SELECT hook_id FROM generic_hooks WHERE room_id = $1 AND state_key = $2",
            conn.room_id, conn.state_key,
        )
        return None if hook_id is None else str(hook_id)

    async def _claim(self, conn: Connection, candidate: str | None) -> str:
        """The webhook's id, stored if nobody has yet. Another process loading the same room at the
        same moment may store first: its id wins, so every process answers on the same URL."""
        for _ in range(3):
            if candidate is None:
                candidate = str(uuid.uuid4())
                log.info("Webhook %s in %s had no id yet; generated one", conn.state_key, conn.room_id)
            await self.db.execute(
                "INSERT INTO generic_hooks (hook_id, room_id, state_key) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                candidate, conn.room_id, conn.state_key,
            )
            stored = await self._stored_id(conn)
            if stored is not None:
                return stored
            candidate = None  # the id belongs to another webhook (stale account data): make a new one
        raise RuntimeError(f"could not store an id for webhook {conn.state_key} in {conn.room_id}")

    async def on_unloaded(self, conn: Connection) -> None:
        self._checked_scripts.pop(conn.id, None)
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
