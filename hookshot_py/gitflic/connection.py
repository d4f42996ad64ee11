"""The GitFlic project connection type (`uk.half-shot.matrix-hookshot.gitflic.project`).

State (key `owner/project`): `ownerAlias`, `projectAlias`, `instance` (a key of
`gitflic.instances`), `events` (subscription flags of seed 002) and `commandPrefix`. The
project's webhook is shared by every room connected to it: the shared hook policy keeps it
subscribed to the union of the rooms' events (`forges/connection.py`, `hooks.py`), and each
room filters deliveries by its own events.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from hookshot_py.commands.registry import CommandRegistry, commands_of
from hookshot_py.config import GitFlicConfig
from hookshot_py.connections.base import Connection, Outcome
from hookshot_py.connections.validation import command_prefix, unknown_fields
from hookshot_py.errors import ValidationIssue
from hookshot_py.forges.connection import ForgeConnectionType
from hookshot_py.forges.policy import HookChange
from hookshot_py.gitflic.commands import ProjectCommands
from hookshot_py.gitflic.hooks import GitFlicProjectHooks
from hookshot_py.gitflic.models import (
    DEFAULT_EVENTS,
    DEFAULT_PREFIX,
    EVENT_TYPE,
    SUBSCRIPTION_FLAGS,
    ProjectRef,
    is_alias,
    validate_events,
)

__all__ = ["DEFAULT_PREFIX", "EVENT_TYPE", "GitFlicProjectType", "ProjectConfig", "events_of"]

log = logging.getLogger(__name__)

_FIELDS = ("ownerAlias", "projectAlias", "instance", "events", "commandPrefix")


@dataclass(frozen=True)
class ProjectConfig:
    """A GitFlic connection's typed state, parsed once per state change."""

    ref: ProjectRef
    events: frozenset[str]


def events_of(conn: Connection) -> list[str]:
    return _events(conn.state)


def _events(state: dict[str, Any]) -> list[str]:
    events = state.get("events")
    return [e for e in events if isinstance(e, str)] if isinstance(events, list) else list(DEFAULT_EVENTS)


class GitFlicProjectType(ForgeConnectionType[ProjectConfig, ProjectRef]):
    type_name = "GitFlicProject"
    event_type = EVENT_TYPE
    service = "gitflic"
    display_service = "gitflic"
    service_label = "GitFlic"
    default_command_prefix = DEFAULT_PREFIX

    hooks: GitFlicProjectHooks

    def __init__(self, config: GitFlicConfig, hooks: GitFlicProjectHooks) -> None:
        super().__init__(hooks)
        self.config = config
        self.commands = CommandRegistry(commands_of(ProjectCommands(config, hooks, self.ref)))

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

    def parse(self, state: dict[str, Any]) -> ProjectConfig:
        owner, project = state.get("ownerAlias"), state.get("projectAlias")
        if not isinstance(owner, str) or not isinstance(project, str):
            raise ValueError("a GitFlic project connection needs `ownerAlias` and `projectAlias`")
        return ProjectConfig(ProjectRef(str(state.get("instance", "")), owner, project), frozenset(_events(state)))

    # -- the project's hook -------------------------------------------------------------------------

    def ref(self, conn: Connection) -> ProjectRef:
        return self.config_of(conn).ref

    def hook_events(self, conn: Connection) -> frozenset[str]:
        return self.config_of(conn).events

    def outcome(self, conn: Connection, change: HookChange) -> Outcome:
        row = change.row
        secrets: dict[str, Any] = {
            "webhookUrl": row.url or None,
            "webhookSecret": row.secret,
            "webhookEvents": list(row.events),
            "registered": row.managed and change.manual is None,
        }
        if change.manual_text is not None:
            secrets["manualSetup"] = change.manual_text
        return Outcome(secrets=secrets, warnings=list(change.warnings))

    def secrets(self, conn: Connection) -> dict[str, Any] | None:
        row = self.hooks.row(self.ref(conn))
        if row is None:
            return None
        return {
            "webhookUrl": row.url or None,
            "webhookSecret": row.secret,
            "webhookId": row.hook_id,
            "webhookEvents": list(row.events),
        }
