"""What a command handler gets: who asked, where, and how to answer (always via the outbox)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hookshot_py.markdown import render_markdown
from hookshot_py.matrix.outbox import OutgoingEvent

if TYPE_CHECKING:
    from hookshot_py.services import Services


class CommandError(Exception):
    """A refusal or mistake to tell the user; the text is shown as is."""


def text_after(text: str, words: int) -> str:
    """`text` without its first `words` words, as typed; one pair of surrounding quotes is removed."""
    parts = text.split(None, words)
    rest = parts[words].strip() if len(parts) > words else ""
    if len(rest) >= 2 and rest[0] == rest[-1] and rest[0] in "\"'":
        rest = rest[1:-1].strip()
    return rest


@dataclass
class CommandContext:
    room_id: str
    sender: str
    event_id: str
    services: Services
    is_dm: bool = False
    prefix: str = "!hookshot"
    # The command as typed after the prefix, for commands that take free text (spacing and
    # apostrophes kept; `args` are the shell-like split of it).
    text: str = ""

    def notice(self, room_id: str, markdown: str) -> OutgoingEvent:
        content: dict[str, Any] = {
            "msgtype": "m.notice",
            "body": markdown,
            "format": "org.matrix.custom.html",
            "formatted_body": render_markdown(markdown),
        }
        return OutgoingEvent(room_id, content)

    async def reply(self, markdown: str) -> None:
        """A notice in the room the command came from, as a reply to it."""
        event = self.notice(self.room_id, markdown)
        event.content["m.relates_to"] = {"m.in_reply_to": {"event_id": self.event_id}}
        await self.services.outbox.enqueue([event])

    async def react(self, key: str) -> None:
        await self.services.outbox.enqueue(
            [
                OutgoingEvent(
                    self.room_id,
                    {"m.relates_to": {"rel_type": "m.annotation", "event_id": self.event_id, "key": key}},
                    event_type="m.reaction",
                )
            ]
        )

    async def dm(self, markdown: str, user_id: str | None = None) -> str:
        """Send a notice to the user's DM room (created if needed); returns the room id."""
        room_id = await self.services.dms.room_for(user_id or self.sender)
        await self.services.outbox.enqueue([self.notice(room_id, markdown)])
        return room_id
