"""What a connection is, and what a connection type must provide to the ConnectionManager."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar, cast

from hookshot_py.commands.registry import CommandRegistry
from hookshot_py.errors import ValidationIssue

ConfigT = TypeVar("ConfigT")


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
    # The type's typed view of `state`, parsed once (`ConnectionType.config_of`), never compared.
    parsed: Any = field(default=None, repr=False, compare=False)
    # Declared in the config's `connections:` (hookshot's static connections): not in room state,
    # never mirrored, and immutable from rooms and the API.
    static: bool = False

    def __post_init__(self) -> None:
        if not self.id:
            self.id = connection_id(self.room_id, self.event_type, self.state_key)


@dataclass
class Outcome:
    """What a create/update produced besides the state: shown to the user once, never stored in state."""

    secrets: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class ConnectionType(ABC, Generic[ConfigT]):
    """One kind of connection. Subclasses live in their service package (generic/, github/ ...).

    The ConnectionManager calls these hooks; a type never writes room state itself. `validate`
    gives the state as it is stored in the room; `parse` turns a validated state into the typed
    object (`ConfigT`) everything else reads, once per state change rather than per use.
    """

    type_name: ClassVar[str]  # provisioning name, e.g. "Webhook", "GithubRepo"
    event_type: ClassVar[str]  # canonical state event type
    legacy_event_types: ClassVar[tuple[str, ...]] = ()
    service: ClassVar[str]  # permission service name, e.g. "generic", "github"
    display_service: ClassVar[str] = ""  # `service` shown in the provisioning API ("webhook", "github")
    service_label: ClassVar[str] = ""  # the service as users read it ("GitHub"), for help texts
    # The prefix commands (`!gh create ...`) of this type's connections; a type with commands
    # sets its own registry in `__init__`. Empty by default.
    commands: CommandRegistry = CommandRegistry()
    # The prefix a connection answers when its state names none (None: no prefix commands).
    default_command_prefix: str | None = None
    # True: `on_room_event` gets the room's non-state events from users other than the bridge's.
    wants_room_events: ClassVar[bool] = False

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

    @abstractmethod
    def parse(self, state: dict[str, Any]) -> ConfigT:
        """The typed view of a validated state (config defaults applied). Must not raise for a
        state `validate` accepted; may raise ValueError for a mirrored row that no longer fits
        the config (the manager then skips it)."""

    def config_of(self, conn: Connection) -> ConfigT:
        """`conn`'s typed state, parsed on first use and cached on the connection."""
        if conn.parsed is None:
            conn.parsed = self.parse(conn.state)
        return cast(ConfigT, conn.parsed)

    def command_prefix(self, conn: Connection) -> str | None:
        """The room prefix (`!gh`) whose commands this connection answers, if any."""
        if not len(self.commands):
            return None
        prefix = conn.state.get("commandPrefix")
        return prefix if isinstance(prefix, str) and prefix else self.default_command_prefix

    def label(self, conn: Connection) -> str:
        """How users name this connection in help texts (the repository, the project...)."""
        return conn.state_key

    async def prepare(self, conn: Connection, *, existing: Connection | None, user_id: str | None) -> Outcome:
        """Side effects before the state is written (register a forge hook, check access...).

        Raise ApiError to refuse. `existing` is set for updates.
        """
        return Outcome()

    async def on_removed(self, conn: Connection, *, user_id: str | None) -> list[str]:
        """Clean up after removal (delete forge hooks...). Returns warnings; must not raise."""
        return []

    def static_connections(self) -> list[Connection]:
        """This type's connections declared in the config (`static=True`); raise ConfigError if one is invalid."""
        return []

    async def start(self, conns: list[Connection]) -> None:
        """Called once at startup with this type's mirrored connections (load secrets in bulk)."""

    async def on_loaded(self, conn: Connection) -> None:
        """Called when a connection enters the in-memory index (startup, state from the homeserver)."""

    async def on_unloaded(self, conn: Connection) -> None:
        """Called when a connection leaves the index."""

    async def on_room_event(self, conn: Connection, event: dict[str, Any]) -> None:
        """A non-state event in `conn`'s room (see `wants_room_events`). It holds up the
        homeserver's transaction: queue the work durably, do it in the background."""

    def secrets(self, conn: Connection) -> dict[str, Any] | None:
        """Secrets shown only to users allowed to edit (e.g. a webhook URL)."""
        return None
