"""load_config / parse_config: hookshot configs load unchanged, bad ones fail with one line naming the key."""

from __future__ import annotations

import copy
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hookshot_py.config import (
    ConfigError,
    ConfigErrors,
    GitFlicInstance,
    ListenerConfig,
    PermissionRule,
    PermissionService,
    load_config,
    parse_config,
)


SECRET = "9c1e4f7a2b5d8e0f3a6c9b2e5f8a1d4c"  # a provisioning secret good enough to be accepted


def minimal() -> dict[str, Any]:
    return {
        "bridge": {"domain": "example.com", "url": "http://localhost:8008", "port": 9993},
        "listeners": [{"port": 9000, "resources": ["webhooks"]}],
        "generic": {"urlPrefix": "https://example.com/webhook/"},
    }


def parse(data: dict[str, Any], base: Path = Path("/srv/hookshot"), **kw: Any) -> Any:
    return parse_config(data, base, **kw)


def error_of(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse(data)
    message = str(info.value)
    assert "\n" not in message
    assert message == f"{info.value.path}: {info.value.message}"
    return message


def with_(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    data = copy.deepcopy(minimal())
    change(data)
    return data


# -- defaults ------------------------------------------------------------------------------------------


def test_minimal_config_gets_hookshot_defaults() -> None:
    config = parse(minimal())
    assert config.bridge.bind_address == "127.0.0.1"
    assert config.bridge.media_url is None
    assert config.logging.level == "info"
    assert (config.logging.json, config.logging.colorize, config.logging.timestamp_format) == (
        False,
        True,
        "HH:mm:ss:SSS",
    )
    assert config.listeners == [ListenerConfig(port=9000, resources=["webhooks"], bind_address="127.0.0.1")]
    assert config.bot.displayname is None and config.bot.avatar is None
    assert config.metrics.enabled is False
    assert config.provisioning is None
    assert config.github is None and config.gitflic is None and config.barkeep is None
    generic = config.generic
    assert generic is not None
    assert generic.enabled is True
    assert generic.user_id_prefix is None
    assert generic.include_hook_body is True
    assert generic.payload_size_limit == 1048576
    assert generic.max_expiry_time is None
    assert (generic.enable_http_get, generic.wait_for_complete, generic.outbound) == (False, False, False)


def test_relative_paths_resolve_against_the_config_directory(tmp_path: Path) -> None:
    config = parse(minimal(), tmp_path)
    assert config.config_dir == tmp_path.resolve()
    assert config.pass_file == tmp_path.resolve() / "passkey.pem"
    assert config.database.url is None
    assert config.database.data_directory == tmp_path.resolve() / "hookshot-data"

    data = with_(lambda d: d.update(passFile="/etc/hookshot/key.pem", database={"dataDirectory": "state"}))
    config = parse(data, tmp_path)
    assert config.pass_file == Path("/etc/hookshot/key.pem")
    assert config.database.data_directory == tmp_path.resolve() / "state"


def test_missing_permissions_default_to_admin_for_the_domain_with_a_warning() -> None:
    config = parse(minimal())
    assert config.permissions == [PermissionRule("example.com", [PermissionService("*", "admin")])]
    assert any(w.startswith("permissions: not configured") for w in config.warnings)


def test_explicit_permissions_are_kept_and_service_defaults_to_any() -> None:
    rules = [
        {"actor": "@alice:example.com", "services": [{"service": "generic", "level": "manageConnections"}]},
        {"actor": "*", "services": [{"level": "commands"}]},
    ]
    config = parse(with_(lambda d: d.update(permissions=rules)))
    assert config.permissions == [
        PermissionRule("@alice:example.com", [PermissionService("generic", "manageConnections")]),
        PermissionRule("*", [PermissionService("*", "commands")]),
    ]
    assert not any(w.startswith("permissions") for w in config.warnings)


def test_empty_permissions_list_grants_nothing() -> None:
    assert parse(with_(lambda d: d.update(permissions=[]))).permissions == []


def test_webhooks_service_name_warns_like_hookshot() -> None:
    rules = [{"actor": "example.com", "services": [{"service": "webhooks", "level": "admin"}]}]
    config = parse(with_(lambda d: d.update(permissions=rules)))
    assert 'permissions[0].services[0].service: "webhooks" still works but is now called "generic"' in config.warnings


def test_durations_and_sizes_are_converted() -> None:
    config = parse(with_(lambda d: d["generic"].update(maxExpiryTime="30d", payloadSizeLimit="512kb")))
    assert config.generic.max_expiry_time == 30 * 24 * 3600 * 1000
    assert config.generic.payload_size_limit == 512 * 1024
    config = parse(with_(lambda d: d["generic"].update(maxExpiryTime=90_000, payloadSizeLimit=2048)))
    assert (config.generic.max_expiry_time, config.generic.payload_size_limit) == (90_000, 2048)


def test_url_prefix_gets_a_trailing_slash_like_hookshot() -> None:
    config = parse(with_(lambda d: d["generic"].update(urlPrefix="https://example.com/webhook")))
    assert config.generic.url_prefix == "https://example.com/webhook/"


def test_log_level_is_case_insensitive_like_hookshot() -> None:
    assert parse(with_(lambda d: d.update(logging={"level": "DEBUG"}))).logging.level == "debug"


def test_null_section_counts_as_absent() -> None:
    config = parse(with_(lambda d: d.update(github=None, bot=None, metrics=None)))
    assert config.github is None
    assert config.bot.displayname is None
    assert config.metrics.enabled is False


def test_secrets_stay_out_of_repr() -> None:
    data = with_(
        lambda d: d.update(
            provisioning={"secret": "provisioning-s3cret-7f1c9a2e4b6d8f0a1c3e"},
            database={"url": "postgresql://u:db-s3cret@localhost/db"},
            github={"webhook": {"secret": "gh-s3cret"}},
        )
    )
    data["listeners"][0]["resources"].append("provisioning")
    text = repr(parse(data))
    for secret in ("provisioning-s3cret-7f1c9a2e4b6d8f0a1c3e", "db-s3cret", "gh-s3cret"):
        assert secret not in text


# -- a real hookshot config ----------------------------------------------------------------------------

HOOKSHOT_CONFIG = """\
bridge:
  domain: example.com
  url: http://localhost:8008
  mediaUrl: https://example.com
  port: 9993
  bindAddress: 127.0.0.1
logging:
  level: info
  colorize: true
  json: false
  timestampFormat: HH:mm:ss:SSS
passFile:
  ./passkey.pem
webhook:
  port: 9000
  bindAddress: 0.0.0.0
metrics:
  enabled: true
  port: 9001
  bindAddress: 127.0.0.1
permissions:
  - actor: example.com
    services:
      - service: "*"
        level: admin
github:
  auth:
    id: 123
    privateKeyFile: github-key.pem
  webhook:
    secret: secrettoken
  oauth:
    client_id: foo
    client_secret: bar
    redirect_uri: https://example.com/oauth/
  defaultOptions:
    showIssueRoomLink: false
    hotlinkIssues:
      prefix: "#"
  userIdPrefix:
    _github_
gitlab:
  instances:
    gitlab.com:
      url: https://gitlab.com/
  webhook:
    secret: secrettoken
    publicUrl: https://example.com/hookshot/
  userIdPrefix:
    _gitlab_
  commentDebounceMs:
    5000
generic:
  enabled: true
  outbound: false
  urlPrefix: https://example.com/webhook/
  userIdPrefix: _webhooks_
  allowJsTransformationFunctions: false
  waitForComplete: false
  enableHttpGet: false
  sendExpiryNotice: false
  requireExpiryTime: false
  maxExpiryTime: 30d
  includeHookBody: true
  payloadSizeLimit:
    1mb
bot:
  displayname: Hookshot Bot
  avatar: mxc://half-shot.uk/2876e89ccade4cb615e210c458e2a7a6883fe17d
"""


def test_real_hookshot_config_loads_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(HOOKSHOT_CONFIG)
    config = load_config(path, env={})

    assert config.bridge.media_url == "https://example.com"
    assert config.pass_file == tmp_path.resolve() / "passkey.pem"
    github = config.github
    assert github is not None and github.auth is not None and github.oauth is not None
    assert (github.auth.id, github.auth.private_key_file) == (123, "github-key.pem")
    assert github.webhook is not None and github.webhook.secret == "secrettoken"
    assert (github.oauth.client_id, github.oauth.client_secret) == ("foo", "bar")
    assert github.default_options == {"showIssueRoomLink": False, "hotlinkIssues": {"prefix": "#"}}
    assert (github.user_id_prefix, github.api_url, github.oauth_url) == (
        "_github_",
        "https://api.github.com",
        "https://github.com",
    )
    assert config.generic.max_expiry_time == 30 * 86_400_000
    assert config.generic.user_id_prefix == "_webhooks_"
    assert config.gitlab is not None
    assert config.gitlab.instances["gitlab.com"].url == "https://gitlab.com"
    assert config.gitlab.comment_debounce_ms == 5000
    assert config.metrics.enabled is True
    assert config.bot.displayname == "Hookshot Bot"
    # The legacy webhook/metrics ports became listeners, as hookshot does it.
    assert config.listeners == [
        ListenerConfig(port=9000, resources=["webhooks"], bind_address="0.0.0.0"),
        ListenerConfig(port=9001, resources=["metrics"], bind_address="127.0.0.1"),
    ]
    assert config.warnings == [
        "webhook.port: converted into a listener serving webhooks; move it to listeners",
        "metrics.port: converted into a listener serving metrics; move it to listeners",
    ]


def test_hookshot_only_sections_are_validated_and_ignored_with_warnings() -> None:
    data = with_(
        lambda d: d.update(
            jira={
                "webhook": {"secret": "s"},
                "oauth": {"client_id": "a", "client_secret": "b", "redirect_uri": "https://x/oauth"},
            },
            feeds={"enabled": True, "pollIntervalSeconds": 300},
            figma={"publicUrl": "https://x/", "instances": {"t": {"teamId": "1", "accessToken": "a", "passcode": "p"}}},
            openProject={"baseUrl": "https://op.example.com", "webhook": {"secret": "s"}},
            challengeHound={"token": "t"},
            widgets={"publicUrl": "https://x/widgetapi/v1/static", "branding": {"widgetTitle": "Hi"}},
            cache={"redisUri": "redis://localhost:6379"},
            queue={"monolithic": True, "host": "redis", "port": 6379},
            encryption={"storagePath": "./crypto"},
            sentry={"dsn": "https://k@sentry.example.com/1"},
            serviceBots=[{"localpart": "feeds", "prefix": "!feeds", "service": "feeds"}],
            messaging={"allowUrlPreviews": False},
        )
    )
    config = parse(data)
    assert config.feeds.poll_interval_seconds == 300 and config.feeds.poll_timeout_seconds == 30
    assert config.widgets.branding.widget_title == "Hi"
    assert config.widgets.public_url == "https://x/widgetapi/v1/static/"
    assert config.queue.host == "redis"
    assert config.messaging.allow_url_previews is False
    suffix = "not supported by hookshot_py yet; section ignored"
    ignored = [w.split(":")[0] for w in config.warnings if w.endswith(suffix)]
    assert ignored == [
        "figma", "openProject", "challengeHound", "widgets", "cache", "queue",
        "sentry", "serviceBots", "messaging",
    ]  # fmt: skip
    assert config.jira is not None and config.jira.cloud and config.jira.oauth_url == "https://auth.atlassian.com"


def test_jira_on_premise_oauth_is_accepted_and_ignored_with_a_warning() -> None:
    config = parse(
        with_(
            lambda d: d.update(
                jira={
                    "webhook": {"secret": "s"},
                    "url": "https://jira.corp/ctx/",
                    "oauth": {"consumerKey": "k", "privateKey": "./p.pem", "redirect_uri": "https://x/jira/oauth"},
                }
            )
        )
    )
    assert config.jira is not None and not config.jira.cloud and config.jira.url == "https://jira.corp/ctx"
    assert [w for w in config.warnings if w.startswith("jira.oauth:")] == [
        "jira.oauth: OAuth 1.0a for an on-premise JIRA is not supported by hookshot_py; users log in with a "
        "personal access token (`jira personaltoken <token>`); section ignored"
    ]


def test_hookshots_encryption_section_enables_encryption_and_its_storage_path_is_ignored() -> None:
    config = parse(with_(lambda d: d.update(encryption={"storagePath": "./crypto"})))
    assert config.encryption.enabled is True
    assert "encryption.storagePath: ignored; hookshot_py keeps the crypto state in its Postgres database" in config.warnings
    assert parse(with_(lambda d: d.update(encryption={"enabled": False}))).encryption.enabled is False
    assert parse(with_(lambda d: None)).encryption is None
    assert error_of(with_(lambda d: d.update(encryption={"enabled": "yes"}))).startswith("encryption.enabled:")


def test_go_neb_migrator_is_ignored_with_a_warning_but_experimental_encryption_is_an_error() -> None:
    config = parse(with_(lambda d: d.update(goNebMigrator={"apiUrl": "http://goneb"})))
    assert any(w.startswith("goNebMigrator:") for w in config.warnings)
    assert error_of(with_(lambda d: d.update(experimentalEncryption={"storagePath": "x"}))) == (
        "experimentalEncryption: this key is now called encryption; rename it"
    )


def test_env_overrides_github_secret_locations() -> None:
    data = with_(
        lambda d: d.update(
            github={
                "auth": {"id": "1", "privateKeyFile": "key.pem"},
                "oauth": {"client_id": "a", "client_secret": "b", "redirect_uri": "https://x/oauth"},
            }
        )
    )
    env = {"GITHUB_PRIVATE_KEY_FILE": "/run/secrets/gh.pem", "GITHUB_OAUTH_REDIRECT_URI": "https://y/oauth"}
    config = parse(data, env=env)
    assert config.github.auth.private_key_file == "/run/secrets/gh.pem"
    assert config.github.oauth.redirect_uri == "https://y/oauth"
    assert parse(data).github.auth.private_key_file == "key.pem"


def test_github_enterprise_derives_api_and_oauth_urls() -> None:
    config = parse(with_(lambda d: d.update(github={"enterpriseUrl": "https://ghe.example.com/"})))
    assert config.github.api_url == "https://ghe.example.com/api/v3"
    assert config.github.oauth_url == "https://ghe.example.com"
    config = parse(with_(lambda d: d.update(github={"apiUrl": "http://127.0.0.1:5000/", "appSlug": "hs"})))
    assert (config.github.api_url, config.github.oauth_url, config.github.app_slug) == (
        "http://127.0.0.1:5000",
        "https://github.com",
        "hs",
    )


def test_gitflic_defaults_to_the_public_instance() -> None:
    config = parse(with_(lambda d: d.update(gitflic={"token": "t"})))
    assert config.gitflic.instances == {
        "gitflic": GitFlicInstance(url="https://gitflic.ru", api_url="https://api.gitflic.ru")
    }
    assert config.gitflic.default_instance == "gitflic"
    assert config.gitflic.webhook.public_url is None


def test_gitflic_self_hosted_instance() -> None:
    section = {
        "instances": {"corp": {"url": "https://git.corp.example/"}},
        "webhook": {"publicUrl": "https://h.example"},
    }
    config = parse(with_(lambda d: d.update(gitflic=section)))
    corp = config.gitflic.instances["corp"]
    assert (corp.url, corp.api_url) == ("https://git.corp.example", "https://git.corp.example/rest-api")
    assert config.gitflic.default_instance == "corp"
    assert config.gitflic.webhook.public_url == "https://h.example/"


def test_barkeep_section() -> None:
    section = {"instances": {"main": {"url": "https://barkeep.example.com/", "apiKey": "k", "apiSecret": "s"}}}
    config = parse(with_(lambda d: d.update(barkeep=section)))
    assert config.barkeep.instances["main"].url == "https://barkeep.example.com"
    assert config.barkeep.poll_interval_seconds == 60


def test_barkeep_alone_needs_no_webhooks_listener() -> None:
    data = minimal()
    del data["generic"]
    data["listeners"] = [{"port": 9001, "resources": ["metrics"]}]
    data["barkeep"] = {"instances": {"main": {"url": "https://barkeep.example.com"}}}
    assert parse(data).barkeep is not None


# -- legacy listeners ----------------------------------------------------------------------------------


def test_legacy_port_on_an_existing_listener_merges_into_it() -> None:
    data = with_(lambda d: d.update(metrics={"enabled": True, "port": 9000}))
    config = parse(data)
    assert config.listeners == [ListenerConfig(port=9000, resources=["webhooks", "metrics"])]


def test_legacy_provisioning_and_widgets_ports_become_listeners() -> None:
    data = with_(
        lambda d: d.update(
            provisioning={"secret": SECRET, "port": 9002, "bindAddress": "127.0.0.1"},
            widgets={"publicUrl": "https://x/widgets/", "port": 9003},
        )
    )
    config = parse(data)
    assert config.provisioning.secret == SECRET
    assert config.listeners[1:] == [
        ListenerConfig(port=9003, resources=["widgets"]),
        ListenerConfig(port=9002, resources=["provisioning"]),
    ]
    assert "provisioning.port: converted into a listener serving provisioning; move it to listeners" in config.warnings


def test_legacy_bind_address_without_port_is_ignored_with_a_warning() -> None:
    config = parse(with_(lambda d: d.update(metrics={"enabled": True, "bindAddress": "0.0.0.0"})))
    assert len(config.listeners) == 1
    assert "metrics.bindAddress: ignored without metrics.port" in config.warnings


# -- files ---------------------------------------------------------------------------------------------


def test_yaml_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("bridge:\n  domain: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}:3:1: invalid YAML:")
    assert "\n" not in str(info.value)


def test_duplicate_yaml_key_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("generic:\n  urlPrefix: https://a/\n  urlPrefix: https://b/\n")
    with pytest.raises(ConfigError, match=r":3:3: invalid YAML: duplicate key 'urlPrefix'"):
        load_config(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "the config is empty; expected a mapping of sections (bridge, listeners, ...)"),
        ("- a\n- b\n", "expected a mapping of sections at the top level, got a list"),
    ],
)
def test_file_that_is_not_a_mapping(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: {message}"


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: file not found$"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00bridge")
    with pytest.raises(ConfigError, match=r"binary\.yaml: not a UTF-8 text file$"):
        load_config(tmp_path / "binary.yaml")
    with pytest.raises(ConfigError, match=r"cannot read the file"):
        load_config(tmp_path)


