"""Room power levels, including room version 12's all-powerful creators."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

# Room versions in which the creators outrank everyone (MSC4289) and are absent from `users`.
_PRIVILEGED_CREATOR_VERSIONS = {"org.matrix.hydra.11"}


def _creators_privileged(room_version: str) -> bool:
    if room_version in _PRIVILEGED_CREATOR_VERSIONS:
        return True
    return room_version.isdigit() and int(room_version) >= 12


def _as_int(value: Any, default: int) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return default
    return default


@dataclass
class RoomPower:
    users: dict[str, int] = field(default_factory=dict)
    users_default: int = 0
    events: dict[str, int] = field(default_factory=dict)
    state_default: int = 50
    creators: frozenset[str] = frozenset()

    @classmethod
    def from_state(
        cls, power_levels: dict[str, Any] | None, create_event: dict[str, Any] | None
    ) -> RoomPower:
        create_content = (create_event or {}).get("content", {}) or {}
        room_version = str(create_content.get("room_version", "1"))
        creators: set[str] = set()
        if _creators_privileged(room_version):
            if isinstance(create_event, dict) and isinstance(create_event.get("sender"), str):
                creators.add(create_event["sender"])
            extra = create_content.get("additional_creators")
            if isinstance(extra, list):
                creators.update(c for c in extra if isinstance(c, str))
        if power_levels is None:
            # No power_levels event: the creator has 100, everyone else 0 (spec default).
            creator = (create_event or {}).get("sender") or create_content.get("creator")
            users = {creator: 100} if isinstance(creator, str) else {}
            return cls(users=users, state_default=0, creators=frozenset(creators))
        users = {
            u: _as_int(v, 0) for u, v in (power_levels.get("users") or {}).items() if isinstance(u, str)
        }
        events = {
            t: _as_int(v, 50) for t, v in (power_levels.get("events") or {}).items() if isinstance(t, str)
        }
        return cls(
            users=users,
            users_default=_as_int(power_levels.get("users_default"), 0),
            events=events,
            state_default=_as_int(power_levels.get("state_default"), 50),
            creators=frozenset(creators),
        )

    def level_of(self, user_id: str) -> float:
        if user_id in self.creators:
            return math.inf
        return self.users.get(user_id, self.users_default)

    def required_for_state(self, event_type: str) -> int:
        return self.events.get(event_type, self.state_default)

    def can_send_state(self, user_id: str, event_type: str) -> bool:
        return self.level_of(user_id) >= self.required_for_state(event_type)

    def describe_level(self, user_id: str) -> str:
        level = self.level_of(user_id)
        return "creator" if level == math.inf else str(int(level))
