"""A GitLab project's webhook, on the shared hook policy (`forges/policy.py`).

One hook per project, shared by every room connected to it: its `*_events` flags are the union
of what the rooms' `enableHooks` need, its `token` is generated per project and stored encrypted
in `forge_webhooks`, where `/gitlab/webhook` finds it, and it goes away with the last connection.
GitLab's part: who may manage it (Maintainer or Owner: the connecting user's token when GitLab
says they are one, else the registrant's), the hook endpoints, the bridge's URL and the texts.

A hook hookshot created points at `gitlab.webhook.publicUrl` itself (hookshot used it verbatim);
it is adopted like one pointing at our route, and moved there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hookshot_py.config import GitLabConfig
from hookshot_py.db.database import Database
from hookshot_py.forges.http import ForgeHttpError
from hookshot_py.forges.policy import (
    ForgeHooks,
    HookClient,
    ManualSetup,
    ProjectHooks,
    RemoteHook,
    route_url,
    same_url,
)
from hookshot_py.forges.webhooks import HookKey, HookRow, WebhookStore
from hookshot_py.gitlab.accounts import GitLabAccounts
from hookshot_py.gitlab.client import GitLabClient
from hookshot_py.gitlab.models import HOOK_FLAGS, Hook, ProjectRef
from hookshot_py.matrix.gateway import MatrixGateway
from hookshot_py.tokens import SecretBox

__all__ = ["GitLabHooks", "GitLabProjectHooks", "WEBHOOK_PATH", "legacy_url", "project_key", "webhook_url"]

SERVICE = "gitlab"
WEBHOOK_PATH = "/gitlab/webhook"

#: How GitLab's settings page names each flag (Settings → Webhooks → Trigger).
FLAG_NAMES = {
    "push_events": "Push events",
    "tag_push_events": "Tag push events",
    "issues_events": "Issues events",
    "merge_requests_events": "Merge request events",
    "note_events": "Comments",
    "pipeline_events": "Pipeline events",
    "wiki_page_events": "Wiki page events",
    "releases_events": "Releases events",
}


def project_key(path: str) -> str:
    """GitLab paths compare case-insensitively: one row per project whatever the case typed."""
    return path.strip("/").lower()


def webhook_url(config: GitLabConfig) -> str | None:
    """Where GitLab must deliver (None: no `gitlab.webhook.publicUrl`)."""
    return route_url(config.webhook.public_url, WEBHOOK_PATH)


def legacy_url(config: GitLabConfig) -> str | None:
    """The URL hookshot gave the hooks it created (`publicUrl` verbatim), when it is not ours."""
    base = config.webhook.public_url
    ours = webhook_url(config)
    if not base or ours is None or same_url(base, ours):
        return None
    return base


def describe_flags(flags: Iterable[str]) -> str:
    names = [FLAG_NAMES.get(f, f) for f in flags]
    return ", ".join(names) or "(none)"


def _remote(hook: Hook) -> RemoteHook:
    return RemoteHook(str(hook.id), hook.url, hook.flags)


def _hook_id(value: str) -> int:
    if not value.isdigit():
        raise ForgeHttpError(404, f"{value!r} is not a GitLab hook id")
    return int(value)


@dataclass
class GitLabHookClient(HookClient):
    client: GitLabClient
    path: str
    owner: str | None
    description: str
    also_ours: tuple[str, ...] = ()  # hookshot's URL (`legacy_url`)

    async def list(self) -> list[RemoteHook]:
        return [_remote(h) for h in await self.client.list_hooks(self.path)]

    async def create(self, url: str, secret: str, events: Sequence[str]) -> RemoteHook:
        return _remote(await self.client.create_hook(self.path, url, secret, events))

    async def update(
        self, hook_id: str, url: str, secret: str, events: Sequence[str], current: Sequence[str], *, adopting: bool
    ) -> RemoteHook:
        # PUT sends every managed flag: the hook ends up with exactly `events`, adopted or not.
        return _remote(await self.client.edit_hook(self.path, _hook_id(hook_id), url, secret, events))

    async def delete(self, hook_id: str) -> None:
        await self.client.delete_hook(self.path, _hook_id(hook_id))


def _project_missing(error: ForgeHttpError) -> bool:
    """GitLab answers `404 Project Not Found` for a project the token cannot see, and `404 Not
    found` for a hook that is gone."""
    return error.status == 404 and "project" in error.message.lower()


@dataclass
class GitLabHooks(ForgeHooks[ProjectRef]):
    service = SERVICE
    label = "GitLab"

    config: GitLabConfig
    accounts: GitLabAccounts

    def key(self, ref: ProjectRef) -> HookKey:
        return HookKey(ref.instance, project_key(ref.path))

    def name(self, ref: ProjectRef) -> str:
        return ref.path

    def ref(self, row: HookRow) -> ProjectRef:
        return ProjectRef(row.instance, row.name or row.project)

    def webhook_url(self, ref: ProjectRef) -> str | None:
        return webhook_url(self.config)

    def configured(self, instance: str) -> bool:
        return instance in self.config.instances

    def order(self, events: Iterable[str]) -> tuple[str, ...]:
        wanted = set(events)
        return tuple(f for f in HOOK_FLAGS if f in wanted)

    async def clients(
        self, ref: ProjectRef, *, user_id: str | None, registrant: str | None, user_can_admin: bool
    ) -> list[HookClient]:
        """The acting user's token when they are a Maintainer (or Owner), then the registrant's."""
        if not self.configured(ref.instance):
            return []
        legacy = legacy_url(self.config)
        found: list[HookClient] = []
        candidates = ((user_id if user_can_admin else None, "your GitLab token"),
                      (registrant, "the GitLab token of the user who registered the webhook"))
        for who, description in candidates:
            if who is None or any(c.owner == who for c in found):
                continue
            client = await self.accounts.client_for(who, ref.instance)
            if client is not None:
                found.append(GitLabHookClient(client, ref.path, who, description, (legacy,) if legacy else ()))
        return found

    def is_gone(self, error: ForgeHttpError) -> bool:
        return error.status == 404 and not _project_missing(error)

    def deleted_already(self, error: ForgeHttpError) -> bool:
        return self.is_gone(error)

    # -- texts --------------------------------------------------------------------------------------

    def _project(self, ref: ProjectRef) -> str:
        inst = self.config.instances.get(ref.instance)
        return f"[{ref.path}]({inst.url}/{ref.path})" if inst else ref.path

    def text_no_url(self, ref: ProjectRef, setup: ManualSetup) -> str:
        return (
            f"The bridge has no `gitlab.webhook.publicUrl` configured, so it cannot tell GitLab where to deliver "
            f"the events of {self._project(ref)}. Ask the bridge's administrator for the public address of its "
            f"`{WEBHOOK_PATH}` route, and add a webhook there in the project's Settings → Webhooks with the secret "
            f"token `{setup.secret}` and the triggers: {describe_flags(setup.events)}."
        )

    def reason_no_client(self, ref: ProjectRef, *, changed: bool) -> str:
        return (
            f"Cannot create webhook: you have insufficient permissions on {self._project(ref)} to provision a "
            "webhook for it (that needs the Maintainer or Owner role)."
        )

    def reason_failed(self, ref: ProjectRef, error: ForgeHttpError) -> str:
        return f"Cannot create webhook: {self.describe(error)}"

    def text_manual(self, ref: ProjectRef, setup: ManualSetup, reason: str, *, changed: bool) -> str:
        verb = "update" if changed else "add"
        return (
            f"{reason} Ask a Maintainer or Owner of the project to {verb} it in the project's Settings → Webhooks, "
            f"with the URL `{setup.url}`, the secret token `{setup.secret}` and the triggers: "
            f"{describe_flags(setup.events)}."
        )

    def text_update_failed(self, ref: ProjectRef, error: ForgeHttpError | None) -> str:
        why = self.describe(error) if error is not None else "no Maintainer's GitLab token is available now."
        return (
            f"Could not bring the webhook of {ref.path} in line with its rooms' events: {why} "
            "The bridge keeps trying."
        )

    def text_missing(self, ref: ProjectRef, missing: Sequence[str], setup: ManualSetup) -> str:
        return (
            f"The webhook of {self._project(ref)} does not deliver {describe_flags(missing)}, and only a Maintainer "
            "of the project can change that: ask one to update the connection, or to tick these triggers in the "
            "project's Settings → Webhooks."
        )

    def text_hand_made(self, ref: ProjectRef) -> str:
        return (
            f"No room receives the events of {ref.path} any more: if a webhook was added by hand to it for this "
            "bridge, delete it in the project's Settings → Webhooks."
        )

    def text_left_behind(self, ref: ProjectRef, row: HookRow, error: ForgeHttpError | None) -> str:
        why = f": {self.describe(error)}" if error is not None else " (no Maintainer's GitLab token is available)"
        return (
            f"Could not delete the webhook of {ref.path} on GitLab{why} Delete it in the project's Settings → "
            "Webhooks: the bridge no longer accepts its deliveries."
        )


class GitLabProjectHooks(ProjectHooks[ProjectRef]):
    """GitLab's project hooks: the shared policy with GitLab's part."""

    forge: GitLabHooks

    def __init__(
        self,
        config: GitLabConfig,
        accounts: GitLabAccounts,
        db: Database,
        box: SecretBox,
        gateway: MatrixGateway | None = None,
    ) -> None:
        super().__init__(GitLabHooks(config, accounts), WebhookStore(db, box, SERVICE, gateway))
        self.config = config
