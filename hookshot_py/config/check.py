"""Checks that need the config and the registration together, and the modes of the files holding secrets.

``hookshot-py check-config`` runs them without starting anything, and ``run`` repeats them before starting.
An error is a mismatch that certainly breaks the bridge (puppets outside the registration's namespaces, a
loopback ``url`` that cannot reach ``bridge.port``); a warning is one that may be intended (a proxy that
forwards another port) or is a risk rather than a fault (a token others can read).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hookshot_py.config.registration import Registration, missing_encryption_flags
from hookshot_py.config.schema import ConfigError, secret_keys
from hookshot_py.config.sections import Config
from hookshot_py.config.values import weak_secret
from hookshot_py.secretfiles import exposure

_WILDCARDS = {"0.0.0.0", "::", "", "*"}
_PROBE = "probe"  # a localpart after a puppet prefix, as the bridge would make one
_LOCALPART = re.compile(r"[a-z0-9._=\-/]+")


@dataclass
class Findings:
    """What a check found: ``errors`` stop the bridge, ``warnings`` are logged."""

    errors: list[ConfigError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check_registration(config: Config, registration: Registration) -> Findings:
    """Whether ``registration`` fits ``config``: namespaces, the ``url`` and the tokens."""
    found = Findings()
    _check_users(config, registration, found)
    _check_url(config, registration, found)
    _check_tokens(registration, found)
    _check_encryption(config, registration, found)
    return found


def secret_file_warnings(
    config: Config, config_paths: list[Path], registration_path: Path | None = None
) -> list[str]:
    """A warning for each existing file holding a secret that its group or other users can read."""
    checks: list[tuple[Path, str]] = []
    if registration_path is not None:
        checks.append((registration_path, "the appservice tokens (as_token, hs_token)"))
    keys = secret_keys(config)
    if keys:
        checks += [(path, f"secrets ({', '.join(keys)})") for path in config_paths]
    checks.append((config.pass_file, "the passFile key that decrypts stored tokens"))
    return [w for path, what in checks if (w := exposure(path, what)) is not None]


# -- namespaces ------------------------------------------------------------------------------------------


def _namespace_for(registration: Registration, user_id: str) -> dict[str, Any] | None:
    """The user namespace that owns ``user_id``: an exclusive one if any matches, else the first match."""
    matches = [ns for ns in registration.namespaces.get("users") or [] if re.fullmatch(ns["regex"], user_id)]
    return next((ns for ns in matches if ns.get("exclusive") is True), matches[0] if matches else None)


def _suggested(localpart_regex: str, domain: str) -> str:
    return f'{{regex: "@{localpart_regex}:{re.escape(domain)}", exclusive: true}}'


def _check_users(config: Config, registration: Registration, found: Findings) -> None:
    domain = config.bridge.domain
    if not _LOCALPART.fullmatch(registration.sender_localpart):
        found.errors.append(
            ConfigError(
                "sender_localpart",
                f"{registration.sender_localpart!r} cannot be the bot's user name: a Matrix localpart has only "
                "lower-case letters, digits and . _ = - /",
            )
        )
    prefixes: list[tuple[str, str, bool]] = []  # (config key, prefix, whether the bridge creates these users)
    if config.generic is not None and config.generic.enabled and config.generic.user_id_prefix:
        prefixes.append(("generic.userIdPrefix", config.generic.user_id_prefix, True))
    if config.github is not None:
        prefixes.append(("github.userIdPrefix", config.github.user_id_prefix, False))
    for key, prefix, used in prefixes:
        example = f"@{prefix}{_PROBE}:{domain}"
        namespace = _namespace_for(registration, example)
        fix = _suggested(re.escape(prefix) + ".*", domain)
        if namespace is None:
            message = (
                f"no user namespace covers the {key} users (@{prefix}...:{domain}); "
                f"the homeserver will refuse them: add {fix}"
            )
            if used:
                found.errors.append(ConfigError("namespaces.users", message))
            else:
                found.warnings.append(f"namespaces.users: {message}")
        elif namespace.get("exclusive") is not True:
            found.warnings.append(
                f'namespaces.users: the namespace "{namespace["regex"]}" of the {key} users is not exclusive, '
                "so anyone may register such names; set exclusive: true"
            )


# -- url --------------------------------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(config: Config, registration: Registration, found: Findings) -> None:
    """The homeserver sends transactions to ``url``: on this machine that must be ``bridge.port``."""
    parts = urlsplit(registration.url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    bridge = config.bridge
    local = _is_loopback(host) or host == bridge.bind_address
    if port != bridge.port:
        message = f"{registration.url} points at port {port}, but the bridge listens on bridge.port {bridge.port}"
        if local and config.database.url is not None:
            # A shared database: maybe several processes behind a load balancer on this machine.
            found.warnings.append(
                f"url: {message} (fine if a load balancer in front of several bridge processes forwards it, "
                "docs/scale-out.md)"
            )
        elif local:
            found.errors.append(ConfigError("url", message))
        else:
            found.warnings.append(f"url: {message} (fine if a proxy or a port mapping forwards it)")
    elif _is_loopback(host) and bridge.bind_address not in _WILDCARDS and not _is_loopback(bridge.bind_address):
        found.errors.append(
            ConfigError(
                "url",
                f"{registration.url} is a loopback address, but the bridge listens on {bridge.bind_address} "
                "(bridge.bindAddress) only; point url at that address or bind the bridge to 127.0.0.1",
            )
        )


# -- tokens -----------------------------------------------------------------------------------------------


def _check_tokens(registration: Registration, found: Findings) -> None:
    if registration.as_token == registration.hs_token:
        found.warnings.append(
            "as_token, hs_token: the same token authenticates both directions; "
            "`hookshot-py generate-registration` makes two different ones"
        )
    for name, token in (("as_token", registration.as_token), ("hs_token", registration.hs_token)):
        why = weak_secret(token)
        if why is not None:
            found.warnings.append(f"{name}: {why}; `hookshot-py generate-registration` makes random tokens")


# -- encryption ------------------------------------------------------------------------------------------


def encryption_error(config: Config, registration: Registration) -> ConfigError | None:
    """Encryption needs to-device events, device lists and its own device (README, "Encrypted rooms")."""
    if config.encryption is None or not config.encryption.enabled:
        return None
    missing = missing_encryption_flags(registration)
    if not missing:
        return None
    return ConfigError(
        missing[0],
        "encryption is enabled in the config, so the registration must set "
        + ", ".join(f"{name}: true" for name in missing)
        + ' (and the homeserver enable them; see the README, "Encrypted rooms")',
    )


def _check_encryption(config: Config, registration: Registration, found: Findings) -> None:
    error = encryption_error(config, registration)
    if error is not None:
        found.errors.append(error)