def test_extra_files_are_shallow_merged_and_connections_concatenated(tmp_path: Path) -> None:
    import yaml

    base = minimal()
    hook = "uk.half-shot.matrix-hookshot.generic.hook"
    base["connections"] = [{"connectionType": hook, "stateKey": "1", "roomId": "!r", "state": {}}]
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    overlay = {
        "logging": {"level": "debug"},
        "connections": [{"connectionType": hook, "stateKey": "2", "roomId": "!r", "state": {}}],
    }
    (tmp_path / "more.yaml").write_text(yaml.safe_dump(overlay))
    config = load_config(tmp_path / "base.yaml", tmp_path / "more.yaml", env={})
    assert config.logging.level == "debug"
    assert [c.state_key for c in config.connections] == ["1", "2"]


# -- bad configs: one line naming the key path -----------------------------------------------------------


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A change that sets the value at a dotted path (``listeners.0.port``) in the minimal config."""

    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return change


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[part]
        del node[last]

    return change


BAD_CONFIGS: list[tuple[Callable[[dict[str, Any]], None], str]] = [
    # unknown keys, with and without a suggestion
    (_set("generic.urlPrefx", "https://x/"), "generic.urlPrefx: unknown key (did you mean urlPrefix?)"),
    (_set("genric", {}), "genric: unknown key (did you mean generic?)"),
    (_set("bridge.bind_address", "0.0.0.0"), "bridge.bind_address: unknown key (did you mean bindAddress?)"),
    (_set("listeners.0.Port", 1), "listeners[0].Port: unknown key (did you mean port?)"),
    (
        _set("bot.colour", "red"),
        "bot.colour: unknown key (expected one of: displayname, avatar)",
    ),
    (
        _set("gitlab", {"webhook": {"secret": "s"}, "instances": {"gitlab.com": {"url": "https://gitlab.com", "token": "x"}}}),
        'gitlab.instances["gitlab.com"].token: unknown key (expected one of: url)',
    ),
    (_set("github", {"oauth": {"clientId": "a"}}), "github.oauth.clientId: unknown key (did you mean client_id?)"),
    # wrong types
    (_set("listeners.0.port", "abc"), 'listeners[0].port: expected an integer between 1 and 65535, got "abc"'),
    (_set("listeners.0.port", 70000), "listeners[0].port: expected an integer between 1 and 65535, got 70000"),
    (_set("bridge.port", True), "bridge.port: expected an integer between 1 and 65535, got true"),
    (_set("generic.enabled", "yes please"), 'generic.enabled: expected a boolean (true or false), got "yes please"'),
    (_set("bot.displayname", ["a"]), "bot.displayname: expected a string, got a list"),
    (_set("listeners", {"port": 9000}), "listeners: expected a list, got a mapping"),
    (_set("generic", "on"), 'generic: expected a mapping, got "on"'),
    (_set("github", {"auth": {"id": [1], "privateKeyFile": "k"}}), "github.auth.id: expected an integer or a string, got a list"),
    (_set("github", {"defaultOptions": "x"}), 'github.defaultOptions: expected a mapping, got "x"'),
    (_set("feeds", {"pollIntervalSeconds": 0}), "feeds.pollIntervalSeconds: expected a positive integer, got 0"),
    # missing required keys
    (_delete("bridge"), "bridge: required key is missing"),
    (_delete("bridge.domain"), "bridge.domain: required key is missing"),
    (_delete("generic.urlPrefix"), "generic.urlPrefix: required key is missing"),
    (_set("bridge.url", None), "bridge.url: expected a string, got null"),
    (_set("listeners.0", {"resources": ["webhooks"]}), "listeners[0].port: required key is missing"),
    (_set("permissions", [{"actor": "example.com"}]), "permissions[0].services: required key is missing"),
    (_set("provisioning", {}), "provisioning.secret: required key is missing"),
    (_set("provisioning", {"secret": " "}), 'provisioning.secret: expected a non-empty string, got " "'),
    (_set("gitlab", {"instances": {}}), "gitlab.instances: configure at least one GitLab instance"),
    (_set("github", {"auth": {"id": 1}}), "github.auth.privateKeyFile: required key is missing"),
    # bad enums
    (
        _set("logging.level", "verbose"),
        'logging.level: expected one of "debug", "info", "warn", "error", "trace", got "verbose"',
    ),
    (
        _set("listeners.0.resources", ["webhooks", "webhook"]),
        'listeners[0].resources[1]: expected one of "webhooks", "provisioning", "metrics", "widgets", '
        'got "webhook" (did you mean "webhooks"?)',
    ),
    (
        _set("permissions", [{"actor": "*", "services": [{"service": "*", "level": "manageconnections"}]}]),
        'permissions[0].services[0].level: expected one of "commands", "login", "notifications", '
        '"manageConnections", "admin", got "manageconnections" (did you mean "manageConnections"?)',
    ),
    # bad durations and sizes
    (
        _set("generic.maxExpiryTime", "30 fortnights"),
        'generic.maxExpiryTime: expected a duration like "30d", "12h" or "90m" (units ms, s, m, h, d, w) '
        'or a number of milliseconds, got "30 fortnights"',
    ),
    (
        _set("generic.maxExpiryTime", -5),
        'generic.maxExpiryTime: expected a duration like "30d", "12h" or "90m" (units ms, s, m, h, d, w) '
        "or a number of milliseconds, got -5",
    ),
    (
        _set("generic.payloadSizeLimit", "1 megabyte"),
        'generic.payloadSizeLimit: expected a size like "1mb", "512kb" or "2gb", or a positive number of bytes, '
        'got "1 megabyte"',
    ),
    (
        _set("generic.payloadSizeLimit", 0),
        'generic.payloadSizeLimit: expected a size like "1mb", "512kb" or "2gb", or a positive number of bytes, got 0',
    ),
    # bad URLs
    (_set("generic.urlPrefix", "example.com/webhook"), 'generic.urlPrefix: expected an http(s) URL, got "example.com/webhook"'),
    (_set("bridge.url", "ftp://localhost"), 'bridge.url: expected an http(s) URL, got "ftp://localhost"'),
    (_set("bridge.url", "http://localhost:99999"), 'bridge.url: expected an http(s) URL, got "http://localhost:99999"'),
    (_set("github", {"enterpriseUrl": "ghe"}), 'github.enterpriseUrl: expected an http(s) URL, got "ghe"'),
    (_set("database", {"url": "mysql://u:pw@h/db"}), "database.url: expected a postgresql://user:password@host:port/database URL"),
    # listeners
    (_set("listeners.0.resources", []), 'listeners[0].resources: must list at least one of "webhooks", "provisioning", "metrics", "widgets"'),
    (_set("listeners.0.prefix", "hooks"), 'listeners[0].prefix: expected a path starting with "/", got "hooks"'),
    (_set("listeners.0.port", 9993), "listeners[0].port: 9993 is already the appservice port (bridge.port) on 127.0.0.1"),
    (
        _set("listeners", [{"port": 9000, "resources": ["webhooks"]}, {"port": 9000, "bindAddress": "0.0.0.0", "resources": ["metrics"]}]),
        "listeners[1].port: 0.0.0.0:9000 is already used by listeners[0]; list all resources of one address and port in one listener",
    ),
    (
        _set("listeners", [{"port": 9000, "resources": ["webhooks"]}, {"port": 9001, "resources": ["metrics", "webhooks"]}]),
        'listeners[1].resources: "webhooks" is already served by listeners[0]; serve each resource once',
    ),
    (
        _set("listeners.0.resources", ["webhooks", "webhooks"]),
        'listeners[0].resources: "webhooks" is listed twice; serve each resource once',
    ),
    (_set("webhook", {"port": 9005}), 'webhook.port: "webhooks" is already served by listeners[0]; serve each resource once'),
    (_set("webhook", {"prot": 9005}), "webhook.prot: unknown key (did you mean port?)"),
    (_set("metrics", {"port": "x"}), 'metrics.port: expected an integer between 1 and 65535, got "x"'),
    (_set("listeners", []), 'listeners: no listener serves the "webhooks" resource, needed by generic'),
    # provisioning needs both the section and a listener
    (
        _set("listeners.0.resources", ["webhooks", "provisioning"]),
        'listeners[0].resources: "provisioning" is served but there is no provisioning section with a secret',
    ),
    (
        _set("provisioning", {"secret": SECRET}),
        'provisioning: no listener serves the "provisioning" resource; add it to the resources of a listener',
    ),
    # services
    (
        _set("generic.enabled", False),
        "config: no service is enabled; configure at least one of generic, github, gitlab, gitflic, barkeep, jira, feeds",
    ),
    (
        _set("generic", None),
        "config: no service is enabled; configure at least one of generic, github, gitlab, gitflic, barkeep, jira, feeds",
    ),
    (_set("gitflic", {"instances": {}}), "gitflic.instances: configure at least one GitFlic instance"),
    (
        _set("gitflic", {"instances": {"a": {"url": "https://a"}, "b": {"url": "https://b"}}}),
        'gitflic.defaultInstance: "gitflic" is not a configured instance (configured: a, b)',
    ),
    (_set("barkeep", {}), "barkeep.instances: configure at least one Barkeep instance"),
    (
        _set("barkeep", {"instances": {"main": {"url": "https://b", "apiKey": "k"}}}),
        "barkeep.instances.main.apiSecret: required together with apiKey",
    ),
    (
        _set("jira", {"webhook": {"secret": "s"}, "oauth": {"redirect_uri": "https://x/", "client_id": "a"}}),
        "jira.oauth.client_secret: required for JIRA Cloud (jira.url is not set)",
    ),
    (
        _set("jira", {"webhook": {"secret": "s"}, "url": "https://jira.corp", "oauth": {"redirect_uri": "https://x/", "client_id": "a", "client_secret": "b"}}),
        "jira.oauth.consumerKey: required for an on-premise JIRA (jira.url is set)",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("change", "expected"), BAD_CONFIGS, ids=[e.split(":")[0] for _, e in BAD_CONFIGS])
def test_bad_config_gives_one_precise_line(change: Callable[[dict[str, Any]], None], expected: str) -> None:
    assert error_of(with_(change)) == expected


def test_only_unsupported_services_are_named_in_the_error() -> None:
    data = minimal()
    del data["generic"]
    data["figma"] = {"publicUrl": "https://figma.example.org", "instances": {}}
    data["feeds"] = {"enabled": False}
    assert error_of(data) == (
        "config: no service is enabled; configure at least one of generic, github, gitlab, gitflic, barkeep, jira, feeds "
        "(figma is not supported yet)"
    )


def test_error_for_a_whole_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            bridge: {domain: example.com, url: "http://localhost:8008", port: 9993}
            listeners: [{port: 9000, resources: [webhooks]}]
            """
        )
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.path == str(path)
    assert info.value.message.startswith("no service is enabled")


