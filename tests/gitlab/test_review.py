"""Review summaries: one author's comments and approvals on one merge request within the debounce
become one message; with `includeCommentBody` each comment is a reply in its thread; nothing is
lost across a restart, and nothing is posted twice."""

from __future__ import annotations

from typing import Any

from support.helpers import eventually

from .conftest import CONFIG_SECRET, FIXTURE_PATH, payload

ALICE = "@alice:test"
ROOM = "!review:test"


def note(stack: Any, note_id: int, body: str = "A remark", *, user: str = "bob", discussion: str | None = None,
         iid: int = 12) -> dict[str, Any]:
    data = payload("note.merge_request", base=stack.gl.base_url)
    data["object_attributes"].update(id=note_id, note=body, url=f"{data['merge_request']['url']}#note_{note_id}")
    data["object_attributes"]["discussion_id"] = discussion or f"disc-{note_id}"
    data["user"] = {**data["user"], "username": user, "name": user.title()}
    data["merge_request"]["iid"] = iid
    return data


async def send(stack: Any, body: dict[str, Any]) -> dict[str, Any]:
    status, answer = await stack.post(body, CONFIG_SECRET)
    assert status == 200, answer
    return answer


async def mark_sent(stack: Any, room: str, event_prefix: str = "$summary") -> list[str]:
    """What the outbox's sender would do: every queued row of the room is sent."""
    rows = await stack.db.fetch("SELECT id FROM outbox WHERE room_id = $1 AND sent_at IS NULL ORDER BY id", room)
    ids = []
    for row in rows:
        event_id = f"{event_prefix}{row['id']}"
        await stack.db.execute("UPDATE outbox SET sent_at = now(), event_id = $2 WHERE id = $1", row["id"], event_id)
        ids.append(event_id)
    return ids


async def test_comments_within_the_debounce_become_one_message(make_stack) -> None:
    stack = await make_stack()
    await stack.login(ALICE, "alice")
    await stack.connect(ROOM, ALICE)
    for i in range(3):
        await send(stack, note(stack, 800 + i))
        stack.clock.now += 2  # each within 5 s of the last
    assert await stack.reviews.flush_due() == 0  # the last one is 2 s old
    stack.clock.now += 4
    assert await stack.reviews.flush_due() == 1
    mr = f"{stack.gl.base_url}/acme/widgets/-/merge_requests/12"
    expected = f'**Bob** commented on MR [acme/widgets!12]({mr}): "Add sprockets" with 3 comments'
    assert await stack.bodies(ROOM) == [expected]
    assert await stack.reviews.flush_due(stack.clock.now + 60) == 0


async def test_approvals_and_comments_of_one_review(make_stack) -> None:
    stack = await make_stack()
    await stack.login(ALICE, "alice")
    await stack.connect(ROOM, ALICE)
    await send(stack, note(stack, 900))
    await send(stack, note(stack, 901))
    # GitLab sends `approval` (this user) and `approved` (all approvals given) for one click
    await send(stack, payload("merge_request.approval", base=stack.gl.base_url))
    await send(stack, payload("merge_request.approved", base=stack.gl.base_url))
    await send(stack, note(stack, 902, user="carol"))  # someone else: a summary of their own
    stack.clock.now += 10
    assert await stack.reviews.flush_due() == 2
    bodies = await stack.bodies(ROOM)
    assert len(bodies) == 2
    assert any(b.startswith("**Bob** ✅ approved MR [acme/widgets!12]") and b.endswith(" with 2 comments")
               for b in bodies)
    assert any(b.startswith("**Carol** commented on MR") and b.endswith(" with one comment") for b in bodies)


async def test_waiting_comments_survive_a_restart(make_stack) -> None:
    stack = await make_stack()
    await stack.login(ALICE, "alice")
    conn, _ = await stack.connect(ROOM, ALICE)
    await send(stack, note(stack, 1000))
    await send(stack, note(stack, 1001))
    await stack.reviews.stop()
    # A new process on the same database (the first one is gone before the debounce ended)
    later = await make_stack()
    later.conns.append(conn)
    later.clock.now = stack.clock.now + 10
    assert await later.reviews.flush_due() == 1
    assert (await later.bodies(ROOM))[0].endswith(" with 2 comments")


