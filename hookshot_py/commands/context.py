"""What a command handler gets: who asked, where, and how to answer (always via the outbox)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hookshot_py.markdown import render_markdown
from hookshot_py.matrix.outbox import Outbox, OutgoingEvent

if TYPE_CHECKING:
    from hookshot_py.connections.base import Connection
    from hookshot_py.matrix.dm import DirectMessages


class CommandError(Exception):
    """A refusal or mistake to tell the user; the text is shown as is."""


def text_after(text: str, words: int) -> str:
    """`text` without its first `words` words, as typed; one pair of surrounding quotes is removed."""
    parts = text.split(None, words)
    rest = parts[words].strip() if len(parts) > words else ""
    if len(rest) >= 2 and rest[0] == rest[-1] and rest[0] in "\"'":
        rest = rest[1:-1].strip()
    return rest


def issue_number(value: str, usage: str) -> int:
    """An issue number as typed in a command (`12` or `#12`), else the usage as the refusal."""
    digits = value[1:] if value.startswith("#") else value
    if not digits.isdigit() or int(digits) < 1:
        raise CommandError(f"`{value}` is not an issue number. Usage: `{usage}`")
    return int(digits)


def with_warnings(text: str, warnings: Iterable[str]) -> str:
    """`text` with each warning after it in a paragraph of its own: how every command shows them."""
    return text + "".join(f"\n\n⚠️ {w}" for w in warnings)


def notice(room_id: str, markdown: str) -> OutgoingEvent:
    """An `m.notice` with the markdown rendered to HTML."""
    content: dict[str, Any] = {
        "msgtype": "m.notice",
        "body": markdown,
        "format": "org.matrix.custom.html",
        "formatted_body": render_markdown(markdown),
    }
    return OutgoingEvent(room_id, content)


# A fenced block (``` or ~~~, optional language); the closing fence may end the message.
_CODE_BLOCK = re.compile(r"(?P<fence>```|~~~)[^\n]*\n(?P<code>.*?)(?:\n(?P=fence)|(?P=fence)|\Z)", re.DOTALL)
_INLINE_CODE = re.compile(r"```(?P<code>[^\n]*?)```")


def split_code_block(text: str) -> tuple[str, str | None]:
    """`text` before its first fenced code block, and the block's content (None without one).

    Code (a webhook's script) is taken as written, never split into arguments."""
    match = _CODE_BLOCK.search(text)
    if match is not None:
        return text[: match.start()].strip(), match.group("code").strip("\n")
    inline = _INLINE_CODE.search(text)
    if inline is not None:
        return text[: inline.start()].strip(), inline.group("code").strip()
    return text, None


@dataclass
class CommandContext:
    room_id: str
    sender: str
    event_id: str
    outbox: Outbox
    dms: DirectMessages
    is_dm: bool = False
    prefix: str = "!hookshot"
    # The command as typed after the prefix, for commands that take free text (spacing and
    # apostrophes kept; `args` are the shell-like split of it).
    text: str = ""
    # The connection whose prefix (`!gh`) the command was sent with.
    connection: Connection | None = None
    # The content of a fenced code block after the command, if any (see split_code_block).
    code: str | None = None
    # Set for commands claimed across processes (`commands/runs.py`): each message queued is
    # deduplicated by the command's event id and its rank, so a command run again after a crash
    # does not post what it had posted already.
    dedupe: bool = False
    queued: int = 0

    @property
    def conn(self) -> Connection:
        if self.connection is None:
            raise RuntimeError("a connection command ran without its connection")
        return self.connection

    async def reply(self, markdown: str) -> None:
        """A notice in the room the command came from, as a reply to it."""
        event = notice(self.room_id, markdown)
        await self._send_reply(event.content)

    async def reply_html(self, plain: str, html: str) -> None:
        """A reply with our own HTML (not rendered from markdown: names must show as they are)."""
        await self._send_reply(
            {"msgtype": "m.notice", "body": plain, "format": "org.matrix.custom.html", "formatted_body": html}
        )

    async def _send_reply(self, content: dict[str, Any]) -> None:
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": self.event_id}}
        await self._queue(OutgoingEvent(self.room_id, content))

    async def react(self, key: str) -> None:
        await self._queue(
            OutgoingEvent(
                self.room_id,
                {"m.relates_to": {"rel_type": "m.annotation", "event_id": self.event_id, "key": key}},
                event_type="m.reaction",
            )
        )

    async def dm(self, markdown: str, user_id: str | None = None) -> str:
        """Send a notice to the user's DM room (created if needed); returns the room id."""
        room_id = await self.dms.room_for(user_id or self.sender)
        await self._queue(notice(room_id, markdown))
        return room_id

    async def _queue(self, event: OutgoingEvent) -> None:
        self.queued += 1
        if self.dedupe and self.event_id:
            event = dataclasses.replace(event, dedupe_key=f"command:{self.event_id}:{self.queued}")
        await self.outbox.enqueue([event])
