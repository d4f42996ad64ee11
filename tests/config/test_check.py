"""check_registration and secret_file_warnings: the checks `check-config` makes and `run` repeats."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from hookshot_py.config import Config, check_registration, parse_config, parse_registration, secret_file_warnings
from hookshot_py.config.registration import generate_registration

SECRET = "9c1e4f7a2b5d8e0f3a6c9b2e5f8a1d4c"


def config(tmp_path: Path = Path("/srv/hookshot"), **extra: Any) -> Config:
    data = {
        "bridge": {"domain": "example.com", "url": "http://localhost:8008", "port": 9993},
        "listeners": [{"port": 9000, "resources": ["webhooks"]}],
        "generic": {"urlPrefix": "https://example.com/webhook/", "userIdPrefix": "_webhooks_"},
        **extra,
    }
    return parse_config(data, tmp_path)


def registration_for(cfg: Config, **changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(generate_registration(cfg))
    data.update(changes)
    return data


def check(cfg: Config, data: dict[str, Any]) -> tuple[list[str], list[str]]:
    found = check_registration(cfg, parse_registration(yaml.safe_load(yaml.safe_dump(data))))
    return [str(e) for e in found.errors], found.warnings


def test_a_generated_registration_matches_its_config() -> None:
    cfg = config(github={"userIdPrefix": "_gh_"})
    assert check(cfg, registration_for(cfg)) == ([], [])


def test_puppet_users_outside_the_namespaces_are_an_error() -> None:
    cfg = config()
    # hookshot's documented registration, for another server name
    users = [{"regex": "@_github_.*:foobar", "exclusive": True}, {"regex": "@_webhooks_.*:foobar", "exclusive": True}]
    errors, _ = check(cfg, registration_for(cfg, namespaces={"users": users}))
    assert errors == [
        "namespaces.users: no user namespace covers the generic.userIdPrefix users (@_webhooks_...:example.com); "
        'the homeserver will refuse them: add {regex: "@_webhooks_.*:example\\.com", exclusive: true}'
    ]


def test_a_prefix_the_bridge_does_not_use_yet_or_a_shared_namespace_is_a_warning() -> None:
    cfg = config(github={"userIdPrefix": "_gh_"})
    users = [{"regex": "@_webhooks_.*:example\\.com", "exclusive": False}]
    errors, warnings = check(cfg, registration_for(cfg, namespaces={"users": users}))
    assert errors == []
    assert warnings == [
        'namespaces.users: the namespace "@_webhooks_.*:example\\.com" of the generic.userIdPrefix users is not '
        "exclusive, so anyone may register such names; set exclusive: true",
        "namespaces.users: no user namespace covers the github.userIdPrefix users (@_gh_...:example.com); "
        'the homeserver will refuse them: add {regex: "@_gh_.*:example\\.com", exclusive: true}',
    ]


def test_without_puppets_no_namespace_is_needed() -> None:
    cfg = config(generic={"urlPrefix": "https://example.com/webhook/"})
    assert check(cfg, registration_for(cfg, namespaces={"users": []})) == ([], [])


def test_sender_localpart_must_be_a_valid_localpart() -> None:
    cfg = config()
    errors, _ = check(cfg, registration_for(cfg, sender_localpart="Hookshot Bot"))
    assert errors == [
        "sender_localpart: 'Hookshot Bot' cannot be the bot's user name: a Matrix localpart has only "
        "lower-case letters, digits and . _ = - /"
    ]


@pytest.mark.parametrize(
    ("url", "bind", "error", "warning"),
    [
        ("http://127.0.0.1:9993", "127.0.0.1", None, None),
        ("http://localhost:9993", "0.0.0.0", None, None),
        ("http://[::1]:9993", "::", None, None),
        ("http://hookshot:9993", "0.0.0.0", None, None),
        ("http://localhost:9000", "127.0.0.1",
         "url: http://localhost:9000 points at port 9000, but the bridge listens on bridge.port 9993", None),
        ("http://10.0.0.5", "10.0.0.5",
         "url: http://10.0.0.5 points at port 80, but the bridge listens on bridge.port 9993", None),
        ("https://bridge.example.com", "0.0.0.0", None,
         "url: https://bridge.example.com points at port 443, but the bridge listens on bridge.port 9993 "
         "(fine if a proxy or a port mapping forwards it)"),
        ("http://127.0.0.1:9993", "10.0.0.5",
         "url: http://127.0.0.1:9993 is a loopback address, but the bridge listens on 10.0.0.5 (bridge.bindAddress) "
         "only; point url at that address or bind the bridge to 127.0.0.1", None),
    ],
)  # fmt: skip
def test_url_must_reach_bridge_port_where_that_can_be_told(
    url: str, bind: str, error: str | None, warning: str | None
) -> None:
    cfg = config()
    cfg.bridge.bind_address = bind
    errors, warnings = check(cfg, registration_for(cfg, url=url))
    assert errors == ([error] if error else [])
    assert warnings == ([warning] if warning else [])


def test_a_local_load_balancer_is_fine_with_a_shared_database() -> None:
    """Several processes (each its own bridge.port) behind a balancer on this machine."""
    cfg = config(database={"url": "postgresql://hookshot:pw@db/hookshot"})
    errors, warnings = check(cfg, registration_for(cfg, url="http://127.0.0.1:9000"))
    assert errors == []
    assert warnings == [
        "url: http://127.0.0.1:9000 points at port 9000, but the bridge listens on bridge.port 9993 (fine if a "
        "load balancer in front of several bridge processes forwards it, docs/scale-out.md)"
    ]


def test_weak_or_equal_tokens_are_warned_about() -> None:
    cfg = config()
    errors, warnings = check(cfg, registration_for(cfg, as_token="aaaaaaaaaa", hs_token="aaaaaaaaaa"))
    assert errors == []
    assert warnings == [
        "as_token, hs_token: the same token authenticates both directions; "
        "`hookshot-py generate-registration` makes two different ones",
        "as_token: too short (10 characters; at least 32 are needed); "
        "`hookshot-py generate-registration` makes random tokens",
        "hs_token: too short (10 characters; at least 32 are needed); "
        "`hookshot-py generate-registration` makes random tokens",
    ]


# -- file modes --------------------------------------------------------------------------------------------


def test_files_holding_secrets_that_others_can_read_are_warned_about(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        provisioning={"secret": SECRET},
        listeners=[{"port": 9000, "resources": ["webhooks", "provisioning"]}],
        github={"webhook": {"secret": "gh"}},
    )
    config_path, registration_path = tmp_path / "config.yaml", tmp_path / "registration.yaml"
    for path, mode in ((config_path, 0o640), (registration_path, 0o604), (cfg.pass_file, 0o644)):
        path.write_text("x")
        os.chmod(path, mode)
    assert secret_file_warnings(cfg, [config_path], registration_path) == [
        f"{registration_path} holds the appservice tokens (as_token, hs_token) but other users can read it "
        f"(mode 0604); restrict it with: chmod 600 {registration_path}",
        f"{config_path} holds secrets (github.webhook.secret, provisioning.secret) but its group can read it "
        f"(mode 0640); restrict it with: chmod 600 {config_path}",
        f"{cfg.pass_file} holds the passFile key that decrypts stored tokens but its group and other users can "
        f"read it (mode 0644); restrict it with: chmod 600 {cfg.pass_file}",
    ]
    for path in (config_path, registration_path, cfg.pass_file):
        os.chmod(path, 0o600)
    assert secret_file_warnings(cfg, [config_path], registration_path) == []


def test_a_config_without_secrets_may_be_readable_and_missing_files_are_not_warned_about(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    path = tmp_path / "config.yaml"
    path.write_text("x")
    os.chmod(path, 0o644)
    assert secret_file_warnings(cfg, [path], tmp_path / "registration.yaml") == []
