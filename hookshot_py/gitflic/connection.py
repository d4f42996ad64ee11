"""The GitFlic project connection type (`uk.half-shot.matrix-hookshot.gitflic.project`).

State (key `owner/project`): `ownerAlias`, `projectAlias`, `instance` (a key of
`gitflic.instances`), `events` (subscription flags of seed 002) and `commandPrefix`. The
project's webhook is shared by every room connected to it: `prepare` and `on_removed` keep it
subscribed to the union of the rooms' events (see hooks.py), and each room filters deliveries
by its own events.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

from hookshot_py.commands.registry import CommandRegistry, commands_of
from hookshot_py.config import GitFlicConfig
from hookshot_py.connections.base import Connection, ConnectionType, Outcome
from hookshot_py.connections.manager import ConnectionManager
from hookshot_py.connections.validation import command_prefix, unknown_fields
from hookshot_py.errors import ApiError, ValidationIssue
from hookshot_py.gitflic.commands import ProjectCommands
from hookshot_py.gitflic.hooks import ProjectHooks, ordered_events
from hookshot_py.gitflic.models import DEFAULT_EVENTS, SUBSCRIPTION_FLAGS, validate_events
from hookshot_py.gitflic.project import (
    DEFAULT_PREFIX,
    EVENT_TYPE,
    ProjectRef,
    events_of,
    is_alias,
    project_key,
    ref_of,
)

__all__ = ["EVENT_TYPE", "GitFlicProjectType", "events_of", "ref_of"]

log = logging.getLogger(__name__)

_FIELDS = ("ownerAlias", "projectAlias", "instance", "events", "commandPrefix")


class GitFlicProjectType(ConnectionType[ProjectRef]):
    type_name = "GitFlicProject"
    event_type = EVENT_TYPE
    service = "gitflic"
    display_service = "gitflic"
    service_label = "GitFlic"
    default_command_prefix = DEFAULT_PREFIX

    def __init__(self, config: GitFlicConfig, hooks: ProjectHooks, manager: ConnectionManager) -> None:
        self.config = config
        self.hooks = hooks
        self.manager = manager
        self.commands = CommandRegistry(commands_of(ProjectCommands(hooks)))
        # Events of connections being created: not in the manager's index until their state is
        # written, yet another room's change to the same hook must not drop them.
        self._pending: dict[str, tuple[tuple[str, str], list[str]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- state --------------------------------------------------------------------------------------

    def validate(
        self, state: dict[str, Any], *, existing: Connection | None, is_new: bool
    ) -> tuple[dict[str, Any], list[ValidationIssue]]:
        issues: list[ValidationIssue] = []
        if is_new:
            issues += unknown_fields(state, _FIELDS)
        for name in ("ownerAlias", "projectAlias"):
            value = state.get(name)
            if value is None:
                issues.append(ValidationIssue(f"/{name}", "is required"))
            elif not is_alias(value):
                issues.append(
                    ValidationIssue(f"/{name}", "must be a GitFlic alias (letters, digits, '-', '_' and '.')")
                )
        instance = state.get("instance", self.config.default_instance)
        if not isinstance(instance, str) or instance not in self.config.instances:
            issues.append(
                ValidationIssue(
                    "/instance", f"must be a configured GitFlic instance: {', '.join(self.config.instances)}"
                )
            )
        elif existing is not None and existing.state.get("instance") not in (None, instance):
            issues.append(
                ValidationIssue("/instance", "cannot be changed; remove the connection and create a new one")
            )
        events: Any = state.get("events", list(DEFAULT_EVENTS))
        if is_new:
            issues += validate_events(events)
        elif isinstance(events, list):
            # State written by hand or by another bridge: keep what we understand.
            events = [flag for flag in SUBSCRIPTION_FLAGS if flag in events]
        else:
            events = list(DEFAULT_EVENTS)
        prefix, prefix_issues = command_prefix(state, DEFAULT_PREFIX)
        issues += prefix_issues
        normalized = {
            "ownerAlias": state.get("ownerAlias"),
            "projectAlias": state.get("projectAlias"),
            "instance": instance,
            "events": events,
            "commandPrefix": prefix,
        }
        return normalized, issues

    def state_key(self, state: dict[str, Any]) -> str:
        return f"{state['ownerAlias']}/{state['projectAlias']}"

    def parse(self, state: dict[str, Any]) -> ProjectRef:
        owner, project = state.get("ownerAlias"), state.get("projectAlias")
        if not isinstance(owner, str) or not isinstance(project, str):
            raise ValueError("a GitFlic project connection needs `ownerAlias` and `projectAlias`")
        return ProjectRef(str(state.get("instance", "")), owner, project)

    # -- the project's hook ---------------------------------------------------------------------------

    def _same_project(self, ref: ProjectRef) -> Iterator[Connection]:
        key = project_key(ref.owner, ref.project)
        for conn in self.manager.all(EVENT_TYPE):
            other = ref_of(conn)
            if other.instance == ref.instance and project_key(other.owner, other.project) == key:
                yield conn

    def _pending_events(self, ref: ProjectRef, exclude: str) -> list[list[str]]:
        wanted = (ref.instance, project_key(ref.owner, ref.project))
        return [events for cid, (where, events) in self._pending.items() if where == wanted and cid != exclude]

    async def prepare(self, conn: Connection, *, existing: Connection | None, user_id: str | None) -> Outcome:
        ref = ref_of(conn)
        async with self.hooks.lock(ref.instance, project_key(ref.owner, ref.project)):
            others = [events_of(c) for c in self._same_project(ref) if c.id != conn.id]
            others += self._pending_events(ref, conn.id)
            union = [e for events in [*others, events_of(conn)] for e in events]
            result = await self.hooks.sync(ref, union, user_id)
            self._pending[conn.id] = ((ref.instance, project_key(ref.owner, ref.project)), events_of(conn))
        record = result.record
        secrets: dict[str, Any] = {
            "webhookUrl": record.url or None,
            "webhookSecret": record.secret,
            "webhookEvents": list(record.events),
            "registered": record.managed and result.manual is None,
        }
        warnings = list(result.notes)
        if result.manual:
            secrets["manualSetup"] = result.manual
            warnings.append(result.manual)
        return Outcome(secrets=secrets, warnings=warnings)

    async def start(self, conns: list[Connection]) -> None:
        await self.hooks.store.load()

    async def on_loaded(self, conn: Connection) -> None:
        """Also gives a connection written into room state by hand a secret, so that the webhook
        entered by hand can be verified (the secret is shown by the provisioning API)."""
        self._pending.pop(conn.id, None)
        ref = ref_of(conn)
        if ref.instance not in self.config.instances:
            return
        key = project_key(ref.owner, ref.project)
        async with self.hooks.lock(ref.instance, key):
            same = [c for c in self._same_project(ref) if c.id != conn.id] + [conn]
            union = ordered_events(e for c in same for e in events_of(c))
            record = self.hooks.store.get(ref.instance, key)
            if record is None:
                await self.hooks.remember(ref, union)
            elif record.managed and record.events != union:
                # `events` edited in room state by hand: follow with the bridge's token, in the
                # background (the manager holds the room's lock while calling us).
                task = asyncio.create_task(self._follow_room_state(ref))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop webhook updates still running in the background."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _follow_room_state(self, ref: ProjectRef) -> None:
        async with self.hooks.lock(ref.instance, project_key(ref.owner, ref.project)):
            union = [e for c in self._same_project(ref) for e in events_of(c)]
            union += [e for events in self._pending_events(ref, "") for e in events]
            try:
                result = await self.hooks.sync(ref, union, None)
            except ApiError as e:
                log.warning("Could not update the GitFlic webhook of %s to edited room state: %s", ref.key, e.error)
                return
        if result.manual:
            log.warning("The GitFlic webhook of %s needs updating by hand: no bridge-wide token", ref.key)

    async def on_removed(self, conn: Connection, *, user_id: str | None) -> list[str]:
        self._pending.pop(conn.id, None)
        ref = ref_of(conn)
        if ref.instance not in self.config.instances:
            return [f"The GitFlic instance {ref.instance!r} is no longer configured: its webhook was left alone."]
        try:
            async with self.hooks.lock(ref.instance, project_key(ref.owner, ref.project)):
                remaining = [events_of(c) for c in self._same_project(ref)] + self._pending_events(ref, conn.id)
                return await self.hooks.release(ref, remaining, user_id)
        except Exception as e:  # must not raise: the connection is gone either way
            log.exception("Cleaning up the GitFlic webhook of %s failed", conn.state_key)
            return [f"Could not clean up the GitFlic webhook of {conn.state_key}: {e}"]

    def secrets(self, conn: Connection) -> dict[str, Any] | None:
        ref = ref_of(conn)
        record = self.hooks.store.get(ref.instance, project_key(ref.owner, ref.project))
        if record is None:
            return None
        return {
            "webhookUrl": record.url or None,
            "webhookSecret": record.secret,
            "webhookId": record.hook_id,
            "webhookEvents": list(record.events),
        }
