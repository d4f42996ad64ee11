"""The sections of ``config.yaml``: hookshot's ``config.yml`` layout plus ``database``, ``provisioning``,
``gitflic`` and ``barkeep``.

Attribute names are snake_case; YAML keys are the camelCase form unless a field spells them out (hookshot
writes some OAuth keys as ``client_id``). Sections hookshot_py does not implement yet are still described
key by key, so a typo in them is caught like anywhere else.
"""

from __future__ import annotations

from dataclasses import field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from hookshot_py.config import values
from hookshot_py.config.schema import ConfigError, internal, join, key, section

Resource = Literal["webhooks", "provisioning", "metrics", "widgets"]
PermissionLevel = Literal["commands", "login", "notifications", "manageConnections", "admin"]
LogLevel = Literal["debug", "info", "warn", "error", "trace"]

GITHUB_API_URL = "https://api.github.com"
GITHUB_URL = "https://github.com"
GITFLIC_URL = "https://gitflic.ru"
GITFLIC_API_URL = "https://api.gitflic.ru"
ATLASSIAN_AUTH_URL = "https://auth.atlassian.com"
ATLASSIAN_API_URL = "https://api.atlassian.com"


# -- the bridge itself -----------------------------------------------------------------------------


@section
class BridgeConfig:
    """Where the homeserver is, and where the appservice listens for it."""

    domain: str = key(parse=values.non_empty)
    url: str = key(parse=values.http_url)
    port: int = key(parse=values.port)
    bind_address: str = "127.0.0.1"
    media_url: str | None = key(default=None, parse=values.http_url)


@section
class LoggingConfig:
    level: LogLevel = key(default="info", parse=values.log_level)
    json: bool = False
    colorize: bool = True
    timestamp_format: str = "HH:mm:ss:SSS"


@section
class ListenerConfig:
    """An HTTP listener serving some resources; every listener also answers ``/live`` and ``/ready``."""

    port: int = key(parse=values.port)
    resources: list[Resource] = field(default_factory=list)
    bind_address: str = "127.0.0.1"
    prefix: str | None = None

    def post_load(self, path: str) -> None:
        if not self.resources:
            raise ConfigError(
                join(path, "resources"), 'must list at least one of "webhooks", "provisioning", "metrics", "widgets"'
            )
        if self.prefix is not None and not self.prefix.startswith("/"):
            raise ConfigError(join(path, "prefix"), f'expected a path starting with "/", got "{self.prefix}"')


@section
class LegacyListener:
    """hookshot's old per-section ``port``/``bindAddress`` (``webhook``, ``metrics``, ``widgets``...)."""

    port: int | None = key(default=None, parse=values.port)
    bind_address: str | None = None


@section
class PermissionService:
    # hookshot treats a rule without `service` as one for every service.
    service: str = key(if_absent="*")
    level: PermissionLevel = key()
    targets: list[str] | None = None


@section
class PermissionRule:
    actor: str = key(parse=values.non_empty)
    services: list[PermissionService] = key()


@section
class BotConfig:
    displayname: str | None = None
    avatar: str | None = None


@section
class MetricsConfig:
    enabled: bool = False


@section
class DatabaseConfig:
    """Without ``url`` the bridge runs a private Postgres under ``data_directory``."""

    url: str | None = key(default=None, parse=values.postgres_url, secret=True)
    data_directory: Path = Path("hookshot-data")


@section
class OutboxConfig:
    """How messages are delivered to the homeserver (README, "Delivery order")."""

    room_window: int = key(default=32, parse=values.positive_int)
    """Messages of one room in flight to the homeserver at once (only messages whose requests overlapped)."""
    max_sending: int = key(default=128, parse=values.positive_int)
    """Messages in flight at once, all rooms together."""


@section
class ProvisioningConfig:
    secret: str = key(parse=values.strong_secret, secret=True)
    """Guards an admin API reachable over the network: placeholders and short secrets are refused."""


