"""The repository webhook the bridge registers on GitHub (seed 003), on the shared hook policy.

One hook per repository, shared by every room connected to it (`forges/policy.py`): its
`events` are the union of what the rooms' `enableHooks` need, its secret is stored encrypted in
`forge_webhooks`, where `/github/webhook` finds it to verify deliveries. GitHub's part: the
connecting user's token when they administer the repository, else the registrant's (the user
whose token created the hook, so that a connection removed by hand in a client still cleans
up); the hook endpoints; and the texts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from hookshot_py.db.database import Database
from hookshot_py.forges.http import ForgeHttpError
from hookshot_py.forges.policy import ForgeHooks, HookClient, ManualSetup, ProjectHooks, RemoteHook
from hookshot_py.forges.webhooks import HookKey, HookRow, WebhookStore
from hookshot_py.github.accounts import GitHubAccounts
from hookshot_py.github.client import GitHubClient
from hookshot_py.github.models import Hook
from hookshot_py.matrix.gateway import MatrixGateway
from hookshot_py.tokens import SecretBox

__all__ = ["GitHubHooks", "HookRecord", "RepoHooks", "RepoRef", "project_key", "webhook_url"]

SERVICE = "github"
INSTANCE = ""
WEBHOOK_PATH = "github/webhook"


@dataclass(frozen=True)
class HookRecord:
    """GitHub's view of a repository's row: the hook id as GitHub numbers it."""

    project: str
    secret: str
    url: str
    hook_id: int | None
    events: tuple[str, ...]
    registered_by: str | None


class RepoRef(NamedTuple):
    owner: str
    repo: str

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.repo}"

    @classmethod
    def parse(cls, full_name: str) -> RepoRef:
        owner, _, repo = full_name.partition("/")
        return cls(owner, repo)


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


def _remote(hook: Hook) -> RemoteHook:
    return RemoteHook(str(hook.id), hook.url, hook.events)


@dataclass
class GitHubHookClient(HookClient):
    client: GitHubClient
    ref: RepoRef
    owner: str | None
    description: str = "a repository admin's GitHub login"

    async def list(self) -> list[RemoteHook]:
        return [_remote(h) for h in await self.client.list_hooks(*self.ref)]

    async def create(self, url: str, secret: str, events: Sequence[str]) -> RemoteHook:
        return _remote(await self.client.create_hook(*self.ref, url, secret, events))

    async def update(
        self, hook_id: str, url: str, secret: str, events: Sequence[str], current: Sequence[str], *, adopting: bool
    ) -> RemoteHook:
        if adopting:
            # Ours from an earlier database (or set up by hand): take it over whole, and wake it.
            hook = await self.client.edit_hook(*self.ref, int(hook_id), secret=secret, url=url, events=events,
                                               active=True)
        else:
            hook = await self.client.edit_hook(
                *self.ref, int(hook_id), secret=secret, url=url,
                add_events=sorted(set(events) - set(current)), remove_events=sorted(set(current) - set(events)),
            )
        return _remote(hook)

    async def delete(self, hook_id: str) -> None:
        await self.client.delete_hook(*self.ref, int(hook_id))


class GitHubHooks(ForgeHooks[RepoRef]):
    service = SERVICE
    label = "GitHub"

    def __init__(self, accounts: GitHubAccounts, public_url: str | None) -> None:
        self.accounts = accounts
        self.url = webhook_url(public_url)

    def key(self, ref: RepoRef) -> HookKey:
        return HookKey(INSTANCE, project_key(ref.full_name))

    def name(self, ref: RepoRef) -> str:
        return ref.full_name

    def ref(self, row: HookRow) -> RepoRef:
        return RepoRef.parse(row.name or row.project)

    def webhook_url(self, ref: RepoRef) -> str | None:
        return self.url

    async def clients(
        self, ref: RepoRef, *, user_id: str | None, registrant: str | None, user_can_admin: bool
    ) -> list[HookClient]:
        found: list[HookClient] = []
        for candidate in dict.fromkeys(u for u in (user_id if user_can_admin else None, registrant) if u):
            client = await self.accounts.client_for(candidate)
            if client is not None:
                found.append(GitHubHookClient(client, ref, candidate))
        return found

    def deleted_already(self, error: ForgeHttpError) -> bool:
        return False  # a 404 is also GitHub's answer to a token without admin rights: try the next

    # -- texts --------------------------------------------------------------------------------------

    def text_no_url(self, ref: RepoRef, setup: ManualSetup) -> str:
        return (
            f"The bridge has no `github.webhook.publicUrl` configured, so it cannot set up GitHub's webhook "
            f"for {ref.full_name}: ask the bridge administrator to configure it, or to set up an organisation "
            "or app webhook."
        )

    def reason_no_client(self, ref: RepoRef, *, changed: bool) -> str:
        return f"You are not an admin of {ref.full_name}, so the bridge could not create its webhook."

    def reason_failed(self, ref: RepoRef, error: ForgeHttpError) -> str:
        return f"Could not create the webhook of {ref.full_name}: {self.describe(error)}"

    def text_manual(self, ref: RepoRef, setup: ManualSetup, reason: str, *, changed: bool) -> str:
        return (
            f"{reason} A repository admin must add a webhook to {setup.project} on GitHub (Settings → Webhooks → "
            f"Add webhook) with Payload URL {setup.url} , content type application/json, secret {setup.secret} "
            f"and these events: {', '.join(setup.events)}."
        )

    def text_update_failed(self, ref: RepoRef, error: ForgeHttpError | None) -> str:
        why = self.describe(error) if error is not None else "no repository admin's login is available"
        return f"Could not update the webhook of {ref.full_name}: {why} The bridge keeps trying."

    def text_missing(self, ref: RepoRef, missing: Sequence[str], setup: ManualSetup) -> str:
        return (
            f"The webhook of {ref.full_name} does not deliver {', '.join(missing)} events, and only a repository "
            "admin can change that: ask one to update the connection, or to add these events to the webhook "
            "on GitHub."
        )

    def text_hand_made(self, ref: RepoRef) -> str:
        return (
            f"If a webhook was added by hand to {ref.full_name} for this bridge, delete it on GitHub: "
            "the bridge no longer accepts its deliveries."
        )

    def text_left_behind(self, ref: RepoRef, row: HookRow, error: ForgeHttpError | None) -> str:
        return (
            f"Could not delete the webhook of {ref.full_name} on GitHub (that needs a repository admin's "
            "login): delete it in the repository's settings. The bridge no longer accepts its deliveries."
        )


class RepoHooks(ProjectHooks[RepoRef]):
    """GitHub's repository hooks: the shared policy with GitHub's part, and the look-ups the
    webhook route and the commands make."""

    forge: GitHubHooks

    def __init__(
        self,
        db: Database,
        box: SecretBox,
        accounts: GitHubAccounts,
        public_url: str | None,
        gateway: MatrixGateway | None = None,
    ) -> None:
        super().__init__(GitHubHooks(accounts, public_url), WebhookStore(db, box, SERVICE, gateway))

    @property
    def url(self) -> str | None:
        return self.forge.url

    def row_for(self, full_name: str) -> HookRow | None:
        return self.store.get(HookKey(INSTANCE, project_key(full_name)))

    async def get(self, full_name: str) -> HookRecord | None:
        """The repository's hook as the bridge knows it, if it keeps one."""
        row = self.row_for(full_name)
        if row is None:
            return None
        hook_id = int(row.hook_id) if row.hook_id and row.hook_id.isdigit() else None
        return HookRecord(row.project, row.secret, row.url, hook_id, row.events, row.registered_by)

    async def secret_for(self, full_name: str) -> str | None:
        row = self.row_for(full_name)
        return None if row is None else row.secret
