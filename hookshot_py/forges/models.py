"""Declared models of what forge APIs answer: msgspec Structs, converted with one error type.

A forge package declares each answer it reads as a `Model` subclass (frozen, unknown keys
ignored, strict types: `"12"` is not an int, `1` is not a bool) and reads it with `convert`
(parsed JSON) or `decode` (raw bytes). A value that does not fit raises `ModelError` naming the
field, which the forge's client words for its users ("GitHub's user has no valid 'login'").

Why msgspec rather than pydantic v2 (measured in bench/models.py, figures in bench/README.md):
the same speed on these answers, a 0.7 MB wheel instead of 9.6 MB, a 10 ms import instead of
145 ms, strict by default, and Structs are built positionally like the dataclasses they replace
(tests and callers build `Commit(sha, True, ...)`). Its errors carry the path only in their
text (`... - at `$.config.url``), which `ModelError` reads once here.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, TypeVar

import msgspec

__all__ = ["Model", "ModelError", "convert", "decode", "field_description", "to_builtins"]

T = TypeVar("T")

_AT = re.compile(r"^(?P<problem>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]*)`$")


class Model(msgspec.Struct, frozen=True):
    """Base of every declared forge answer. `what` names it in error texts ("user", "hook")."""

    what: ClassVar[str] = "answer"


class ModelError(ValueError):
    """A value does not fit its model. `path` is where (`login`, `config.url`, `[2].id`; "" for
    the value itself), `problem` msgspec's description of what is wrong there."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path or 'value'}: {problem}")
        self.path = path
        self.problem = problem

    @property
    def field(self) -> str:
        """The last key of `path` (`url` for `config.url`), "" for the value itself."""
        return re.split(r"[.\[\]]", self.path.rstrip("]"))[-1] if self.path else ""

    @classmethod
    def of(cls, error: msgspec.ValidationError) -> ModelError:
        match = _AT.match(str(error))
        assert match is not None  # the pattern matches any text
        path = (match["path"] or "").lstrip(".")
        problem = match["problem"]
        if missing := _MISSING.match(problem):
            path = f"{path}.{missing['field']}" if path else missing["field"]
            problem = "missing"
        return cls(path, problem)


def convert(data: Any, model: type[T]) -> T:
    """`data` (parsed JSON) as `model`; raises ModelError."""
    try:
        return msgspec.convert(data, model)
    except msgspec.ValidationError as e:
        raise ModelError.of(e) from None


def decode(raw: bytes, model: type[T]) -> T:
    """Raw JSON bytes as `model` in one pass; raises ModelError (also for text that is not JSON,
    with the path "")."""
    try:
        return msgspec.json.decode(raw, type=model)
    except msgspec.ValidationError as e:
        raise ModelError.of(e) from None
    except msgspec.DecodeError as e:
        raise ModelError("", f"not JSON: {e}") from None


def to_builtins(value: Any) -> Any:
    """A model as plain JSON-able values (for storing it)."""
    return msgspec.to_builtins(value)


def field_description(model: type[msgspec.Struct], name: str) -> str | None:
    """The `description` a field declares with `msgspec.Meta`, for error texts."""
    info = msgspec.inspect.type_info(model)
    for f in getattr(info, "fields", ()):
        if f.name == name or f.encode_name == name:
            meta = f.type
            if isinstance(meta, msgspec.inspect.Metadata) and meta.extra_json_schema:
                described = meta.extra_json_schema.get("description")
                return described if isinstance(described, str) else None
    return None
