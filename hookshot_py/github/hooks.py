"""The repository webhook the bridge registers on GitHub (seed 003).

One hook per repository, shared by every room connected to it: its `events` are the union of
what the rooms' `enableHooks` need, and its secret (generated here) is stored encrypted in
`forge_webhooks`, where `/github/webhook` finds it to verify deliveries. The hook is created
with the connecting user's token when they administer the repository, edited when the union
changes and deleted with the last connection. Edits and deletions fall back to the token of
the user who registered the hook, so a connection removed by hand in a client still cleans up.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hookshot_py.db.database import Database
from hookshot_py.forge_webhooks import ForgeWebhookTable, StoredWebhook
from hookshot_py.github.accounts import GitHubAccounts
from hookshot_py.github.client import GitHubClient, GitHubError, Hook
from hookshot_py.matrix.gateway import MatrixGateway
from hookshot_py.tokens import SecretBox

__all__ = ["HookChange", "HookRecord", "ManualSetup", "RepoHooks", "project_key", "webhook_url"]

log = logging.getLogger(__name__)

SERVICE = "github"
INSTANCE = ""
WEBHOOK_PATH = "github/webhook"


def project_key(full_name: str) -> str:
    """GitHub names are case-insensitive: one row per repository whatever the case typed."""
    return full_name.lower()


def webhook_url(public_url: str | None) -> str | None:
    """Where GitHub must deliver: `github.webhook.publicUrl` is the public address of the
    webhooks listener (`https://example.com/hookshot/`); a value that already names the
    `/github/webhook` path is taken as is."""
    if not public_url:
        return None
    base = public_url if public_url.endswith("/") else public_url + "/"
    if base.endswith(WEBHOOK_PATH + "/"):
        return base[:-1]
    return base + WEBHOOK_PATH


@dataclass
class HookRecord:
    project: str
    secret: str
    url: str
    hook_id: int | None = None
    events: list[str] = field(default_factory=list)
    registered_by: str | None = None


@dataclass(frozen=True)
class ManualSetup:
    """What a repository admin must enter on GitHub when the bridge cannot create the hook."""

    repo: str
    url: str
    secret: str
    events: tuple[str, ...]

    def instructions(self) -> str:
        return (
            f"A repository admin must add a webhook to {self.repo} on GitHub (Settings → Webhooks → "
            f"Add webhook) with Payload URL {self.url} , content type application/json, "
            f"secret {self.secret} and these events: {', '.join(self.events)}."
        )

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "secret": self.secret, "contentType": "json", "events": list(self.events)}


@dataclass
class HookChange:
    warnings: list[str] = field(default_factory=list)
    manual: ManualSetup | None = None


def generate_secret() -> str:
    return secrets.token_hex(24)


class RepoHooks:
    def __init__(
        self,
        db: Database,
        box: SecretBox,
        accounts: GitHubAccounts,
        public_url: str | None,
        gateway: MatrixGateway | None = None,
    ) -> None:
        self.table = ForgeWebhookTable(db, box, SERVICE, gateway)
        self.accounts = accounts
        self.url = webhook_url(public_url)
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, project: str) -> asyncio.Lock:
        return self._locks.setdefault(project, asyncio.Lock())

    # --- storage --------------------------------------------------------------------------

    async def get(self, full_name: str) -> HookRecord | None:
        row = await self.table.get(INSTANCE, project_key(full_name))
        if row is None:
            return None
        registered_by = row.data.get("registeredBy")
        return HookRecord(
            project=row.project,
            secret=row.secret,
            url=row.url,
            hook_id=int(row.hook_id) if row.hook_id else None,
            events=list(row.events),
            registered_by=registered_by if isinstance(registered_by, str) else None,
        )

    async def secret_for(self, full_name: str) -> str | None:
        record = await self.get(full_name)
        return None if record is None else record.secret

    async def _save(self, rec: HookRecord) -> None:
        await self.table.save(
            StoredWebhook(
                instance=INSTANCE,
                project=rec.project,
                secret=rec.secret,
                url=rec.url,
                events=tuple(sorted(rec.events)),
                hook_id=None if rec.hook_id is None else str(rec.hook_id),
                data={"registeredBy": rec.registered_by},
            )
        )

    async def _delete(self, project: str) -> None:
        await self.table.delete(INSTANCE, project)

    # --- registration ---------------------------------------------------------------------

    async def ensure(
        self,
        owner: str,
        repo: str,
        events: Sequence[str],
        *,
        user_id: str,
        client: GitHubClient,
        is_admin: bool,
    ) -> HookChange:
        """Make the repository's hook deliver `events` (the union over all its rooms)."""
        full_name = f"{owner}/{repo}"
        if self.url is None:
            return HookChange(
                [
                    f"The bridge has no `github.webhook.publicUrl` configured, so it cannot set up "
                    f"GitHub's webhook for {full_name}: ask the bridge administrator to configure it, "
                    "or to set up an organisation or app webhook."
                ]
            )
        desired = sorted(set(events))
        project = project_key(full_name)
        async with self._lock(project):
            rec = await self.get(full_name)
            if rec is None:
                rec = HookRecord(project, generate_secret(), self.url)
            if rec.hook_id is not None and set(rec.events) == set(desired) and rec.url == self.url:
                return HookChange()
            admin_client = client if is_admin else await self._registrant_client(rec, user_id)
            if admin_client is not None:
                try:
                    await self._apply(owner, repo, rec, desired, admin_client)
                except GitHubError as exc:
                    log.warning("Could not register the webhook of %s: %s", full_name, exc)
                    if rec.hook_id is not None:
                        return HookChange([f"Could not update the webhook of {full_name}: {exc.describe()}"])
                    return self._manual(rec, desired, f"Could not create the webhook of {full_name}: {exc.describe()}")
                if is_admin or rec.registered_by is None:
                    rec.registered_by = user_id
                await self._save(rec)
                log.info("Webhook %s of %s now delivers %s", rec.hook_id, full_name, ", ".join(desired))
                return HookChange()
            if rec.hook_id is not None:
                missing = sorted(set(desired) - set(rec.events))
                if not missing:
                    return HookChange()
                return HookChange(
                    [
                        f"The webhook of {full_name} does not deliver {', '.join(missing)} events, and "
                        "only a repository admin can change that: ask one to update the connection, "
                        "or to add these events to the webhook on GitHub."
                    ]
                )
            rec.events = desired
            await self._save(rec)
            return self._manual(rec, desired, f"You are not an admin of {full_name}, so the bridge could not create its webhook.")

    def _manual(self, rec: HookRecord, desired: list[str], reason: str) -> HookChange:
        setup = ManualSetup(rec.project, rec.url, rec.secret, tuple(desired))
        return HookChange([f"{reason} {setup.instructions()}"], setup)

    async def _apply(
        self, owner: str, repo: str, rec: HookRecord, desired: list[str], client: GitHubClient
    ) -> None:
        """Edit the hook, or create it (saving the secret first: GitHub pings at once)."""
        assert self.url is not None
        if rec.hook_id is not None:
            try:
                hook = await client.edit_hook(
                    owner, repo, rec.hook_id, secret=rec.secret, url=self.url,
                    add_events=sorted(set(desired) - set(rec.events)),
                    remove_events=sorted(set(rec.events) - set(desired)),
                )
                rec.events, rec.url = list(hook.events), self.url
                return
            except GitHubError as exc:
                if exc.status != 404:
                    raise
                log.info("Webhook %s of %s/%s is gone from GitHub; creating a new one", rec.hook_id, owner, repo)
                rec.hook_id = None
        rec.url = self.url
        rec.events = desired
        await self._save(rec)
        try:
            hook = await client.create_hook(owner, repo, self.url, rec.secret, desired)
        except GitHubError as exc:
            if exc.status != 422:
                raise
            existing = await self._find_by_url(client, owner, repo)
            if existing is None:
                raise
            # Ours from an earlier database (or set up by hand): adopt it with our secret.
            hook = await client.edit_hook(
                owner, repo, existing.id, secret=rec.secret, url=self.url, events=desired, active=True
            )
        rec.hook_id, rec.events = hook.id, list(hook.events)

    async def _find_by_url(self, client: GitHubClient, owner: str, repo: str) -> Hook | None:
        return next((h for h in await client.list_hooks(owner, repo) if h.url == self.url), None)

    async def _registrant_client(self, rec: HookRecord, user_id: str | None) -> GitHubClient | None:
        if rec.hook_id is None or rec.registered_by is None or rec.registered_by == user_id:
            return None
        return await self.accounts.client_for(rec.registered_by)

    async def _admin_clients(self, rec: HookRecord, user_id: str | None) -> list[GitHubClient]:
        clients = []
        for candidate in dict.fromkeys(u for u in (user_id, rec.registered_by) if u):
            client = await self.accounts.client_for(candidate)
            if client is not None:
                clients.append(client)
        return clients

    # --- removal --------------------------------------------------------------------------

    async def release(self, owner: str, repo: str, remaining: Sequence[str] | None, *, user_id: str | None) -> list[str]:
        """A connection went away. `remaining`: the events the other rooms still need, or
        None when it was the repository's last connection (the hook is then deleted).
        Never raises: problems come back as warnings."""
        full_name = f"{owner}/{repo}"
        project = project_key(full_name)
        async with self._lock(project):
            try:
                rec = await self.get(full_name)
                if rec is None:
                    return []
                if remaining is None:
                    return await self._remove(owner, repo, rec, user_id)
                if rec.hook_id is None or set(remaining) == set(rec.events):
                    return []
                for client in await self._admin_clients(rec, user_id):
                    try:
                        hook = await client.edit_hook(
                            owner, repo, rec.hook_id, secret=rec.secret, url=rec.url,
                            remove_events=sorted(set(rec.events) - set(remaining)),
                            add_events=sorted(set(remaining) - set(rec.events)),
                        )
                    except GitHubError as exc:
                        log.info("Could not narrow the webhook of %s: %s", full_name, exc)
                        continue
                    rec.events = list(hook.events)
                    await self._save(rec)
                    break
                return []
            except Exception:
                log.exception("Cleaning up the webhook of %s failed", full_name)
                return [f"Could not clean up the webhook of {full_name}; see the bridge log."]

    async def _remove(self, owner: str, repo: str, rec: HookRecord, user_id: str | None) -> list[str]:
        full_name = f"{owner}/{repo}"
        await self._delete(rec.project)
        if rec.hook_id is None:
            return [
                f"If a webhook was added by hand to {full_name} for this bridge, delete it on GitHub: "
                "the bridge no longer accepts its deliveries."
            ]
        for client in await self._admin_clients(rec, user_id):
            try:
                await client.delete_hook(owner, repo, rec.hook_id)
            except GitHubError as exc:
                if exc.status == 404 and exc.needs_admin:
                    # Either gone already or no admin rights: only the next token can tell.
                    log.info("Deleting webhook %s of %s: %s", rec.hook_id, full_name, exc)
                    continue
                log.warning("Deleting webhook %s of %s failed: %s", rec.hook_id, full_name, exc)
                continue
            log.info("Deleted webhook %s of %s", rec.hook_id, full_name)
            return []
        return [
            f"Could not delete the webhook of {full_name} on GitHub (that needs a repository admin's "
            "login): delete it in the repository's settings. The bridge no longer accepts its deliveries."
        ]
