"""Inbound GitFlic deliveries: checking the secret and reading the envelope.

GitFlic does not sign its deliveries: the webhook's secret arrives verbatim in the
`Gitflic-Webhook-Secret` header (newer documentation also mentions a token in
`Authorization`). The event name is the body's `action`; there is no event header.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SECRET_HEADER = "Gitflic-Webhook-Secret"
_AUTH_SCHEME = re.compile(r"^(?:token|bearer)\s+", re.IGNORECASE)
# `https://gitflic.ru/project/{owner}/{alias}.git` — the clone URL names the project too.
_TRANSPORT_PATH = re.compile(r"/project/([^/]+)/([^/]+?)(?:\.git)?/?$")


class DeliveryError(Exception):
    """The body is not a GitFlic delivery; the message says why (for a 400 answer)."""


@dataclass(frozen=True)
class Delivery:
    action: str
    # "owner/project", lower-cased, when the body names the project; TEST_WEBHOOK bodies may
    # carry only `project_id`, which the caller maps through the ids of the hooks it created.
    project_key: str | None
    project_id: str | None
    raw: dict[str, Any]


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # a plain dict is case-sensitive; aiohttp's headers are not
        lower = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lower), None)
    return value if isinstance(value, str) else None


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def verify_secret(headers: Mapping[str, str], expected_secret: str) -> bool:
    """Whether the delivery carries our secret, compared in constant time.

    Accepted: `Gitflic-Webhook-Secret: <secret>`, or `Authorization: <secret>` with or without
    a `token `/`Bearer ` scheme. An empty expected secret matches nothing.
    """
    if not expected_secret:
        return False
    candidates: list[str] = []
    if (secret := _header(headers, SECRET_HEADER)) is not None:
        candidates.append(secret.strip())
    if (auth := _header(headers, "Authorization")) is not None:
        auth = auth.strip()
        candidates.append(auth)
        bare = _AUTH_SCHEME.sub("", auth)
        if bare != auth:
            candidates.append(bare)
    # Compare every candidate so the time taken does not depend on which header matched.
    results = [_same(c, expected_secret) for c in candidates]
    return any(results)


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
    """Read a delivery body; raises DeliveryError when it cannot be routed."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise DeliveryError(f"The body is not valid JSON: {e}") from e
    if not isinstance(body, dict):
        raise DeliveryError("The body must be a JSON object.")
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
