"""Who may read or change a room's connections.

Reading needs the user joined to the room (and the bot there, joining on an invite). Changing
needs the `manageConnections` permission for the service in the bridge config, plus a power
level letting both the user and the bot send the connection's state event.
"""

from __future__ import annotations

from mautrix.errors import MatrixRequestError

from hookshot_py.errors import ApiError, ErrCode
from hookshot_py.matrix.gateway import MatrixGateway
from hookshot_py.permissions import Permissions


class RoomAccess:
    def __init__(self, gateway: MatrixGateway, permissions: Permissions) -> None:
        self.gateway = gateway
        self.permissions = permissions
        self._joined: set[str] = set()

    def mark_joined(self, room_id: str, joined: bool) -> None:
        """What the bot's membership events told us, so checks don't ask the homeserver."""
        if joined:
            self._joined.add(room_id)
        else:
            self._joined.discard(room_id)

    async def ensure_bot_in_room(self, room_id: str) -> None:
        if room_id in self._joined:
            return
        try:
            membership = await self.gateway.membership(room_id, self.gateway.bot_mxid)
        except MatrixRequestError:
            membership = None
        if membership != "join":
            try:
                await self.gateway.join(room_id)
            except MatrixRequestError as e:
                if getattr(e, "http_status", 0) == 404:
                    raise ApiError(ErrCode.NOT_FOUND, f"Room {room_id} was not found.") from e
                raise ApiError(ErrCode.NOT_IN_ROOM, "Bot is not joined to the room. Invite the bot first.") from e
        self._joined.add(room_id)

    async def assert_can_read(self, room_id: str, user_id: str) -> None:
        await self.ensure_bot_in_room(room_id)
        try:
            membership = await self.gateway.membership(room_id, user_id)
        except MatrixRequestError:
            membership = None
        if membership != "join":
            raise ApiError(ErrCode.NOT_IN_ROOM, f"{user_id} is not joined to the room.")

    async def assert_can_write(self, room_id: str, user_id: str, service: str, event_type: str) -> None:
        """Config permission, then the user's and the bot's power level for the state event."""
        if not self.permissions.check(user_id, service, "manageConnections"):
            raise ApiError(
                ErrCode.FORBIDDEN_USER,
                f"{user_id} does not have the manageConnections permission for {service} "
                "on this bridge (see `permissions` in the bridge config).",
            )
        await self.assert_can_read(room_id, user_id)
        power = await self.gateway.power(room_id)
        needed = power.required_for_state(event_type)
        if not power.can_send_state(user_id, event_type):
            raise ApiError(
                ErrCode.FORBIDDEN_USER,
                f"{user_id} has a power level of {power.describe_level(user_id)} but needs at "
                f"least {needed} to change connections in this room.",
            )
        bot = self.gateway.bot_mxid
        if not power.can_send_state(bot, event_type):
            raise ApiError(
                ErrCode.FORBIDDEN_BOT,
                f"Bot has a power level of {power.describe_level(bot)} but needs at least {needed} "
                f"to write {event_type} state. Give {bot} that level (for example make it a moderator).",
            )

    async def can_write(self, room_id: str, user_id: str, service: str, event_type: str) -> bool:
        try:
            await self.assert_can_write(room_id, user_id, service, event_type)
        except ApiError:
            return False
        return True
