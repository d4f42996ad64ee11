"""The shared project-hook policy against an in-memory forge and a real Postgres: the union of
the rooms' events, adopting a hook already pointing at us, releasing, the registrant's token,
and retrying a refused change in the background until it converges, across a restart too."""

from __future__ import annotations

import pytest

from hookshot_py.errors import ApiError
from hookshot_py.forges.policy import backoff_seconds

from .conftest import PROJECT, URL, Clock, FakeForge, FakeHooks, make_policy

ALICE, BOB = "@alice:x", "@bob:x"


def setup(db, box, forge: FakeForge, clock: Clock, **kw):  # type: ignore[no-untyped-def]
    hooks = FakeHooks(forge, **kw)
    return hooks, make_policy(db, box, hooks, clock)


async def test_union_create_update_and_release(db, box, forge, clock) -> None:
    hooks, policy = setup(db, box, forge, clock)
    hooks.tokens.add(ALICE)
    forge.admins.add(ALICE)

    change = await policy.ensure(PROJECT, ["push", "issues"], user_id=ALICE)
    assert change.warnings == [] and change.manual is None
    [hook] = forge.hooks.values()
    assert (hook.url, hook.events, hook.secret) == (URL, ("issues", "push"), change.row.secret)
    row = change.row
    assert row.hook_id == hook.id and row.registered_by == ALICE and not row.needs_sync
    assert (await policy.ensure(PROJECT, ["issues", "push"], user_id=ALICE)).row == row
    assert forge.calls == [(ALICE, "list"), (ALICE, "create")], "an unchanged union calls nothing"

    # a second room's events widen the same hook
    await policy.ensure(PROJECT, ["issues", "push", "release"], user_id=ALICE)
    assert list(forge.hooks) == [hook.id] and hook.events == ("issues", "push", "release")

    # a room goes away: narrowed; the last one: deleted with the row
    assert await policy.release(PROJECT, ["push"], user_id=None) == []
    assert hook.events == ("push",) and forge.calls[-1] == (ALICE, "update"), "the registrant's token"
    assert await policy.release(PROJECT, None, user_id=None) == []
    assert forge.hooks == {} and policy.row(PROJECT) is None
    assert await db.fetchval("SELECT count(*) FROM forge_webhooks") == 0


async def test_a_hook_already_pointing_at_us_is_adopted(db, box, forge, clock) -> None:
    hooks, policy = setup(db, box, forge, clock)
    hooks.tokens.add(ALICE)
    forge.admins.add(ALICE)
    stale = forge.add(URL + "/", "an-old-secret", ["push"])
    other = forge.add("https://ci.example/hook", "ci", ["push"])
    change = await policy.ensure(PROJECT, ["issues"], user_id=ALICE)
    assert set(forge.hooks) == {stale.id, other.id}, "no duplicate"
    assert change.row.hook_id == stale.id
    assert (stale.url, stale.secret, stale.events) == (URL, change.row.secret, ("issues",))
    assert (other.secret, other.events) == ("ci", ("push",))


async def test_a_hook_at_another_url_of_ours_is_adopted_only_when_none_points_at_ours(db, box, forge, clock) -> None:
    """GitLab's case: the hooks hookshot created point at its `publicUrl` itself (`also_ours`)."""
    legacy_url = "https://bridge.example/hookshot"

    class OursToo(FakeHooks):
        async def clients(self, ref, **kw):  # type: ignore[no-untyped-def]
            found = await super().clients(ref, **kw)
            for client in found:
                client.also_ours = (legacy_url,)
            return found

    hooks = OursToo(forge)
    policy = make_policy(db, box, hooks, clock)
    hooks.tokens.add(ALICE)
    forge.admins.add(ALICE)
    legacy = forge.add(legacy_url + "/", "hookshot's", ["push"])
    change = await policy.ensure(PROJECT, ["issues"], user_id=ALICE)
    assert list(forge.hooks) == [legacy.id] and change.row.hook_id == legacy.id
    assert (legacy.url, legacy.secret, legacy.events) == (URL, change.row.secret, ("issues",))

    forge.hooks.clear()
    legacy, ours = forge.add(legacy_url, "hookshot's", ["push"]), forge.add(URL, "old", ["push"])
    await policy.store.delete(change.row.key)
    change = await policy.ensure(PROJECT, ["issues"], user_id=ALICE)
    assert change.row.hook_id == ours.id and ours.secret == change.row.secret
    assert (legacy.url, legacy.secret) == (legacy_url, "hookshot's"), "left alone: ours was found"


