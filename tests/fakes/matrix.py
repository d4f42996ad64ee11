"""An in-memory Matrix homeserver, and a drop-in for `hookshot_py.matrix.gateway.MatrixGateway`.

`FakeHomeserver` holds rooms (state with senders, timeline, membership, power levels including
room version 12's all-powerful creators), account data, profiles and the events sent through
`send_event`. It refuses what Synapse refuses where the bridge's behaviour depends on it, with
Synapse's statuses and error codes (as a real Synapse 1.163 answered them):

- reading state or members, writing state or sending needs the caller joined (403 M_FORBIDDEN;
  also for an unknown room); a user who left still reads the state as it was when they left;
- a state event needs the sender's power level >= the event's level (403 M_FORBIDDEN);
- joining needs an invite (or a public room): 403 "You are not invited"; joining or leaving an
  unknown room is 404 M_UNKNOWN (for an unknown id without `:server` Synapse answers 400 "not
  legal room ID" instead, which the bridge reports as not in the room); a missing state event or
  account data is None, as the real gateway turns Synapse's 404 M_NOT_FOUND;
- the appservice acts only as its own users (403 M_FORBIDDEN "cannot masquerade");
- `PUT /send/{txnId}` is idempotent per (sender, room, type, txnId).

Users act through the homeserver's own methods (`create_room`, `invite`, `send_state`,
`send_text`...), as their clients would. `FakeMatrixGateway` is the bridge's side: the
appservice bot and its ghosts, with the same methods, arguments, return values and exceptions
(mautrix's `MatrixRequestError` subclasses; `SendError` from `send_event`) as the real gateway.

Events the homeserver would push to the appservice (in rooms where one of its users is joined,
or sent by or naming one of its users) queue up in `pushed`; a test hands them to the bridge with
`await hs.deliver(handler)`, as transactions would, when it chooses. Failures can be scripted
(`hs.fail("put_state", status=403, errcode="M_FORBIDDEN")`, `hs.fail("send_event", status=429,
errcode="M_LIMIT_EXCEEDED", retry_after_ms=10)`).
"""

from __future__ import annotations

import copy
import json
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from mautrix.appservice.api.intent import IntentError
from mautrix.errors import MatrixRequestError, MForbidden, make_request_error

from hookshot_py.matrix.gateway import MediaError, SendError
from hookshot_py.matrix.power import RoomPower

MEMBER = "m.room.member"
POWER_LEVELS = "m.room.power_levels"
CREATE = "m.room.create"
StateKey = tuple[str, str]


def matrix_error(status: int, errcode: str, error: str = "") -> MatrixRequestError:
    """The exception mautrix raises for this homeserver answer."""
    body = json.dumps({"errcode": errcode, "error": error})
    return make_request_error(status, body, errcode, error)


@dataclass
class ScriptedFailure:
    method: str
    status: int
    errcode: str
    error: str
    room_id: str | None
    retry_after_ms: int | None
    times: int


@dataclass
class FakeRoom:
    room_id: str
    version: str
    state: dict[StateKey, dict[str, Any]] = field(default_factory=dict)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    # The state each departed user still sees (Synapse shows it as it was when they left).
    state_at_leave: dict[str, dict[StateKey, dict[str, Any]]] = field(default_factory=dict)

    def content(self, event_type: str, state_key: str = "") -> dict[str, Any] | None:
        event = self.state.get((event_type, state_key))
        return event["content"] if event is not None else None

    def membership(self, user_id: str) -> str | None:
        content = self.content(MEMBER, user_id)
        return content.get("membership") if content else None

    def members(self, membership: str = "join") -> set[str]:
        return {
            key
            for (etype, key), ev in self.state.items()
            if etype == MEMBER and ev["content"].get("membership") == membership
        }

    @property
    def creators(self) -> set[str]:
        create = self.state[(CREATE, "")]
        found = {create["sender"]}
        extra = create["content"].get("additional_creators")
        if isinstance(extra, list):
            found.update(c for c in extra if isinstance(c, str))
        return found

    def level_of(self, user_id: str) -> float:
        """The spec's rules, written out independently of hookshot_py's RoomPower."""
        if self.version.isdigit() and int(self.version) >= 12 and user_id in self.creators:
            return math.inf
        power = self.content(POWER_LEVELS)
        if power is None:
            return 100 if user_id in self.creators else 0
        users = power.get("users") or {}
        return int(users.get(user_id, power.get("users_default", 0)))

    def level_needed(self, key: str, default: int) -> int:
        power = self.content(POWER_LEVELS) or {}
        return int(power.get(key, default))

    def state_level(self, event_type: str) -> int:
        power = self.content(POWER_LEVELS)
        if power is None:
            return 0
        return int((power.get("events") or {}).get(event_type, power.get("state_default", 50)))

    def event_level(self, event_type: str) -> int:
        power = self.content(POWER_LEVELS)
        if power is None:
            return 0
        return int((power.get("events") or {}).get(event_type, power.get("events_default", 0)))