# -- services hookshot_py implements ----------------------------------------------------------------


@section
class OutboundDeliveryConfig:
    """How outbound webhooks are retried (hookshot sends each event once and forgets it)."""

    max_attempts: int = key(default=50, parse=values.positive_int)
    max_age: int = key(default=24 * 3_600_000, parse=values.duration_ms)
    """Milliseconds: an event not delivered this long after it arrived is given up."""
    timeout_seconds: int = key(default=30, parse=values.positive_int)
    max_media_size: int = key(default=50 * 1024 * 1024, parse=values.size_bytes)
    """Bytes: larger files are sent without their `media` part."""


@section
class GenericConfig:
    url_prefix: str = key(parse=values.url_prefix)
    enabled: bool = True
    user_id_prefix: str | None = None
    allow_js_transformation_functions: bool = False
    wait_for_complete: bool = False
    enable_http_get: bool = False
    send_expiry_notice: bool = False
    require_expiry_time: bool = False
    max_expiry_time: int | None = key(default=None, parse=values.duration_ms)
    """Milliseconds."""
    include_hook_body: bool = True
    payload_size_limit: int = key(default=1024 * 1024, parse=values.size_bytes)
    """Bytes."""
    outbound: bool = False
    outbound_delivery: OutboundDeliveryConfig = field(default_factory=OutboundDeliveryConfig)
    displayname_suffix: str = " (Webhook)"
    """Appended to a hook's name to make its user's display name (hookshot PR #1257's key)."""


@section
class GitHubAuth:
    id: int | str
    private_key_file: str = key(parse=values.non_empty)


@section
class GitHubWebhook:
    secret: str | None = key(default=None, secret=True)
    public_url: str | None = key(default=None, parse=values.url_prefix)


@section
class GitHubOAuth:
    client_id: str = key("client_id", parse=values.non_empty)
    client_secret: str = key("client_secret", parse=values.non_empty, secret=True)
    redirect_uri: str = key("redirect_uri", parse=values.http_url)


@section
class GitHubConfig:
    auth: GitHubAuth | None = None
    webhook: GitHubWebhook | None = None
    oauth: GitHubOAuth | None = None
    default_options: dict[str, Any] | None = None
    user_id_prefix: str = "_github_"
    enterprise_url: str | None = key(default=None, parse=values.http_url)
    api_url: str = key(default=GITHUB_API_URL, parse=values.http_url)
    oauth_url: str = key(default=GITHUB_URL, parse=values.http_url)
    app_slug: str | None = None

    def post_load(self, path: str) -> None:
        # GitHub Enterprise serves its API under /api/v3 and its OAuth pages at its root.
        if self.enterprise_url is not None:
            base = self.enterprise_url.rstrip("/")
            if self.api_url == GITHUB_API_URL:
                self.api_url = f"{base}/api/v3"
            if self.oauth_url == GITHUB_URL:
                self.oauth_url = base
        self.api_url = self.api_url.rstrip("/")
        self.oauth_url = self.oauth_url.rstrip("/")


@section
class GitFlicInstance:
    url: str = key(parse=values.http_url)
    """The instance's web address, e.g. https://gitflic.ru."""
    api_url: str | None = key(default=None, parse=values.http_url)
    """The REST base; filled in when absent (``api.gitflic.ru`` or ``{url}/rest-api`` when self-hosted)."""
    token: str | None = key(default=None, secret=True)

    def post_load(self, path: str) -> None:
        self.url = self.url.rstrip("/")
        if self.api_url is None:
            host = urlsplit(self.url).hostname
            self.api_url = GITFLIC_API_URL if host == "gitflic.ru" else f"{self.url}/rest-api"
        self.api_url = self.api_url.rstrip("/")


def _default_gitflic_instances() -> dict[str, GitFlicInstance]:
    return {"gitflic": GitFlicInstance(url=GITFLIC_URL, api_url=GITFLIC_API_URL)}


