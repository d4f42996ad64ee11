"""Reading ``config.yaml``: YAML, hookshot's legacy forms, the sections, then checks that span sections.

One pass reports every mistake it can see. The checks that span sections (ports, resources, enabled
services) run once every section is valid: on a broken section they would only repeat its error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hookshot_py.config import yamlfile
from hookshot_py.config.schema import ConfigError, Problems, describe, join, load_section
from hookshot_py.config.sections import (
    Config,
    LegacyListener,
    ListenerConfig,
    PermissionRule,
    PermissionService,
    Resource,
)

# hookshot sections that are validated but not acted upon yet: YAML key -> Config attribute.
UNSUPPORTED_SECTIONS = {
    "figma": "figma",
    "openProject": "open_project",
    "challengeHound": "challenge_hound",
    "widgets": "widgets",
    "cache": "cache",
    "queue": "queue",
    "sentry": "sentry",
    "serviceBots": "service_bots",
    "messaging": "messaging",
}

# hookshot's per-section listeners from before `listeners` existed: section -> (its keys, resource).
_LEGACY_LISTENERS: dict[str, tuple[tuple[str, ...], Resource]] = {
    "webhook": (("port", "bindAddress"), "webhooks"),
    "metrics": (("port", "bindAddress"), "metrics"),
    "widgets": (("port",), "widgets"),
    "provisioning": (("port", "bindAddress"), "provisioning"),
}

_WILDCARD_ADDRESSES = {"0.0.0.0", "::", "", "*"}


@dataclass
class _Listener:
    """A listener and where it came from, so errors can name the key the admin wrote."""

    path: str
    config: ListenerConfig
    legacy: bool = False

    @property
    def port_path(self) -> str:
        return join(self.path, "port")

    @property
    def resources_path(self) -> str:
        # A legacy listener's resource is implied by its section: point at the port that made it.
        return join(self.path, "port" if self.legacy else "resources")


def load_config(
    path: str | os.PathLike[str], *more: str | os.PathLike[str], env: Mapping[str, str] | None = None
) -> Config:
    """Load a config file (and, like hookshot, extra files shallow-merged over it; ``connections`` add up).

    Relative paths in the config resolve against the first file's directory. ``env`` defaults to the
    process environment (``GITHUB_PRIVATE_KEY_FILE``, ``GITHUB_OAUTH_REDIRECT_URI``, as in hookshot).
    """
    first = Path(path)
    data = _as_mapping(yamlfile.read(first), str(first))
    for extra in more:
        overlay = _as_mapping(yamlfile.read(Path(extra)), str(extra))
        connections = [*_list_or_empty(data, "connections"), *_list_or_empty(overlay, "connections")]
        data = {**data, **overlay}
        if connections:
            data["connections"] = connections
    return parse_config(data, first.parent, os.environ if env is None else env, source=str(first))


def parse_config(
    data: Any, base_dir: Path, env: Mapping[str, str] | None = None, *, source: str = "config"
) -> Config:
    """Build a :class:`Config` from already-parsed YAML. ``source`` names the whole file in errors.

    Raises :class:`ConfigError` for one mistake, :class:`~hookshot_py.config.schema.ConfigErrors` for more.
    """
    raw = dict(_as_mapping(data, source))
    problems = Problems()
    warnings: list[str] = []
    if "experimentalEncryption" in raw:
        del raw["experimentalEncryption"]
        problems.add("experimentalEncryption", "this key is now called encryption; rename it")
    if "goNebMigrator" in raw:
        del raw["goNebMigrator"]
        warnings.append("goNebMigrator: the GoNEB migrator was removed from hookshot; section ignored")
    legacy = _take_legacy_listeners(raw, warnings, problems)

    config: Config | None = None
    with problems.collect():
        config = load_section(Config, raw, "")
    problems.raise_if_any()
    assert config is not None  # loading either returned it or its errors were just raised
    config.warnings = warnings
    config.config_dir = Path(base_dir).resolve()
    config.pass_file = config.config_dir / config.pass_file
    config.database.data_directory = config.config_dir / config.database.data_directory

    _apply_permission_defaults(config, raw)
    _apply_env(config, env or {})
    listeners = _merge_listeners(config, legacy)
    _check_listeners(config, listeners, problems)
    _check_services(config, listeners, source, problems)
    problems.raise_if_any()
    return config


# -- steps -------------------------------------------------------------------------------------------


def _as_mapping(data: Any, source: str) -> Mapping[str, Any]:
    if data is None:
        raise ConfigError(source, "the config is empty; expected a mapping of sections (bridge, listeners, ...)")
    if not isinstance(data, Mapping):
        raise ConfigError(source, f"expected a mapping of sections at the top level, got {describe(data)}")
    return data


def _list_or_empty(data: Mapping[str, Any], name: str) -> list[Any]:
    value = data.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(name, f"expected a list, got {describe(value)}")
    return value


def _take_legacy_listeners(raw: dict[str, Any], warnings: list[str], problems: Problems) -> list[_Listener]:
    """Split hookshot's old ``webhook.port``-style keys off their sections, as listeners."""
    found: list[_Listener] = []
    for section, (keys, resource) in _LEGACY_LISTENERS.items():
        value = raw.get(section)
        old: LegacyListener | None = None
        with problems.collect():
            if section == "webhook":
                # The whole section is legacy: all of it goes to the listener (so typos in it are caught).
                raw.pop(section, None)
                if value is not None:
                    old = load_section(LegacyListener, value, section)
            elif isinstance(value, Mapping):
                raw[section] = {k: v for k, v in value.items() if k not in keys}
                old = load_section(LegacyListener, {k: v for k, v in value.items() if k in keys}, section)
            # else: absent, or not a mapping: the section's own loading reports it
        if old is None:
            continue
        if old.port is None:
            if old.bind_address is not None:
                warnings.append(f"{section}.bindAddress: ignored without {section}.port")
            continue
        listener = ListenerConfig(port=old.port, resources=[resource], bind_address=old.bind_address or "127.0.0.1")
        found.append(_Listener(section, listener, legacy=True))
        warnings.append(f"{section}.port: converted into a listener serving {resource}; move it to listeners")
    return found


