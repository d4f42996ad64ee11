"""JIRA end to end: a connection made over the provisioning API and one written by hand as
hookshot's own e2e test writes it, signed deliveries from the fake JIRA into real Synapse rooms,
a retried delivery posted once, and refused deliveries posting nothing."""

from __future__ import annotations

import uuid
from typing import Any

from fakes.jira import FakeIssue, changelog, comment_event, deliver, issue_event, version_event
from hookshot_py.jira.format import ISSUE_KEY, PROJECT_KEY
from hookshot_py.jira.models import EVENT_TYPE
from support.fixtures import room_with_bot
from support.helpers import eventually, is_notice_with

from .conftest import WEBHOOK_SECRET, JiraBridge


def notices(events: list[dict[str, Any]], part: str) -> list[dict[str, Any]]:
    return [e for e in events if e.get("type") == "m.room.message" and part in str(e["content"].get("body"))]


async def test_signed_deliveries_reach_the_room_once(jira_bridge: JiraBridge, make_user: Any) -> None:
    world = jira_bridge.world
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    await jira_bridge.login_cloud(alice.user_id, world.alice)
    events = ["issue_created", "issue_updated", "comment_created", "version_released"]
    status, conn = await jira_bridge.rest("PUT", f"/{room}/connections/{EVENT_TYPE}", alice.user_id,
                                          {"url": f"{world.site.url}/projects/PLAY", "events": events})
    assert status == 200, conn

    issue = FakeIssue(world.state.next_id(), "PLAY-7", "Tea party <b>at six</b>", "10001")
    created = issue_event("issue_created", world.site, world.play, issue, world.alice)
    delivery = str(uuid.uuid4())
    status, body = await deliver(jira_bridge.webhook_url, created, secret=WEBHOOK_SECRET, identifier=delivery)
    assert (status, body) == (200, {"ok": True, "handled": True, "posted": 1, "duplicate": False})
    event = await alice.wait_for_message(room, is_notice_with("created a new JIRA issue"))
    content = event["content"]
    link = f"{world.site.url}/browse/PLAY-7"
    assert content["body"] == f'Alice Liddell created a new JIRA issue [PLAY-7]({link}): "Tea party <b>at six</b>"'
    assert content["formatted_body"] == (
        f'Alice Liddell created a new JIRA issue <a href="{link}">PLAY-7</a>: &quot;Tea party &lt;b&gt;at six&lt;/b&gt;&quot;'
    )
    assert content["msgtype"] == "m.notice" and content["external_url"] == link
    assert content[ISSUE_KEY]["key"] == "PLAY-7" and content[PROJECT_KEY]["id"] == world.play.id

    # JIRA retries with the same identifier: acknowledged again, posted once.
    status, body = await deliver(jira_bridge.webhook_url, created, secret=WEBHOOK_SECRET, identifier=delivery)
    assert (status, body["duplicate"], body["posted"]) == (200, True, 0)

    # Refused before anything is posted.
    forged = issue_event("issue_created", world.site, world.play, FakeIssue("1", "PLAY-8", "Forged", "10001"),
                         world.alice)
    assert (await deliver(jira_bridge.webhook_url, forged, secret="not-the-secret"))[0] == 401
    assert (await deliver(jira_bridge.webhook_url, forged))[0] == 401
    assert (await deliver(jira_bridge.webhook_url, forged, query_secret="nope"))[0] == 401

    updated = issue_event("issue_updated", world.site, world.play, issue, world.bob,
                          changelog=changelog(("status", "To Do", "Done")))
    assert (await deliver(jira_bridge.webhook_url, updated, query_secret=WEBHOOK_SECRET))[0] == 200
    await alice.wait_for_message(room, is_notice_with(f"Bob updated JIRA [PLAY-7]({link}): **status** changed from 'To Do' to 'Done'"))
    comment = comment_event(world.site, world.play, issue, world.bob, "Bring *jam*")
    assert (await deliver(jira_bridge.webhook_url, comment, secret=WEBHOOK_SECRET))[0] == 200
    await alice.wait_for_message(room, is_notice_with("\n> Bring *jam*"))
    released = version_event("released", world.site, world.play, "2.0", "Teapot")
    assert (await deliver(jira_bridge.webhook_url, released, secret=WEBHOOK_SECRET))[0] == 200
    await alice.wait_for_message(room, is_notice_with(
        f"Version **released** for project [PLAY]({world.site.url}/projects/PLAY): "
        f"[2.0]({world.site.url}/projects/PLAY/versions/10200) (_Teapot_)"
    ))

    timeline = await alice.messages(room)
    assert len(notices(timeline, "created a new JIRA issue")) == 1
    assert notices(timeline, "PLAY-8") == []


async def test_a_connection_written_by_hand_as_hookshot_does(jira_bridge: JiraBridge, make_user: Any) -> None:
    """hookshot's own e2e test: the state event's url is the project's REST `self` URL."""
    world = jira_bridge.world
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    url = f"{world.site.url}/rest/api/2/project/{world.web.id}/WEB"
    await alice.send_state(room, EVENT_TYPE, url, {"url": url})

    async def loaded() -> bool:
        return any(c.state_key == url for c in jira_bridge.services.manager.connections(room))

    await eventually(loaded)
    issue = FakeIssue(world.state.next_id(), "WEB-1", "Test issue", "10001")
    payload = issue_event("issue_created", world.site, world.web, issue, world.alice)
    status, body = await deliver(jira_bridge.webhook_url, payload, secret=WEBHOOK_SECRET)
    assert (status, body["posted"]) == (200, 1)
    await alice.wait_for_message(room, is_notice_with(
        f'Alice Liddell created a new JIRA issue [WEB-1]({world.site.url}/browse/WEB-1): "Test issue"'
    ))
    # Its default events are hookshot's: issue_created only.
    update = issue_event("issue_updated", world.site, world.web, issue, world.alice, changelog=changelog(("summary", "a", "b")))
    assert (await deliver(jira_bridge.webhook_url, update, secret=WEBHOOK_SECRET))[1]["posted"] == 0
