"""The GithubRepo connection type (`uk.half-shot.matrix-hookshot.github.repository`).

State is validated by `state.py` and written as `storable_state` (config defaults stay
defaults); the effective state is rebuilt when it is used. Creating or editing a connection
needs the user's GitHub login with write or admin access to the repository; the repository
webhook is then registered, edited or left to an admin by `hooks.py`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from hookshot_py.commands.registry import CommandRegistry, commands_of
from hookshot_py.connections.base import Connection, ConnectionType, Outcome
from hookshot_py.connections.manager import ConnectionManager
from hookshot_py.errors import ApiError, ErrCode, ValidationIssue
from hookshot_py.github.accounts import GitHubAccounts, api_error
from hookshot_py.github.client import GitHubError
from hookshot_py.github.commands import RepoCommands
from hookshot_py.github.hooks import RepoHooks, project_key
from hookshot_py.github.state import (
    DEFAULT_COMMAND_PREFIX,
    EVENT_TYPE,
    LEGACY_EVENT_TYPE,
    RepoConfig,
    RepoSettings,
    github_events_for_hooks,
    state_key,
    storable_state,
    validate_repo_state,
)

__all__ = ["EVENT_TYPE", "GithubRepoType", "PENDING_PING_TTL_S"]

log = logging.getLogger(__name__)

#: How long a room that is being connected receives the `ping` of the hook just created for it.
PENDING_PING_TTL_S = 60.0
WRITE_LEVELS = ("admin", "write")
# GitHub's rules: owners are alphanumerics and single hyphens, repositories also `_` and `.`.
_OWNER_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
_REPO_RE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


class GithubRepoType(ConnectionType[RepoConfig]):
    type_name = "GithubRepo"
    event_type = EVENT_TYPE
    legacy_event_types = (LEGACY_EVENT_TYPE,)
    service = "github"
    display_service = "github"
    service_label = "GitHub"
    default_command_prefix = DEFAULT_COMMAND_PREFIX

    def __init__(
        self,
        accounts: GitHubAccounts,
        hooks: RepoHooks,
        manager: ConnectionManager,
        default_options: dict[str, Any] | None = None,
    ) -> None:
        self.accounts = accounts
        self.hooks = hooks
        self.manager = manager
        self.default_options = default_options
        self.commands = CommandRegistry(commands_of(RepoCommands(accounts, hooks, self.config_of)))
        self._pending: dict[str, dict[str, Connection]] = {}
        self._tasks: set[asyncio.Task[list[str]]] = set()

    # --- state --------------------------------------------------------------------------------

    def validate(
        self, state: dict[str, Any], *, existing: Connection | None, is_new: bool
    ) -> tuple[dict[str, Any], list[ValidationIssue]]:
        effective, issues = validate_repo_state(state, is_new=is_new, default_options=self.default_options)
        if issues:
            return effective, issues
        if is_new:
            if not _OWNER_RE.match(effective["org"]):
                issues.append(ValidationIssue("/org", "is not a valid GitHub user or organisation name"))
            if not _REPO_RE.match(effective["repo"]) or effective["repo"] in (".", ".."):
                issues.append(ValidationIssue("/repo", "is not a valid GitHub repository name"))
            if issues:
                return effective, issues
        return storable_state(effective, state), []

    def state_key(self, state: dict[str, Any]) -> str:
        return state_key(state)

    def parse(self, state: dict[str, Any]) -> RepoConfig:
        return RepoConfig.from_state(state, self.default_options)

    def effective_state(self, conn: Connection) -> dict[str, Any]:
        """The state with config defaults applied, as `format.py` expects it."""
        return self.config_of(conn).state

    def settings(self, conn: Connection) -> RepoSettings:
        return self.config_of(conn).settings

    def command_prefix(self, conn: Connection) -> str | None:
        return self.settings(conn).command_prefix

    def connections_for(self, full_name: str, *, exclude: str | None = None) -> list[Connection]:
        """Every room's connection to this repository (names compare case-insensitively)."""
        key = project_key(full_name)
        return [
            c for c in self.manager.all(EVENT_TYPE)
            if project_key(c.state_key) == key and c.id != exclude
        ]

    def _events(self, conns: list[Connection]) -> list[str]:
        hooks: set[str] = set()
        for conn in conns:
            hooks.update(self.effective_state(conn).get("enableHooks") or [])
        return github_events_for_hooks(hooks)

    # --- pings for rooms being connected ------------------------------------------------------

    def pending_for(self, full_name: str) -> list[Connection]:
        """Connections being created for this repository, not yet in the index."""
        return list(self._pending.get(project_key(full_name), {}).values())

    def _add_pending(self, conn: Connection) -> None:
        key = project_key(conn.state_key)
        self._pending.setdefault(key, {})[conn.room_id] = conn
        asyncio.get_running_loop().call_later(PENDING_PING_TTL_S, self._drop_pending, key, conn.room_id)

    def _drop_pending(self, key: str, room_id: str) -> None:
        rooms = self._pending.get(key)
        if rooms is not None:
            rooms.pop(room_id, None)
            if not rooms:
                self._pending.pop(key, None)

    async def start(self, conns: list[Connection]) -> None:
        await self.hooks.table.restore_if_empty()

    async def on_loaded(self, conn: Connection) -> None:
        self._drop_pending(project_key(conn.state_key), conn.room_id)
        owner, repo = conn.state.get("org"), conn.state.get("repo")
        if isinstance(owner, str) and isinstance(repo, str):
            # State edited by hand in a client changes no hook by itself: bring the hook's events
            # in line (a no-op when `prepare` already did), with the registrant's token.
            desired = self._events([*self.connections_for(f"{owner}/{repo}", exclude=conn.id), conn])
            task = asyncio.create_task(self.hooks.release(owner, repo, desired, user_id=None))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    # --- lifecycle hooks ----------------------------------------------------------------------

    async def prepare(self, conn: Connection, *, existing: Connection | None, user_id: str | None) -> Outcome:
        if user_id is None:
            raise ApiError(ErrCode.FORBIDDEN_USER, "A GitHub connection must be made by a logged-in user.")
        owner, repo = conn.state["org"], conn.state["repo"]
        full_name = f"{owner}/{repo}"
        client = await self.accounts.require_client(user_id)
        try:
            me = await client.get_user()
            permission = await client.get_collaborator_permission(owner, repo, me.login)
        except GitHubError as exc:
            raise api_error(exc) from exc
        if permission not in WRITE_LEVELS:
            raise ApiError(
                ErrCode.FORBIDDEN_USER,
                f"You need write or admin access to {full_name} on GitHub to connect it "
                f"(GitHub says your access is: {permission}).",
            )
        others = self.connections_for(full_name, exclude=conn.id)
        desired = self._events([*others, conn])
        if existing is not None and desired == self._events([*others, existing]):
            return Outcome()
        if existing is None:
            self._add_pending(conn)
        change = await self.hooks.ensure(
            owner, repo, desired, user_id=user_id, client=client, is_admin=permission == "admin"
        )
        outcome = Outcome(warnings=list(change.warnings))
        if change.manual is not None:
            outcome.secrets["webhook"] = change.manual.to_json()
        return outcome

    async def on_removed(self, conn: Connection, *, user_id: str | None) -> list[str]:
        owner, repo = conn.state.get("org"), conn.state.get("repo")
        if not isinstance(owner, str) or not isinstance(repo, str):
            return []
        others = self.connections_for(f"{owner}/{repo}", exclude=conn.id)
        remaining = self._events(others) if others else None
        return await self.hooks.release(owner, repo, remaining, user_id=user_id)
