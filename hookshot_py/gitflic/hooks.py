"""A GitFlic project's webhook, on the shared hook policy (`forges/policy.py`).

One hook per project, shared by every connected room: it subscribes to the union of their
events, carries one secret, and goes away with the last connection. GitFlic's part: the token
(the user's own from `gitflic settoken`, the registrant's, else the bridge-wide one of the
config; with none, the user is told what to enter by hand), the webhook endpoints of seed 002,
the bridge's own webhook URL (`gitflic.webhook.publicUrl`) and the texts. A GitFlic refusal
refuses a *new* connection: the token cannot see or administer the project, so it is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp

from hookshot_py.config import GitFlicConfig
from hookshot_py.db.database import Database
from hookshot_py.errors import ApiError, ErrCode, upstream_error
from hookshot_py.forges.http import ForgeHttpError, RateLimits
from hookshot_py.forges.policy import ForgeHooks, HookClient, ManualSetup, ProjectHooks, RemoteHook, route_url
from hookshot_py.forges.webhooks import HookKey, HookRow, WebhookStore
from hookshot_py.gitflic.client import GitFlicClient, GitFlicError
from hookshot_py.gitflic.models import SUBSCRIPTION_FLAGS, ProjectRef, Webhook, project_key
from hookshot_py.matrix.gateway import MatrixGateway
from hookshot_py.tokens import SecretBox, TokenStore

__all__ = ["GitFlicHooks", "GitFlicProjectHooks", "api_error", "ordered_events", "project_web_url", "webhook_url"]

SERVICE = "gitflic"
TOKEN_SERVICE = "gitflic"
WEBHOOK_PATH = "/gitflic/webhook"


def ordered_events(events: Iterable[str]) -> tuple[str, ...]:
    wanted = set(events)
    return tuple(flag for flag in SUBSCRIPTION_FLAGS if flag in wanted)


def webhook_url(config: GitFlicConfig) -> str | None:
    """Where GitFlic must deliver (None: no `gitflic.webhook.publicUrl`)."""
    return route_url(config.webhook.public_url, WEBHOOK_PATH)


def project_web_url(config: GitFlicConfig, instance: str, owner: str, project: str) -> str | None:
    inst = config.instances.get(instance)
    return f"{inst.url}/project/{owner}/{project}" if inst else None


def api_error(error: GitFlicError, via: str | None = None) -> ApiError:
    """A GitFlic failure as an answer for the room or the REST caller (`upstream_error`; GitFlic
    rejects values with 422); `via` names the token."""
    text = error.describe()
    if via and error.status in (401, 403, 404):
        text += f" (The bridge used {via}.)"
    return upstream_error(error.status, text, bad_value=(422,))


def _remote(hook: Webhook) -> RemoteHook:
    data = {"projectId": hook.project_id} if hook.project_id else {}
    return RemoteHook(hook.hook_id, hook.url, ordered_events(hook.known_events()), data)


@dataclass
class GitFlicHookClient(HookClient):
    client: GitFlicClient
    ref: ProjectRef
    owner: str | None
    description: str

    async def list(self) -> list[RemoteHook]:
        return [_remote(h) for h in await self.client.list_webhooks(self.ref.owner, self.ref.project)]

    async def create(self, url: str, secret: str, events: Sequence[str]) -> RemoteHook:
        return _remote(await self.client.create_webhook(self.ref.owner, self.ref.project, url, secret, events))

    async def update(
        self, hook_id: str, url: str, secret: str, events: Sequence[str], current: Sequence[str], *, adopting: bool
    ) -> RemoteHook:
        hook = await self.client.update_webhook(self.ref.owner, self.ref.project, hook_id, url, secret, events)
        return _remote(hook)

    async def delete(self, hook_id: str) -> None:
        await self.client.delete_webhook(self.ref.owner, self.ref.project, hook_id)

    async def adopt_or_create(self, url: str, secret: str, events: Sequence[str]) -> RemoteHook:
        # The client's own: it also leaves an identical hook alone.
        return _remote(await self.client.ensure_webhook(self.ref.owner, self.ref.project, url, secret, events))


@dataclass
class GitFlicHooks(ForgeHooks[ProjectRef]):
    service = SERVICE
    label = "GitFlic"
    refuse_new_on_error = True
    remember_unregistered = True

    config: GitFlicConfig
    tokens: TokenStore
    http: aiohttp.ClientSession
    limits: RateLimits = field(default_factory=RateLimits)

    def key(self, ref: ProjectRef) -> HookKey:
        return HookKey(ref.instance, project_key(ref.owner, ref.project))

    def name(self, ref: ProjectRef) -> str:
        return ref.key

    def ref(self, row: HookRow) -> ProjectRef:
        owner, _, project = (row.name or row.project).partition("/")
        return ProjectRef(row.instance, owner, project)

    def webhook_url(self, ref: ProjectRef) -> str | None:
        return webhook_url(self.config)

    def order(self, events: Iterable[str]) -> tuple[str, ...]:
        return ordered_events(events)

    def configured(self, instance: str) -> bool:
        return instance in self.config.instances

    def client(self, instance: str, token: str) -> GitFlicClient:
        inst = self.config.instances[instance]
        assert inst.api_url is not None  # filled in by the config loader
        return GitFlicClient(
            inst.api_url, token, self.http, instance=urlsplit(inst.url).netloc or instance, limits=self.limits
        )

    async def clients(
        self, ref: ProjectRef, *, user_id: str | None, registrant: str | None, user_can_admin: bool
    ) -> list[HookClient]:
        """The user's own token for the instance, the registrant's, then the bridge-wide one."""
        inst = self.config.instances.get(ref.instance)
        if inst is None:
            return []
        found: list[HookClient] = []
        for who, description in ((user_id, "your GitFlic token (set with `gitflic settoken`)"),
                                 (registrant, "the GitFlic token of the user who registered the webhook")):
            if who is not None and all(c.owner != who for c in found):
                own = await self.tokens.get(who, TOKEN_SERVICE, ref.instance)
                if isinstance(own, str) and own:
                    found.append(GitFlicHookClient(self.client(ref.instance, own), ref, who, description))
        bridge = inst.token or self.config.token
        if bridge:
            found.append(GitFlicHookClient(self.client(ref.instance, bridge), ref, None, "the bridge's GitFlic token"))
        return found

    def refusal(self, error: ForgeHttpError, client: HookClient) -> ApiError:
        if isinstance(error, GitFlicError):
            return api_error(error, client.description)
        return super().refusal(error, client)

    # -- texts --------------------------------------------------------------------------------------

    def _where(self, ref: ProjectRef) -> str:
        web = project_web_url(self.config, ref.instance, ref.owner, ref.project)
        return f"[{ref.key}]({web})" if web else ref.key

    def text_no_url(self, ref: ProjectRef, setup: ManualSetup) -> str:
        return (
            f"The bridge's `gitflic.webhook.publicUrl` is not configured, so it cannot tell GitFlic "
            f"where to deliver the events of {self._where(ref)}. Ask the bridge's administrator for the "
            f"public address of its `/gitflic/webhook` route and add a webhook there in the project's "
            f"settings with secret `{setup.secret}` and the events {', '.join(setup.events) or '(none)'}."
        )

    def reason_no_client(self, ref: ProjectRef, *, changed: bool) -> str:
        return (
            f"No GitFlic token is available, so the bridge did not register the webhook of "
            f"{self._where(ref)} itself."
        )

    def text_manual(self, ref: ProjectRef, setup: ManualSetup, reason: str, *, changed: bool) -> str:
        verb = "update" if changed else "add"
        return (
            f"{reason} A project administrator can {verb} it in the project's settings (Webhooks) with URL "
            f"`{setup.url}`, secret `{setup.secret}` and the events {', '.join(setup.events) or '(none)'}. "
            "Or send me `gitflic settoken <token>` in a direct message and change the connection again: "
            "the bridge then manages the webhook itself."
        )

    def text_missing(self, ref: ProjectRef, missing: Sequence[str], setup: ManualSetup) -> str:
        return self.text_manual(ref, setup, self.reason_no_client(ref, changed=True), changed=True)

    def text_update_failed(self, ref: ProjectRef, error: ForgeHttpError | None) -> str:
        why = self.describe(error) if error is not None else "no GitFlic token may change it now."
        return f"Could not bring the GitFlic webhook of {ref.key} in line with its rooms' events: {why} " \
               "The bridge keeps trying."

    def text_hand_made(self, ref: ProjectRef) -> str:
        return (
            f"No room receives the events of {ref.key} any more: if you added its webhook by hand "
            "in GitFlic, remove it there."
        )

    def text_left_behind(self, ref: ProjectRef, row: HookRow, error: ForgeHttpError | None) -> str:
        if error is None:
            return (
                f"No GitFlic token is available to delete the webhook of {ref.key} "
                f"(id {row.hook_id}): remove it by hand in the project's settings."
            )
        return f"Could not delete the GitFlic webhook of {ref.key}: {self.describe(error)} Remove it by hand."


class GitFlicProjectHooks(ProjectHooks[ProjectRef]):
    """GitFlic's project hooks: the shared policy with GitFlic's part."""

    forge: GitFlicHooks

    def __init__(
        self,
        config: GitFlicConfig,
        db: Database,
        box: SecretBox,
        tokens: TokenStore,
        http: aiohttp.ClientSession,
        gateway: MatrixGateway | None = None,
    ) -> None:
        super().__init__(GitFlicHooks(config, tokens, http), WebhookStore(db, box, SERVICE, gateway))
        self.config = config

    async def list_hooks(self, ref: ProjectRef, user_id: str | None) -> list[Webhook]:
        """Every webhook of the project (for `!gf hooks`), with the best token."""
        clients = await self.forge.clients(ref, user_id=user_id, registrant=None, user_can_admin=True)
        if not clients:
            raise ApiError(
                ErrCode.FORBIDDEN_USER,
                "Listing webhooks needs a GitFlic token with admin rights on the project: send me "
                "`gitflic settoken <token>` in a direct message.",
            )
        chosen = clients[0]
        assert isinstance(chosen, GitFlicHookClient)
        try:
            return await chosen.client.list_webhooks(ref.owner, ref.project)
        except GitFlicError as e:
            raise api_error(e, chosen.description) from e

    async def learn_project_id(self, row: HookRow, project_id: str) -> HookRow:
        """Remember the GitFlic id of a project seen in a verified delivery (TEST_WEBHOOK
        deliveries name only this)."""
        updated = row.replace(data={**row.data, "projectId": project_id})
        await self.store.save(updated)
        return updated