def _apply_permission_defaults(config: Config, raw: Mapping[str, Any]) -> None:
    if raw.get("permissions") is None:
        config.permissions = [PermissionRule(actor=config.bridge.domain, services=[PermissionService("*", "admin")])]
        config.warnings.append(
            f"permissions: not configured, so every user on {config.bridge.domain} has admin rights on the bridge"
        )
        return
    for i, rule in enumerate(config.permissions):
        for j, service in enumerate(rule.services):
            if service.service == "webhooks":
                config.warnings.append(
                    f'permissions[{i}].services[{j}].service: "webhooks" still works but is now called "generic"'
                )


def _apply_env(config: Config, env: Mapping[str, str]) -> None:
    """hookshot's environment overrides for GitHub secrets kept outside the config file."""
    github = config.github
    if github is None:
        return
    if github.auth is not None and env.get("GITHUB_PRIVATE_KEY_FILE"):
        github.auth.private_key_file = env["GITHUB_PRIVATE_KEY_FILE"]
    if github.oauth is not None and env.get("GITHUB_OAUTH_REDIRECT_URI"):
        github.oauth.redirect_uri = env["GITHUB_OAUTH_REDIRECT_URI"]


def _same_address(a: str, b: str) -> bool:
    """Whether two binds collide: the same address, or a wildcard that covers the other."""
    return a == b or a in _WILDCARD_ADDRESSES or b in _WILDCARD_ADDRESSES


def _merge_listeners(config: Config, legacy: list[_Listener]) -> list[_Listener]:
    """Explicit listeners, then legacy ones; a legacy port equal to an existing listener's joins it."""
    listeners = [_Listener(f"listeners[{i}]", lst) for i, lst in enumerate(config.listeners)]
    for old in legacy:
        host = next(
            (
                lst
                for lst in listeners
                if lst.config.port == old.config.port and lst.config.bind_address == old.config.bind_address
            ),
            None,
        )
        if host is None:
            listeners.append(old)
        elif old.config.resources[0] not in host.config.resources:
            host.config.resources.append(old.config.resources[0])
    config.listeners = [lst.config for lst in listeners]
    return listeners


