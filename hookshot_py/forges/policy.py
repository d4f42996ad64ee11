"""The project-hook policy every forge shares: one webhook per project, for all its rooms.

The hook subscribes to the union of the rooms' events, carries one secret (generated here,
stored by `WebhookStore`) and goes away with the project's last connection. The policy:

- `ensure` (a connection is created or changed): brings the hook in line with the union, with
  the best credential the forge offers (`ForgeHooks.clients`: the acting user's when they may
  administer the project, else the registrant's, else the bridge's). A hook already pointing at
  our URL is adopted (updated with our secret) rather than duplicated; a hook deleted on the
  forge meanwhile is created again. Without any credential, the answer says what a project
  admin must enter by hand (`ManualSetup`); without a public URL, that it cannot be done.
- `release` (a connection went away): narrows the hook to the remaining rooms' events, or
  deletes it with the last connection, falling back to the registrant's credential.
- `follow` (room state edited by hand, or found at start): records the new union; a managed
  hook that must change is left to the `HookSync` job, outside the room's lock.
- A change the forge refused (or that no credential could make) marks the row `needs_sync`
  with a backoff; `HookSync.run_due` converges it later, after a restart too.

A forge plugs in with a `ForgeHooks` subclass (naming, credentials, texts) whose `clients`
return `HookClient`s (its four webhook endpoints, called with one credential).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar
from urllib.parse import urlsplit

from hookshot_py.errors import ApiError, ErrCode
from hookshot_py.forges.http import ForgeHttpError
from hookshot_py.forges.sync import HookSync
from hookshot_py.forges.webhooks import HookKey, HookRow, WebhookStore

__all__ = [
    "ForgeHooks",
    "HookChange",
    "HookClient",
    "ManualSetup",
    "ProjectHooks",
    "RemoteHook",
    "backoff_seconds",
    "route_url",
    "same_url",
]

log = logging.getLogger(__name__)

RefT = TypeVar("RefT")

BACKOFF_BASE_S = 30.0
BACKOFF_MAX_S = 3600.0


def backoff_seconds(attempts: int) -> float:
    """30 s, 1 min, 2 min ... capped at an hour."""
    return min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** max(0, attempts - 1))


def same_url(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def route_url(public_url: str | None, path: str) -> str | None:
    """Where a forge must deliver to the bridge's `path` route (`/gitlab/webhook`): `publicUrl`
    itself when it names that route, else the route under it (the public address of the
    webhooks listener). None: no `publicUrl` configured."""
    if not public_url:
        return None
    base = public_url.rstrip("/")
    return base if urlsplit(base).path.endswith(path) else base + path


@dataclass(frozen=True)
class RemoteHook:
    """A webhook as the forge lists it. `data`: forge extras kept with the row (GitFlic's
    project id)."""

    id: str
    url: str
    events: tuple[str, ...] = ()
    data: Mapping[str, Any] = field(default_factory=dict)


class HookClient(ABC):
    """A forge's webhook endpoints for one project, called with one credential.

    `owner`: the Matrix user whose credential this is, None for the bridge's own. `description`
    names the credential in texts ("your GitFlic token", "the bridge's GitFlic token").
    """

    owner: str | None = None
    description: str = ""
    #: Other URLs that are ours too (GitLab: hookshot's), adopted when no hook points at ours.
    also_ours: tuple[str, ...] = ()

    @abstractmethod
    async def list(self) -> list[RemoteHook]: ...

    @abstractmethod
    async def create(self, url: str, secret: str, events: Sequence[str]) -> RemoteHook: ...

    @abstractmethod
    async def update(
        self, hook_id: str, url: str, secret: str, events: Sequence[str], current: Sequence[str], *, adopting: bool
    ) -> RemoteHook:
        """Point the hook at `url` with `secret` and `events`. `current`: the events it delivers
        as far as we know; `adopting`: the hook was found by its URL, not registered by us."""

    @abstractmethod
    async def delete(self, hook_id: str) -> None: ...

    async def adopt_or_create(self, url: str, secret: str, events: Sequence[str]) -> RemoteHook:
        """The project's hook pointing at `url` (left by an earlier database, or entered by
        hand), else at one of `also_ours`, updated with our secret and events; else a new one."""
        hooks = await self.list()
        found = next((h for h in hooks if same_url(h.url, url)), None) or next(
            (h for h in hooks if any(same_url(h.url, other) for other in self.also_ours)), None
        )
        if found is not None:
            return await self.update(found.id, url, secret, events, found.events, adopting=True)
        return await self.create(url, secret, events)


@dataclass(frozen=True)
class ManualSetup:
    """What a project admin must enter on the forge when the bridge cannot register the hook."""

    project: str
    url: str | None  # None: no public URL is configured
    secret: str
    events: tuple[str, ...]


@dataclass
class HookChange:
    """What `ensure` did. `warnings` are for the user. `manual`/`manual_text`: what a project
    admin must do by hand; the text is among the warnings and may hold the secret, so show it
    to the user alone (a DM), never in the room."""

    row: HookRow
    warnings: list[str] = field(default_factory=list)
    manual: ManualSetup | None = None
    manual_text: str | None = None


class ForgeHooks(ABC, Generic[RefT]):
    """What a forge tells the policy: how its projects are named, which credentials may manage
    their hooks, and the words for its users. `RefT` is the forge's project reference."""

    service: ClassVar[str]  # "github": the rows' service
    label: ClassVar[str]  # "GitHub": in texts
    #: Refuse a *new* connection whose hook the forge refused (GitFlic: the token cannot see the
    #: project, so the connection is wrong), rather than telling the user what to enter by hand
    #: and retrying in the background (GitHub: the user proved write access already).
    refuse_new_on_error: ClassVar[bool] = False
    #: Give a project connected only in room state (written by hand, not through the bridge) a
    #: row with a secret, so that a hook entered by hand can be verified; the connection type
    #: then shows the secret to admins in `secrets()` (GitFlic does).
    remember_unregistered: ClassVar[bool] = False

    @abstractmethod
    def key(self, ref: RefT) -> HookKey:
        """The project's identity: its instance and case-folded name."""

    @abstractmethod
    def name(self, ref: RefT) -> str:
        """The project as users read it and the API takes it ("owner/repo")."""

    @abstractmethod
    def ref(self, row: HookRow) -> RefT:
        """The reference of a stored row (for the `HookSync` job, which has no connection)."""

    @abstractmethod
    def webhook_url(self, ref: RefT) -> str | None:
        """Where the forge must deliver; None when no public URL is configured."""

    def configured(self, instance: str) -> bool:
        """Whether the forge instance a row names is still in the config (a connection to one
        that is gone leaves its hook alone when removed)."""
        return True

    @abstractmethod
    async def clients(
        self, ref: RefT, *, user_id: str | None, registrant: str | None, user_can_admin: bool
    ) -> list[HookClient]:
        """The credentials that may manage the project's hook, best first: the acting user's
        (when `user_can_admin`), the registrant's, the bridge's. Empty: none."""

    def order(self, events: Iterable[str]) -> tuple[str, ...]:
        """Events in the forge's canonical order (compared and stored this way)."""
        return tuple(sorted(set(events)))

    def new_secret(self) -> str:
        return secrets.token_urlsafe(32)

    def is_gone(self, error: ForgeHttpError) -> bool:
        """The hook an update was sent to no longer exists on the forge."""
        return error.status == 404

    def deleted_already(self, error: ForgeHttpError) -> bool:
        """A failed delete means the hook is gone anyway. (GitHub answers 404 also to a token
        without admin rights, so it cannot tell.)"""
        return error.status == 404

    def describe(self, error: ForgeHttpError) -> str:
        describe = getattr(error, "describe", None)
        return str(describe()) if callable(describe) else f"{self.label} answered {error.status}: {error.message}"

    def refusal(self, error: ForgeHttpError, client: HookClient) -> ApiError:
        """The answer refusing a new connection (`refuse_new_on_error`)."""
        return ApiError(ErrCode.UNKNOWN, self.describe(error), status=502)

    # -- texts (override for the forge's wording) ---------------------------------------------------

    def text_no_url(self, ref: RefT, setup: ManualSetup) -> str:
        return (
            f"The bridge has no public URL configured for {self.label} webhooks, so it cannot set up "
            f"the webhook of {setup.project}: ask the bridge administrator to configure it."
        )

    def reason_no_client(self, ref: RefT, *, changed: bool) -> str:
        return f"The bridge has no {self.label} credential that may manage the webhook of {self.name(ref)}."

    def reason_failed(self, ref: RefT, error: ForgeHttpError) -> str:
        return f"Could not create the webhook of {self.name(ref)}: {self.describe(error)}"

    def text_manual(self, ref: RefT, setup: ManualSetup, reason: str, *, changed: bool) -> str:
        verb = "update" if changed else "add"
        return (
            f"{reason} A project admin can {verb} it on {self.label} with URL {setup.url} , secret "
            f"{setup.secret} and the events {', '.join(setup.events) or '(none)'}."
        )

    def text_update_failed(self, ref: RefT, error: ForgeHttpError | None) -> str:
        why = self.describe(error) if error is not None else f"no {self.label} credential may change it now"
        return f"Could not update the webhook of {self.name(ref)}: {why} The bridge keeps trying."

    def text_missing(self, ref: RefT, missing: Sequence[str], setup: ManualSetup) -> str:
        return (
            f"The webhook of {self.name(ref)} does not deliver {', '.join(missing)} events, and the bridge "
            f"has no {self.label} credential that may change that: ask a project admin to update the connection."
        )

    def text_hand_made(self, ref: RefT) -> str:
        return (
            f"If a webhook was added by hand to {self.name(ref)} for this bridge, delete it on {self.label}: "
            "the bridge no longer accepts its deliveries."
        )

    def text_left_behind(self, ref: RefT, row: HookRow, error: ForgeHttpError | None) -> str:
        why = f": {self.describe(error)}" if error is not None else " (no credential is available)"
        return (
            f"Could not delete the webhook of {self.name(ref)} on {self.label}{why}. Delete it in the "
            "project's settings: the bridge no longer accepts its deliveries."
        )


