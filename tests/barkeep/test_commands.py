"""Barkeep commands: `!barkeep status|comment|watch|help`, `!hookshot barkeep repo`, and the DM's
`barkeep login|logout` — in real Synapse rooms against the fake Barkeep."""

from __future__ import annotations

from hookshot_py.barkeep.commands import describe_user_error, parse_location
from hookshot_py.barkeep.connection import EVENT_TYPE
from hookshot_py.barkeep.errors import BarkeepError
from hookshot_py.barkeep.models import CommitSnapshot
from support.fixtures import BOT, room_with_bot
from support.helpers import eventually, is_notice_with, wait_state

from .conftest import SHA_ABC, SHA_B, USER_KEY, USER_SECRET


def test_parse_location() -> None:
    assert parse_location("src/app.py:42") == ("src/app.py", 42)
    assert parse_location("C:/x.py:3") == ("C:/x.py", 3)
    for not_one in ("app.py", "app.py:", ":3", "app.py:0", "app.py:x", "Note:"):
        assert parse_location(not_one) is None


def test_errors_of_a_users_own_key_speak_of_their_key() -> None:
    bad_secret = BarkeepError(400, "Bad signature.", "auth", instance="bk")
    assert describe_user_error(bad_secret, "main") == (
        "Barkeep (main) refused your credentials: the API secret does not match the API key. Copy the key and "
        "secret from your Barkeep settings page and send me `barkeep login main <apiKey> <apiSecret>` in a direct "
        "message again."
    )
    assert "does not know the API key" in describe_user_error(BarkeepError(400, "Bad API key provided.", "auth"), "main")
    assert describe_user_error(BarkeepError(403, "Admin only.", "admin_only"), "main") == (
        "Only a Barkeep admin can do that, and your Barkeep user is not one."
    )
    skew = BarkeepError(400, "Bad timestamp.", "clock_skew")
    assert describe_user_error(skew, "main") == skew.describe()


async def open_dm(user) -> str:  # type: ignore[no-untyped-def]
    dm = await user.create_room(invite=[BOT], is_direct=True)
    await user.wait_for_message(dm, is_notice_with("Type `help`"))
    return dm


async def test_status_watch_and_help(barkeep_bridge, make_user):
    env = await barkeep_bridge()
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    await alice.send_text(room, f"!hookshot barkeep repo main {env.repo}")
    reply = await alice.wait_for_message(room, is_notice_with("Room configured to bridge Barkeep repository"))
    assert f"`{env.repo}`" in reply["content"]["body"] and "It announces: approvals, comments" in reply["content"]["body"]
    state = await wait_state(alice, room, EVENT_TYPE, f"main/{env.repo}")
    assert state == {"instance": "main", "repo": env.repo, "events": ["approvals", "comments"], "commandPrefix": "!barkeep"}

    await alice.send_text(room, "!barkeep status abc1234")
    await alice.wait_for_message(room, is_notice_with(f"Commit abc1234 in {env.repo}: ⏳ not approved yet, no comments"))

    env.fake.approve(env.repo, SHA_B, name="Jane Doe", email="jane@example.org", at=1_700_000_000)
    env.fake.add_comments(env.repo, SHA_B, 2)
    await alice.send_text(room, "!barkeep status 3b42b")
    status = await alice.wait_for_message(room, is_notice_with("Commit 3b42b44"))
    assert status["content"]["body"] == (
        f"Commit 3b42b44 in {env.repo}: ✅ approved by Jane Doe at 2023-11-14T22:13:20Z, 2 comments — "
        f"http://barkeep.test/commits/{env.repo}/{SHA_B}"
    )
    assert status["content"]["m.relates_to"]["m.in_reply_to"]["event_id"]

    await alice.send_text(room, "!barkeep status 3b42")
    await alice.wait_for_message(
        room, is_notice_with(f"Failed to handle command: 3b42 matches more than one commit in {env.repo}: give more characters")
    )
    await alice.send_text(room, "!barkeep status deadbeef")
    await alice.wait_for_message(room, is_notice_with(f"has no commit deadbeef in {env.repo}."))
    await alice.send_text(room, "!barkeep status not-a-sha")
    await alice.wait_for_message(room, is_notice_with("'not-a-sha' is not a commit sha (or the start of one)."))
    await alice.send_text(room, "!barkeep status")
    await alice.wait_for_message(room, is_notice_with("Usage: `!barkeep status <sha>`"))

    await alice.send_text(room, "!barkeep watch 3b42b")
    watched = await alice.wait_for_message(room, is_notice_with("👀 Watching 3b42b44"))
    assert "✅ approved by Jane Doe" in watched["content"]["body"]
    await alice.send_text(room, "!barkeep watch 3b42b44")
    await alice.wait_for_message(room, is_notice_with("👀 Already watching 3b42b44."))
    assert await env.integration.store.watched("main", env.repo) == {
        SHA_B: CommitSnapshot(SHA_B, True, 1_700_000_000, 2)
    }
    # the baseline was taken at watch time: the old approval is not news
    assert (await env.integration.poller.poll_once()).queued == 0
    env.fake.add_comments(env.repo, SHA_B, 1)
    assert (await env.integration.poller.poll_once()).queued == 1
    await alice.wait_for_message(room, is_notice_with("💬 1 new comment on 3b42b44"))

    await alice.send_text(room, "!barkeep help")
    await alice.wait_for_message(room, is_notice_with(f"Barkeep commands for {env.repo}"))
    await alice.send_text(room, "!hookshot help")
    await alice.wait_for_message(room, is_notice_with("`!barkeep comment <sha> [file:line] <text>`"))
    await alice.send_text(room, "!barkeep frobnicate")
    await alice.wait_for_message(room, is_notice_with("Unknown command `frobnicate`. Try `!barkeep help`."))
    await alice.send_text(room, "!hookshot barkeep repo nowhere x")
    await alice.wait_for_message(room, is_notice_with("Failed to handle command: Unknown Barkeep instance 'nowhere'; configured: main."))