async def test_a_hook_deleted_on_the_forge_is_created_again(db, box, forge, clock) -> None:
    hooks, policy = setup(db, box, forge, clock)
    hooks.tokens.add(ALICE)
    forge.admins.add(ALICE)
    first = (await policy.ensure(PROJECT, ["push"], user_id=ALICE)).row.hook_id
    forge.hooks.clear()
    change = await policy.ensure(PROJECT, ["push", "issues"], user_id=ALICE)
    assert change.warnings == [] and change.row.hook_id != first and list(forge.hooks) == [change.row.hook_id]


async def test_a_writer_uses_the_registrants_token_and_without_it_gets_a_warning(db, box, forge, clock) -> None:
    hooks, policy = setup(db, box, forge, clock)
    hooks.tokens |= {ALICE, BOB}
    forge.admins.add(ALICE)
    await policy.ensure(PROJECT, ["push"], user_id=ALICE)
    [hook] = forge.hooks.values()

    change = await policy.ensure(PROJECT, ["push", "issues"], user_id=BOB, user_can_admin=False)
    assert change.warnings == [] and hook.events == ("issues", "push")
    assert forge.calls[-1] == (ALICE, "update") and change.row.registered_by == ALICE

    hooks.tokens.discard(ALICE)  # the registrant logged out
    change = await policy.ensure(PROJECT, ["push", "issues", "release"], user_id=BOB, user_can_admin=False)
    [warning] = change.warnings
    assert "does not deliver release events" in warning and change.manual_text == warning
    assert change.row.needs_sync and change.row.desired == ("issues", "push", "release")
    assert hook.events == ("issues", "push")


async def test_without_any_credential_the_answer_says_what_to_enter(db, box, forge, clock) -> None:
    hooks, policy = setup(db, box, forge, clock)
    change = await policy.ensure(PROJECT, ["push"], user_id=BOB, user_can_admin=False)
    assert change.manual is not None and change.manual_text is not None
    assert (change.manual.url, change.manual.events) == (URL, ("push",))
    assert change.row.secret in change.manual_text and URL in change.manual_text
    row = policy.row(PROJECT)
    assert row is not None and row.hook_id is None and row.events == ("push",) and not row.needs_sync
    assert forge.calls == []
    # its last connection going away reminds the user of the hook they entered
    [warning] = await policy.release(PROJECT, None, user_id=BOB)
    assert "added by hand" in warning and policy.row(PROJECT) is None


async def test_without_a_public_url_nothing_is_registered(db, box, forge, clock) -> None:
    hooks, policy = setup(db, box, forge, clock, url=None)
    hooks.tokens.add(ALICE)
    change = await policy.ensure(PROJECT, ["push"], user_id=ALICE)
    assert change.manual is not None and change.manual.url is None
    assert "no public URL" in change.warnings[0] and forge.calls == []


async def test_a_forge_that_refuses_new_connections(db, box, forge, clock) -> None:
    hooks, policy = setup(db, box, forge, clock, bridge_token=True)
    hooks.refuse_new_on_error = True  # type: ignore[misc]
    with pytest.raises(ApiError):
        await policy.ensure(PROJECT, ["push"], user_id=None, new_connection=True)
    assert policy.row(PROJECT) is None and await db.fetchval("SELECT count(*) FROM forge_webhooks") == 0


