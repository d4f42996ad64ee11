"""The appservice registration: loading (hookshot's and ours) and generating."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from hookshot_py.config import ConfigError, load_registration, parse_config, parse_registration
from hookshot_py.config.registration import generate_registration

HOOKSHOT_REGISTRATION = """\
id: matrix-hookshot # This can be anything, but must be unique within your homeserver
as_token: aaaaaaaaaa # This again can be a random string
hs_token: bbbbbbbbbb # ..as can this
namespaces:
  rooms: []
  users: # In the following, foobar is your homeserver's domain
    - regex: "@_github_.*:foobar"
      exclusive: true
    - regex: "@_webhooks_.*:foobar" # Where _webhooks_ is set by userIdPrefix in config.yml
      exclusive: true
  aliases:
    - regex: "#github_.+:foobar" # Where foobar is your homeserver's domain
      exclusive: true

sender_localpart: hookshot
url: "http://localhost:9993" # This should match the bridge.port in your config file
rate_limited: false

receive_ephemeral: true
de.sorunome.msc2409.push_ephemeral: true
"""


def config(**extra: Any) -> Any:
    data = {
        "bridge": {"domain": "example.com", "url": "http://localhost:8008", "port": 9993},
        "listeners": [{"port": 9000, "resources": ["webhooks"]}],
        "generic": {"urlPrefix": "https://example.com/webhook/"},
        **extra,
    }
    return parse_config(data, Path("/srv"))


def test_hookshot_registration_loads_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "registration.yml"
    path.write_text(HOOKSHOT_REGISTRATION)
    reg = load_registration(path)
    assert (reg.id, reg.as_token, reg.hs_token, reg.sender_localpart) == (
        "matrix-hookshot",
        "aaaaaaaaaa",
        "bbbbbbbbbb",
        "hookshot",
    )
    assert reg.url == "http://localhost:9993"
    assert reg.rate_limited is False and reg.receive_ephemeral is True
    assert reg.namespaces["users"][1] == {"regex": "@_webhooks_.*:foobar", "exclusive": True}
    assert reg.extensions == {"de.sorunome.msc2409.push_ephemeral": True}
    assert "aaaaaaaaaa" not in repr(reg)


def test_generated_registration_round_trips() -> None:
    cfg = config()
    data = generate_registration(cfg)
    reg = parse_registration(yaml.safe_load(yaml.safe_dump(data)))
    assert reg.id == "hookshot"
    assert reg.sender_localpart == "hookshot"
    assert reg.url == "http://127.0.0.1:9993"
    assert reg.rate_limited is False and reg.receive_ephemeral is False
    assert re.fullmatch(r"[0-9a-f]{64}", reg.as_token) and re.fullmatch(r"[0-9a-f]{64}", reg.hs_token)
    assert reg.as_token != reg.hs_token
    assert generate_registration(cfg)["as_token"] != data["as_token"]
    assert data["namespaces"] == {
        "users": [
            {"exclusive": True, "regex": r"@hookshot:example\.com"},
            {"exclusive": True, "regex": r"@_webhooks_.*:example\.com"},
        ],
        "aliases": [],
        "rooms": [],
    }


def test_generated_namespaces_match_the_right_users() -> None:
    cfg = config(github={"userIdPrefix": "_gh_"}, generic={"urlPrefix": "https://x/", "userIdPrefix": "_hook_"})
    regexes = [u["regex"] for u in generate_registration(cfg)["namespaces"]["users"]]
    assert regexes == [
        r"@hookshot:example\.com",
        r"@_webhooks_.*:example\.com",
        r"@_hook_.*:example\.com",
        r"@_gh_.*:example\.com",
    ]

    def owned(user: str) -> bool:
        return any(re.fullmatch(r, user) for r in regexes)

    assert owned("@hookshot:example.com")
    assert owned("@_gh_octocat:example.com")
    assert owned("@_webhooks_ci:example.com")
    assert not owned("@hookshot:exampleXcom")
    assert not owned("@alice:example.com")


@pytest.mark.parametrize(
    ("bind", "url"),
    [
        ("0.0.0.0", "http://127.0.0.1:9993"),
        ("::", "http://127.0.0.1:9993"),
        ("::1", "http://[::1]:9993"),
        ("bridge", "http://bridge:9993"),
    ],
)
def test_generated_url_follows_the_bind_address(bind: str, url: str) -> None:
    cfg = config()
    cfg.bridge.bind_address = bind
    assert generate_registration(cfg)["url"] == url
    assert generate_registration(cfg, url="http://hookshot.internal:9993")["url"] == "http://hookshot.internal:9993"


def registration(**changes: Any) -> dict[str, Any]:
    data = yaml.safe_load(HOOKSHOT_REGISTRATION)
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (registration(as_token=None), "as_token: required key is missing"),
        (registration(as_token=""), 'as_token: expected a non-empty string, got ""'),
        (registration(url="localhost:9993"), 'url: expected an http(s) URL, got "localhost:9993"'),
        (registration(as_tokn="x"), "as_tokn: unknown key (did you mean as_token?)"),
        (registration(rate_limited="no"), 'rate_limited: expected a boolean (true or false), got "no"'),
        (registration(namespaces={"users": [{"regex": "@_github_(.*:foobar"}]}),
         "namespaces.users[0].regex: invalid regular expression: missing ), unterminated subpattern at position 9"),
        (registration(namespaces={"user": []}), "namespaces.user: unknown key (did you mean users?)"),
        (registration(namespaces={"users": [{"exclusive": True}]}), "namespaces.users[0].regex: required key is missing"),
        (["id"], "registration: expected a mapping, got a list"),
    ],
)  # fmt: skip
def test_bad_registration_names_the_key(data: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_registration(data)
    assert str(info.value) == message


def test_registration_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"registration\.yaml: file not found$"):
        load_registration(tmp_path / "registration.yaml")
    path = tmp_path / "bad.yaml"
    path.write_text("id: [\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:2:1: invalid YAML"):
        load_registration(path)


def test_is_exclusive_user_matches_whole_user_ids_of_exclusive_namespaces() -> None:
    data = registration(
        namespaces={
            "users": [
                {"regex": "@_github_.*:foobar", "exclusive": True},
                {"regex": "@hookshot:foobar", "exclusive": True},
                {"regex": "@shared_.*:foobar", "exclusive": False},
            ]
        }
    )
    reg = parse_registration(data)
    assert reg.is_exclusive_user("@_github_octocat:foobar")
    assert reg.is_exclusive_user("@hookshot:foobar")
    assert not reg.is_exclusive_user("@hookshot:foobar.evil")
    assert not reg.is_exclusive_user("@shared_x:foobar")
    assert not reg.is_exclusive_user("@alice:foobar")


def test_registration_for_encryption_opts_in_to_what_the_bot_device_needs() -> None:
    from hookshot_py.config.registration import missing_encryption_flags

    plain = parse_registration(yaml.safe_load(yaml.safe_dump(generate_registration(config()))))
    assert missing_encryption_flags(plain) == ["receive_ephemeral", "org.matrix.msc3202", "io.element.msc4190"]
    data = generate_registration(config(encryption={"enabled": True}))
    assert data["receive_ephemeral"] is True and data["org.matrix.msc3202"] is True and data["io.element.msc4190"] is True
    assert missing_encryption_flags(parse_registration(yaml.safe_load(yaml.safe_dump(data)))) == []
    # hookshot's older name for receive_ephemeral counts too.
    legacy = {k: v for k, v in data.items() if k != "receive_ephemeral"} | {"de.sorunome.msc2409.push_ephemeral": True}
    assert missing_encryption_flags(parse_registration(legacy)) == []
