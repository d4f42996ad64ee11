"""JIRA commands in real rooms: `!hookshot jira project|list project|remove project`, the `!jira`
prefix commands acting on the fake JIRA with the sender's own login, and the DM commands, on
JIRA Cloud and on an on-premise JIRA."""

from __future__ import annotations

from typing import Any

from fakes.jira import deliver, issue_event
from hookshot_py.jira.client import adf_paragraphs
from hookshot_py.jira.models import EVENT_TYPE
from support.fixtures import BOT, room_with_bot
from support.helpers import is_notice_with, wait_state

from .conftest import WEBHOOK_SECRET, JiraBridge


async def test_room_and_prefix_commands_on_jira_cloud(jira_bridge: JiraBridge, make_user: Any) -> None:
    world = jira_bridge.world
    alice, zed = await make_user("alice"), await make_user("zed")
    room = await room_with_bot(alice)
    await alice.invite(room, zed.user_id)
    await zed.join(room)
    await alice.set_power_levels(room, {BOT: 50, zed.user_id: 50})
    await jira_bridge.login_cloud(alice.user_id, world.alice)

    async def say(who: Any, text: str, expect: str) -> None:
        await who.send_text(room, text)
        await alice.wait_for_message(room, is_notice_with(expect))

    await say(alice, "!hookshot jira project https://nowhere.example/browse/PLAY-1",
              "Failed to handle command: The JIRA project url you entered was not valid")
    await say(zed, f"!hookshot jira project {world.site.url}/projects/PLAY",
              "Failed to handle command: User is not authenticated with JIRA: send `jira login`")
    await say(alice, "!hookshot jira list project", "Not connected to any JIRA projects")
    await say(alice, f"!hookshot jira project {world.site.url}/jira/software/projects/PLAY/boards/3",
              "Room configured to bridge Jira project PLAY.")
    canonical = f"{world.site.url}/projects/PLAY"
    state = await wait_state(alice, room, EVENT_TYPE, canonical)
    assert state == {"url": canonical, "events": ["issue_created"], "id": world.play.id}
    await say(alice, "!hookshot jira list project", f"Currently connected to these JIRA projects:\n\n - {canonical}")

    await say(alice, "!jira help", "!jira create <type> <title> [description] [labels]")
    await say(alice, "!jira issue-types", "Issue types: Task, Bug")
    await say(alice, "!jira create Epic Something",
              "You must specify a valid issue type (one of Task, Bug). E.g. `!jira create Task`")
    await say(alice, '!jira create bug "The rabbit hole is too deep" "Steps:\n1. fall" "ui,backend"',
              f"Created JIRA issue PLAY-1: [{world.site.url}/browse/PLAY-1]({world.site.url}/browse/PLAY-1)")
    issue = world.play.issues["PLAY-1"]
    assert (issue.summary, issue.issue_type, issue.labels) == ("The rabbit hole is too deep", "10002", ["ui", "backend"])
    assert issue.description == adf_paragraphs("Steps:\n1. fall")
    [create] = world.state.requests_to("POST", "/rest/api/3/issue")
    stored = await jira_bridge.integration.accounts.stored(alice.user_id)
    assert create.headers["Authorization"] == f"Bearer {stored.access_token}"
    await say(alice, '!jira create Task "Labelled" "" "with space"',
              "Failed to handle command: JIRA refused the request: labels: The label 'with space' contains spaces")

    await say(alice, "!jira assign PLAY-1 bob", "Assigned PLAY-1 to Bob.")
    assert issue.assignee == world.bob.account_id
    await say(alice, "!jira assign WEB-1 bob", "WEB-1 is not an issue of project PLAY")
    await say(alice, "!jira assign PLAY-99 bob",
              "Not found on JIRA: Issue does not exist or you do not have permission to see it.")
    await say(alice, "!jira assign PLAY-1 nobody-at-all", "Could not find a user matching 'nobody-at-all'")
    await say(zed, "!jira issue-types", "Failed to handle command: User is not authenticated with JIRA")

    await say(alice, f"!hookshot jira remove project {world.site.url}/projects/play/summary",
              f"Room no longer bridged to Jira project `{canonical}`.")
    assert await alice.get_state(room, EVENT_TYPE, canonical) == {"disabled": True}
    await say(alice, f"!hookshot jira remove project {canonical}", "is not currently bridged to this room")