# -- every mistake at once -------------------------------------------------------------------------------


def errors_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(data)
    lines = [str(e) for e in info.value.errors]
    assert str(info.value) == "\n".join(lines)
    return lines


def test_three_mistakes_give_three_lines_each_naming_its_key() -> None:
    data = minimal()
    data["bridge"]["port"] = "nine"
    data["generic"]["urlPrefx"] = data["generic"].pop("urlPrefix")
    data["listeners"][0]["resources"] = ["webhook"]
    with pytest.raises(ConfigErrors) as info:
        parse(data)
    assert [e.path for e in info.value.errors] == ["bridge.port", "listeners[0].resources[0]", "generic.urlPrefx"]
    assert str(info.value).splitlines() == [
        'bridge.port: expected an integer between 1 and 65535, got "nine"',
        'listeners[0].resources[0]: expected one of "webhooks", "provisioning", "metrics", "widgets", '
        'got "webhook" (did you mean "webhooks"?)',
        "generic.urlPrefx: unknown key (did you mean urlPrefix?)",
    ]
    # The first mistake is also the error's own path and message, for code that reads one.
    assert (info.value.path, info.value.message) == (info.value.errors[0].path, info.value.errors[0].message)


def test_mistakes_in_lists_dicts_and_nested_sections_are_all_listed() -> None:
    data = with_(
        lambda d: d.update(
            listeners=[
                {"port": 0, "resources": ["webhooks"]},
                {"port": 9001, "resources": ["metrics"], "bindAdress": "x"},
            ],
            permissions=[{"actor": "*", "services": [{"level": "root"}, {"level": "admin", "targets": "x"}]}],
            barkeep={"instances": {"a": {"url": "nope"}, "b": {"url": "https://b", "apiKey": "k"}}},
        )
    )
    assert errors_of(data) == [
        "listeners[0].port: expected an integer between 1 and 65535, got 0",
        "listeners[1].bindAdress: unknown key (did you mean bindAddress?)",
        'permissions[0].services[0].level: expected one of "commands", "login", "notifications", '
        '"manageConnections", "admin", got "root"',
        'permissions[0].services[1].targets: expected a list, got "x"',
        'barkeep.instances.a.url: expected an http(s) URL, got "nope"',
        "barkeep.instances.b.apiSecret: required together with apiKey",
    ]


