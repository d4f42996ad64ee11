"""Keeping a GitFlic project's webhook in line with the rooms connected to it.

One hook per project, shared by every connected room: it subscribes to the union of their
events, carries one secret, and goes away with the last connection. The bridge manages it with
a token (the user's own from `gitflic settoken`, else the bridge-wide one of the config); with
none, the user is told what to enter by hand.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp

from hookshot_py.config import GitFlicConfig
from hookshot_py.errors import ApiError, ErrCode
from hookshot_py.gitflic.client import GitFlicClient, GitFlicError, Webhook
from hookshot_py.gitflic.models import SUBSCRIPTION_FLAGS
from hookshot_py.gitflic.project import ProjectRef, project_key, project_web_url, webhook_url
from hookshot_py.gitflic.store import HookRecord, HookStore, new_secret
from hookshot_py.tokens import TokenStore

log = logging.getLogger(__name__)

TOKEN_SERVICE = "gitflic"


@dataclass(frozen=True)
class TokenChoice:
    token: str
    description: str  # "your GitFlic token" / "the bridge's GitFlic token", for error texts


@dataclass
class SyncResult:
    record: HookRecord
    # What to enter in GitFlic by hand when the bridge could not register the hook itself.
    manual: str | None = None
    notes: list[str] = field(default_factory=list)


def ordered_events(events: Iterable[str]) -> tuple[str, ...]:
    wanted = set(events)
    return tuple(flag for flag in SUBSCRIPTION_FLAGS if flag in wanted)


def api_error(error: GitFlicError, via: TokenChoice | None = None) -> ApiError:
    """A GitFlic failure as an answer for the room or the REST caller."""
    text = error.describe()
    if via is not None and error.status in (401, 403, 404):
        text += f" (The bridge used {via.description}.)"
    if error.status in (401, 403):
        return ApiError(ErrCode.FORBIDDEN_USER, text)
    if error.status == 404:
        return ApiError(ErrCode.NOT_FOUND, text)
    if error.status == 422:
        return ApiError(ErrCode.BAD_VALUE, text)
    # GitFlic down, rate limiting or answering nonsense: not the caller's fault, not our bug.
    return ApiError(ErrCode.UNKNOWN, text, status=502)


class ProjectHooks:
    def __init__(
        self, config: GitFlicConfig, store: HookStore, tokens: TokenStore, http: aiohttp.ClientSession
    ) -> None:
        self.config = config
        self.store = store
        self.tokens = tokens
        self.http = http
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    def lock(self, instance: str, project: str) -> asyncio.Lock:
        """Serialises changes to one project's hook (several rooms may change it at once)."""
        return self._locks.setdefault((instance, project), asyncio.Lock())

    # -- tokens and clients -----------------------------------------------------------------------

    async def token_for(self, instance: str, user_id: str | None) -> TokenChoice | None:
        """The user's own token for the instance first, then the bridge-wide one."""
        if user_id is not None:
            own = await self.tokens.get(user_id, TOKEN_SERVICE, instance)
            if isinstance(own, str) and own:
                return TokenChoice(own, "your GitFlic token (set with `gitflic settoken`)")
        inst = self.config.instances.get(instance)
        bridge = (inst.token if inst else None) or self.config.token
        return TokenChoice(bridge, "the bridge's GitFlic token") if bridge else None

    def client(self, instance: str, token: str) -> GitFlicClient:
        inst = self.config.instances[instance]
        assert inst.api_url is not None  # filled in by the config loader
        return GitFlicClient(inst.api_url, token, self.http, instance=urlsplit(inst.url).netloc or instance)

    # -- the hook's life --------------------------------------------------------------------------

    async def sync(self, ref: ProjectRef, events: Iterable[str], user_id: str | None) -> SyncResult:
        """Make the project's hook deliver `events` to the bridge; call it under `lock()`.

        Creates the hook, or updates/reuses the one already pointing at us. Raises ApiError when
        GitFlic refuses; without a token the result says what to enter by hand instead.
        """
        key = project_key(ref.owner, ref.project)
        old = self.store.get(ref.instance, key)
        wanted = ordered_events(events)
        url = webhook_url(self.config)
        secret = old.secret if old else new_secret()
        project_id = old.project_id if old else None
        if url is None:
            record = HookRecord(ref.instance, key, secret, wanted, "", None, project_id)
            await self.store.save(record)
            return SyncResult(record, manual=self._no_public_url_text(ref, secret, wanted))
        if old is not None and old.managed and old.events == wanted and old.url == url:
            return SyncResult(old)
        choice = await self.token_for(ref.instance, user_id)
        if choice is None:
            if old is not None and old.managed:
                # Someone registered it earlier; keep its id so it is still deleted at the end.
                record = HookRecord(ref.instance, key, secret, old.events, old.url, old.hook_id, project_id)
            else:
                record = HookRecord(ref.instance, key, secret, wanted, url, None, project_id)
            await self.store.save(record)
            return SyncResult(record, manual=self._manual_text(ref, url, secret, wanted, changed=old is not None))
        client = self.client(ref.instance, choice.token)
        notes: list[str] = []
        try:
            if old is not None and old.managed and old.url != url:
                # publicUrl changed: the old hook would deliver to an address we no longer serve.
                notes += await self._delete(client, ref, old.hook_id or "")
            hook = await client.ensure_webhook(ref.owner, ref.project, url, secret, wanted)
        except GitFlicError as e:
            raise api_error(e, choice) from e
        record = HookRecord(ref.instance, key, secret, wanted, url, hook.id, hook.project_id or project_id)
        await self.store.save(record)
        log.info("GitFlic webhook %s of %s on %s now delivers %s", hook.id, key, ref.instance, ", ".join(wanted))
        return SyncResult(record, notes=notes)

    async def remember(self, ref: ProjectRef, events: Iterable[str]) -> HookRecord:
        """A record with a fresh secret for a project connected without the bridge's help."""
        key = project_key(ref.owner, ref.project)
        record = HookRecord(ref.instance, key, new_secret(), ordered_events(events), webhook_url(self.config) or "")
        await self.store.save(record)
        return record

    async def release(self, ref: ProjectRef, remaining: list[Iterable[str]], user_id: str | None) -> list[str]:
        """A connection went away; `remaining` holds the events of the project's other
        connections. Shrinks the hook's events, or deletes it with the last one. Never raises."""
        key = project_key(ref.owner, ref.project)
        record = self.store.get(ref.instance, key)
        if record is None:
            return []
        if remaining:
            union = ordered_events(e for events in remaining for e in events)
            if not record.managed or union == record.events:
                return []
            try:
                result = await self.sync(ref, union, user_id)
            except ApiError as e:
                return [f"Could not narrow the GitFlic webhook of {ref.key} to the remaining rooms' events: {e.error}"]
            return result.notes
        warnings: list[str] = []
        if record.managed:
            choice = await self.token_for(ref.instance, user_id)
            if choice is None:
                warnings.append(
                    f"No GitFlic token is available to delete the webhook of {ref.key} "
                    f"(id {record.hook_id}): remove it by hand in the project's settings."
                )
            else:
                warnings += await self._delete(self.client(ref.instance, choice.token), ref, record.hook_id or "")
        else:
            warnings.append(
                f"No room receives the events of {ref.key} any more: if you added its webhook by hand "
                "in GitFlic, remove it there."
            )
        try:
            await self.store.delete(ref.instance, key)
        except Exception as e:  # on_removed must not raise; the row only costs a 401 later
            log.exception("Could not forget the GitFlic webhook of %s", key)
            warnings.append(f"Could not forget the webhook secret of {ref.key}: {e}")
        return warnings

    async def _delete(self, client: GitFlicClient, ref: ProjectRef, hook_id: str) -> list[str]:
        try:
            await client.delete_webhook(ref.owner, ref.project, hook_id)
        except GitFlicError as e:
            if e.status == 404:
                return []  # already gone: what we wanted
            log.warning("Deleting GitFlic webhook %s of %s failed: %s", hook_id, ref.key, e)
            return [f"Could not delete the GitFlic webhook of {ref.key}: {e.describe()} Remove it by hand."]
        log.info("Deleted GitFlic webhook %s of %s", hook_id, ref.key)
        return []

    async def list_hooks(self, ref: ProjectRef, user_id: str | None) -> list[Webhook]:
        choice = await self.token_for(ref.instance, user_id)
        if choice is None:
            raise ApiError(
                ErrCode.FORBIDDEN_USER,
                "Listing webhooks needs a GitFlic token with admin rights on the project: send me "
                "`gitflic settoken <token>` in a direct message.",
            )
        try:
            return await self.client(ref.instance, choice.token).list_webhooks(ref.owner, ref.project)
        except GitFlicError as e:
            raise api_error(e, choice) from e

    # -- texts --------------------------------------------------------------------------------------

    def _where(self, ref: ProjectRef) -> str:
        web = project_web_url(self.config, ref.instance, ref.owner, ref.project)
        return f"[{ref.key}]({web})" if web else ref.key

    def _manual_text(self, ref: ProjectRef, url: str, secret: str, events: tuple[str, ...], *, changed: bool) -> str:
        verb = "update" if changed else "add"
        return (
            f"No GitFlic token is available, so the bridge did not register the webhook of "
            f"{self._where(ref)} itself. A project administrator can {verb} it in the project's "
            f"settings (Webhooks) with URL `{url}`, secret `{secret}` and the events "
            f"{', '.join(events) or '(none)'}. Or send me `gitflic settoken <token>` in a direct "
            "message and change the connection again: the bridge then manages the webhook itself."
        )

    def _no_public_url_text(self, ref: ProjectRef, secret: str, events: tuple[str, ...]) -> str:
        return (
            f"The bridge's `gitflic.webhook.publicUrl` is not configured, so it cannot tell GitFlic "
            f"where to deliver the events of {self._where(ref)}. Ask the bridge's administrator for the "
            f"public address of its `/gitflic/webhook` route and add a webhook there in the project's "
            f"settings with secret `{secret}` and the events {', '.join(events) or '(none)'}."
        )
