"""Typed, path-aware reading of forge webhook payloads, for every forge's `format.py`.

A webhook body is untrusted JSON: a missing or mistyped field must become a `PayloadError`
that names the field (`issue.number: expected integer, got string`), never a KeyError. (The
payloads are read where they are formatted, rather than declared as models: a forge sends
dozens of event shapes and each message needs a few fields of one.)
"""

from __future__ import annotations

from typing import Any

__all__ = ["Payload", "PayloadError", "json_type_name", "push_summary"]


class PayloadError(ValueError):
    """The payload lacks a field the event needs, or has it with the wrong type."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


def json_type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


class Payload:
    """A JSON object plus the path it was reached by, for error messages."""

    def __init__(self, data: Any, path: str = "") -> None:
        if not isinstance(data, dict):
            raise PayloadError(path or "payload", f"expected object, got {json_type_name(data)}")
        self.raw: dict[str, Any] = data
        self.path = path

    def _child_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return self.raw.get(key) is not None

    def obj(self, key: str) -> Payload:
        return Payload(self.raw.get(key), self._child_path(key))

    def opt_obj(self, key: str) -> Payload | None:
        return None if self.raw.get(key) is None else self.obj(key)

    def text(self, key: str) -> str:
        value = self.raw.get(key)
        if not isinstance(value, str):
            raise PayloadError(self._child_path(key), f"expected string, got {json_type_name(value)}")
        return value

    def opt_text(self, key: str) -> str | None:
        return None if self.raw.get(key) is None else self.text(key)

    def integer(self, key: str) -> int:
        value = self.raw.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise PayloadError(self._child_path(key), f"expected integer, got {json_type_name(value)}")
        return value

    def flag(self, key: str) -> bool:
        """Missing or null reads as False; any other non-boolean is an error."""
        value = self.raw.get(key)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise PayloadError(self._child_path(key), f"expected boolean, got {json_type_name(value)}")
        return value

    def objs(self, key: str) -> list[Payload]:
        """A list of objects; missing or null reads as empty."""
        value = self.raw.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise PayloadError(self._child_path(key), f"expected array, got {json_type_name(value)}")
        return [Payload(item, f"{self._child_path(key)}[{i}]") for i, item in enumerate(value)]


def _ids_of(value: Any) -> list[dict[str, str]]:
    items = value if isinstance(value, list) else []
    return [{"id": c["id"]} for c in items if isinstance(c, dict) and isinstance(c.get("id"), str)]


def _id_of(value: Any) -> dict[str, str] | None:
    return {"id": value["id"]} if isinstance(value, dict) and isinstance(value.get("id"), str) else None


def _scalars(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if isinstance(v, str | int | float | bool) or v is None}


def push_summary(payload: dict[str, Any]) -> dict[str, Any]:
    """What push listeners get of a push delivery (so a 25 MiB body never crosses from a
    CPU-pool worker): its top-level scalars (`ref`, `before`, `after`...) and the commit ids, in
    GitHub's shape (`commits[].id`, `head_commit.id`) and GitFlic's (`push{...}` likewise)."""
    summary = _scalars(payload)
    summary["commits"] = _ids_of(payload.get("commits"))
    summary["head_commit"] = _id_of(payload.get("head_commit"))
    push = payload.get("push")
    if isinstance(push, dict):
        summary["push"] = {**_scalars(push), "commits": _ids_of(push.get("commits"))}
    return summary