@section
class GitFlicWebhook:
    public_url: str | None = key(default=None, parse=values.url_prefix)
    """The public address of the webhooks listener, where GitFlic is told to deliver."""


@section
class GitFlicConfig:
    token: str | None = key(default=None, secret=True)
    instances: dict[str, GitFlicInstance] = field(default_factory=_default_gitflic_instances)
    webhook: GitFlicWebhook = field(default_factory=GitFlicWebhook)
    default_instance: str = key(default="gitflic", parse=values.non_empty)

    def post_load(self, path: str) -> None:
        if not self.instances:
            raise ConfigError(join(path, "instances"), "configure at least one GitFlic instance")
        if self.default_instance in self.instances:
            return
        if self.default_instance == "gitflic" and len(self.instances) == 1:
            # A single self-hosted instance replaces the public one: nothing to choose.
            self.default_instance = next(iter(self.instances))
            return
        raise ConfigError(
            join(path, "defaultInstance"),
            f'"{self.default_instance}" is not a configured instance (configured: {", ".join(self.instances)})',
        )


@section
class BarkeepInstance:
    url: str = key(parse=values.http_url)
    api_key: str | None = None
    api_secret: str | None = key(default=None, secret=True)

    def post_load(self, path: str) -> None:
        self.url = self.url.rstrip("/")
        # Barkeep signs a request with both; one without the other cannot authenticate.
        if self.api_key is not None and self.api_secret is None:
            raise ConfigError(join(path, "apiSecret"), "required together with apiKey")
        if self.api_secret is not None and self.api_key is None:
            raise ConfigError(join(path, "apiKey"), "required together with apiSecret")


@section
class BarkeepConfig:
    instances: dict[str, BarkeepInstance] = field(default_factory=dict)
    poll_interval_seconds: int = key(default=60, parse=values.positive_int)

    def post_load(self, path: str) -> None:
        if not self.instances:
            raise ConfigError(join(path, "instances"), "configure at least one Barkeep instance")


@section
class FeedsConfig:
    """hookshot's keys, plus ours: the shortest interval a feed's state may ask for, the cap on
    items posted per poll, and the largest feed body read."""

    enabled: bool = False
    poll_interval_seconds: int = key(default=600, parse=values.positive_int)
    poll_timeout_seconds: int = key(default=30, parse=values.positive_int)
    poll_concurrency: int = key(default=4, parse=values.positive_int)
    min_poll_interval_seconds: int | None = key(default=None, parse=values.positive_int)
    """None: `pollIntervalSeconds` (a feed is never polled more often, as in hookshot)."""
    max_items_per_poll: int = key(default=10, parse=values.positive_int)
    max_feed_size: int = key(default=10 * 1024 * 1024, parse=values.size_bytes)
    """Bytes, after decompression."""

    @property
    def min_interval(self) -> int:
        return self.min_poll_interval_seconds or self.poll_interval_seconds

    def post_load(self, path: str) -> None:
        if self.min_poll_interval_seconds is not None and self.min_poll_interval_seconds > self.poll_interval_seconds:
            raise ConfigError(
                join(path, "minPollIntervalSeconds"), "must not be larger than pollIntervalSeconds"
            )


@section
class OutboundUrlsConfig:
    """What URLs given by users or forges (feeds...) may reach besides public addresses."""

    allowed_hosts: list[str] = field(default_factory=list)
    allowed_ip_ranges: list[str] = key(default_factory=list, parse=values.ip_ranges)


@section
class JiraWebhook:
    secret: str = key(parse=values.non_empty, secret=True)
    """The secret of JIRA's admin webhooks: the HMAC key of `X-Hub-Signature`, or `?secret=`."""


