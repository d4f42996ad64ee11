"""The repository hook's life beyond the happy path: adopting a hook left from an earlier
database, recreating one deleted on GitHub, edits by a writer through the registrant's token,
and no `publicUrl`."""

from __future__ import annotations

import secrets
from typing import Any

from fakes.github import FakeHook, deliver
from hookshot_py.github.hooks import webhook_url
from hookshot_py.github.state import EVENT_TYPE, github_events_for_hooks
from support.fixtures import room_with_bot
from support.helpers import eventually, is_notice_with

from .conftest import GitHubBridge, payload, rest


def fresh_repo(bridge: GitHubBridge) -> str:
    name = f"hook-{secrets.token_hex(4)}"
    bridge.gh.add_repo("octo-org", name, permissions={"alice": "admin", "bob": "write"})
    return name


async def create(bridge: GitHubBridge, room: str, user_id: str, repo: str, **state: Any) -> Any:
    return await bridge.services.manager.create(
        room, EVENT_TYPE, {"org": "octo-org", "repo": repo, **state}, user_id=user_id
    )


def only_hook(bridge: GitHubBridge, repo: str) -> FakeHook:
    [hook] = bridge.gh.hooks_for("octo-org", repo)
    return hook


async def test_existing_hook_with_our_url_is_adopted_and_a_deleted_one_recreated(
    gh_bridge: GitHubBridge, make_user: Any
) -> None:
    gh = gh_bridge.gh
    repo = fresh_repo(gh_bridge)
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    await gh_bridge.login(alice.user_id, "alice")
    # A hook for our URL already exists (the bridge's database was reset since).
    await gh_bridge.integration.accounts.client("tok-alice").create_hook(
        "octo-org", repo, gh_bridge.webhook_url, "old-secret", ["push"]
    )
    conn, outcome = await create(gh_bridge, room, alice.user_id, repo, enableHooks=["issue"])
    assert outcome.warnings == []
    hook = only_hook(gh_bridge, repo)
    record = await gh_bridge.integration.hooks.get(f"octo-org/{repo}")
    assert record.hook_id == hook.id and hook.secret == record.secret != "old-secret"
    assert hook.events == github_events_for_hooks(["issue"])

    # Deleted by hand on GitHub: the next change creates a new hook.
    del gh.hooks[hook.id]
    _, outcome = await gh_bridge.services.manager.update(
        room, conn.id, {"enableHooks": ["issue", "push"]}, user_id=alice.user_id
    )
    assert outcome.warnings == []
    new = only_hook(gh_bridge, repo)
    assert new.id != hook.id and new.events == github_events_for_hooks(["issue", "push"])
    assert (await gh_bridge.integration.hooks.get(f"octo-org/{repo}")).hook_id == new.id


async def test_writer_change_uses_the_registrants_token(gh_bridge: GitHubBridge, make_user: Any) -> None:
    gh = gh_bridge.gh
    repo = fresh_repo(gh_bridge)
    alice, bob = await make_user("alice"), await make_user("bob")
    room_a, room_b = await room_with_bot(alice), await room_with_bot(bob)
    await gh_bridge.login(alice.user_id, "alice")
    await gh_bridge.login(bob.user_id, "bob")
    await create(gh_bridge, room_a, alice.user_id, repo, enableHooks=["issue"])
    hook = only_hook(gh_bridge, repo)

    _, outcome = await create(gh_bridge, room_b, bob.user_id, repo, enableHooks=["push"])
    assert outcome.warnings == [] and outcome.secrets == {}
    assert "push" in hook.events
    [edit] = gh.requests_to("PATCH", f"/hooks/{hook.id}")
    assert edit.headers["Authorization"] == "Bearer tok-alice" and edit.body["add_events"] == ["push"]

    # Without the registrant's login, a writer cannot widen the hook: they are told what is missing.
    await gh_bridge.services.tokens.delete(alice.user_id, "github")
    room_c = await room_with_bot(bob, name="third")
    _, outcome = await create(gh_bridge, room_c, bob.user_id, repo, enableHooks=["workflow"])
    [warning] = outcome.warnings
    assert "does not deliver workflow_run events" in warning and "workflow_run" not in hook.events


async def test_without_public_url_nothing_is_registered(start_github_bridge: Any, make_user: Any) -> None:
    bridge = await start_github_bridge(webhook=None)
    repo = fresh_repo(bridge)
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    await bridge.login(alice.user_id, "alice")
    _, outcome = await create(bridge, room, alice.user_id, repo)
    [warning] = outcome.warnings
    assert "no `github.webhook.publicUrl`" in warning
    assert bridge.gh.hooks_for("octo-org", repo) == []


def test_webhook_url_from_public_url() -> None:
    assert webhook_url(None) is None
    assert webhook_url("https://example.com/hookshot/") == "https://example.com/hookshot/github/webhook"
    assert webhook_url("https://example.com") == "https://example.com/github/webhook"
    assert webhook_url("https://example.com/github/webhook/") == "https://example.com/github/webhook"


async def test_hook_secrets_survive_a_wiped_database(gh_bridge, make_user):
    """The secret is backed up (encrypted) in the bot's account data and restored at start."""
    import asyncpg

    repo = fresh_repo(gh_bridge)
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    await gh_bridge.login(alice.user_id, "alice")
    status, body = await rest(gh_bridge, "PUT", f"/{room}/connections/{EVENT_TYPE}", alice.user_id, {"org": "octo-org", "repo": repo})
    assert status == 200, body
    [hook] = gh_bridge.gh.hooks_for("octo-org", repo)
    harness = gh_bridge.harness
    await harness.stop()
    conn = await asyncpg.connect(harness.dsn)
    await conn.execute("TRUNCATE forge_webhooks, connections")
    await conn.close()
    await harness.start()
    assert await gh_bridge.services.db.fetchval("SELECT count(*) FROM forge_webhooks WHERE project = $1", f"octo-org/{repo}") == 1
    await eventually(lambda: _connected(gh_bridge, room))
    record = await deliver(gh_bridge.webhook_url, "issues", payload("issues.opened", repo), hook.secret, hook_id=hook.id)
    assert record.status == 200
    await alice.wait_for_message(room, is_notice_with("created new issue"))


async def _connected(bridge, room):  # type: ignore[no-untyped-def]
    return bool(bridge.services.manager.connections(room))
