"""The `permissions` config: who may use which service at which level (hookshot's rules)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

LEVELS: dict[str, int] = {
    "commands": 1,
    "login": 2,
    "notifications": 3,
    "manageConnections": 4,
    "admin": 5,
}

# hookshot accepts both names for the generic webhook service.
_SERVICE_ALIASES = {"webhooks": "generic", "webhook": "generic", "feed": "feeds"}


def _canonical(service: str) -> str:
    return _SERVICE_ALIASES.get(service, service)


@dataclass(frozen=True)
class Grant:
    actor: str
    service: str
    level: int


class Permissions:
    """Answers "may this user do that?". Rules only grant (there is no deny, as in hookshot)."""

    def __init__(
        self,
        rules: Iterable[tuple[str, Iterable[tuple[str, str]]]],
        room_members: Callable[[str], set[str]] = lambda _room: set(),
    ) -> None:
        self._grants = [
            Grant(actor, _canonical(service), LEVELS[level])
            for actor, services in rules
            for service, level in services
        ]
        self._room_members = room_members

    @property
    def room_actors(self) -> list[str]:
        """Rooms named as actors: the bridge joins them to know their members."""
        return sorted({g.actor for g in self._grants if g.actor.startswith("!")})

    def _actor_matches(self, actor: str, user_id: str) -> bool:
        if actor == "*":
            return True
        if actor.startswith("@"):
            return actor == user_id
        if actor.startswith("!"):
            return user_id in self._room_members(actor)
        return user_id.split(":", 1)[-1] == actor

    def check(self, user_id: str, service: str, level: str) -> bool:
        service = _canonical(service)
        needed = LEVELS[level]
        return any(
            g.level >= needed
            and g.service in ("*", service)
            and self._actor_matches(g.actor, user_id)
            for g in self._grants
        )

    def check_any(self, user_id: str, level: str) -> bool:
        """True if the user has `level` on at least one service."""
        needed = LEVELS[level]
        return any(
            g.level >= needed and self._actor_matches(g.actor, user_id) for g in self._grants
        )