@section
class JiraOAuth:
    """Cloud JIRA uses ``client_id``/``client_secret``; on-premise JIRA ``consumerKey``/``privateKey``."""

    redirect_uri: str = key("redirect_uri", parse=values.http_url)
    client_id: str | None = key("client_id", default=None)
    client_secret: str | None = key("client_secret", default=None, secret=True)
    consumer_key: str | None = None
    private_key: str | None = key(default=None, secret=True)


@section
class JiraConfig:
    """hookshot's keys (``webhook``, ``url``, ``oauth``) plus ours: where Atlassian's OAuth
    server and API gateway are (JIRA Cloud only; changed for tests or an egress proxy)."""

    webhook: JiraWebhook
    url: str | None = key(default=None, parse=values.http_url)
    oauth: JiraOAuth | None = None
    oauth_url: str = key(default=ATLASSIAN_AUTH_URL, parse=values.http_url)
    api_url: str = key(default=ATLASSIAN_API_URL, parse=values.http_url)

    @property
    def cloud(self) -> bool:
        """JIRA Cloud (OAuth 2.0 through Atlassian), or an on-premise JIRA at `url`."""
        return self.url is None

    def post_load(self, path: str) -> None:
        self.oauth_url = self.oauth_url.rstrip("/")
        self.api_url = self.api_url.rstrip("/")
        if self.url is not None:
            self.url = self.url.rstrip("/")
        if self.oauth is None:
            return
        if self.url is not None:
            needed = {"consumerKey": self.oauth.consumer_key, "privateKey": self.oauth.private_key}
            why = "for an on-premise JIRA (jira.url is set)"
        else:
            needed = {"client_id": self.oauth.client_id, "client_secret": self.oauth.client_secret}
            why = "for JIRA Cloud (jira.url is not set)"
        for name, value in needed.items():
            if not value:
                raise ConfigError(join(join(path, "oauth"), name), f"required {why}")


@section
class GitLabInstance:
    url: str = key(parse=values.http_url)
    """The instance's web address, e.g. https://gitlab.com (its API is ``{url}/api/v4``)."""

    def post_load(self, path: str) -> None:
        self.url = self.url.rstrip("/")


@section
class GitLabWebhook:
    secret: str | None = key(default=None, secret=True)
    """hookshot's one token for every project: hooks entered by hand with it are accepted. Hooks the
    bridge registers get a token of their own, so this may be left out."""
    public_url: str | None = key(default=None, parse=values.http_url)
    """Where GitLab delivers: the public address of the webhooks listener, or of its
    ``/gitlab/webhook`` route."""


@section
class GitLabConfig:
    webhook: GitLabWebhook = field(default_factory=GitLabWebhook)
    instances: dict[str, GitLabInstance] = field(default_factory=dict)
    user_id_prefix: str = "_gitlab_"
    comment_debounce_ms: int = key(default=5000, parse=values.non_negative_int)

    def post_load(self, path: str) -> None:
        if not self.instances:
            raise ConfigError(join(path, "instances"), "configure at least one GitLab instance")

    def instance_for_url(self, url: str) -> str | None:
        """The name of the instance whose address `url` starts with (hookshot's rule), the longest first."""
        matches = [
            name for name, inst in self.instances.items()
            if url == inst.url or url.startswith(inst.url + "/")
        ]
        return max(matches, key=lambda n: len(self.instances[n].url), default=None)


# -- hookshot sections hookshot_py does not implement yet (validated, then ignored) ---------------------


@section
class FigmaInstance:
    team_id: str
    access_token: str = key(secret=True)
    passcode: str = key(secret=True)


@section
class FigmaConfig:
    public_url: str = key(parse=values.http_url)
    instances: dict[str, FigmaInstance] = field(default_factory=dict)
    override_user_id: str | None = None


@section
class OpenProjectWebhook:
    secret: str = key(parse=values.non_empty, secret=True)


@section
class OpenProjectOAuth:
    client_id: str
    client_secret: str = key(secret=True)
    redirect_uri: str = key(parse=values.http_url)


