"""Naming a GitFlic project: `owner/project` or its web address, on one of the configured instances.

Also where the bridge's own webhook URL comes from (`gitflic.webhook.publicUrl`), since both
the connection type and the commands need it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from hookshot_py.config import GitFlicConfig
from hookshot_py.connections.base import Connection
from hookshot_py.gitflic.models import DEFAULT_EVENTS

EVENT_TYPE = "uk.half-shot.matrix-hookshot.gitflic.project"
DEFAULT_PREFIX = "!gf"
WEBHOOK_PATH = "/gitflic/webhook"
# GitFlic aliases are made of letters, digits, `-`, `_` and `.`; anything else (a slash, a space,
# `..`) could change the API path the alias is put into.
ALIAS_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")


class ProjectRefError(ValueError):
    """The text does not name a GitFlic project; the message says why (shown to the user)."""


@dataclass(frozen=True)
class ProjectRef:
    instance: str  # a key of `gitflic.instances`
    owner: str
    project: str

    @property
    def key(self) -> str:
        """The connection's state key, as the user spelled it."""
        return f"{self.owner}/{self.project}"


def ref_of(conn: Connection) -> ProjectRef:
    state = conn.state
    return ProjectRef(str(state.get("instance", "")), str(state["ownerAlias"]), str(state["projectAlias"]))


def events_of(conn: Connection) -> list[str]:
    events = conn.state.get("events")
    return [e for e in events if isinstance(e, str)] if isinstance(events, list) else list(DEFAULT_EVENTS)


def is_alias(value: object) -> bool:
    return isinstance(value, str) and ALIAS_RE.match(value) is not None and ".." not in value


def project_key(owner: str, project: str) -> str:
    """The case-insensitive identity of a project on one instance (how GitFlic compares aliases)."""
    return f"{owner}/{project}".lower()


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower().removeprefix("www.")


def instance_for_host(config: GitFlicConfig, host: str) -> str | None:
    """The configured instance whose web address has this host name."""
    wanted = host.lower().removeprefix("www.")
    return next((name for name, inst in config.instances.items() if _host(inst.url) == wanted), None)


def parse_project(text: str, config: GitFlicConfig) -> ProjectRef:
    """`owner/project` (on the default instance) or `https://host/project/owner/project[/...]`."""
    text = text.strip()
    if "://" in text:
        try:
            parts = urlsplit(text)
        except ValueError as e:
            raise ProjectRefError(f"{text!r} is not a valid URL.") from e
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ProjectRefError(f"{text!r} is not an http(s) URL.")
        instance = instance_for_host(config, parts.hostname)
        if instance is None:
            known = ", ".join(inst.url for inst in config.instances.values())
            raise ProjectRefError(
                f"{parts.hostname} is not a GitFlic instance this bridge knows (configured: {known})."
            )
        segments = [unquote(s) for s in parts.path.split("/") if s]
        if len(segments) < 3 or segments[0] != "project":
            expected = f"{config.instances[instance].url}/project/<owner>/<project>"
            raise ProjectRefError(f"{text!r} is not a project address; expected {expected}.")
        owner, project = segments[1], segments[2].removesuffix(".git")
    else:
        instance = config.default_instance
        owner, sep, project = text.partition("/")
        if not sep or "/" in project:
            raise ProjectRefError(f"{text!r} is not of the form owner/project.")
    for label, value in (("owner", owner), ("project", project)):
        if not is_alias(value):
            raise ProjectRefError(
                f"{value!r} is not a valid GitFlic {label} alias (letters, digits, '-', '_' and '.')."
            )
    return ProjectRef(instance, owner, project)


def webhook_url(config: GitFlicConfig) -> str | None:
    """The address GitFlic is told to deliver to, or None when `publicUrl` is not configured.

    `publicUrl` may be the full address of the bridge's `/gitflic/webhook` route or the public
    base of the webhooks listener, in which case `gitflic/webhook` is appended to it.
    """
    base = config.webhook.public_url
    if not base:
        return None
    base = base.rstrip("/")
    if urlsplit(base).path.endswith(WEBHOOK_PATH):
        return base
    return base + WEBHOOK_PATH


def project_web_url(config: GitFlicConfig, instance: str, owner: str, project: str) -> str | None:
    inst = config.instances.get(instance)
    return f"{inst.url}/project/{owner}/{project}" if inst else None
