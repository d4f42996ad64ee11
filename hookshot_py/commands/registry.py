"""Command declarations and tables.

Every command the bot understands — `!hookshot ...` in rooms, the DM commands, and each
connection's prefix commands (`!gh ...`, `!gf ...`) — is declared the same way: a method
decorated with `@command(...)` on a small object holding what the commands need, collected
into a `CommandRegistry` with `commands_of(obj)`. The dispatcher serves every registry alike
(arity, permission, "did you mean", help).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from hookshot_py.commands.context import CommandContext

Handler = Callable[["CommandContext", list[str]], Awaitable[None]]
F = TypeVar("F", bound=Callable[..., Awaitable[None]])

_SPEC = "__hookshot_command__"


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

    def usage_line(self) -> str:
        return f"{self.name} {self.usage}".strip()


@dataclass(frozen=True)
class _Spec:
    words: tuple[str, ...]
    usage: str
    help: str
    min_args: int
    max_args: int | None
    permission: tuple[str, str] | None


def command(
    name: str,
    usage: str = "",
    help: str = "",
    *,
    min_args: int = 0,
    max_args: int | None = None,
    permission: tuple[str, str] | None = None,
) -> Callable[[F], F]:
    """Declare a method `async def handler(self, ctx, args)` as the command `name` (words
    separated by spaces). `args` are the words after the command's own."""

    def mark(fn: F) -> F:
        setattr(fn, _SPEC, _Spec(tuple(name.lower().split()), usage, help, min_args, max_args, permission))
        return fn

    return mark


def commands_of(obj: object) -> list[Command]:
    """The commands declared (`@command`) on `obj`'s methods, bound to it."""
    found: list[Command] = []
    for _, member in inspect.getmembers(type(obj), inspect.isfunction):
        spec: _Spec | None = getattr(member, _SPEC, None)
        if spec is None:
            continue
        found.append(
            Command(
                spec.words,
                getattr(obj, member.__name__),
                spec.usage,
                spec.help,
                spec.min_args,
                spec.max_args,
                spec.permission,
            )
        )
    return found


class CommandRegistry:
    def __init__(self, commands: Iterable[Command] = ()) -> None:
        self._commands: list[Command] = []
        for cmd in commands:
            self.add(cmd)

    def add(self, command: Command) -> None:
        if any(c.words == command.words for c in self._commands):
            raise ValueError(f"command {command.name!r} is declared twice")
        self._commands.append(command)

    def extend(self, commands: Iterable[Command]) -> None:
        for cmd in commands:
            self.add(cmd)

    def __iter__(self) -> Iterator[Command]:
        return iter(sorted(self._commands, key=lambda c: c.words))

    def __len__(self) -> int:
        return len(self._commands)

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
        names = sorted({c.words[0] for c in self._commands} | {"help"})
        return difflib.get_close_matches(word.lower(), names, n=2)