async def test_a_comment_delivered_again_is_not_posted_again(make_stack) -> None:
    stack = await make_stack()
    await stack.login(ALICE, "alice")
    await stack.connect(ROOM, ALICE)
    await send(stack, note(stack, 1100))
    stack.clock.now += 10
    assert await stack.reviews.flush_due() == 1
    answer = await send(stack, note(stack, 1100))
    assert answer["queued"] == 0 and answer["duplicate"] is True
    stack.clock.now += 10
    assert await stack.reviews.flush_due() == 0
    assert len(await stack.bodies(ROOM)) == 1


async def test_a_connection_removed_meanwhile_gets_nothing(make_stack) -> None:
    stack = await make_stack()
    await stack.login(ALICE, "alice")
    conn, _ = await stack.connect(ROOM, ALICE)
    await send(stack, note(stack, 1200))
    await stack.remove(conn, ALICE)
    stack.clock.now += 10
    assert await stack.reviews.flush_due() == 0
    assert await stack.bodies(ROOM) == []


async def test_comment_bodies_are_replies_in_the_summarys_thread(make_stack) -> None:
    stack = await make_stack()
    await stack.login(ALICE, "alice")
    await stack.connect(ROOM, ALICE, includeCommentBody=True)
    await send(stack, note(stack, 1300, "Could it be **smaller**?", discussion="disc-a"))
    await send(stack, note(stack, 1301, "And lighter.", discussion="disc-b"))
    stack.clock.now += 10
    assert await stack.reviews.flush_due() == 1
    # The replies wait for the summary's event id
    assert await stack.reviews.post_replies(timeout=0.05) == 1
    assert len(await stack.messages(ROOM)) == 1
    [summary_event] = await mark_sent(stack, ROOM)
    assert await stack.reviews.post_replies(timeout=0.05) == 0
    summary, first, second = await stack.messages(ROOM)
    assert summary["body"].endswith(" with 2 comments") and "m.relates_to" not in summary
    note_url = f"{stack.gl.base_url}/acme/widgets/-/merge_requests/12#note_1300"
    assert first["body"] == f"**Bob** [commented]({note_url}):\n\nCould it be **smaller**?"
    assert "<strong>smaller</strong>" in first["formatted_body"]
    for reply in (first, second):
        assert reply["m.relates_to"] == {"rel_type": "m.thread", "event_id": summary_event, "is_falling_back": True,
                                         "m.in_reply_to": {"event_id": summary_event}}
    await mark_sent(stack, ROOM, "$reply")

    # A later reply in one of those GitLab discussions goes to the same Matrix thread.
    await send(stack, note(stack, 1302, "Done.", user="alice", discussion="disc-b"))
    stack.clock.now += 10
    assert await stack.reviews.flush_due() == 1
    *_, replied, body = await stack.messages(ROOM)
    assert replied["body"] == "**Alice** replied with one comment"
    assert replied["m.relates_to"]["event_id"] == summary_event
    assert body["body"].endswith("Done.") and body["m.relates_to"]["event_id"] == summary_event
    assert await stack.reviews.post_replies(timeout=0.05) == 0


async def test_replies_wait_across_a_restart_and_a_failed_summary_still_gets_them(make_stack) -> None:
    stack = await make_stack()
    await stack.login(ALICE, "alice")
    conn, _ = await stack.connect(ROOM, ALICE, includeCommentBody=True)
    await send(stack, note(stack, 1400, "One"))
    stack.clock.now += 10
    assert await stack.reviews.flush_due() == 1
    later = await make_stack()
    later.conns.append(conn)
    await stack.db.execute("UPDATE outbox SET failed_at = now() WHERE room_id = $1", ROOM)
    assert await later.reviews.post_replies(timeout=0.05) == 0
    _, reply = await later.messages(ROOM)
    assert reply["body"].endswith("One") and "m.relates_to" not in reply


async def test_the_background_loop_sums_up_on_its_own(make_stack) -> None:
    stack = await make_stack(debounce_ms=0)
    await stack.login(ALICE, "alice")
    await stack.connect(ROOM, ALICE)
    stack.reviews.start()
    await send(stack, note(stack, 1500))

    async def posted() -> bool:
        return len(await stack.bodies(ROOM)) == 1

    await eventually(posted)
    assert await stack.db.fetchval("SELECT count(*) FROM gitlab_review_items WHERE flushed_at IS NULL") == 0
    assert FIXTURE_PATH in (await stack.bodies(ROOM))[0]
