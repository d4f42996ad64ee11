"""The shared forge layer without Synapse: a real, migrated Postgres per test, and an in-memory
forge whose webhook endpoints can be made to fail."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest
import pytest_asyncio

from hookshot_py.db.database import Database
from hookshot_py.forges.http import ForgeHttpError
from hookshot_py.forges.policy import ForgeHooks, HookClient, ProjectHooks, RemoteHook
from hookshot_py.forges.webhooks import HookKey, HookRow, WebhookStore
from hookshot_py.tokens import SecretBox
from support.bridge import create_database

URL = "https://bridge.example/fake/webhook"
PROJECT = "Acme/Widgets"


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeHook:
    id: str
    url: str
    secret: str
    events: tuple[str, ...]


@dataclass
class FakeForge:
    """The forge's side: hooks by id, the users whose tokens may administer the project, and an
    injected failure (`fail_with` status, for `failures` calls; -1 means until cleared)."""

    hooks: dict[str, FakeHook] = field(default_factory=dict)
    admins: set[str] = field(default_factory=set)  # "bridge" for the bridge's token
    calls: list[tuple[str, str]] = field(default_factory=list)  # (who, operation)
    fail_with: int | None = None
    failures: int = -1
    retry_after: float | None = None
    next_id: int = 1

    def check(self, who: str, op: str) -> None:
        self.calls.append((who, op))
        if self.fail_with is not None and self.failures != 0:
            self.failures -= 1
            status = self.fail_with
            if self.failures == 0:
                self.fail_with = None
            raise ForgeHttpError(status, f"injected {status}", retry_after=self.retry_after)
        if who not in self.admins:
            raise ForgeHttpError(403, "not an admin")

    def add(self, url: str, secret: str, events: Sequence[str]) -> FakeHook:
        hook = FakeHook(str(self.next_id), url, secret, tuple(events))
        self.next_id += 1
        self.hooks[hook.id] = hook
        return hook


def remote(hook: FakeHook) -> RemoteHook:
    return RemoteHook(hook.id, hook.url, hook.events)


@dataclass
class FakeClient(HookClient):
    forge: FakeForge
    owner: str | None
    description: str = "a fake token"

    @property
    def who(self) -> str:
        return self.owner or "bridge"

    async def list(self) -> list[RemoteHook]:
        self.forge.check(self.who, "list")
        return [remote(h) for h in self.forge.hooks.values()]

    async def create(self, url: str, secret: str, events: Sequence[str]) -> RemoteHook:
        self.forge.check(self.who, "create")
        return remote(self.forge.add(url, secret, events))

    async def update(
        self, hook_id: str, url: str, secret: str, events: Sequence[str], current: Sequence[str], *, adopting: bool
    ) -> RemoteHook:
        self.forge.check(self.who, "update")
        if hook_id not in self.forge.hooks:
            raise ForgeHttpError(404, "no such hook")
        hook = self.forge.hooks[hook_id]
        hook.url, hook.secret, hook.events = url, secret, tuple(events)
        return remote(hook)

    async def delete(self, hook_id: str) -> None:
        self.forge.check(self.who, "delete")
        if self.forge.hooks.pop(hook_id, None) is None:
            raise ForgeHttpError(404, "no such hook")


class FakeHooks(ForgeHooks[str]):
    """A forge whose projects are plain names; users hold tokens when listed in `tokens`."""

    service = "fake"
    label = "Fake"
    remember_unregistered = True

    def __init__(self, forge: FakeForge, *, url: str | None = URL, bridge_token: bool = False) -> None:
        self.forge = forge
        self.url = url
        self.tokens: set[str] = set()
        self.bridge_token = bridge_token

    def key(self, ref: str) -> HookKey:
        return HookKey("", ref.lower())

    def name(self, ref: str) -> str:
        return ref

    def ref(self, row: HookRow) -> str:
        return row.name or row.project

    def webhook_url(self, ref: str) -> str | None:
        return self.url

    async def clients(
        self, ref: str, *, user_id: str | None, registrant: str | None, user_can_admin: bool
    ) -> list[HookClient]:
        found: list[HookClient] = []
        for who in dict.fromkeys(u for u in (user_id if user_can_admin else None, registrant) if u):
            if who in self.tokens:
                found.append(FakeClient(self.forge, who))
        if self.bridge_token:
            found.append(FakeClient(self.forge, None, "the bridge's token"))
        return found


@pytest_asyncio.fixture
async def db(pg_admin_dsn: str) -> AsyncIterator[Database]:
    database = Database(await create_database(pg_admin_dsn))
    await database.start()
    try:
        yield database
    finally:
        await database.stop()


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(b"k" * 32)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def forge() -> FakeForge:
    return FakeForge()


def make_policy(db: Database, box: SecretBox, hooks: FakeHooks, clock: Clock) -> ProjectHooks[str]:
    return ProjectHooks(hooks, WebhookStore(db, box, hooks.service), clock=clock)