def test_a_misspelt_key_is_not_also_reported_missing() -> None:
    # clientId is one mistake: not "unknown clientId" plus "missing client_id, client_secret, redirect_uri".
    data = with_(lambda d: d.update(github={"oauth": {"clientId": "a"}, "auth": {"id": 1}}))
    assert errors_of(data) == [
        "github.auth.privateKeyFile: required key is missing",
        "github.oauth.clientId: unknown key (did you mean client_id?)",
    ]


def test_legacy_listener_and_section_mistakes_are_listed_together() -> None:
    data = with_(
        lambda d: d.update(
            webhook={"prot": 9005},
            metrics={"port": "x", "enabled": "yes"},
            experimentalEncryption={"storagePath": "x"},
            bot={"colour": "red"},
        )
    )
    assert errors_of(data) == [
        "experimentalEncryption: this key is now called encryption; rename it",
        "webhook.prot: unknown key (did you mean port?)",
        'metrics.port: expected an integer between 1 and 65535, got "x"',
        "bot.colour: unknown key (expected one of: displayname, avatar)",
        'metrics.enabled: expected a boolean (true or false), got "yes"',
    ]


def test_checks_spanning_sections_are_all_listed_once_the_sections_are_valid() -> None:
    data = with_(
        lambda d: d.update(
            listeners=[
                {"port": 9993, "resources": ["metrics", "metrics"]},
                {"port": 9000, "resources": ["provisioning"]},
                {"port": 9000, "bindAddress": "0.0.0.0", "resources": ["metrics"]},
            ]
        )
    )
    assert errors_of(data) == [
        "listeners[0].port: 9993 is already the appservice port (bridge.port) on 127.0.0.1",
        'listeners[0].resources: "metrics" is listed twice; serve each resource once',
        "listeners[2].port: 0.0.0.0:9000 is already used by listeners[1]; "
        "list all resources of one address and port in one listener",
        'listeners[2].resources: "metrics" is already served by listeners[0]; serve each resource once',
        'listeners[1].resources: "provisioning" is served but there is no provisioning section with a secret',
        'listeners: no listener serves the "webhooks" resource, needed by generic',
    ]
    # With a broken section they would only repeat its error: they wait until it is fixed.
    data["bridge"]["port"] = "x"
    assert errors_of(data) == ['bridge.port: expected an integer between 1 and 65535, got "x"']


