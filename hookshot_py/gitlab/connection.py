"""The GitLabRepo connection type (`uk.half-shot.matrix-hookshot.gitlab.repository`).

State is hookshot's (`state.py`); the state key is `{instance}/{path}`. Connecting a project
through the bridge needs the user's GitLab token for the instance and at least the Developer
role on the project (hookshot's rule); with Maintainer or Owner, their token registers the
project's webhook, otherwise they are told what to enter by hand (`hooks.py`, on the shared
policy of `forges/connection.py`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hookshot_py.commands.registry import CommandRegistry, commands_of
from hookshot_py.config import GitLabConfig
from hookshot_py.connections.base import Connection, Outcome
from hookshot_py.errors import ApiError, ErrCode, ValidationIssue
from hookshot_py.forges.connection import ForgeConnectionType
from hookshot_py.forges.policy import HookChange
from hookshot_py.gitlab.accounts import GitLabAccounts, api_error
from hookshot_py.gitlab.client import GitLabError
from hookshot_py.gitlab.commands import ProjectCommands
from hookshot_py.gitlab.hooks import GitLabProjectHooks
from hookshot_py.gitlab.models import (
    DEFAULT_COMMAND_PREFIX,
    EVENT_TYPE,
    LEGACY_EVENT_TYPE,
    AccessLevel,
    ProjectRef,
)
from hookshot_py.gitlab.state import RepoConfig, state_key, validate_state

__all__ = ["EVENT_TYPE", "GitLabRepoType"]


class GitLabRepoType(ForgeConnectionType[RepoConfig, ProjectRef]):
    type_name = "GitLabRepo"
    event_type = EVENT_TYPE
    legacy_event_types = (LEGACY_EVENT_TYPE,)
    service = "gitlab"
    display_service = "gitlab"
    service_label = "GitLab"
    default_command_prefix = DEFAULT_COMMAND_PREFIX

    hooks: GitLabProjectHooks

    def __init__(self, config: GitLabConfig, accounts: GitLabAccounts, hooks: GitLabProjectHooks) -> None:
        super().__init__(hooks)
        self.config = config
        self.accounts = accounts
        self.commands = CommandRegistry(commands_of(ProjectCommands(accounts, self.config_of)))

    # -- state --------------------------------------------------------------------------------------

    def validate(
        self, state: dict[str, Any], *, existing: Connection | None, is_new: bool
    ) -> tuple[dict[str, Any], list[ValidationIssue]]:
        return validate_state(
            state, instances=self.config.instances, is_new=is_new, existing=existing.state if existing else None
        )

    def state_key(self, state: dict[str, Any]) -> str:
        return state_key(state)

    def parse(self, state: dict[str, Any]) -> RepoConfig:
        return RepoConfig.from_state(state)

    def command_prefix(self, conn: Connection) -> str | None:
        return self.config_of(conn).command_prefix

    def label(self, conn: Connection) -> str:
        return self.config_of(conn).path

    # -- the project and its hook -------------------------------------------------------------------

    def ref(self, conn: Connection) -> ProjectRef:
        return self.config_of(conn).ref

    def hook_events(self, conn: Connection) -> Iterable[str]:
        return self.config_of(conn).flags

    async def authorize(self, conn: Connection, user_id: str | None) -> bool:
        """The user needs a token for the instance and the Developer role or more; with
        Maintainer or Owner, their token manages the hook."""
        if user_id is None:
            raise ApiError(ErrCode.FORBIDDEN_USER, "A GitLab connection must be made by a user with a GitLab token.")
        ref = self.ref(conn)
        client, stored = await self.accounts.require(user_id, ref.instance)
        try:
            await client.project(ref.path)
            level = await client.access_level(ref.path, await self.accounts.user_id(client, stored))
        except GitLabError as e:
            if e.status == 401:
                raise ApiError(
                    ErrCode.FORBIDDEN_USER,
                    f"GitLab refused your stored token for {ref.instance} (expired or revoked): send me "
                    f"`gitlab personaltoken {ref.instance} <token>` in a direct message again.",
                ) from e
            if e.status == 404:
                raise ApiError(
                    ErrCode.FORBIDDEN_USER,
                    f"Could not determine if you have access to {ref.path} on {ref.instance}: does the project exist?",
                ) from e
            raise api_error(e) from e
        if level < AccessLevel.DEVELOPER:
            raise ApiError(
                ErrCode.FORBIDDEN_USER,
                f"You must at least have developer access to bridge {ref.path} "
                f"(GitLab says your role is: {AccessLevel.name(level)}).",
            )
        return level >= AccessLevel.MAINTAINER

    def outcome(self, conn: Connection, change: HookChange) -> Outcome:
        outcome = Outcome(warnings=list(change.warnings))
        manual = change.manual
        if manual is not None:
            outcome.secrets["webhook"] = {"url": manual.url, "token": manual.secret, "events": list(manual.events)}
        if change.manual_text is not None:
            outcome.secrets["manualSetup"] = change.manual_text
        return outcome

    def secrets(self, conn: Connection) -> dict[str, Any] | None:
        row = self.hooks.row(self.ref(conn))
        if row is None:
            return None
        return {
            "webhookUrl": row.url or None,
            "webhookToken": row.secret,
            "webhookEvents": list(row.events),
            "managed": row.managed,
        }