async def test_a_failed_update_is_retried_until_it_converges(db, box, forge, clock) -> None:
    hooks, policy = setup(db, box, forge, clock, bridge_token=True)
    forge.admins.add("bridge")
    await policy.ensure(PROJECT, ["push"], user_id=None)
    [hook] = forge.hooks.values()

    forge.fail_with = 503
    change = await policy.ensure(PROJECT, ["push", "issues"], user_id=None)
    [warning] = change.warnings
    assert "keeps trying" in warning
    row = change.row
    assert row.needs_sync and row.sync_attempts == 1 and row.next_sync_at == clock.now + backoff_seconds(1)
    assert "503" in (row.last_error or "") and hook.events == ("push",)

    assert await policy.sync.run_due() == 0, "not due yet"
    clock.now += backoff_seconds(1)
    assert await policy.sync.run_due() == 0, "still failing"
    row = policy.row(PROJECT)
    assert row is not None and row.sync_attempts == 2 and row.next_sync_at == clock.now + backoff_seconds(2)

    forge.fail_with = None  # the forge recovers
    clock.now += backoff_seconds(2)
    assert await policy.sync.run_due() == 1
    row = policy.row(PROJECT)
    assert row is not None and not row.needs_sync and row.sync_attempts == 0 and row.last_error is None
    assert hook.events == ("issues", "push") == row.events
    assert await policy.sync.run_due() == 0


async def test_the_retry_survives_a_restart_and_honours_retry_after(db, box, forge, clock) -> None:
    hooks, policy = setup(db, box, forge, clock, bridge_token=True)
    forge.admins.add("bridge")
    await policy.ensure(PROJECT, ["push"], user_id=None)
    forge.fail_with, forge.retry_after = 429, 7200.0
    row = (await policy.ensure(PROJECT, ["push", "issues"], user_id=None)).row
    assert row.next_sync_at == clock.now + 7200.0, "the forge's Retry-After beats a shorter backoff"

    # a new process: the same database, nothing in memory
    forge.fail_with = None
    hooks2 = FakeHooks(forge, bridge_token=True)
    restarted = make_policy(db, box, hooks2, clock)
    await restarted.store.load()
    clock.now += 3600
    assert await restarted.sync.run_due() == 0
    clock.now += 3600
    assert await restarted.sync.run_due() == 1
    [hook] = forge.hooks.values()
    assert hook.events == ("issues", "push") and hook.secret == row.secret


async def test_state_edited_by_hand_is_followed_by_the_job(db, box, forge, clock) -> None:
    hooks, policy = setup(db, box, forge, clock)
    hooks.tokens.add(ALICE)
    forge.admins.add(ALICE)
    await policy.ensure(PROJECT, ["push"], user_id=ALICE)
    calls = len(forge.calls)
    await policy.follow(PROJECT, ["push", "issues"])
    assert len(forge.calls) == calls, "follow itself calls nothing (it runs under the room's lock)"
    row = policy.row(PROJECT)
    assert row is not None and row.needs_sync and row.desired == ("issues", "push")
    assert await policy.sync.run_due() == 1
    [hook] = forge.hooks.values()
    assert hook.events == ("issues", "push") and forge.calls[-1] == (ALICE, "update")

    # a project seen only in room state gets a row (a secret for a hook entered by hand)
    await policy.follow("Acme/Other", ["push"])
    other = policy.row("Acme/Other")
    assert other is not None and other.hook_id is None and other.secret and not other.needs_sync


async def test_a_failed_delete_is_reported(db, box, forge, clock) -> None:
    hooks, policy = setup(db, box, forge, clock)
    hooks.tokens.add(ALICE)
    forge.admins.add(ALICE)
    await policy.ensure(PROJECT, ["push"], user_id=ALICE)
    hooks.tokens.clear()
    [warning] = await policy.release(PROJECT, None, user_id=None)
    assert "Could not delete the webhook" in warning and len(forge.hooks) == 1
