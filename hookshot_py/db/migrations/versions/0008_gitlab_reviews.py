"""GitLab merge request reviews: comments and approvals waiting to be summed up (they outlive a
restart), and which Matrix thread each GitLab discussion went to.

Revision ID: 0008_gitlab_reviews
Revises: 0007_forge_hook_sync
Create Date: 2026-12-02
"""

from alembic import op

revision = "0008_gitlab_reviews"
down_revision = "0007_forge_hook_sync"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per comment or approval, per connection. `batch` groups one author's items on one
    # merge request; the batch is summed up once its last `due_at` has passed. A flushed row stays
    # a week (`flushed_at`), so that GitLab delivering it again is recognised (`item_key`).
    # `summary_row` is the outbox row of its summary; `replied` false means its comment still has
    # to be posted in the summary's thread (which needs the summary's event id first).
    op.execute(
        """
        CREATE TABLE gitlab_review_items (
            id BIGSERIAL PRIMARY KEY,
            connection_id TEXT NOT NULL,
            room_id TEXT NOT NULL,
            batch TEXT NOT NULL,
            item_key TEXT NOT NULL,
            kind TEXT NOT NULL,
            data JSONB NOT NULL,
            due_at TIMESTAMPTZ NOT NULL,
            flushed_at TIMESTAMPTZ,
            summary_row BIGINT,
            thread_event TEXT,
            replied BOOLEAN NOT NULL DEFAULT true,
            UNIQUE (connection_id, item_key)
        )
        """
    )
    op.execute("CREATE INDEX gitlab_review_items_due ON gitlab_review_items (due_at) WHERE flushed_at IS NULL")
    op.execute(
        "CREATE INDEX gitlab_review_items_replies ON gitlab_review_items (summary_row) "
        "WHERE flushed_at IS NOT NULL AND NOT replied"
    )
    # A GitLab discussion (`discussion_id`) → the Matrix thread its first comments went to: later
    # comments in it are posted in that thread. `event_id` is filled once the root was sent.
    op.execute(
        """
        CREATE TABLE gitlab_review_threads (
            connection_id TEXT NOT NULL,
            discussion_id TEXT NOT NULL,
            root_row BIGINT NOT NULL,
            event_id TEXT,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (connection_id, discussion_id)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS gitlab_review_threads")
    op.execute("DROP TABLE IF EXISTS gitlab_review_items")