def _check_listeners(config: Config, listeners: list[_Listener], problems: Problems) -> None:
    bridge = config.bridge
    served: dict[str, str] = {}
    for i, lst in enumerate(listeners):
        cfg = lst.config
        if cfg.port == bridge.port and _same_address(cfg.bind_address, bridge.bind_address):
            problems.add(
                lst.port_path,
                f"{cfg.port} is already the appservice port (bridge.port) on {bridge.bind_address}",
            )
        for other in listeners[:i]:
            if other.config.port == cfg.port and _same_address(other.config.bind_address, cfg.bind_address):
                problems.add(
                    lst.port_path,
                    f"{cfg.bind_address}:{cfg.port} is already used by {other.path}; "
                    "list all resources of one address and port in one listener",
                )
                break
        for resource in cfg.resources:
            if resource in served:
                where = "listed twice" if served[resource] == lst.path else f"already served by {served[resource]}"
                problems.add(lst.resources_path, f'"{resource}" is {where}; serve each resource once')
                continue
            served[resource] = lst.path
            if resource == "widgets":
                config.warnings.append(f'{lst.resources_path}: "widgets" is not supported by hookshot_py yet; ignored')
    if "provisioning" in served and config.provisioning is None:
        server = next(lst for lst in listeners if "provisioning" in lst.config.resources)
        problems.add(
            server.resources_path, '"provisioning" is served but there is no provisioning section with a secret'
        )
    if config.provisioning is not None and "provisioning" not in served:
        problems.add(
            "provisioning", 'no listener serves the "provisioning" resource; add it to the resources of a listener'
        )


def _check_services(config: Config, listeners: list[_Listener], source: str, problems: Problems) -> None:
    ignored = [name for name, attr in UNSUPPORTED_SECTIONS.items() if getattr(config, attr) is not None]
    config.warnings.extend(f"{name}: not supported by hookshot_py yet; section ignored" for name in ignored)
    if config.encryption is not None and config.encryption.storage_path is not None:
        config.warnings.append(
            "encryption.storagePath: ignored; hookshot_py keeps the crypto state in its Postgres database"
        )
    if config.jira is not None and config.jira.url is not None and config.jira.oauth is not None:
        config.warnings.append(
            "jira.oauth: OAuth 1.0a for an on-premise JIRA is not supported by hookshot_py; "
            "users log in with a personal access token (`jira personaltoken <token>`); section ignored"
        )
    generic = config.generic
    enabled = [
        name
        for name, on in (
            ("generic", generic is not None and generic.enabled),
            ("genericOutbound", generic is not None and generic.outbound),
            ("github", config.github is not None),
            ("gitlab", config.gitlab is not None),
            ("gitflic", config.gitflic is not None),
            ("barkeep", config.barkeep is not None),
            ("jira", config.jira is not None),
            ("feeds", config.feeds is not None and config.feeds.enabled),
        )
        if on
    ]
    if not enabled:
        note = f" ({', '.join(ignored)} {'is' if len(ignored) == 1 else 'are'} not supported yet)" if ignored else ""
        services = "generic, github, gitlab, gitflic, barkeep, jira, feeds"
        problems.add(source, f"no service is enabled; configure at least one of {services}{note}")

    _check_static_connections(config, problems)

    # Barkeep and feeds are polled: they need no webhooks listener.
    receivers = [name for name in enabled if name not in ("barkeep", "feeds", "genericOutbound")]
    if receivers and not any("webhooks" in lst.config.resources for lst in listeners):
        problems.add("listeners", f'no listener serves the "webhooks" resource, needed by {", ".join(receivers)}')


# hookshot's only connection type that supports static configuration (`SupportsStaticConfiguration`).
_STATIC_TYPES = ("uk.half-shot.matrix-hookshot.generic.hook", "uk.half-shot.matrix-github.generic.hook")


def _check_static_connections(config: Config, problems: Problems) -> None:
    """hookshot's `validateConnectionConfig`, less the state itself (checked by the connection
    type when the bridge starts)."""
    seen: dict[str, int] = {}
    for i, conn in enumerate(config.connections or []):
        path = f"connections[{i}]"
        if conn.state_key in seen:
            problems.add(
                join(path, "stateKey"),
                f'"{conn.state_key}" is already used by connections[{seen[conn.state_key]}]; '
                "a static hook's stateKey is its URL id, so it must be unique",
            )
        seen.setdefault(conn.state_key, i)
        if conn.connection_type not in _STATIC_TYPES:
            problems.add(
                join(path, "connectionType"),
                f"{conn.connection_type} does not support static configuration (only {_STATIC_TYPES[0]} does)",
            )
        elif config.generic is None or not config.generic.enabled:
            problems.add(join(path, "connectionType"), "Service 'generic' is not enabled in the config.")
        if not conn.room_id.startswith("!"):
            problems.add(join(path, "roomId"), f'expected a room id like "!abc:example.org", got "{conn.room_id}"')
