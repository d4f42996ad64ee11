"""config.yaml.sample and registration.yaml.sample: they load, and the config sample documents every key."""

from __future__ import annotations

import dataclasses
import re
import secrets
import types
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml

from hookshot_py.config import Config, ConfigError, load_config, load_registration, parse_config
from hookshot_py.config.schema import type_hints, yaml_fields

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "config.yaml.sample"

# Keys the sample documents in a comment only: alternatives to what it shows, or deprecated forms.
COMMENT_ONLY = {
    "database.url",
    "listeners[].prefix",
    "jira.oauth.consumerKey",
    "jira.oauth.privateKey",
    "queue.monolithic",
    "queue.host",
    "queue.port",
}


def uncomment_optional_sections(text: str) -> str:
    """Remove one "#" from each line of the commented-out sections (a block starting with "#key:")."""
    out, in_block = [], False
    for line in text.splitlines():
        if re.match(r"^#[A-Za-z]", line):
            in_block = True
        elif not line.startswith("#"):
            in_block = False
        out.append(line[1:] if in_block else line)
    return "\n".join(out) + "\n"


def schema_paths(cls: type, prefix: str = "") -> list[str]:
    """Every YAML key path of a section: ``generic.urlPrefix``, ``listeners[].port``, ``gitlab.instances.*.url``."""
    paths = []
    hints = type_hints(cls)
    for name, f in yaml_fields(cls).items():
        path = f"{prefix}{name}"
        paths.append(path)
        tp = hints[f.name]
        union = typing.get_origin(tp) in (typing.Union, types.UnionType)
        args = [a for a in typing.get_args(tp) if a is not type(None)] if union else [tp]
        inner = args[0] if len(args) == 1 else None
        origin = typing.get_origin(inner)
        if dataclasses.is_dataclass(inner):
            paths += schema_paths(inner, f"{path}.")
        elif origin is list and dataclasses.is_dataclass(typing.get_args(inner)[0]):
            paths += schema_paths(typing.get_args(inner)[0], f"{path}[].")
        elif origin is dict and dataclasses.is_dataclass(typing.get_args(inner)[1]):
            paths += schema_paths(typing.get_args(inner)[1], f"{path}.*.")
    return paths


def present(data: Any, path: str) -> bool:
    head, _, rest = path.partition(".")
    if head.endswith("[]"):
        items = data.get(head[:-2]) if isinstance(data, dict) else None
        return isinstance(items, list) and any(present(item, rest) for item in items)
    if head == "*":
        return isinstance(data, dict) and any(present(v, rest) for v in data.values())
    if not isinstance(data, dict) or head not in data:
        return False
    return present(data[head], rest) if rest else True


PLACEHOLDER = "secret: change-me-to-a-long-random-string"


def sample_with_a_secret(tmp_path: Path) -> Path:
    """The sample as an admin uses it: with its placeholder provisioning secret replaced."""
    text = SAMPLE.read_text()
    assert PLACEHOLDER in text
    path = tmp_path / "config.yaml"
    path.write_text(text.replace(PLACEHOLDER, f"secret: {secrets.token_hex(32)}"))
    return path


def test_sample_refuses_its_placeholder_secret_and_nothing_else() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(SAMPLE, env={})
    assert [e.path for e in info.value.errors] == ["provisioning.secret"]
    assert "placeholder" in info.value.message and "openssl rand -hex 32" in info.value.message


def test_sample_loads_cleanly(tmp_path: Path) -> None:
    config = load_config(sample_with_a_secret(tmp_path), env={})
    assert config.warnings == []
    assert config.generic is not None and config.generic.enabled
    assert config.provisioning is not None
    assert config.metrics.enabled
    assert [lst.resources for lst in config.listeners] == [["webhooks"], ["provisioning", "metrics"]]


def test_sample_with_every_optional_section_enabled_loads() -> None:
    data = yaml.safe_load(uncomment_optional_sections(SAMPLE.read_text()))
    data["provisioning"]["secret"] = secrets.token_hex(32)
    config = parse_config(data, ROOT, {})
    assert config.github is not None and config.gitflic is not None and config.barkeep is not None
    assert config.gitlab is not None and config.messaging is not None
    ignored = {w.split(":")[0] for w in config.warnings}
    assert {"widgets", "messaging"} <= ignored and "gitlab" not in ignored
    assert config.jira is not None and config.jira.oauth is not None
    # The sample shows cloud and on-premise keys together; on-premise OAuth 1.0a is ignored.
    assert "jira.oauth" in ignored
    assert "feeds" not in ignored and config.feeds is not None and config.feeds.enabled
    assert config.connections is not None and config.connections[0].state == {"name": "My static hook"}


def test_sample_documents_every_key() -> None:
    text = SAMPLE.read_text()
    data = yaml.safe_load(uncomment_optional_sections(text))
    undocumented = [p for p in schema_paths(Config) if p not in COMMENT_ONLY and not present(data, p)]
    assert undocumented == []
    for path in COMMENT_ONLY:
        assert re.search(rf"#.*\b{re.escape(path.rsplit('.', 1)[-1])}\b", text), path


def test_every_key_line_of_the_sample_has_a_comment() -> None:
    lines = uncomment_optional_sections(SAMPLE.read_text()).splitlines()
    bare = []
    for i, line in enumerate(lines):
        if not re.match(r"^\s*(- )?[\w.\"*-]+:", line):
            continue
        near = [line, lines[i - 1] if i else "", lines[i + 1] if i + 1 < len(lines) else ""]
        if not any("#" in n for n in near):
            bare.append(line)
    assert bare == []


def test_registration_sample_loads() -> None:
    reg = load_registration(ROOT / "registration.yaml.sample")
    assert reg.id == "hookshot" and reg.sender_localpart == "hookshot"
    assert reg.url == "http://127.0.0.1:9993"
    regexes = [u["regex"] for u in reg.namespaces["users"]]
    assert regexes[:2] == [r"@hookshot:example\.com", r"@_webhooks_.*:example\.com"]
    assert reg.is_exclusive_user("@_webhooks_ci:example.com")