async def test_comments_are_signed_with_the_senders_own_key(barkeep_bridge, make_user):
    env = await barkeep_bridge()
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    status, body = await env.connect(room, alice.user_id, {"instance": "main", "repo": env.repo})
    assert status == 200, body

    await alice.send_text(room, "!barkeep comment abc1234 Looks good")
    await alice.wait_for_message(
        room, is_notice_with("you have none stored for main: send me `barkeep login main <apiKey> <apiSecret>`")
    )
    assert env.fake.requests_to("/api/comment") == []

    dm = await open_dm(alice)
    await alice.send_text(dm, f"barkeep login main {USER_KEY} wrong-secret")
    await alice.wait_for_message(
        dm, is_notice_with("Barkeep (main) refused these credentials: the API secret does not match the API key. Nothing was stored.")
    )
    await alice.send_text(dm, f"barkeep login main {USER_KEY} {USER_SECRET}")
    await alice.wait_for_message(dm, is_notice_with("Stored your Barkeep API key for main"))
    assert await env.services.tokens.get(alice.user_id, "barkeep", "main") == {"apiKey": USER_KEY, "apiSecret": USER_SECRET}
    blob = await env.services.db.fetchval("SELECT ciphertext FROM user_tokens WHERE user_id = $1", alice.user_id)
    assert USER_SECRET.encode() not in bytes(blob)
    assert set(env.fake.repos) == {env.repo}  # checking the key added nothing

    await alice.send_text(room, '!barkeep comment abc1234 "LGTM; a+b = c & d, 100% sûr ✅"')
    await alice.wait_for_message(room, is_notice_with("💬 Comment posted on abc1234"))
    await alice.send_text(room, "!barkeep comment abc1234 src/app.py:42 off by one here")
    await alice.wait_for_message(room, is_notice_with("💬 Comment posted on abc1234 (src/app.py:42)"))
    await alice.send_text(room, "!barkeep comment abc1234 don't merge  yet")
    await eventually(lambda: _has_comments(env, 3))
    comments = env.fake.commit(env.repo, SHA_ABC).comments
    assert [(c.user, c.text, c.filename, c.line_number) for c in comments] == [
        ("Jane Doe <jane@example.org>", "LGTM; a+b = c & d, 100% sûr ✅", None, None),
        ("Jane Doe <jane@example.org>", "off by one here", "src/app.py", 42),
        ("Jane Doe <jane@example.org>", "don't merge  yet", None, None),
    ]
    calls = env.fake.requests_to("/api/comment")
    assert all(c.params["api_key"] == USER_KEY and c.params["sha"] == SHA_ABC for c in calls)

    # clock skew, both ways, is reported as such
    env.clock.offset = -3600  # Barkeep's clock is behind: our timestamp is in its future
    await alice.send_text(room, "!barkeep comment abc1234 again")
    await alice.wait_for_message(room, is_notice_with("this server's clock seems to be ahead of Barkeep's"))
    env.clock.offset = 3600
    await alice.send_text(room, "!barkeep comment abc1234 again")
    await alice.wait_for_message(room, is_notice_with("too stale: this server's clock is behind Barkeep's by more than 5 minutes"))
    env.clock.offset = 0
    assert len(env.fake.commit(env.repo, SHA_ABC).comments) == 3

    await alice.send_text(room, "!barkeep comment deadbeef hello")
    await alice.wait_for_message(room, is_notice_with(f"has no commit deadbeef in {env.repo}."))
    await alice.send_text(room, "!barkeep comment abc1234")
    await alice.wait_for_message(room, is_notice_with("Usage: `!barkeep comment <sha> [file:line] <text>`."))

    # a key Barkeep no longer knows
    del env.fake.users[USER_KEY]
    await alice.send_text(room, "!barkeep comment abc1234 hello")
    await alice.wait_for_message(room, is_notice_with("Barkeep (main) refused your credentials: it does not know the API key."))

    await alice.send_text(dm, "barkeep logout")
    await alice.wait_for_message(dm, is_notice_with("Forgot your Barkeep API key for main."))
    assert await env.services.tokens.get(alice.user_id, "barkeep", "main") is None
    await alice.send_text(dm, "barkeep logout main")
    await alice.wait_for_message(dm, is_notice_with("You have no Barkeep API key stored for main."))
    await alice.send_text(dm, "barkeep logout elsewhere")
    await alice.wait_for_message(dm, is_notice_with("Unknown Barkeep instance 'elsewhere'"))


async def test_login_keeps_a_key_it_could_not_check_and_says_why(barkeep_bridge, make_user):
    env = await barkeep_bridge()
    bob = await make_user("bob")
    dm = await open_dm(bob)
    env.clock.offset = -3600
    await bob.send_text(dm, f"barkeep login main {USER_KEY} {USER_SECRET}")
    reply = await bob.wait_for_message(dm, is_notice_with("Stored your Barkeep API key for main"))
    assert "Barkeep could not check it now: Barkeep refused the request timestamp" in reply["content"]["body"]
    assert await env.services.tokens.get(bob.user_id, "barkeep", "main") == {"apiKey": USER_KEY, "apiSecret": USER_SECRET}
    env.clock.offset = 0
    await bob.send_text(dm, "barkeep login main admin-key admin-secret")
    await bob.wait_for_message(dm, is_notice_with("Barkeep accepted it (an admin's key)."))


async def _has_comments(env, n: int) -> bool:  # type: ignore[no-untyped-def]
    return len(env.fake.commit(env.repo, SHA_ABC).comments) == n
