"""Barkeep in a real Synapse room: connections over REST, tracking a repository, and review news
polled from (fake) Barkeep reaching the room once, also across a restart."""

from __future__ import annotations

from hookshot_py.barkeep.connection import EVENT_TYPE
from hookshot_py.barkeep.watch import watch_pushed_commits
from support.fixtures import BOT, room_with_bot
from support.helpers import is_notice_with, wait_state

from .conftest import ADMIN_KEY, SHA_ABC, SHA_B, SHA_C, USER_KEY, USER_SECRET


async def test_review_news_reaches_the_room_once_also_across_a_restart(barkeep_bridge, make_user):
    env = await barkeep_bridge(poll_interval=1)
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    status, body = await env.connect(room, alice.user_id, {"instance": "main", "repo": env.repo})
    assert status == 200, body
    assert (body["type"], body["service"], body["config"]) == (
        "BarkeepRepo",
        "barkeep",
        {"instance": "main", "repo": env.repo, "events": ["approvals", "comments"], "commandPrefix": "!barkeep"},
    )
    await wait_state(alice, room, EVENT_TYPE, f"main/{env.repo}")

    await alice.send_text(room, "!barkeep watch abc1234")
    await alice.wait_for_message(room, is_notice_with("👀 Watching abc1234: this room will hear when it is approved"))
    env.fake.approve(env.repo, SHA_ABC, name="Jane", email="jane@example.org")
    approved = await alice.wait_for_message(room, is_notice_with("✅ abc1234 approved by Jane"))
    assert approved["sender"] == BOT and approved["content"]["msgtype"] == "m.notice"
    assert f'href="http://barkeep.test/commits/{env.repo}/{SHA_ABC}"' in approved["content"]["formatted_body"]
    env.fake.add_comments(env.repo, SHA_ABC, 2)
    await alice.wait_for_message(room, is_notice_with("💬 2 new comments on abc1234"))

    await env.harness.restart()
    env.fake.add_comments(env.repo, SHA_ABC, 1)
    await alice.wait_for_message(room, is_notice_with("💬 1 new comment on abc1234"))
    bodies = [e["content"].get("body", "") for e in await alice.messages(room) if e["type"] == "m.room.message"]
    news = [b for b in bodies if b.startswith(("✅", "💬"))]
    assert sorted(news) == ["✅ abc1234 approved by Jane", "💬 1 new comment on abc1234", "💬 2 new comments on abc1234"]


async def test_creation_over_rest_tracks_the_repository_with_the_admin_key(barkeep_bridge, make_user):
    env = await barkeep_bridge()
    alice = await make_user("alice")
    room = await room_with_bot(alice)

    status, body = await env.connect(room, alice.user_id, {"instance": "nope", "repo": "a/b"})
    assert status == 400 and body["errcode"] == "HS_BAD_VALUE"
    assert {e["path"] for e in body["validationErrors"]} == {"/instance", "/repo"}

    url = "https://git.example.org/acme/newrepo.git"
    status, body = await env.connect(room, alice.user_id, {"instance": "main", "repo": "newrepo", "gitUrl": url})
    assert status == 200, body
    assert body["config"]["gitUrl"] == url and "warning" not in body
    [call] = env.fake.requests_to("/api/add_repo")
    assert call.status == 202 and call.params["api_key"] == ADMIN_KEY and call.form == {"url": url}
    assert "newrepo" in env.fake.repos

    # a repository Barkeep already has is fine
    other = await room_with_bot(alice)
    status, body = await env.connect(other, alice.user_id, {"instance": "main", "repo": "newrepo", "gitUrl": url})
    assert status == 200, body
    # the name must be the one Barkeep gives the clone
    status, body = await env.connect(other, alice.user_id, {"instance": "main", "repo": "mismatch", "gitUrl": url})
    assert status == 400 and body["validationErrors"][0]["path"] == "/gitUrl"
    assert len(env.fake.requests_to("/api/add_repo")) == 2
    # a second repository in the room needs a prefix of its own
    status, body = await env.connect(other, alice.user_id, {"instance": "main", "repo": env.repo})
    assert status == 409 and body["errcode"] == "HS_CONFLICTING_CONNECTION"
    status, body = await env.connect(other, alice.user_id, {"instance": "main", "repo": env.repo, "commandPrefix": "!bk"})
    assert status == 200, body

    # a push seen by a forge connection of the room, to a repository of the same name
    assert await watch_pushed_commits(env.services, other, f"acme/{env.repo}", [SHA_B]) == 1
    await env.integration.poller.poll_once()  # the baseline
    env.fake.approve(env.repo, SHA_B, name="Jane", email="jane@example.org")
    assert (await env.integration.poller.poll_once()).queued == 1
    assert await env.outbox_bodies(other) == ["✅ 3b42b44 approved by Jane"]
    assert await env.outbox_bodies(room) == []


