"""The JiraProject connection type (`uk.half-shot.matrix-hookshot.jira.project`).

State, as hookshot's: `url` (required; also the state key, `{instance}/projects/{KEY}`),
`events` (default `["issue_created"]`; hookshot's names plus our `comment_created`), `id` (the
project's numeric id: version events name the project by it alone), `commandPrefix` (default
`!jira`) and `priority`. A new connection needs the user's JIRA login and a project they can
see (`GET project/{KEY}`, whose answer also fills `id`).

Why no shared hook policy here (`forges/policy.py`): JIRA has no per-project webhook the
bridge could register with a user's token. Its webhooks are admin webhooks for the whole
instance, set up once by a JIRA administrator with the one `jira.webhook.secret`, and they
deliver every project's events. So connecting a room changes nothing on JIRA: the type only
indexes its connections by instance and project (key and id) so that a delivery is routed
with a look-up, and each room filters by its own `events`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from hookshot_py.commands.registry import CommandRegistry, commands_of
from hookshot_py.config import JiraConfig
from hookshot_py.connections.base import Connection, ConnectionType, Outcome
from hookshot_py.connections.validation import prefix_problem, unknown_fields
from hookshot_py.errors import ApiError, ErrCode, ValidationIssue
from hookshot_py.jira.accounts import JiraAccounts, api_error, project_client
from hookshot_py.jira.client import JiraError
from hookshot_py.jira.commands import ProjectCommands
from hookshot_py.jira.format import Subject
from hookshot_py.jira.models import (
    DEFAULT_EVENTS,
    DEFAULT_PREFIX,
    EVENT_TYPE,
    EVENTS,
    LEGACY_EVENT_TYPE,
    ProjectRef,
    ProjectUrlError,
    parse_project_url,
    project_url,
)

__all__ = ["EVENT_TYPE", "JiraProjectType", "ProjectConfig"]

log = logging.getLogger(__name__)

FIELDS = ("url", "id", "events", "commandPrefix", "priority")
#: Project ids learned from issue deliveries (for versions of hand-made connections without `id`).
MAX_LEARNED_IDS = 4096

_Index = dict[tuple[str, str], dict[str, Connection]]


@dataclass(frozen=True)
class ProjectConfig:
    """A JIRA connection's typed state, parsed once per state change."""

    url: str
    ref: ProjectRef
    project_id: str | None
    events: frozenset[str]
    command_prefix: str


def _events(value: Any, *, is_new: bool) -> tuple[list[str], list[ValidationIssue]]:
    if value is None:
        return list(DEFAULT_EVENTS), []
    if isinstance(value, list) and value and value[0] == "issue.created":
        return list(DEFAULT_EVENTS), []  # hookshot's migration of its first event name
    if not is_new:
        # State written by hand or by hookshot: keep what we understand.
        return ([e for e in value if e in EVENTS] if isinstance(value, list) else list(DEFAULT_EVENTS)), []
    if not isinstance(value, list) or not all(isinstance(e, str) for e in value):
        return [], [ValidationIssue("/events", "must be a list of event names")]
    unknown = [e for e in value if e not in EVENTS]
    if unknown:
        return [], [ValidationIssue("/events", f"'events' can only contain {', '.join(EVENTS)}")]
    return list(dict.fromkeys(value)), []