async def test_dm_commands_on_jira_cloud(jira_bridge: JiraBridge, make_user: Any) -> None:
    world = jira_bridge.world
    bob = await make_user("bob")
    dm = await bob.create_room(invite=[BOT], is_direct=True)
    await bob.wait_for_message(dm, is_notice_with("Hello!"))

    async def say(text: str, expect: str) -> None:
        await bob.send_text(dm, text)
        await bob.wait_for_message(dm, is_notice_with(expect))

    await say("jira whoami", "You are not logged into JIRA.")
    await say("jira personaltoken abc", "Personal access tokens are for an on-premise JIRA")
    await say("jira login", f"Open [this link]({world.base_url}/authorize?audience=api.atlassian.com")
    assert await jira_bridge.services.db.fetchval("SELECT user_id FROM oauth_states WHERE service = 'jira'") == bob.user_id
    await jira_bridge.login_cloud(bob.user_id, world.bob)
    await say("jira whoami", f"You have access to the following instances:\n - {world.site.name} (Bob)")
    await say("jira logout", "Your JIRA account has been unlinked from your Matrix user.")
    await say("jira logout", "No JIRA account was linked to your Matrix user.")


async def test_on_premise_personal_access_tokens_and_commands(start_jira_bridge: Any, make_user: Any) -> None:
    bridge: JiraBridge = await start_jira_bridge(on_prem=True)
    world = bridge.world
    alice = await make_user("alice")
    dm = await alice.create_room(invite=[BOT], is_direct=True)
    await alice.wait_for_message(dm, is_notice_with("Hello!"))

    async def say(room: str, text: str, expect: str) -> None:
        await alice.send_text(room, text)
        await alice.wait_for_message(room, is_notice_with(expect))

    await say(dm, "jira login", f"This bridge serves the on-premise JIRA at {world.base_url}")
    await say(dm, "jira personaltoken not-a-token", "JIRA rejected this token")
    token = world.state.add_pat(world.alice)
    await say(dm, f"jira personaltoken {token}", "you are logged in as **Alice Liddell**")
    stored = await bridge.integration.accounts.stored(alice.user_id)
    assert stored is not None and stored.kind == "pat" and stored.access_token == token
    host = world.base_url.split("://", 1)[1]
    await say(dm, "jira whoami", f"You have access to the following instances:\n - {host} alice (Alice Liddell)")

    room = await room_with_bot(alice)
    await say(room, f"!hookshot jira project {world.base_url}/projects/OPS", "Room configured to bridge Jira project OPS.")
    state = await wait_state(alice, room, EVENT_TYPE, f"{world.base_url}/projects/OPS")
    assert state["id"] == world.ops.id
    await say(room, '!jira create task "Disk full" "On db-2"', "Created JIRA issue OPS-1")
    assert world.ops.issues["OPS-1"].description == "On db-2"
    [create] = world.state.requests_to("POST", "/rest/api/2/issue")
    assert create.headers["Authorization"] == f"Bearer {token}"
    await say(room, "!jira assign OPS-1 bob", "Assigned OPS-1 to Bob.")
    [assign] = world.state.requests_to("PUT", "/rest/api/2/issue/OPS-1/assignee")
    assert assign.body == {"name": "bob"}
    await say(room, "!hookshot jira project https://jira.elsewhere.example/projects/OPS",
              "must be a project of the JIRA at")

    # The instance's admin webhook, with the secret in its URL as hookshot documents for on-premise.
    issue = world.ops.issues["OPS-1"]
    payload = issue_event("issue_created", world.state.on_prem, world.ops, issue, world.alice)
    status, body = await deliver(bridge.webhook_url, payload, query_secret=WEBHOOK_SECRET)
    assert (status, body["posted"]) == (200, 1)
    link = f"{world.base_url}/browse/OPS-1"
    await alice.wait_for_message(room, is_notice_with(f'created a new JIRA issue [OPS-1]({link}): "Disk full"'))
