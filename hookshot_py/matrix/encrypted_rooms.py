"""What the bridge does with encrypted rooms: decrypt and route, or say why it cannot. Never silence.

It sits in front of the event router (`on_event`). With encryption enabled, an `m.room.encrypted`
event is decrypted and handed to the router; one that cannot be decrypted gets a reply (once per
Megolm session) telling its sender. With encryption disabled, an encrypted room is told once, in
clear, how to enable it. Every other event goes to the router unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hookshot_py.matrix.gateway import MatrixGateway
from hookshot_py.matrix.outbox import Outbox, OutgoingEvent

if TYPE_CHECKING:  # mautrix's crypto (12 MiB of memory) is imported only with encryption on
    from hookshot_py.matrix.crypto import RoomCrypto

log = logging.getLogger(__name__)

ENCRYPTION = "m.room.encryption"
ENCRYPTED = "m.room.encrypted"


@dataclass
class Undecryptable:
    """An encrypted event we could not read, and why, for the reply that tells its sender."""

    event: dict[str, Any]
    session_id: str
    reason: str

MEMBER = "m.room.member"

UNSUPPORTED_NOTICE = (
    "This room is end-to-end encrypted, but encryption is not enabled on this bridge: I cannot read "
    "commands here, and what I post here is not encrypted. Ask the bridge's admin to enable it "
    "(`encryption: {enabled: true}` in the bridge's config; the homeserver must allow it too, see the "
    "README's \"Encrypted rooms\" section), or use a room without encryption."
)


def undecryptable_notice(reason: str) -> str:
    return (
        f"I could not decrypt your message ({reason}), so if it was a command I did not run it. "
        "Make sure your client shares keys with unverified devices in this room; I will act on "
        "the message if its key reaches me within 10 minutes, otherwise send it again."
    )


class EncryptedRooms:
    def __init__(
        self,
        crypto: RoomCrypto | None,
        gateway: MatrixGateway,
        outbox: Outbox,
        is_bridge_user: Callable[[str], bool],
        route: Callable[[dict[str, Any]], Awaitable[None]],
        spawn: Callable[[Awaitable[Any], str], None],
    ) -> None:
        self.crypto = crypto
        self.gateway = gateway
        self.outbox = outbox
        self.is_bridge_user = is_bridge_user
        self.route = route
        self.spawn = spawn

    async def on_event(self, event: dict[str, Any]) -> None:
        """Every event from the homeserver passes here first."""
        etype, room_id = event.get("type"), event.get("room_id", "")
        if "state_key" in event:
            if self.crypto is not None:
                await self.crypto.on_room_state(event)
            elif etype == ENCRYPTION and event["state_key"] == "":
                await self.tell_unsupported(room_id)
            content = event.get("content") or {}
            if etype == MEMBER and event["state_key"] == self.gateway.bot_mxid and content.get("membership") == "join":
                self.spawn(self.on_bot_joined(room_id), "encrypted-room-check")
        if etype == ENCRYPTED:
            if self.crypto is not None and not self.crypto.ready and not self.is_bridge_user(event.get("sender", "")):
                # Another process holds the device (or it is loading): stored for it before the
                # transaction is acknowledged.
                await self.crypto.spool_event(event)
                return
            # Decrypting may wait for keys that come in a later transaction: never hold this one up.
            self.spawn(self.on_encrypted(event), "decrypt")
            return
        await self.route(event)

    async def on_encrypted(self, event: dict[str, Any]) -> None:
        """An `m.room.encrypted` room event from the homeserver."""
        room_id, sender = event.get("room_id", ""), event.get("sender", "")
        if self.is_bridge_user(sender):
            return  # our own messages
        if self.crypto is None:
            log.debug("Encrypted event %s in %s, but encryption is disabled", event.get("event_id"), room_id)
            await self.tell_unsupported(room_id)
            return
        result = await self.crypto.decrypt(event)
        if isinstance(result, Undecryptable):
            await self._tell_undecryptable(result)
            return
        if result.get("type") == ENCRYPTED:
            return  # nested encryption: never
        await self.route(result)

    async def on_bot_joined(self, room_id: str) -> None:
        """The bot joined a room: if it is encrypted and the bridge cannot decrypt, say so."""
        if self.crypto is not None:
            return
        try:
            encrypted = await self.gateway.state(room_id, ENCRYPTION) is not None
        except Exception as e:
            log.debug("Could not read the encryption state of %s: %s", room_id, e)
            return
        if encrypted:
            await self.tell_unsupported(room_id)

    async def tell_unsupported(self, room_id: str) -> None:
        """Once per room (the outbox's dedupe key keeps it to one notice a week at most)."""
        await self.outbox.enqueue(
            [
                OutgoingEvent(
                    room_id,
                    {"msgtype": "m.notice", "body": UNSUPPORTED_NOTICE},
                    dedupe_key="e2ee:unsupported",
                )
            ]
        )

    async def _tell_undecryptable(self, failed: Undecryptable) -> None:
        event = failed.event
        log.warning(
            "Could not decrypt %s from %s in %s: %s",
            event.get("event_id"), event.get("sender"), event.get("room_id"), failed.reason,
        )
        content: dict[str, Any] = {
            "msgtype": "m.notice",
            "body": f"{event.get('sender')}: {undecryptable_notice(failed.reason)}",
        }
        if isinstance(event.get("event_id"), str):
            content["m.relates_to"] = {"m.in_reply_to": {"event_id": event["event_id"]}}
        # One reply per Megolm session: a client that withholds its keys does so for every message.
        key = f"e2ee:undecryptable:{failed.session_id or event.get('event_id')}"
        await self.outbox.enqueue([OutgoingEvent(event.get("room_id", ""), content, dedupe_key=key)])
