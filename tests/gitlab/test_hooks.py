"""The project hook is the bridge's job: created by a Maintainer's connection, edited when rooms
change their events, deleted with the last connection, adopted when one already points at us,
and described for a project admin otherwise."""

from __future__ import annotations

from typing import Any

import pytest

from fakes.gitlab import FakeGitLabState
from hookshot_py.errors import ApiError

from .conftest import FIXTURE_PATH

ALICE, DAVE, CAROL, ERIN = "@alice:test", "@dave:test", "@carol:test", "@erin:test"
OUR_URL = "https://bridge.example/hookshot/gitlab/webhook"


def hooks_of(gl: FakeGitLabState, path: str = FIXTURE_PATH) -> list[Any]:
    return list(gl.project(path).hooks.values())


def on(hook: Any) -> set[str]:
    return {flag for flag, value in hook.flags.items() if value}


async def test_a_maintainer_connection_registers_one_hook_for_all_rooms(make_stack, gl: FakeGitLabState) -> None:
    stack = await make_stack()
    await stack.login(ALICE, "alice")
    conn, outcome = await stack.connect("!one:test", ALICE, enableHooks=["merge_request.open"])
    assert outcome.warnings == [] and "manualSetup" not in outcome.secrets
    [hook] = hooks_of(gl)
    row = await stack.hook_row()
    assert hook.url == OUR_URL and row["url"] == OUR_URL and row["hook_id"] == str(hook.id)
    assert on(hook) == {"merge_requests_events"}
    secret = stack.hooks.row(stack.projects.ref(conn)).secret
    assert hook.token == secret and len(secret) >= 32 and row["registered_by"] == ALICE
    assert stack.projects.secrets(conn) == {
        "webhookUrl": OUR_URL, "webhookToken": secret, "webhookEvents": ["merge_requests_events"], "managed": True,
    }

    # Another room wants pushes and pipelines: the same hook delivers the union.
    other, _ = await stack.connect("!two:test", ALICE, enableHooks=["push", "pipeline"])
    [hook] = hooks_of(gl)
    assert on(hook) == {"merge_requests_events", "push_events", "pipeline_events"}

    # A room changes its events: edited in place.
    conn, _ = await stack.update(conn, ALICE, enableHooks=["issue"])
    assert on(hooks_of(gl)[0]) == {"issues_events", "push_events", "pipeline_events"}

    # One room leaves: narrowed; the last one leaves: deleted.
    assert await stack.remove(other, ALICE) == []
    assert on(hooks_of(gl)[0]) == {"issues_events"}
    assert await stack.remove(conn, ALICE) == []
    assert hooks_of(gl) == [] and await stack.hook_row() is None


async def test_a_developer_gets_what_to_enter_by_hand(make_stack, gl: FakeGitLabState) -> None:
    stack = await make_stack()
    await stack.login(DAVE, "dave")
    conn, outcome = await stack.connect("!room:test", DAVE, enableHooks=["push", "issue"])
    assert hooks_of(gl) == []
    manual = outcome.secrets["manualSetup"]
    secret = stack.hooks.row(stack.projects.ref(conn)).secret
    assert manual.startswith("Cannot create webhook: you have insufficient permissions")
    assert f"`{OUR_URL}`" in manual and f"`{secret}`" in manual and "Push events, Issues events" in manual
    assert outcome.secrets["webhook"] == {"url": OUR_URL, "token": secret, "events": ["push_events", "issues_events"]}
    assert outcome.warnings == [manual]
    assert stack.projects.secrets(conn)["managed"] is False
    # Removing it cannot delete what the bridge never registered: the user is reminded.
    [warning] = await stack.remove(conn, DAVE)
    assert "if a webhook was added by hand" in warning


@pytest.mark.parametrize(
    ("user", "login", "refusal"),
    [
        (ERIN, None, "You are not logged into the GitLab instance gl"),
        (CAROL, "carol", "You must at least have developer access to bridge acme/widgets (GitLab says your role is: "
                         "Reporter)."),
        (ERIN, "erin", "Could not determine if you have access to acme/widgets on gl: does the project exist?"),
    ],
)
async def test_connecting_needs_developer_access(make_stack, gl, user: str, login: str | None, refusal: str) -> None:
    stack = await make_stack()
    if login:
        await stack.login(user, login)
    with pytest.raises(ApiError) as caught:
        await stack.connect("!room:test", user)
    assert caught.value.error.startswith(refusal) and caught.value.status == 403
    assert hooks_of(gl) == []