def test_all_mistakes_of_a_file_are_listed(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            bridge: {domain: example.com, url: "localhost:8008", port: 9993}
            listeners: [{port: 9000, resources: [webhooks, provisioning]}]
            generic: {urlPrefix: "https://example.com/webhook/", enabeld: true}
            provisioning: {secret: change-me-to-a-long-random-string}
            """
        )
    )
    with pytest.raises(ConfigErrors) as info:
        load_config(path)
    assert [e.path for e in info.value.errors] == ["bridge.url", "generic.enabeld", "provisioning.secret"]

# -- static connections ----------------------------------------------------------------------------------

HOOK = "uk.half-shot.matrix-hookshot.generic.hook"


def _static(**fields: Any) -> dict[str, Any]:
    return {"connectionType": HOOK, "stateKey": "abc", "roomId": "!room:x", "state": {"name": "hook"}, **fields}


def test_static_generic_hooks_load() -> None:
    config = parse(with_(lambda d: d.update(connections=[_static(), _static(stateKey="def")])))
    assert [(c.connection_type, c.state_key, c.room_id) for c in config.connections] == [
        (HOOK, "abc", "!room:x"), (HOOK, "def", "!room:x"),
    ]  # fmt: skip
    assert not any(w.startswith("connections") for w in config.warnings)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.update(connections=[_static(connectionType="uk.half-shot.matrix-hookshot.feed")]),
         "connections[0].connectionType: uk.half-shot.matrix-hookshot.feed does not support static configuration"),
        (lambda d: d.update(connections=[_static(), _static(roomId="!other:x")]),
         'connections[1].stateKey: "abc" is already used by connections[0]'),
        (lambda d: d.update(connections=[_static(roomId="#alias:x")]),
         'connections[0].roomId: expected a room id like "!abc:example.org", got "#alias:x"'),
        (lambda d: (d["generic"].update(enabled=False), d.update(github={}, connections=[_static()])),
         "connections[0].connectionType: Service 'generic' is not enabled in the config."),
    ],
)  # fmt: skip
def test_static_connections_are_checked(change: Callable[[dict[str, Any]], None], expected: str) -> None:
    assert error_of(with_(change)).startswith(expected)