async def test_tracking_needs_an_admin_key(barkeep_bridge, make_user):
    env = await barkeep_bridge(key=(USER_KEY, USER_SECRET))
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    url = "https://git.example.org/acme/adminonly.git"

    status, body = await env.connect(room, alice.user_id, {"instance": "main", "repo": "adminonly", "gitUrl": url})
    assert status == 403 and body["errcode"] == "HS_FORBIDDEN_BOT"
    assert body["error"] == (
        "Only a Barkeep admin can do that, and the bridge's API key does not belong to an admin user."
    )
    assert await alice.get_state(room, EVENT_TYPE, "main/adminonly") in (None, {})
    assert "adminonly" not in env.fake.repos

    await alice.send_text(room, f"!hookshot barkeep repo main adminonly {url}")
    await alice.wait_for_message(room, is_notice_with("Failed to handle command: Only a Barkeep admin can do that"))


async def test_without_an_admin_key_the_connection_is_made_with_a_warning(barkeep_bridge, make_user):
    env = await barkeep_bridge(key=None)
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    url = "https://git.example.org/acme/untracked.git"

    await alice.send_text(room, f"!hookshot barkeep repo main untracked {url}")
    reply = await alice.wait_for_message(room, is_notice_with("Room configured to bridge Barkeep repository"))
    assert "No admin API key is configured for the Barkeep instance 'main'" in reply["content"]["body"]
    state = await wait_state(alice, room, EVENT_TYPE, "main/untracked")
    assert state["gitUrl"] == url and state["commandPrefix"] == "!barkeep"
    assert env.fake.requests_to("/api/add_repo") == []

    status, body = await env.connect(await room_with_bot(alice), alice.user_id, {"instance": "main", "repo": "untracked", "gitUrl": url})
    assert status == 200 and "No admin API key" in body["warning"]["message"]


async def test_a_push_seen_by_a_forge_connection_is_watched(barkeep_bridge, make_user):
    env = await barkeep_bridge()
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    status, body = await env.connect(room, alice.user_id, {"instance": "main", "repo": env.repo})
    assert status == 200, body
    github_push = {"after": SHA_B, "commits": [{"id": SHA_B}, {"id": SHA_C}], "head_commit": {"id": SHA_C}}
    await env.services.push_seen(room, f"Octo-Org/{env.repo.upper()}", github_push)
    watched = await env.services.db.fetch(
        "SELECT sha FROM barkeep_watched_commits WHERE repo = $1 ORDER BY sha", env.repo
    )
    assert sorted(r["sha"] for r in watched) == sorted([SHA_B, SHA_C])
    # another repository's push in the same room is not ours
    await env.services.push_seen(room, "octo-org/unrelated", {"commits": [{"id": SHA_ABC}]})
    assert await env.services.db.fetchval("SELECT count(*) FROM barkeep_watched_commits WHERE sha = $1", SHA_ABC) == 0
