"""The appservice registration: the file the homeserver and the bridge share (tokens, namespaces, URL)."""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from dataclasses import field
from pathlib import Path
from typing import Any

from hookshot_py.config import values, yamlfile
from hookshot_py.config.schema import ConfigError, describe, join, key, load_section, section
from hookshot_py.config.sections import Config

BOT_LOCALPART = "hookshot"
WEBHOOK_USER_PREFIX = "_webhooks_"


@section
class NamespaceEntry:
    regex: str = key(parse=values.non_empty)
    exclusive: bool = False
    group_id: str | None = key("group_id", default=None)

    def post_load(self, path: str) -> None:
        try:
            re.compile(self.regex)
        except re.error as e:
            raise ConfigError(join(path, "regex"), f"invalid regular expression: {e}") from None


@section
class Namespaces:
    users: list[NamespaceEntry] = field(default_factory=list)
    aliases: list[NamespaceEntry] = field(default_factory=list)
    rooms: list[NamespaceEntry] = field(default_factory=list)


@section
class Registration:
    """A loaded registration. ``namespaces`` stays the raw mapping (validated, as the homeserver reads it);
    ``extensions`` holds the namespaced keys (``de.sorunome.msc2409.push_ephemeral``...) untouched."""

    id: str = key("id", parse=values.non_empty)
    as_token: str = key("as_token", parse=values.non_empty, secret=True)
    hs_token: str = key("hs_token", parse=values.non_empty, secret=True)
    sender_localpart: str = key("sender_localpart", parse=values.non_empty)
    url: str = key("url", parse=values.http_url)
    namespaces: dict[str, Any] = key("namespaces")
    rate_limited: bool = key("rate_limited", default=False)
    receive_ephemeral: bool = key("receive_ephemeral", default=False)
    protocols: list[str] | None = key("protocols", default=None)
    ip_range_whitelist: list[str] | None = key("ip_range_whitelist", default=None)
    extensions: dict[str, Any] = field(default_factory=dict, metadata={"internal": True})

    def post_load(self, path: str) -> None:
        load_section(Namespaces, self.namespaces, join(path, "namespaces"))

    def is_exclusive_user(self, user_id: str) -> bool:
        """Whether ``user_id`` is one of the bridge's own users (the bot or a puppet), which it must ignore."""
        users = self.namespaces.get("users") or []
        # `re` caches compiled patterns, so this stays cheap per event.
        return any(ns.get("exclusive") is True and re.fullmatch(ns["regex"], user_id) for ns in users)


def parse_registration(data: Any, source: str = "registration") -> Registration:
    if not isinstance(data, dict):
        raise ConfigError(source, f"expected a mapping, got {describe(data)}")
    plain = {k: v for k, v in data.items() if not (isinstance(k, str) and "." in k)}
    registration = load_section(Registration, plain, "")
    registration.extensions = {k: v for k, v in data.items() if k not in plain}
    return registration


def load_registration(path: str | os.PathLike[str]) -> Registration:
    path = Path(path)
    return parse_registration(yamlfile.read(path), str(path))


def _appservice_url(config: Config) -> str:
    """Where the homeserver reaches the appservice: the bridge's bind address, made connectable."""
    host = config.bridge.bind_address
    if host in ("", "0.0.0.0", "::", "*"):
        host = "127.0.0.1"
    else:
        try:
            if ipaddress.ip_address(host).version == 6:
                host = f"[{host}]"
        except ValueError:
            pass  # a host name
    return f"http://{host}:{config.bridge.port}"


def generate_registration(config: Config, url: str | None = None) -> dict[str, Any]:
    """A fresh registration for ``config``: new random tokens, the bot and its puppet users' namespaces.

    ``url`` overrides where the homeserver sends transactions (default: ``http://{bindAddress}:{port}``
    of the ``bridge`` section, with a wildcard bind address replaced by 127.0.0.1).
    """
    domain = re.escape(config.bridge.domain)
    prefixes = [WEBHOOK_USER_PREFIX]
    if config.generic is not None and config.generic.user_id_prefix:
        prefixes.append(config.generic.user_id_prefix)
    if config.github is not None:
        prefixes.append(config.github.user_id_prefix)
    users = [{"exclusive": True, "regex": f"@{re.escape(BOT_LOCALPART)}:{domain}"}]
    users += [{"exclusive": True, "regex": f"@{re.escape(p)}.*:{domain}"} for p in dict.fromkeys(prefixes)]
    registration: dict[str, Any] = {
        "id": "hookshot",
        "as_token": secrets.token_hex(32),
        "hs_token": secrets.token_hex(32),
        "url": url if url is not None else _appservice_url(config),
        "sender_localpart": BOT_LOCALPART,
        "rate_limited": False,
        "receive_ephemeral": False,
        "namespaces": {"users": users, "aliases": [], "rooms": []},
    }
    if config.encryption is not None and config.encryption.enabled:
        registration.update(ENCRYPTION_FLAGS)
    return registration


# What encryption needs from the registration: to-device events in transactions (MSC2409, under
# receive_ephemeral), device lists and key counts (MSC3202), devices made by the bridge (MSC4190).
ENCRYPTION_FLAGS: dict[str, bool] = {
    "receive_ephemeral": True,
    "org.matrix.msc3202": True,
    "io.element.msc4190": True,
}


def missing_encryption_flags(registration: Registration) -> list[str]:
    """The registration keys encryption needs that are not set to true."""
    missing = []
    for name in ENCRYPTION_FLAGS:
        if name == "receive_ephemeral":
            legacy = registration.extensions.get("de.sorunome.msc2409.push_ephemeral") is True
            on = registration.receive_ephemeral or legacy
        else:
            on = registration.extensions.get(name) is True
        if not on:
            missing.append(name)
    return missing
