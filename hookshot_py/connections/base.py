"""What a connection is, and what a connection type must provide to the ConnectionManager."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from hookshot_py.errors import ValidationIssue

if TYPE_CHECKING:
    from hookshot_py.commands.context import CommandContext


def connection_id(room_id: str, event_type: str, state_key: str) -> str:
    """hookshot's opaque id: md5 hex of `roomId/eventType/stateKey`."""
    return hashlib.md5(f"{room_id}/{event_type}/{state_key}".encode()).hexdigest()


def is_disabled(content: dict[str, Any] | None) -> bool:
    """`{}` or `{"disabled": true}` means "no connection" (hookshot's convention)."""
    return not content or content.get("disabled") is True


@dataclass
class Connection:
    room_id: str
    event_type: str  # always the canonical type, even when read from a legacy alias
    state_key: str
    state: dict[str, Any]
    id: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            self.id = connection_id(self.room_id, self.event_type, self.state_key)


@dataclass
class Outcome:
    """What a create/update produced besides the state: shown to the user once, never stored in state."""

    secrets: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class ConnectionType(ABC):
    """One kind of connection. Subclasses live in their service package (generic/, github/ ...).

    The ConnectionManager calls these hooks; a type never writes room state itself.
    """

    type_name: ClassVar[str]  # provisioning name, e.g. "Webhook", "GithubRepo"
    event_type: ClassVar[str]  # canonical state event type
    legacy_event_types: ClassVar[tuple[str, ...]] = ()
    service: ClassVar[str]  # permission service name, e.g. "generic", "github"
    display_service: ClassVar[str] = ""  # `service` shown in the provisioning API ("webhook", "github")

    @abstractmethod
    def validate(
        self, state: dict[str, Any], *, existing: Connection | None, is_new: bool
    ) -> tuple[dict[str, Any], list[ValidationIssue]]:
        """Normalise `state` (defaults, legacy fields); return it with the problems found.

        `is_new` is true for a connection created or edited through the bridge (command, REST),
        false for state found in the room (written by hand or by hookshot): be lenient there.
        """

    @abstractmethod
    def state_key(self, state: dict[str, Any]) -> str:
        """The state key a new connection with this state is written under."""

    def command_prefix(self, conn: Connection) -> str | None:
        """The room prefix (`!gh`) whose commands this connection answers, if any."""
        prefix = conn.state.get("commandPrefix")
        return prefix if isinstance(prefix, str) else None

    async def prepare(self, conn: Connection, *, existing: Connection | None, user_id: str | None) -> Outcome:
        """Side effects before the state is written (register a forge hook, check access...).

        Raise ApiError to refuse. `existing` is set for updates.
        """
        return Outcome()

    async def on_removed(self, conn: Connection, *, user_id: str | None) -> list[str]:
        """Clean up after removal (delete forge hooks...). Returns warnings; must not raise."""
        return []

    async def start(self, conns: list[Connection]) -> None:
        """Called once at startup with this type's mirrored connections (load secrets in bulk)."""

    async def on_loaded(self, conn: Connection) -> None:
        """Called when a connection enters the in-memory index (startup, state from the homeserver)."""

    async def on_unloaded(self, conn: Connection) -> None:
        """Called when a connection leaves the index."""

    def secrets(self, conn: Connection) -> dict[str, Any] | None:
        """Secrets shown only to users allowed to edit (e.g. a webhook URL)."""
        return None

    async def handle_command(self, ctx: CommandContext, conn: Connection, args: list[str]) -> bool:
        """Handle `<commandPrefix> args...`; return False if the command is not one of ours."""
        return False

    def command_help(self, conn: Connection) -> list[tuple[str, str]]:
        """(usage, description) pairs for this connection's prefix commands."""
        return []
