"""Merge request reviews summed up: one author's comments and approvals on one merge request
within `commentDebounceMs` become one message ("**Alice** commented on MR [g/p!12](...): "Title"
with 3 comments"), as hookshot does it, with three fixes:

- **Durable.** hookshot keeps the waiting comments in a timer; a restart loses them. Here each
  is a `gitlab_review_items` row before the delivery is answered, and the batch is summed up by
  whichever process is running when it is due (rows are claimed with `FOR UPDATE SKIP LOCKED`,
  and the summary's outbox dedupe key makes a second attempt harmless).
- **Threads.** With `includeCommentBody`, each comment is a reply in the summary's thread
  (hookshot quoted them all in the summary). A thread reply needs the summary's event id, so the
  replies are queued once the outbox has sent it (`post_replies`, also after a restart). Later
  comments in a GitLab discussion that already has a thread go into that thread ("replied").
- **`merge_request.review.comments` works** (hookshot's #957): without it, comments are not
  collected at all (`format.classify`), so only approvals are summed up.

Delivered items are remembered a week, so GitLab delivering a comment again posts nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from hookshot_py.background import Background
from hookshot_py.connections.base import Connection
from hookshot_py.db.database import Database
from hookshot_py.gitlab.format import ReviewItem, review_reply, review_summary
from hookshot_py.gitlab.render import Renderer
from hookshot_py.matrix.outbox import Outbox, OutgoingEvent

__all__ = ["ReviewDebouncer", "thread_relation"]

log = logging.getLogger(__name__)

IDLE_S = 60.0
RETRY_S = 2.0  # how soon replies waiting for their summary are looked at again
RESOLVE_TIMEOUT_S = 2.0
JANITOR_EVERY_S = 3600.0
KEEP = "7 days"  # delivered items (dedupe) and unanswerable replies
KEEP_THREADS = "30 days"
BATCHES_PER_ROUND = 100


def _ts(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def thread_relation(event_id: str) -> dict[str, Any]:
    """A reply in the thread rooted at `event_id` (with the fallback for clients without threads)."""
    return {
        "rel_type": "m.thread",
        "event_id": event_id,
        "is_falling_back": True,
        "m.in_reply_to": {"event_id": event_id},
    }


class ReviewDebouncer(Background):
    """`add` queues an item; the background loop (`start`) sums up due batches and posts
    waiting replies. `flush_due` and `post_replies` are its steps, callable on their own."""

    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        renderer: Renderer,
        *,
        debounce_s: float,
        is_live: Callable[[str, str], bool],
        clock: Callable[[], float] = time.time,
        resolve_timeout_s: float = RESOLVE_TIMEOUT_S,
    ) -> None:
        super().__init__("gitlab-reviews")
        self.db = db
        self.outbox = outbox
        self.renderer = renderer
        self.debounce_s = debounce_s
        self.is_live = is_live  # (room_id, connection_id) → still connected?
        self.clock = clock
        self.resolve_timeout_s = resolve_timeout_s
        self._last_janitor = 0.0

    # -- in ------------------------------------------------------------------------------------------

    async def add(self, conn: Connection, item: ReviewItem) -> bool:
        """Queue `item` for `conn`'s room; False when it was queued (or posted) before."""
        inserted = await self.db.fetchval(
            """
            INSERT INTO gitlab_review_items (connection_id, room_id, batch, item_key, kind, data, due_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT (connection_id, item_key) DO NOTHING
            RETURNING id
            """,
            conn.id, conn.room_id, item.batch, item.key, item.kind, item.data, _ts(self.clock() + self.debounce_s),
        )
        if inserted is not None:
            self.wake()
        return inserted is not None

    # -- summing up -----------------------------------------------------------------------------------

    async def flush_due(self, now: float | None = None) -> int:
        """Post the summary of every batch whose last item is older than the debounce; returns
        how many were posted."""
        batches = await self.db.fetch(
            """
            SELECT connection_id, room_id, batch FROM gitlab_review_items WHERE flushed_at IS NULL
            GROUP BY connection_id, room_id, batch HAVING max(due_at) <= $1 LIMIT $2
            """,
            _ts(self.clock() if now is None else now), BATCHES_PER_ROUND,
        )
        posted = 0
        for batch in batches:
            try:
                posted += await self._flush(batch["connection_id"], batch["room_id"], batch["batch"])
            except Exception:
                log.exception("Summing up GitLab review %s in %s failed", batch["batch"], batch["room_id"])
        return posted

    async def _flush(self, connection_id: str, room_id: str, batch: str) -> int:
        rows = await self.db.fetch(
            "SELECT id, item_key, kind, data FROM gitlab_review_items "
            "WHERE connection_id = $1 AND batch = $2 AND flushed_at IS NULL ORDER BY id",
            connection_id, batch,
        )
        if not rows:
            return 0
        ids = [r["id"] for r in rows]
        if not self.is_live(room_id, connection_id):
            await self.db.execute("UPDATE gitlab_review_items SET flushed_at = now() WHERE id = ANY($1)", ids)
            return 0
        items = [{**r["data"], "kind": r["kind"], "key": r["item_key"]} for r in rows]
        discussions = list(dict.fromkeys(i["discussion"] for i in items if isinstance(i.get("discussion"), str)))
        thread = await self.db.fetchrow(
            """
            SELECT discussion_id, root_row, event_id FROM gitlab_review_threads
            WHERE connection_id = $1 AND discussion_id = ANY($2::text[]) AND event_id IS NOT NULL
            ORDER BY array_position($2::text[], discussion_id) LIMIT 1
            """,
            connection_id, discussions,
        )
        thread_event: str | None = thread["event_id"] if thread is not None else None
        with_body = [i for i in items if i["kind"] == "comment" and i.get("note")]
        replies = [review_reply(i) for i in with_body] if thread_event else []
        contents = await self.renderer.contents([review_summary(items, in_thread=thread_event is not None), *replies])
        if thread_event:
            for content in contents:
                content["m.relates_to"] = thread_relation(thread_event)
        async with self.db.acquire() as c, c.transaction():
            locked = await c.fetch(
                "SELECT id FROM gitlab_review_items WHERE id = ANY($1) AND flushed_at IS NULL "
                "FOR UPDATE SKIP LOCKED",
                ids,
            )
            if len(locked) != len(ids):
                return 0  # another process is summing it up
            queued = await self.outbox.enqueue_in(
                c, [OutgoingEvent(room_id, contents[0], dedupe_key=f"gitlab-review:{connection_id}:{ids[0]}")]
            )
            summary_row = queued[0]["id"] if queued else None
            reply_rows = await self.outbox.enqueue_in(c, [
                OutgoingEvent(room_id, content, dedupe_key=f"gitlab-review-reply:{connection_id}:{item['key']}")
                for content, item in zip(contents[1:], with_body if thread_event else [], strict=True)
            ])
            # Without a thread to post in yet, comments wait for the summary's event id.
            waiting = [i["key"] for i in with_body] if thread_event is None and summary_row is not None else []
            await c.execute(
                """
                UPDATE gitlab_review_items SET flushed_at = now(), summary_row = $2, thread_event = $3,
                       replied = NOT (item_key = ANY($4::text[]))
                WHERE id = ANY($1)
                """,
                ids, summary_row, thread_event, waiting,
            )
            root_row = thread["root_row"] if thread is not None else summary_row
            if root_row is not None and discussions:
                await c.execute(
                    """
                    INSERT INTO gitlab_review_threads (connection_id, discussion_id, root_row, event_id)
                    SELECT $1, d, $3, $4 FROM unnest($2::text[]) AS d
                    ON CONFLICT (connection_id, discussion_id) DO NOTHING
                    """,
                    connection_id, discussions, root_row, thread_event,
                )
        self.outbox.queued([*queued, *reply_rows])
        log.info("GitLab review %s in %s: %d item(s) summed up%s", batch, room_id, len(items),
                 f", {len(waiting)} comment(s) to post in its thread" if waiting else "")
        return 1 if queued else 0

    # -- thread replies -------------------------------------------------------------------------------

    async def post_replies(self, timeout: float | None = None) -> int:
        """Post the comments waiting for their summary's event id, and note the event ids of
        new threads. Waits at most `timeout` for summaries still unsent; returns how many
        summaries are still waited for."""
        waiting = await self.db.fetch(
            "SELECT DISTINCT summary_row, room_id, connection_id FROM gitlab_review_items "
            "WHERE flushed_at IS NOT NULL AND NOT replied AND summary_row IS NOT NULL LIMIT 50"
        )
        unresolved = await self.db.fetch(
            "SELECT DISTINCT root_row FROM gitlab_review_threads WHERE event_id IS NULL LIMIT 50"
        )
        roots = {r["summary_row"] for r in waiting} | {r["root_row"] for r in unresolved}
        if not roots:
            return 0
        sent = await self._event_ids(roots, self.resolve_timeout_s if timeout is None else timeout)
        for root, event_id in sent.items():
            if event_id is None:  # the summary could not be sent: no thread to post in
                await self.db.execute("DELETE FROM gitlab_review_threads WHERE root_row = $1", root)
            else:
                await self.db.execute(
                    "UPDATE gitlab_review_threads SET event_id = $2 WHERE root_row = $1 AND event_id IS NULL",
                    root, event_id,
                )
        for row in waiting:
            root = row["summary_row"]
            if root in sent:
                await self._reply(root, row["room_id"], row["connection_id"], sent[root])
        return len(roots - set(sent))

    async def _event_ids(self, rows: set[int], timeout: float) -> dict[int, str | None]:
        """The event ids of the outbox rows sent by now (None: failed for good); rows still
        unsent after `timeout` are left out."""
        async def one(row: int) -> tuple[int, str | None] | None:
            try:
                return row, (await self.outbox.wait_sent([row], timeout))[0]
            except TimeoutError:
                return None

        return dict(r for r in await asyncio.gather(*(one(row) for row in rows)) if r is not None)

    async def _reply(self, summary_row: int, room_id: str, connection_id: str, event_id: str | None) -> None:
        rows = await self.db.fetch(
            "SELECT id, item_key, data FROM gitlab_review_items WHERE summary_row = $1 AND NOT replied ORDER BY id",
            summary_row,
        )
        items = [{**r["data"], "key": r["item_key"]} for r in rows if r["data"].get("note")]
        contents = await self.renderer.contents([review_reply(i) for i in items])
        if event_id is not None:
            for content in contents:
                content["m.relates_to"] = thread_relation(event_id)
        ids = [r["id"] for r in rows]
        async with self.db.acquire() as c, c.transaction():
            locked = await c.fetch(
                "SELECT id FROM gitlab_review_items WHERE id = ANY($1) AND NOT replied FOR UPDATE SKIP LOCKED", ids
            )
            if len(locked) != len(ids):
                return
            queued = await self.outbox.enqueue_in(c, [
                OutgoingEvent(room_id, content, dedupe_key=f"gitlab-review-reply:{connection_id}:{item['key']}")
                for content, item in zip(contents, items, strict=True)
            ])
            await c.execute(
                "UPDATE gitlab_review_items SET replied = true, thread_event = $2 WHERE id = ANY($1)", ids, event_id
            )
        self.outbox.queued(queued)

    # -- housekeeping and the loop --------------------------------------------------------------------

    async def janitor(self) -> None:
        """Forget delivered items after a week (replies still unposted then are given up) and
        threads after a month."""
        await self.db.execute(f"DELETE FROM gitlab_review_items WHERE flushed_at < now() - interval '{KEEP}'")
        await self.db.execute(
            f"DELETE FROM gitlab_review_threads WHERE created_at < now() - interval '{KEEP_THREADS}'"
        )

    async def next_due(self) -> float | None:
        value = await self.db.fetchval(
            "SELECT min(due) FROM (SELECT max(due_at) AS due FROM gitlab_review_items WHERE flushed_at IS NULL "
            "GROUP BY connection_id, batch) AS batches"
        )
        return value.timestamp() if isinstance(value, datetime) else None

    async def round(self) -> float:
        pending, due = 0, None
        try:
            await self.flush_due()
            pending = await self.post_replies()
            if self.clock() - self._last_janitor > JANITOR_EVERY_S:
                await self.janitor()
                self._last_janitor = self.clock()
            due = await self.next_due()
        except Exception:
            log.exception("The GitLab review summaries failed; trying again soon")
            pending = 1
        delay = IDLE_S if due is None else max(0.0, due - self.clock())
        if pending:
            delay = min(delay, RETRY_S)
        return max(delay, 0.05)