@section
class OpenProjectConfig:
    base_url: str = key(parse=values.http_url)
    webhook: OpenProjectWebhook = key()
    oauth: OpenProjectOAuth | None = None


@section
class ChallengeHoundConfig:
    token: str | None = key(default=None, secret=True)


@section
class WidgetsRoomSetup:
    add_on_invite: bool = False


@section
class WidgetsBranding:
    widget_title: str = "Hookshot Configuration"


@section
class WidgetsConfig:
    public_url: str = key(parse=values.url_prefix)
    add_to_admin_rooms: bool = False
    room_setup_widget: WidgetsRoomSetup | None = None
    disallowed_ip_ranges: list[str] | None = None
    allowed_ip_ranges: list[str] | None = None
    branding: WidgetsBranding = field(default_factory=WidgetsBranding)
    open_id_overrides: dict[str, str] | None = None


@section
class CacheConfig:
    redis_uri: str = key(parse=values.non_empty, secret=True)


@section
class QueueConfig:
    """``{redisUri}``, or hookshot's deprecated ``{monolithic, host, port}``."""

    redis_uri: str | None = key(default=None, secret=True)
    monolithic: bool | None = None
    host: str | None = None
    port: int | None = key(default=None, parse=values.port)


@section
class EncryptionConfig:
    """End-to-end encryption. hookshot's section (``{storagePath}``) enables it too; the crypto state
    lives in the bridge's Postgres, so ``storagePath`` is accepted and ignored."""

    enabled: bool = True
    storage_path: str | None = key(default=None, parse=values.non_empty)


@section
class SentryConfig:
    dsn: str = key(parse=values.non_empty, secret=True)
    environment: str | None = None


@section
class ServiceBot:
    localpart: str = key(parse=values.non_empty)
    prefix: str = key(parse=values.non_empty)
    service: str = key(parse=values.non_empty)
    displayname: str | None = None
    avatar: str | None = None


@section
class StaticConnection:
    connection_type: str = key(parse=values.non_empty)
    state_key: str
    room_id: str = key(parse=values.non_empty)
    state: dict[str, Any] = key()


@section
class MessagingConfig:
    allow_url_previews: bool = True


# -- the whole file ------------------------------------------------------------------------------------


@section
class Config:
    """A loaded ``config.yaml``; build it with :func:`hookshot_py.config.load_config`.

    Paths are absolute (relative ones are resolved against the config file's directory). ``permissions``
    and ``listeners`` are complete: defaults and hookshot's legacy per-section ports are already applied.
    """

    bridge: BridgeConfig
    pass_file: Path = Path("passkey.pem")
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    listeners: list[ListenerConfig] = field(default_factory=list)
    permissions: list[PermissionRule] = field(default_factory=list)
    bot: BotConfig = field(default_factory=BotConfig)
    generic: GenericConfig | None = None
    github: GitHubConfig | None = None
    gitflic: GitFlicConfig | None = None
    barkeep: BarkeepConfig | None = None
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    provisioning: ProvisioningConfig | None = None
    gitlab: GitLabConfig | None = None
    jira: JiraConfig | None = None
    feeds: FeedsConfig | None = None
    outbound_urls: OutboundUrlsConfig = field(default_factory=OutboundUrlsConfig)
    figma: FigmaConfig | None = None
    open_project: OpenProjectConfig | None = None
    challenge_hound: ChallengeHoundConfig | None = None
    widgets: WidgetsConfig | None = None
    cache: CacheConfig | None = None
    queue: QueueConfig | None = None
    encryption: EncryptionConfig | None = None
    sentry: SentryConfig | None = None
    service_bots: list[ServiceBot] | None = None
    connections: list[StaticConnection] | None = None
    messaging: MessagingConfig | None = None
    config_dir: Path = internal(default=Path("."))
    warnings: list[str] = internal(default_factory=list)
    """Things worth telling the admin that do not stop the bridge (ignored sections, legacy keys...)."""
