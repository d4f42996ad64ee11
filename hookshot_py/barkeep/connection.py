"""The Barkeep repository connection type (`uk.half-shot.matrix-hookshot.barkeep.repository`).

State (key `instance/repo`): `instance` (a key of `barkeep.instances`), `repo` (the repository's
name on Barkeep), `events` (`approvals`, `comments`), `commandPrefix` (default `!barkeep`) and,
optionally, `gitUrl`: given when the connection is created, the bridge asks Barkeep to clone and
track that repository (`POST /api/add_repo`, with the instance's admin key from the config). A
room member's URL is a request Barkeep makes inside its network: `giturl.py` says which are refused.
"""

from __future__ import annotations

import logging
from typing import Any

from hookshot_py.barkeep.accounts import BarkeepAccounts
from hookshot_py.barkeep.commands import RepoCommands
from hookshot_py.barkeep.errors import BarkeepError
from hookshot_py.barkeep.giturl import GitUrlError, check_git_url, check_resolved, parse_git_url
from hookshot_py.barkeep.repo import (
    DEFAULT_PREFIX,
    EVENT_TYPE,
    EVENTS,
    MAX_URL_LENGTH,
    RepoConfig,
    events_of,
    instance_of,
    repo_name_of_url,
    repo_of,
    repo_problem,
)
from hookshot_py.barkeep.store import WatchStore
from hookshot_py.commands.registry import CommandRegistry, commands_of
from hookshot_py.connections.base import Connection, ConnectionType, Outcome
from hookshot_py.connections.manager import ConnectionManager
from hookshot_py.connections.validation import command_prefix, unknown_fields
from hookshot_py.errors import ApiError, ErrCode, ValidationIssue, validation_error
from hookshot_py.net.guard import UrlPolicy

__all__ = ["EVENT_TYPE", "BarkeepRepoType", "api_error", "events_of", "repo_name_of_url", "repo_problem"]

log = logging.getLogger(__name__)

_FIELDS = ("instance", "repo", "events", "commandPrefix", "gitUrl")
# Barkeep's answer to add_repo when it already has the repository.
_ALREADY_TRACKED = "There is already a folder named"


def api_error(err: BarkeepError) -> ApiError:
    """A Barkeep failure while serving a bridge request, as the API error for the caller."""
    text = err.describe()
    if err.kind == "bad_request":
        return ApiError(ErrCode.BAD_VALUE, text)
    if err.kind in ("not_found", "ambiguous"):
        return ApiError(ErrCode.NOT_FOUND, text)
    if err.kind in ("auth", "admin_only", "stale", "clock_skew"):
        # The bridge's own key (or clock) is what Barkeep refused.
        return ApiError(ErrCode.FORBIDDEN_BOT, text)
    return ApiError(ErrCode.UNKNOWN, text, status=502)