class FakeHomeserver:
    def __init__(self, server_name: str, bot_mxid: str, is_appservice_user: Callable[[str], bool]) -> None:
        self.server_name = server_name
        self.bot_mxid = bot_mxid
        self.is_appservice_user = is_appservice_user
        self.rooms: dict[str, FakeRoom] = {}
        self.registered: set[str] = set()
        self.profiles: dict[str, dict[str, str]] = {}
        self.account_data: dict[tuple[str, str], dict[str, Any]] = {}  # (user, type)
        self.room_account_data: dict[tuple[str, str, str], dict[str, Any]] = {}  # (user, room, type)
        # Every event sent through the gateway's `send_event` (the outbox's door), in order.
        self.sent: list[dict[str, Any]] = []
        self.pushed: list[dict[str, Any]] = []
        self.failures: list[ScriptedFailure] = []
        self.txns: dict[tuple[str, str, str, str], str] = {}
        self.media: dict[str, tuple[bytes, str]] = {}  # mxc URI → (bytes, content type)

    # -- inspection ---------------------------------------------------------------------------------

    def room(self, room_id: str) -> FakeRoom:
        return self.rooms[room_id]

    def sent_in(self, room_id: str, event_type: str = "m.room.message") -> list[dict[str, Any]]:
        return [e for e in self.sent if e["room_id"] == room_id and e["type"] == event_type]

    def bodies(self, room_id: str) -> list[str]:
        """The bodies of the messages the bridge sent to `room_id`, in order."""
        return [e["content"].get("body", "") for e in self.sent_in(room_id)]

    def reactions(self, room_id: str, event_id: str | None = None) -> list[str]:
        return [
            e["content"]["m.relates_to"]["key"]
            for e in self.sent_in(room_id, "m.reaction")
            if event_id is None or e["content"]["m.relates_to"]["event_id"] == event_id
        ]

    # -- scripted failures --------------------------------------------------------------------------

    def fail(
        self,
        method: str,
        *,
        status: int,
        errcode: str,
        error: str = "scripted failure",
        room_id: str | None = None,
        retry_after_ms: int | None = None,
        times: int = 1,
    ) -> None:
        """Make the gateway's next `times` calls of `method` (in `room_id`, if given) fail so."""
        self.failures.append(ScriptedFailure(method, status, errcode, error, room_id, retry_after_ms, times))

    def scripted(self, method: str, room_id: str | None = None) -> ScriptedFailure | None:
        for failure in self.failures:
            if failure.method == method and failure.room_id in (None, room_id):
                failure.times -= 1
                if failure.times <= 0:
                    self.failures.remove(failure)
                return failure
        return None

    # -- delivery to the appservice -----------------------------------------------------------------

    async def deliver(self, handler: Callable[[dict[str, Any]], Awaitable[None]]) -> int:
        """Hand the queued events to `handler` in order (events it causes are handed on too)."""
        n = 0
        while self.pushed:
            event = self.pushed.pop(0)
            await handler(event)
            n += 1
        return n

    def _interested(self, room: FakeRoom, event: dict[str, Any]) -> bool:
        """Synapse pushes an event when an appservice user sent it, is its state key, or is joined."""
        ours = self.is_appservice_user
        if ours(event["sender"]) or (event["type"] == MEMBER and ours(event.get("state_key", ""))):
            return True
        return any(ours(u) for u in room.members("join"))

    # -- the homeserver's own operations (what a client would ask) ----------------------------------

    def _room(self, room_id: str) -> FakeRoom:
        room = self.rooms.get(room_id)
        if room is None:
            raise matrix_error(403, "M_FORBIDDEN", f"User not in room {room_id}")
        return room

    def _event(
        self,
        room: FakeRoom,
        sender: str,
        event_type: str,
        content: dict[str, Any],
        state_key: str | None = None,
        *,
        ts: int | None = None,
    ) -> dict[str, Any]:
        json.dumps(content)  # a homeserver takes only JSON
        event: dict[str, Any] = {
            "event_id": "$" + secrets.token_urlsafe(32),
            "room_id": room.room_id,
            "sender": sender,
            "type": event_type,
            "content": copy.deepcopy(content),
            "origin_server_ts": ts if ts is not None else int(time.time() * 1000),
            "unsigned": {},
        }
        if state_key is not None:
            event["state_key"] = state_key
            room.state[(event_type, state_key)] = event
        room.timeline.append(event)
        if self._interested(room, event):
            self.pushed.append(copy.deepcopy(event))
        return event

    def create_room(
        self,
        creator: str,
        *,
        invite: Iterable[str] = (),
        name: str | None = None,
        version: str = "12",
        preset: str = "private_chat",
        is_direct: bool = False,
        power_users: dict[str, int] | None = None,
        room_id: str | None = None,
    ) -> str:
        """Like `POST /createRoom`: room version 12 by default, whose creator is not in `users`.
        `room_id` picks the id (e.g. a room named in the config)."""
        v12 = version.isdigit() and int(version) >= 12
        if room_id is None:
            room_id = "!" + secrets.token_urlsafe(32) if v12 else f"!{secrets.token_urlsafe(12)}:{self.server_name}"
        room = self.rooms[room_id] = FakeRoom(room_id, version)
        self._event(
            room,
            creator,
            CREATE,
            {"room_version": version} if v12 else {"room_version": version, "creator": creator},
            "",
        )
        self._event(room, creator, MEMBER, {"membership": "join"}, creator)
        users: dict[str, int] = {} if v12 else {creator: 100}
        if preset == "trusted_private_chat":
            users.update({u: 100 for u in invite})
        users.update(power_users or {})
        self._event(
            room,
            creator,
            POWER_LEVELS,
            {
                "ban": 50,
                "kick": 50,
                "redact": 50,
                "invite": 0,
                "events_default": 0,
                "state_default": 50,
                "users_default": 0,
                "users": users,
                "events": {
                    "m.room.name": 50,
                    "m.room.power_levels": 100,
                    "m.room.history_visibility": 100,
                    "m.room.tombstone": 150 if v12 else 100,
                },
            },
            "",
        )
        self._event(
            room, creator, "m.room.join_rules", {"join_rule": "public" if preset == "public_chat" else "invite"}, ""
        )
        self._event(room, creator, "m.room.history_visibility", {"history_visibility": "shared"}, "")
        if name is not None:
            self._event(room, creator, "m.room.name", {"name": name}, "")
        for user in invite:
            self.invite(room_id, creator, user, is_direct=is_direct)
        return room_id

    def _require_joined(self, room: FakeRoom, user_id: str) -> None:
        if room.membership(user_id) != "join":
            raise matrix_error(403, "M_FORBIDDEN", f"User {user_id} not in room {room.room_id}")

    def invite(self, room_id: str, sender: str, target: str, *, is_direct: bool = False) -> dict[str, Any]:
        room = self._room(room_id)
        self._require_joined(room, sender)
        if room.level_of(sender) < room.level_needed("invite", 0):
            raise matrix_error(403, "M_FORBIDDEN", "You don't have permission to invite users")
        if room.membership(target) in ("join", "ban"):
            raise matrix_error(403, "M_FORBIDDEN", f"{target} is already in the room.")
        content: dict[str, Any] = {"membership": "invite"}
        if is_direct:
            content["is_direct"] = True
        return self._event(room, sender, MEMBER, content, target)

    def join(self, room_id: str, user_id: str) -> dict[str, Any]:
        room = self.rooms.get(room_id)
        if room is None:
            raise matrix_error(
                404, "M_UNKNOWN", "Can't join remote room because no servers that are in the room have been provided."
            )
        current = room.membership(user_id)
        if current == "ban":
            raise matrix_error(403, "M_FORBIDDEN", "You are banned from this room")
        if current == "join":
            return room.state[(MEMBER, user_id)]
        public = (room.content("m.room.join_rules") or {}).get("join_rule") == "public"
        if current != "invite" and not public:
            raise matrix_error(403, "M_FORBIDDEN", "You are not invited to this room.")
        return self._event(room, user_id, MEMBER, {"membership": "join"}, user_id)

    def leave(self, room_id: str, user_id: str, reason: str | None = None) -> dict[str, Any]:
        room = self.rooms.get(room_id)
        if room is None:
            raise matrix_error(404, "M_UNKNOWN", "Not a known room")
        if room.membership(user_id) not in ("join", "invite"):
            raise matrix_error(403, "M_FORBIDDEN", f"{user_id} not in room {room_id}.")
        return self._departed(room, user_id, user_id, "leave", reason)

    def kick(
        self, room_id: str, sender: str, target: str, reason: str | None = None, *, ban: bool = False
    ) -> dict[str, Any]:
        room = self._room(room_id)
        self._require_joined(room, sender)
        needed = room.level_needed("ban" if ban else "kick", 50)
        if room.level_of(sender) < needed or room.level_of(target) >= room.level_of(sender):
            raise matrix_error(403, "M_FORBIDDEN", "You don't have permission to do that")
        return self._departed(room, sender, target, "ban" if ban else "leave", reason)

    def _departed(
        self, room: FakeRoom, sender: str, target: str, membership: str, reason: str | None
    ) -> dict[str, Any]:
        content: dict[str, Any] = {"membership": membership}
        if reason:
            content["reason"] = reason
        was_joined = room.membership(target) == "join"
        event = self._event(room, sender, MEMBER, content, target)
        if was_joined:
            room.state_at_leave[target] = dict(room.state)
        return event

    def send_state(
        self, room_id: str, sender: str, event_type: str, state_key: str, content: dict[str, Any]
    ) -> dict[str, Any]:
        room = self._room(room_id)
        self._require_joined(room, sender)
        needed = room.state_level(event_type)
        if room.level_of(sender) < needed:
            level = room.level_of(sender)
            raise matrix_error(
                403,
                "M_FORBIDDEN",
                f"You don't have permission to post that to the room. user_level ({level}) < send_level ({needed})",
            )
        return self._event(room, sender, event_type, content, state_key)

    def set_power_levels(self, room_id: str, sender: str, users: dict[str, int], **overrides: Any) -> dict[str, Any]:
        """Merge `users` (and top-level keys) into the power levels, as `sender` (who needs the power)."""
        room = self._room(room_id)
        content = copy.deepcopy(room.content(POWER_LEVELS) or {})
        content["users"] = {**content.get("users", {}), **users}
        content.update(overrides)
        return self.send_state(room_id, sender, POWER_LEVELS, "", content)

    def send_message(
        self,
        room_id: str,
        sender: str,
        content: dict[str, Any],
        *,
        event_type: str = "m.room.message",
        age_ms: int = 0,
    ) -> dict[str, Any]:
        """A timeline event from a user; `age_ms` back-dates it (a message sent while the bridge was away)."""
        room = self._room(room_id)
        self._require_joined(room, sender)
        if room.level_of(sender) < room.event_level(event_type):
            raise matrix_error(403, "M_FORBIDDEN", "You don't have permission to post that to the room.")
        return self._event(room, sender, event_type, content, ts=int(time.time() * 1000) - age_ms)

    def send_text(
        self, room_id: str, sender: str, body: str, *, msgtype: str = "m.text", age_ms: int = 0
    ) -> dict[str, Any]:
        return self.send_message(room_id, sender, {"msgtype": msgtype, "body": body}, age_ms=age_ms)

    def upload(self, data: bytes, content_type: str) -> str:
        """Put a file in the media repository; returns its mxc URI."""
        mxc = f"mxc://{self.server_name}/{secrets.token_hex(12)}"
        self.media[mxc] = (bytes(data), content_type)
        return mxc

    # -- state as a given user sees it ----------------------------------------------------------------

    def visible_state(self, room_id: str, user_id: str) -> dict[StateKey, dict[str, Any]]:
        room = self.rooms.get(room_id)
        if room is not None:
            if room.membership(user_id) == "join":
                return room.state
            if user_id in room.state_at_leave:
                return room.state_at_leave[user_id]
        raise matrix_error(403, "M_FORBIDDEN", f"User {user_id} not in room {room_id}, and room previews are disabled")