class _Failed(Exception):
    def __init__(self, error: ForgeHttpError, client: HookClient) -> None:
        super().__init__(str(error))
        self.error = error
        self.client = client


class ProjectHooks(Generic[RefT]):
    """The policy over one forge's project hooks (see the module docstring)."""

    def __init__(
        self, forge: ForgeHooks[RefT], store: WebhookStore, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.forge = forge
        self.store = store
        self.clock = clock
        self.sync = HookSync(store, self.converge, clock=clock)
        self._locks: dict[HookKey, asyncio.Lock] = {}

    @asynccontextmanager
    async def lock(self, key: HookKey) -> AsyncIterator[None]:
        """Serialises changes to one project's hook: several rooms, and several bridge processes,
        may change it at once. Inside, `store.get(key)` is the row as Postgres has it."""
        async with self._locks.setdefault(key, asyncio.Lock()), self.store.exclusive(key):
            yield

    def row(self, ref: RefT) -> HookRow | None:
        return self.store.get(self.forge.key(ref))

    def _new_row(self, ref: RefT, url: str | None, events: tuple[str, ...]) -> HookRow:
        key = self.forge.key(ref)
        return HookRow(key.instance, key.project, self.forge.new_secret(), url or "", events, name=self.forge.name(ref))

    # -- a connection is created or changed ---------------------------------------------------------

    async def ensure(
        self,
        ref: RefT,
        events: Iterable[str],
        *,
        user_id: str | None,
        user_can_admin: bool = True,
        new_connection: bool = False,
    ) -> HookChange:
        """Make the project's hook deliver `events` (the union over all its rooms)."""
        forge = self.forge
        wanted = forge.order(events)
        key = forge.key(ref)
        async with self.lock(key):
            old = self.store.get(key)
            url = forge.webhook_url(ref)
            row = (old or self._new_row(ref, url, wanted)).replace(wanted=wanted, name=forge.name(ref))
            if url is None:
                row = row.replace(events=row.events if row.managed else wanted, needs_sync=False)
                await self.store.save(row)
                setup = ManualSetup(forge.name(ref), None, row.secret, wanted)
                text = forge.text_no_url(ref, setup)
                return HookChange(row, [text], setup, text)
            if row.managed and row.events == wanted and same_url(row.url, url):
                row = _settled(row)
                if row != old:
                    await self.store.save(row)
                return HookChange(row)
            clients = await forge.clients(
                ref, user_id=user_id, registrant=row.registered_by, user_can_admin=user_can_admin
            )
            if not clients:
                return await self._without_clients(ref, row, url, changed=old is not None)
            await self.store.save(row)  # the secret first: some forges deliver a ping at once
            try:
                row = await self._apply(row, url, clients)
            except _Failed as failed:
                if new_connection and forge.refuse_new_on_error:
                    await (self.store.delete(key) if old is None else self.store.save(old))
                    raise forge.refusal(failed.error, failed.client) from failed.error
                row = self._failed(row.replace(registered_by=row.registered_by or clients[0].owner), failed.error)
                await self.store.save(row)
                self.sync.wake()
                if row.managed:
                    return HookChange(row, [forge.text_update_failed(ref, failed.error)])
                setup = ManualSetup(forge.name(ref), url, row.secret, wanted)
                text = forge.text_manual(ref, setup, forge.reason_failed(ref, failed.error), changed=False)
                return HookChange(row, [text], setup, text)
            await self.store.save(row)
            log.info("%s webhook %s of %s now delivers %s", forge.label, row.hook_id, row.project, ", ".join(wanted))
            return HookChange(row)

    async def _without_clients(self, ref: RefT, row: HookRow, url: str, *, changed: bool) -> HookChange:
        forge = self.forge
        setup = ManualSetup(forge.name(ref), url, row.secret, row.desired)
        if row.managed:
            # Nobody here may change it now; the registrant (or the bridge) may later.
            stale = row.events != row.desired or not same_url(row.url, url)
            row = self._failed(row, None) if stale else _settled(row)
            await self.store.save(row)
            missing = [e for e in row.desired if e not in row.events]
            if not missing:
                return HookChange(row)
            text = forge.text_missing(ref, missing, setup)
            return HookChange(row, [text], setup, text)
        row = _settled(row.replace(events=row.desired, url=url))  # what to enter by hand
        await self.store.save(row)
        text = forge.text_manual(ref, setup, forge.reason_no_client(ref, changed=changed), changed=changed)
        return HookChange(row, [text], setup, text)

    async def _apply(self, row: HookRow, url: str, clients: Sequence[HookClient]) -> HookRow:
        """Update the hook (or adopt/create it) with the first client that succeeds; raises
        `_Failed` with the first client's error when none does."""
        wanted = row.desired
        first: _Failed | None = None
        for client in clients:
            try:
                remote = await self._apply_with(row, url, client)
            except ForgeHttpError as e:
                log.info("%s refused a webhook change for %s (%s): %s",
                         self.forge.label, row.project, client.description, e)
                first = first or _Failed(e, client)
                continue
            return _settled(
                row.replace(
                    hook_id=remote.id,
                    events=wanted,
                    url=url,
                    registered_by=client.owner or row.registered_by,
                    data={**row.data, **remote.data},
                )
            )
        assert first is not None
        raise first

    async def _apply_with(self, row: HookRow, url: str, client: HookClient) -> RemoteHook:
        if row.hook_id is not None:
            try:
                return await client.update(row.hook_id, url, row.secret, row.desired, row.events, adopting=False)
            except ForgeHttpError as e:
                if not self.forge.is_gone(e):
                    raise
                log.info("%s webhook %s of %s is gone; creating it again", self.forge.label, row.hook_id, row.project)
        return await client.adopt_or_create(url, row.secret, row.desired)

    def _failed(self, row: HookRow, error: ForgeHttpError | None) -> HookRow:
        attempts = row.sync_attempts + 1
        delay = backoff_seconds(attempts)
        if error is not None and error.retry_after is not None:
            delay = max(delay, error.retry_after)
        text = self.forge.describe(error) if error is not None else "no credential may change the hook"
        return row.replace(
            needs_sync=True, sync_attempts=attempts, next_sync_at=self.clock() + delay, last_error=text[:500]
        )

    # -- a connection went away ---------------------------------------------------------------------

    async def release(self, ref: RefT, remaining: Iterable[str] | None, *, user_id: str | None) -> list[str]:
        """`remaining`: the events the project's other connections need, or None when it was
        the last one (the hook is then deleted). Never raises: problems come back as warnings."""
        key = self.forge.key(ref)
        try:
            async with self.lock(key):
                row = self.store.get(key)
                if row is None:
                    return []
                if remaining is None:
                    return await self._remove(ref, row, user_id)
                return await self._narrow(ref, row, self.forge.order(remaining), user_id)
        except Exception:
            log.exception("Cleaning up the %s webhook of %s failed", self.forge.label, key.project)
            return [f"Could not clean up the webhook of {self.forge.name(ref)}; see the bridge log."]

    async def _narrow(self, ref: RefT, row: HookRow, wanted: tuple[str, ...], user_id: str | None) -> list[str]:
        row = row.replace(wanted=wanted)
        if not row.managed or row.events == wanted:
            await self.store.save(_settled(row) if row.managed else row)
            return []
        url = self.forge.webhook_url(ref) or row.url
        clients = await self.forge.clients(ref, user_id=user_id, registrant=row.registered_by, user_can_admin=True)
        if not clients:
            await self.store.save(self._failed(row, None))
            return []  # the extra events only cost deliveries the rooms filter out
        try:
            row = await self._apply(row, url, clients)
        except _Failed as failed:
            await self.store.save(self._failed(row, failed.error))
            self.sync.wake()
            return [self.forge.text_update_failed(ref, failed.error)]
        await self.store.save(row)
        return []

    async def _remove(self, ref: RefT, row: HookRow, user_id: str | None) -> list[str]:
        await self.store.delete(row.key)
        if row.hook_id is None:
            return [self.forge.text_hand_made(ref)]
        clients = await self.forge.clients(ref, user_id=user_id, registrant=row.registered_by, user_can_admin=True)
        first: ForgeHttpError | None = None
        for client in clients:
            try:
                await client.delete(row.hook_id)
            except ForgeHttpError as e:
                if self.forge.deleted_already(e):
                    break
                log.info("Deleting %s webhook %s of %s (%s): %s", self.forge.label, row.hook_id, row.project,
                         client.description, e)
                first = first or e
                continue
            log.info("Deleted %s webhook %s of %s", self.forge.label, row.hook_id, row.project)
            return []
        else:
            return [self.forge.text_left_behind(ref, row, first)]
        return []

    # -- room state seen (edited by hand, or loaded at start) ---------------------------------------

    async def follow(self, ref: RefT, events: Iterable[str]) -> None:
        """The rooms now want `events`: remember it; a managed hook that must change is changed
        by the `HookSync` job (not here: the caller holds the room's lock). A project without a
        row gets one when the forge `remember_unregistered`."""
        wanted = self.forge.order(events)
        key = self.forge.key(ref)
        cached = self.store.get(key)
        if cached is not None and cached.desired == wanted:
            return  # the usual case (every connection loaded at start): no lock, no query
        async with self.lock(key):
            row = self.store.get(key)
            if row is None:
                if not self.forge.remember_unregistered:
                    return
                url = self.forge.webhook_url(ref)
                await self.store.save(self._new_row(ref, url, wanted).replace(wanted=wanted))
                return
            if row.desired == wanted:
                return
            row = row.replace(wanted=wanted)
            if row.managed and row.events != wanted:
                row = row.replace(needs_sync=True, sync_attempts=0, next_sync_at=self.clock(), last_error=None)
            await self.store.save(row)
        if row.needs_sync:
            self.sync.wake()

    # -- the HookSync job's unit of work --------------------------------------------------------------

    async def converge(self, key: HookKey) -> bool:
        """Bring one project's hook in line with what its rooms want, with the registrant's or
        the bridge's credential. True when it is (or nothing is left to do)."""
        async with self.lock(key):
            row = self.store.get(key)
            if row is None or not row.needs_sync:
                return True
            ref = self.forge.ref(row)
            url = self.forge.webhook_url(ref)
            if url is None:
                await self.store.save(_settled(row))
                return True
            clients = await self.forge.clients(ref, user_id=None, registrant=row.registered_by, user_can_admin=False)
            if not clients:
                await self.store.save(self._failed(row, None))
                return False
            try:
                row = await self._apply(row, url, clients)
            except _Failed as failed:
                row = self._failed(row, failed.error)
                await self.store.save(row)
                log.warning(
                    "The %s webhook of %s is not in line yet (attempt %d, next in %d s): %s",
                    self.forge.label, row.project, row.sync_attempts, int((row.next_sync_at or 0) - self.clock()),
                    row.last_error,
                )
                return False
            await self.store.save(row)
            log.info("%s webhook %s of %s converged: %s", self.forge.label, row.hook_id, row.project,
                     ", ".join(row.events))
            return True


def _settled(row: HookRow) -> HookRow:
    return row.replace(needs_sync=False, sync_attempts=0, next_sync_at=None, last_error=None)