class BarkeepRepoType(ConnectionType[RepoConfig]):
    type_name = "BarkeepRepo"
    event_type = EVENT_TYPE
    service = "barkeep"
    display_service = "barkeep"
    service_label = "Barkeep"
    default_command_prefix = DEFAULT_PREFIX

    def __init__(
        self, accounts: BarkeepAccounts, store: WatchStore, manager: ConnectionManager, policy: UrlPolicy | None = None
    ) -> None:
        self.accounts = accounts
        self.policy = policy if policy is not None else UrlPolicy()
        self.config = accounts.config
        self.store = store
        self.manager = manager
        self.commands = CommandRegistry(commands_of(RepoCommands(accounts, store)))

    # -- state --------------------------------------------------------------------------------------

    def validate(
        self, state: dict[str, Any], *, existing: Connection | None, is_new: bool
    ) -> tuple[dict[str, Any], list[ValidationIssue]]:
        issues: list[ValidationIssue] = []
        if is_new:
            issues += unknown_fields(state, _FIELDS)
        instances = list(self.config.instances)
        default_instance = instances[0] if len(instances) == 1 else None
        instance = state.get("instance", default_instance)
        if not isinstance(instance, str) or instance not in self.config.instances:
            issues.append(
                ValidationIssue("/instance", f"must be a configured Barkeep instance: {', '.join(instances)}")
            )
        elif existing is not None and existing.state.get("instance") not in (None, instance):
            issues.append(ValidationIssue("/instance", "cannot be changed; remove the connection and create a new one"))
        repo = state.get("repo")
        if (problem := repo_problem(repo)) is not None:
            issues.append(ValidationIssue("/repo", problem if repo is not None else "is required"))
        events: Any = state.get("events", list(EVENTS))
        if is_new:
            if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
                issues.append(ValidationIssue("/events", f"must be a list of: {', '.join(EVENTS)}"))
            else:
                issues += [
                    ValidationIssue(f"/events/{i}", f"unknown event {e!r}; expected one of {', '.join(EVENTS)}")
                    for i, e in enumerate(events)
                    if e not in EVENTS
                ]
                events = [e for e in EVENTS if e in events]
        elif isinstance(events, list):
            events = [e for e in EVENTS if e in events]  # state from elsewhere: keep what we know
        else:
            events = list(EVENTS)
        prefix, prefix_issues = command_prefix(state, DEFAULT_PREFIX)
        issues += prefix_issues
        normalized: dict[str, Any] = {"instance": instance, "repo": repo, "events": events, "commandPrefix": prefix}
        git_url = state.get("gitUrl")
        if git_url is not None:
            if not isinstance(git_url, str) or not git_url or len(git_url) > MAX_URL_LENGTH or any(
                c.isspace() for c in git_url
            ):
                issues.append(ValidationIssue("/gitUrl", "must be a git URL without spaces"))
            elif (problem := self._git_url_problem(git_url, existing, is_new)) is not None:
                issues.append(ValidationIssue("/gitUrl", problem))
            elif is_new and existing is None and isinstance(repo, str) and repo_name_of_url(git_url) != repo:
                issues.append(
                    ValidationIssue(
                        "/gitUrl",
                        f"Barkeep names a repository cloned from this URL {repo_name_of_url(git_url)!r}, "
                        f"not {repo!r}: make `repo` match the URL's last part",
                    )
                )
            normalized["gitUrl"] = git_url
        return normalized, issues

    def _git_url_problem(self, git_url: str, existing: Connection | None, is_new: bool) -> str | None:
        """Why Barkeep must not be asked to clone `git_url` (checked when a user sets it; state
        written by hand is never sent to Barkeep)."""
        if not is_new or (existing is not None and existing.state.get("gitUrl") == git_url):
            return None
        try:
            check_git_url(git_url, self.policy)
        except GitUrlError as e:
            return e.message
        return None

    def state_key(self, state: dict[str, Any]) -> str:
        return f"{state['instance']}/{state['repo']}"

    def parse(self, state: dict[str, Any]) -> RepoConfig:
        return RepoConfig.from_state(state)

    def label(self, conn: Connection) -> str:
        return repo_of(conn)

    # -- side effects -------------------------------------------------------------------------------

    async def prepare(self, conn: Connection, *, existing: Connection | None, user_id: str | None) -> Outcome:
        """With a `gitUrl` on a new connection, ask Barkeep to track the repository.

        The instance's admin key from the config is used. Without one the connection is still
        made (Barkeep may already have the repository) and the caller is told what to do; a
        refusal from Barkeep refuses the connection, since the user asked for tracking.
        """
        git_url = conn.state.get("gitUrl")
        if existing is not None or not isinstance(git_url, str):
            return Outcome()
        instance = instance_of(conn)
        client = self.accounts.admin_client(instance)
        if client is None:
            return Outcome(
                warnings=[
                    f"No admin API key is configured for the Barkeep instance {instance!r}, so the bridge "
                    f"did not ask Barkeep to track {git_url}: a Barkeep admin must add the repository."
                ]
            )
        try:
            await check_resolved(parse_git_url(git_url), self.policy)
        except GitUrlError as e:
            log.warning("Refusing to ask Barkeep to clone %s for %s: %s", git_url, user_id, e.message)
            raise validation_error([ValidationIssue("/gitUrl", e.message)]) from None
        try:
            answer = await client.add_repo(git_url)
        except BarkeepError as e:
            if e.kind == "bad_request" and e.message.startswith(_ALREADY_TRACKED):
                return Outcome(secrets={"tracking": f"Barkeep already tracks {repo_of(conn)}."})
            log.warning("Barkeep refused to track %s for %s: %s", git_url, user_id, e)
            raise api_error(e) from e
        message = str(answer.get("message") or f"Barkeep was asked to track {git_url}.")
        log.info("Asked Barkeep %s to track %s for %s: %s", instance, git_url, user_id, message)
        return Outcome(secrets={"tracking": message})

    async def on_removed(self, conn: Connection, *, user_id: str | None) -> list[str]:
        """Stop watching the repository's commits once no room is connected to it."""
        instance, repo = instance_of(conn), repo_of(conn)
        if any(instance_of(c) == instance and repo_of(c) == repo for c in self.manager.all(EVENT_TYPE)):
            return []
        try:
            await self.store.forget_repo(instance, repo)
        except Exception as e:  # must not raise: the connection is gone either way
            log.exception("Could not forget the watched commits of %s/%s", instance, repo)
            return [f"Could not forget the watched commits of {repo}: {e}"]
        return []