async def test_an_existing_hook_pointing_at_us_is_adopted(make_stack, gl: FakeGitLabState) -> None:
    stack = await make_stack()
    await stack.login(ALICE, "alice")
    by_hand = gl.add_hook(FIXTURE_PATH, OUR_URL, "old-token", ("push_events", "job_events"))
    elsewhere = gl.add_hook(FIXTURE_PATH, "https://ci.example/hook", "ci", ("push_events",))
    conn, _ = await stack.connect("!room:test", ALICE, enableHooks=["merge_request"])
    assert sorted(h.id for h in hooks_of(gl)) == sorted([by_hand.id, elsewhere.id])
    assert by_hand.token == stack.hooks.row(stack.projects.ref(conn)).secret
    assert on(by_hand) == {"merge_requests_events", "note_events"}
    assert elsewhere.token == "ci" and on(elsewhere) == {"push_events"}


async def test_a_hook_hookshot_created_is_adopted_and_moved_to_our_route(make_stack, gl: FakeGitLabState) -> None:
    stack = await make_stack(public_url="https://bridge.example/hookshot/")
    await stack.login(ALICE, "alice")
    hookshots = gl.add_hook(FIXTURE_PATH, "https://bridge.example/hookshot/", "config-secret", ("push_events",))
    await stack.connect("!room:test", ALICE, enableHooks=["push"])
    [hook] = hooks_of(gl)
    assert hook.id == hookshots.id and hook.url == OUR_URL and hook.token != "config-secret"


async def test_a_hook_deleted_on_gitlab_is_created_again(make_stack, gl: FakeGitLabState) -> None:
    stack = await make_stack()
    await stack.login(ALICE, "alice")
    conn, _ = await stack.connect("!room:test", ALICE, enableHooks=["push"])
    gl.project(FIXTURE_PATH).hooks.clear()
    await stack.update(conn, ALICE, enableHooks=["push", "tag_push"])
    [hook] = hooks_of(gl)
    assert on(hook) == {"push_events", "tag_push_events"} and (await stack.hook_row())["hook_id"] == str(hook.id)


async def test_without_a_public_url_the_user_is_told(make_stack, gl: FakeGitLabState) -> None:
    stack = await make_stack(public_url=None)
    await stack.login(ALICE, "alice")
    _, outcome = await stack.connect("!room:test", ALICE)
    assert hooks_of(gl) == []
    assert "no `gitlab.webhook.publicUrl` configured" in outcome.warnings[0]


async def test_a_refused_change_is_retried_until_it_converges(make_stack, gl: FakeGitLabState) -> None:
    stack = await make_stack()
    await stack.login(ALICE, "alice")
    conn, _ = await stack.connect("!room:test", ALICE, enableHooks=["push"])
    gl.fail_with, gl.fail_match = 503, "/hooks"
    conn, outcome = await stack.update(conn, ALICE, enableHooks=["push", "wiki"])
    assert "The bridge keeps trying" in outcome.warnings[0]
    row = await stack.hook_row()
    assert row["needs_sync"] and row["sync_attempts"] == 1
    assert on(hooks_of(gl)[0]) == {"push_events"}
    gl.fail_with = None
    later = row["next_sync_at"].timestamp() + 1  # the backoff has passed
    stack.hooks.clock = stack.hooks.sync.clock = lambda: later
    assert await stack.hooks.sync.run_due() == 1
    assert on(hooks_of(gl)[0]) == {"push_events", "wiki_page_events"}
    assert not (await stack.hook_row())["needs_sync"]


async def test_state_edited_by_hand_is_followed_with_the_registrants_token(make_stack, gl: FakeGitLabState) -> None:
    stack = await make_stack()
    await stack.login(ALICE, "alice")
    conn, _ = await stack.connect("!room:test", ALICE, enableHooks=["push"])
    # The room's state changes in a client: no user acts through the bridge.
    edited = stack.make("!room:test", enableHooks=["push", "release"])
    edited.id = conn.id
    await stack.projects.on_loaded(edited)
    assert (await stack.hook_row())["needs_sync"]
    assert await stack.hooks.sync.run_due() == 1
    assert on(hooks_of(gl)[0]) == {"push_events", "releases_events"}


async def test_an_edit_that_changes_nothing_on_gitlab_needs_no_gitlab_login(make_stack, gl: FakeGitLabState) -> None:
    """As in hookshot: the room's permission is enough to change a filter or the comment bodies;
    changing what the project's hook delivers still needs access to the project."""
    stack = await make_stack()
    await stack.login(ALICE, "alice")
    conn, _ = await stack.connect("!room:test", ALICE, enableHooks=["merge_request"])
    conn, outcome = await stack.update(conn, ERIN, includeCommentBody=True, includingLabels=["bug"])
    assert outcome.warnings == [] and conn.state["includeCommentBody"] is True
    with pytest.raises(ApiError) as refused:
        await stack.update(conn, ERIN, enableHooks=["merge_request", "issue"])
    assert "not logged into the GitLab instance" in refused.value.error