class FakeMatrixGateway:
    """The appservice's side of `FakeHomeserver`: the bot (and its ghosts), method for method
    the real `MatrixGateway`. `calls` records every call as (method, args)."""

    def __init__(self, hs: FakeHomeserver) -> None:
        self.hs = hs
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    @property
    def bot_mxid(self) -> str:
        return self.hs.bot_mxid

    def _call(self, method: str, *args: Any, room_id: str | None = None) -> None:
        self.calls.append((method, args))
        failure = self.hs.scripted(method, room_id)
        if failure is not None:
            if method == "send_event":
                raise SendError(
                    f"{failure.status} {failure.errcode} {failure.error}",
                    status=failure.status,
                    errcode=failure.errcode,
                    retry_after_ms=failure.retry_after_ms,
                    permanent=400 <= failure.status < 500
                    and failure.status != 429
                    and failure.errcode != "M_FORBIDDEN",
                )
            raise matrix_error(failure.status, failure.errcode, failure.error)

    def _as(self, user_id: str | None) -> str:
        user = user_id or self.bot_mxid
        if user != self.bot_mxid and not self.hs.is_appservice_user(user):
            raise matrix_error(403, "M_FORBIDDEN", f"Application service cannot masquerade as this user ({user}).")
        return user

    def called(self, method: str) -> list[tuple[Any, ...]]:
        return [args for name, args in self.calls if name == method]

    # -- rooms and membership -------------------------------------------------------------

    async def ensure_joined(self, room_id: str, user_id: str | None = None, *, recheck: bool = False) -> None:
        self._call("ensure_joined", room_id, user_id, room_id=room_id)
        user = self._as(user_id)
        self.hs.registered.add(user)
        room = self.hs.rooms.get(room_id)
        if room is not None and room.membership(user) == "join":
            return
        try:
            self.hs.join(room_id, user)
            return
        except MForbidden as e:
            if user == self.bot_mxid:
                raise IntentError(f"Failed to join room {room_id} as {user}") from e
        try:  # like mautrix's IntentAPI: the bot invites its ghost, which joins
            self.hs.invite(room_id, self.bot_mxid, user)
            self.hs.join(room_id, user)
        except MatrixRequestError as e:
            raise IntentError(f"Failed to join room {room_id} as {user}") from e

    async def join(self, room_id: str) -> None:
        self._call("join", room_id, room_id=room_id)
        self.hs.join(room_id, self.bot_mxid)

    async def leave(self, room_id: str, reason: str | None = None, *, user_id: str | None = None) -> None:
        self._call("leave", room_id, reason, user_id, room_id=room_id)
        self.hs.leave(room_id, self._as(user_id), reason)

    async def joined_rooms(self) -> list[str]:
        self._call("joined_rooms")
        return [r.room_id for r in self.hs.rooms.values() if r.membership(self.bot_mxid) == "join"]

    async def joined_members(self, room_id: str) -> set[str]:
        self._call("joined_members", room_id, room_id=room_id)
        room = self.hs.rooms.get(room_id)
        if room is None or not any(self.hs.is_appservice_user(u) for u in room.members("join")):
            raise matrix_error(403, "M_FORBIDDEN", "Appservice not in room")
        return set(room.members("join"))

    async def membership(self, room_id: str, user_id: str) -> str | None:
        content = await self.state(room_id, MEMBER, user_id)
        return content.get("membership") if content else None

    async def create_dm(self, user_id: str, name: str | None = None, *, encrypted: bool = False) -> str:
        self._call("create_dm", user_id, name)
        return self.hs.create_room(
            self.bot_mxid, invite=[user_id], name=name, preset="trusted_private_chat", is_direct=True
        )

    # -- state ----------------------------------------------------------------------------

    async def state_event(self, room_id: str, event_type: str, state_key: str = "") -> dict[str, Any] | None:
        self._call("state_event", room_id, event_type, state_key, room_id=room_id)
        event = self.hs.visible_state(room_id, self.bot_mxid).get((event_type, state_key))
        return copy.deepcopy(event) if event is not None else None

    async def state(self, room_id: str, event_type: str, state_key: str = "") -> dict[str, Any] | None:
        self._call("state", room_id, event_type, state_key, room_id=room_id)
        event = self.hs.visible_state(room_id, self.bot_mxid).get((event_type, state_key))
        return copy.deepcopy(event["content"]) if event is not None else None

    async def room_state(self, room_id: str) -> list[dict[str, Any]]:
        self._call("room_state", room_id, room_id=room_id)
        return copy.deepcopy(list(self.hs.visible_state(room_id, self.bot_mxid).values()))

    async def put_state(self, room_id: str, event_type: str, state_key: str, content: dict[str, Any]) -> str:
        self._call("put_state", room_id, event_type, state_key, content, room_id=room_id)
        return str(self.hs.send_state(room_id, self.bot_mxid, event_type, state_key, content)["event_id"])

    async def power(self, room_id: str) -> RoomPower:
        power_levels = await self.state(room_id, POWER_LEVELS)
        create = await self.state_event(room_id, CREATE)
        return RoomPower.from_state(power_levels, create)

    # -- account data (the bot's) -----------------------------------------------------------

    async def room_account_data(self, room_id: str, data_type: str) -> dict[str, Any] | None:
        self._call("room_account_data", room_id, data_type, room_id=room_id)
        data = self.hs.room_account_data.get((self.bot_mxid, room_id, data_type))
        return copy.deepcopy(data) if data is not None else None

    async def set_room_account_data(self, room_id: str, data_type: str, content: dict[str, Any]) -> None:
        self._call("set_room_account_data", room_id, data_type, content, room_id=room_id)
        json.dumps(content)
        self.hs.room_account_data[(self.bot_mxid, room_id, data_type)] = copy.deepcopy(content)

    async def account_data(self, data_type: str) -> dict[str, Any] | None:
        self._call("account_data", data_type)
        data = self.hs.account_data.get((self.bot_mxid, data_type))
        return copy.deepcopy(data) if data is not None else None

    async def set_account_data(self, data_type: str, content: dict[str, Any]) -> None:
        self._call("set_account_data", data_type, content)
        json.dumps(content)
        self.hs.account_data[(self.bot_mxid, data_type)] = copy.deepcopy(content)

    # -- profiles ---------------------------------------------------------------------------

    async def ensure_registered(self, user_id: str | None = None) -> None:
        self._call("ensure_registered", user_id)
        self.hs.registered.add(self._as(user_id))

    async def profile(self, user_id: str) -> tuple[str | None, str | None]:
        self._call("profile", user_id)
        found = self.hs.profiles.get(user_id)
        if found is None:
            return (None, None)
        return (found.get("displayname"), found.get("avatar_url"))

    async def set_profile(self, user_id: str, displayname: str | None, avatar_url: str | None) -> None:
        self._call("set_profile", user_id, displayname, avatar_url)
        user = self._as(user_id)
        self.hs.registered.add(user)
        profile = self.hs.profiles.setdefault(user, {})
        if displayname is not None:
            profile["displayname"] = displayname
        if avatar_url is not None:
            profile["avatar_url"] = avatar_url

    # -- media ----------------------------------------------------------------------------------

    async def download_media(self, mxc: str, *, max_bytes: int, timeout: float) -> tuple[bytes, str | None]:
        """As the real one: MediaError, permanent for unknown media (404) or a file over `max_bytes`;
        a scripted failure is a MediaError too (permanent for 400, 403, 404)."""
        try:
            self._call("download_media", mxc, max_bytes, timeout)
        except MatrixRequestError as e:
            raise MediaError(f"the media repository answered {e.http_status} for {mxc}",
                             permanent=e.http_status in (400, 403, 404)) from e  # fmt: skip
        if mxc not in self.hs.media:
            raise MediaError(f"the media repository answered 404 for {mxc}", permanent=True)
        data, content_type = self.hs.media[mxc]
        if len(data) > max_bytes:
            raise MediaError(f"{mxc} is larger than {max_bytes} bytes", permanent=True)
        return data, content_type

    # -- sending --------------------------------------------------------------------------------

    async def send_event(
        self, room_id: str, sender: str, event_type: str, content: dict[str, Any] | bytes, txn_id: str,
        *, timeout: float = 60.0,
    ) -> str:
        if isinstance(content, bytes):  # the outbox sends the stored JSON as it is
            content = json.loads(content)
        self._call("send_event", room_id, sender, event_type, content, txn_id, room_id=room_id)
        key = (sender, room_id, event_type, txn_id)
        if key in self.hs.txns:
            return self.hs.txns[key]
        try:
            user = self._as(sender)
            event = self.hs.send_message(room_id, user, content, event_type=event_type)
        except MatrixRequestError as e:
            status = e.http_status
            raise SendError(
                f"{status} {e.errcode} {e.message}",
                status=status,
                errcode=e.errcode,
                permanent=400 <= status < 500 and e.errcode != "M_FORBIDDEN",
            ) from e
        self.hs.txns[key] = event["event_id"]
        self.hs.sent.append(copy.deepcopy(event))
        return str(event["event_id"])

    async def find_markers(
        self, room_id: str, key: str, wanted: set[str], oldest_ts: float, *, max_pages: int = 20
    ) -> dict[str, str]:
        self._call("find_markers", room_id, key, wanted, room_id=room_id)
        return {e["content"][key]: e["event_id"] for e in self.hs.sent
                if e.get("room_id") == room_id and e.get("content", {}).get(key) in wanted}

    async def close(self) -> None:
        return None
