"""The GithubRepo connection type (`uk.half-shot.matrix-hookshot.github.repository`).

State is validated by `state.py` and written as `storable_state` (config defaults stay
defaults); `parse` turns it into the `RepoConfig` everything else reads, once per state change.
Creating or editing a connection needs the user's GitHub login with write or admin access to
the repository; the repository webhook is then registered, edited or left to an admin by the
shared hook policy (`hooks.py`, `forges/connection.py`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

from hookshot_py.commands.registry import CommandRegistry, commands_of
from hookshot_py.connections.base import Connection, Outcome
from hookshot_py.errors import ApiError, ErrCode, ValidationIssue
from hookshot_py.forges.connection import ForgeConnectionType
from hookshot_py.forges.policy import HookChange
from hookshot_py.github.accounts import GitHubAccounts, api_error
from hookshot_py.github.client import GitHubError
from hookshot_py.github.commands import RepoCommands
from hookshot_py.github.hooks import RepoHooks, RepoRef
from hookshot_py.github.state import (
    DEFAULT_COMMAND_PREFIX,
    EVENT_TYPE,
    LEGACY_EVENT_TYPE,
    RepoConfig,
    state_key,
    storable_state,
    validate_repo_state,
)

__all__ = ["EVENT_TYPE", "GithubRepoType"]

log = logging.getLogger(__name__)

WRITE_LEVELS = ("admin", "write")
# GitHub's rules: owners are alphanumerics and single hyphens, repositories also `_` and `.`.
_OWNER_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
_REPO_RE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


class GithubRepoType(ForgeConnectionType[RepoConfig, RepoRef]):
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
        default_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(hooks)
        self.accounts = accounts
        self.repo_hooks = hooks
        self.default_options = default_options
        self.commands = CommandRegistry(commands_of(RepoCommands(accounts, hooks, self.config_of)))

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
        """The state with config defaults applied."""
        return self.config_of(conn).state

    def command_prefix(self, conn: Connection) -> str | None:
        return self.config_of(conn).settings.command_prefix

    # --- the repository and its hook ----------------------------------------------------------

    def ref(self, conn: Connection) -> RepoRef:
        config = self.config_of(conn)
        return RepoRef(config.org, config.repo)

    def hook_events(self, conn: Connection) -> Iterable[str]:
        return self.config_of(conn).hook_events

    def connections_for(self, full_name: str) -> list[Connection]:
        """Every room's connection to this repository (names compare case-insensitively)."""
        return self.project_connections(self.hooks.forge.key(RepoRef.parse(full_name)))

    def pending_for(self, full_name: str) -> list[Connection]:
        """Connections being created for this repository (they receive the new hook's ping)."""
        return self.project_pending(self.hooks.forge.key(RepoRef.parse(full_name)))

    async def authorize(self, conn: Connection, user_id: str | None) -> bool:
        """The user must have write or admin access on GitHub; with admin, their token manages
        the hook."""
        if user_id is None:
            raise ApiError(ErrCode.FORBIDDEN_USER, "A GitHub connection must be made by a logged-in user.")
        ref = self.ref(conn)
        client = await self.accounts.require_client(user_id)
        try:
            me = await client.get_user()
            permission = await client.get_collaborator_permission(ref.owner, ref.repo, me.login)
        except GitHubError as exc:
            raise api_error(exc) from exc
        if permission not in WRITE_LEVELS:
            raise ApiError(
                ErrCode.FORBIDDEN_USER,
                f"You need write or admin access to {ref.full_name} on GitHub to connect it "
                f"(GitHub says your access is: {permission}).",
            )
        return permission == "admin"

    def outcome(self, conn: Connection, change: HookChange) -> Outcome:
        outcome = Outcome(warnings=list(change.warnings))
        manual = change.manual
        if manual is not None and manual.url is not None and not change.row.managed:
            outcome.secrets["webhook"] = {
                "url": manual.url, "secret": manual.secret, "contentType": "json", "events": list(manual.events),
            }
        return outcome