class JiraProjectType(ConnectionType[ProjectConfig]):
    type_name = "JiraProject"
    event_type = EVENT_TYPE
    legacy_event_types = (LEGACY_EVENT_TYPE,)
    service = "jira"
    display_service = "jira"
    service_label = "JIRA"
    default_command_prefix = DEFAULT_PREFIX

    def __init__(self, config: JiraConfig, accounts: JiraAccounts) -> None:
        self.config = config
        self.accounts = accounts
        self.commands = CommandRegistry(commands_of(ProjectCommands(accounts, self.config_of)))
        self._by_key: _Index = {}
        self._by_id: _Index = {}
        self._keys_of: dict[str, list[tuple[_Index, tuple[str, str]]]] = {}
        self._learned: dict[tuple[str, str], str] = {}

    # -- state --------------------------------------------------------------------------------------

    def canonical_url(self, ref: ProjectRef) -> str:
        return project_url(ref, self.config.url)

    def validate(
        self, state: dict[str, Any], *, existing: Connection | None, is_new: bool
    ) -> tuple[dict[str, Any], list[ValidationIssue]]:
        issues: list[ValidationIssue] = unknown_fields(state, FIELDS) if is_new else []
        url = state.get("url")
        if not isinstance(url, str) or not url.strip():
            issues.append(ValidationIssue("/url", "Expected a 'url' property (the project's URL)"))
        else:
            # An unchanged URL stays as written (hookshot's may not have the `/projects/` form).
            kept = not is_new or (existing is not None and existing.state.get("url") == url)
            try:
                ref = parse_project_url(url, lenient=kept)
            except ProjectUrlError as e:
                issues.append(ValidationIssue("/url", str(e)))
            else:
                if not kept:
                    url = self.canonical_url(ref)
                    on_prem = self.config.url
                    if on_prem is not None and urlsplit(on_prem).netloc.lower() != ref.host:
                        issues.append(ValidationIssue("/url", f"must be a project of the JIRA at {on_prem}"))
        project_id = state.get("id")
        if project_id is not None and not isinstance(project_id, str):
            issues.append(ValidationIssue("/id", "Expected 'id' to be a string"))
        elif is_new:
            # The id routes version events, so it comes from JIRA's answer (`prepare`), never from
            # the caller: another id would bring another project's versions into the room.
            known = existing.state.get("id") if existing is not None else None
            if known is not None and project_id not in (None, known):
                issues.append(ValidationIssue("/id", "is the project's id on JIRA and cannot be changed"))
            project_id = known
        events, event_issues = _events(state.get("events"), is_new=is_new)
        issues += event_issues
        normalized: dict[str, Any] = {"url": url, "events": events}
        if isinstance(project_id, str):
            normalized["id"] = project_id
        if "commandPrefix" in state:
            if (problem := prefix_problem(state["commandPrefix"])) is not None:
                issues.append(ValidationIssue("/commandPrefix", problem))
            normalized["commandPrefix"] = state["commandPrefix"]
        priority = state.get("priority")
        if isinstance(priority, int | float) and not isinstance(priority, bool):
            normalized["priority"] = priority
        elif priority is not None and is_new:
            issues.append(ValidationIssue("/priority", "must be a number"))
        return normalized, issues

    def state_key(self, state: dict[str, Any]) -> str:
        return str(state["url"])

    def parse(self, state: dict[str, Any]) -> ProjectConfig:
        url = state.get("url")
        if not isinstance(url, str):
            raise ValueError("a JIRA project connection needs a `url`")
        try:
            ref = parse_project_url(url, lenient=True)
        except ProjectUrlError as e:
            raise ValueError(str(e)) from e
        events = state.get("events")
        project_id = state.get("id")
        prefix = state.get("commandPrefix")
        return ProjectConfig(
            url=url,
            ref=ref,
            project_id=project_id if isinstance(project_id, str) and project_id else None,
            events=frozenset(e for e in events if isinstance(e, str)) if isinstance(events, list)
            else frozenset(DEFAULT_EVENTS),
            command_prefix=prefix if isinstance(prefix, str) and prefix else DEFAULT_PREFIX,
        )

    def command_prefix(self, conn: Connection) -> str | None:
        return self.config_of(conn).command_prefix

    def label(self, conn: Connection) -> str:
        return self.config_of(conn).ref.key

    # -- access ---------------------------------------------------------------------------------------

    async def prepare(self, conn: Connection, *, existing: Connection | None, user_id: str | None) -> Outcome:
        """A new connection needs a user who can see the project on JIRA; its answer gives the
        project's id. An edit changes nothing on JIRA (it only fills a missing `id` when the
        user's login allows)."""
        config = self.config_of(conn)
        if existing is not None:
            if config.project_id is None and user_id is not None:
                try:
                    await self._fill_id(conn, user_id)
                except (ApiError, JiraError) as e:
                    log.info("Could not learn the id of JIRA project %s: %s", config.ref.key, e)
            return Outcome()
        if user_id is None:
            raise ApiError(ErrCode.FORBIDDEN_USER, "A JIRA connection must be made by a user logged in to JIRA.")
        await self._fill_id(conn, user_id)
        return Outcome()

    async def _fill_id(self, conn: Connection, user_id: str) -> None:
        config = self.config_of(conn)
        client, site = await project_client(self.accounts, user_id, config.ref)
        try:
            project = await client.project(config.ref.key)
        except JiraError as exc:
            if exc.status == 404:
                raise ApiError(
                    ErrCode.FORBIDDEN_USER,
                    f"Requested project was not found: {site.url} has no project {config.ref.key} that you can see.",
                ) from exc
            raise api_error(exc) from exc
        if config.project_id != project.id:
            conn.state = {**conn.state, "id": project.id}
            conn.parsed = None
            self.config_of(conn)

    # -- routing --------------------------------------------------------------------------------------

    async def start(self, conns: list[Connection]) -> None:
        for conn in conns:
            self._index(conn)

    async def on_loaded(self, conn: Connection) -> None:
        self._index(conn)

    async def on_unloaded(self, conn: Connection) -> None:
        self._unindex(conn.id)

    def _index(self, conn: Connection) -> None:
        self._unindex(conn.id)
        config = self.config_of(conn)
        host = config.ref.host
        entries: list[tuple[_Index, tuple[str, str]]] = [(self._by_key, (host, config.ref.key))]
        if config.project_id is not None:
            entries.append((self._by_id, (host, config.project_id)))
        for table, key in entries:
            table.setdefault(key, {})[conn.id] = conn
        self._keys_of[conn.id] = entries

    def _unindex(self, conn_id: str) -> None:
        for table, key in self._keys_of.pop(conn_id, []):
            group = table.get(key)
            if group is not None:
                group.pop(conn_id, None)
                if not group:
                    table.pop(key, None)

    def connections_for(self, subject: Subject) -> list[Connection]:
        """The rooms' connections to the project a delivery is about: by key (issues) or by id
        (versions; an id seen in an issue delivery also finds connections made without one)."""
        host, pid = subject.host, subject.project_id
        found: dict[str, Connection] = {}
        key = subject.key
        if key is not None and pid is not None:
            if len(self._learned) >= MAX_LEARNED_IDS:
                self._learned.pop(next(iter(self._learned)))
            self._learned[(host, pid)] = key
        elif key is None and pid is not None:
            key = self._learned.get((host, pid))
        if key is not None:
            found.update(self._by_key.get((host, key), {}))
        if pid is not None:
            found.update(self._by_id.get((host, pid), {}))
        return sorted(found.values(), key=lambda c: (c.room_id, c.id))

    def wants(self, conn: Connection, event: str) -> bool:
        return event in self.config_of(conn).events
