"""Reading a GitFlic delivery body: its action, the project it names, and a key that tells
a retry of the same occurrence from a new one. Pure functions over bytes, light to import: the
webhook route runs them in a CPU-pool worker (`digest.py`)."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from hookshot_py.errors import ApiError
from hookshot_py.forges.inbound import parse_json_object
from hookshot_py.gitflic.models import Delivery

__all__ = ["DeliveryError", "dedupe_key", "parse_delivery", "project_key_of"]

# `https://gitflic.ru/project/{owner}/{alias}.git` — the clone URL names the project too.
_TRANSPORT_PATH = re.compile(r"/project/([^/]+)/([^/]+?)(?:\.git)?/?$")


class DeliveryError(Exception):
    """The body is not a GitFlic delivery; the message says why (for a 400 answer)."""


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def project_key_of(body: dict[str, Any]) -> str | None:
    """`owner/project` from whichever fields name the project, lower-cased."""
    project = body.get("project")
    project = project if isinstance(project, dict) else {}
    owner = _text(project.get("owner_alias")) or _text(project.get("ownerAlias")) or _text(body.get("owner_alias"))
    alias = _text(project.get("alias")) or _text(project.get("project_alias")) or _text(body.get("project_alias"))
    if owner and alias:
        return f"{owner}/{alias}".lower()
    for key in ("http_transport_url", "httpTransportUrl", "web_url", "url"):
        url = _text(project.get(key))
        if url and (match := _TRANSPORT_PATH.search(url.split("?", 1)[0])):
            return f"{match.group(1)}/{match.group(2)}".lower()
    return None


def parse_delivery(raw: bytes) -> Delivery:
    """Read a (verified) delivery body, depth limited; raises DeliveryError when it cannot be
    routed."""
    try:
        body = parse_json_object(raw)
    except ApiError as e:
        raise DeliveryError(e.error) from e
    action = body.get("action")
    if not isinstance(action, str) or not action.strip():
        raise DeliveryError("The body has no `action`.")
    project = body.get("project")
    project_id = _text(body.get("project_id")) or (
        _text(project.get("project_id")) or _text(project.get("id")) if isinstance(project, dict) else None
    )
    key = project_key_of(body)
    if key is None and project_id is None:
        raise DeliveryError("The body does not identify a project (no `project` nor `project_id`).")
    return Delivery(action=action.strip().upper(), project_key=key, project_id=project_id, raw=body)


_TIME_KEYS = ("updated_at", "updatedAt", "created_at", "createdAt", "timestamp")
_NOT_EVENT_OBJECTS = ("project", "sender", "user", "initiator", "author")


def dedupe_key(delivery: Delivery) -> str | None:
    """A key naming this occurrence, so that GitFlic retrying it posts it once; None when the
    body cannot tell two occurrences apart.

    GitFlic sends no delivery id. A body whose event object carries a timestamp (or a push its
    `before`/`after` commits) describes one occurrence, and a retry repeats it byte for byte in
    meaning: its canonical JSON, hashed, is the key. A TEST_WEBHOOK or a tag deletion carries
    nothing of the kind and is never deduplicated: pressing "test" twice must show twice.
    """
    objects = [v for k, v in delivery.raw.items() if isinstance(v, dict) and k not in _NOT_EVENT_OBJECTS]
    pinned = any(
        any(isinstance(obj.get(t), str | int) and obj.get(t) for t in _TIME_KEYS)
        or (isinstance(obj.get("before"), str) and isinstance(obj.get("after"), str))
        for obj in objects
    )
    if not pinned:
        return None
    canonical = json.dumps(delivery.raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "gitflic:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:40]
