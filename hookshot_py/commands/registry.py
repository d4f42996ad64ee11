"""Command tables: `!hookshot ...` room commands and DM commands, registered by each service package."""

from __future__ import annotations

import difflib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hookshot_py.commands.context import CommandContext

Handler = Callable[["CommandContext", list[str]], Awaitable[None]]


@dataclass(frozen=True)
class Command:
    words: tuple[str, ...]  # e.g. ("webhook", "list")
    handler: Handler
    usage: str  # arguments, e.g. "<name>"
    help: str
    min_args: int = 0
    max_args: int | None = None
    # (service, level) the sender needs in the bridge config; None: anyone in the room.
    permission: tuple[str, str] | None = None

    @property
    def name(self) -> str:
        return " ".join(self.words)


class CommandRegistry:
    def __init__(self) -> None:
        self._commands: list[Command] = []

    def add(self, command: Command) -> None:
        self._commands.append(command)

    def __iter__(self) -> Iterator[Command]:
        return iter(sorted(self._commands, key=lambda c: c.words))

    def match(self, args: list[str]) -> tuple[Command, list[str]] | None:
        """The longest command whose words start `args` (case-insensitive)."""
        lowered = [a.lower() for a in args]
        best: Command | None = None
        for cmd in self._commands:
            n = len(cmd.words)
            if tuple(lowered[:n]) == cmd.words and (best is None or n > len(best.words)):
                best = cmd
        if best is None:
            return None
        return best, args[len(best.words):]

    def suggest(self, word: str) -> list[str]:
        names = sorted({c.words[0] for c in self._commands})
        return difflib.get_close_matches(word.lower(), names, n=2)
