"""Feeds: poll state per feed URL and the items already seen, shared by every room and process.

Revision ID: 0005_feeds
Revises: 0004_txn_digest
Create Date: 2026-12-01
"""

from alembic import op

revision = "0005_feeds"
down_revision = "0004_txn_digest"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per feed URL (fragment stripped) that some room subscribes to; removed with the
    # last subscription. `lease_*` let one process at a time poll it; `initialized` is false
    # until a first successful poll recorded the items present then (they are never posted).
    op.execute(
        """
        CREATE TABLE feeds (
            url TEXT PRIMARY KEY,
            title TEXT,
            etag TEXT,
            last_modified TEXT,
            body_hash TEXT,
            initialized BOOLEAN NOT NULL DEFAULT false,
            next_poll_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            lease_owner TEXT,
            lease_until TIMESTAMPTZ,
            failures INTEGER NOT NULL DEFAULT 0,
            failing_since TIMESTAMPTZ,
            last_error TEXT,
            failure_notified BOOLEAN NOT NULL DEFAULT false,
            last_polled_at TIMESTAMPTZ,
            last_ok_at TIMESTAMPTZ,
            last_results JSONB NOT NULL DEFAULT '[]'::jsonb,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX feeds_due ON feeds (next_poll_at)")
    # The identity (feeds/identity.py) of every item seen in a feed. Marked in the same
    # transaction that queues the item's messages in the outbox.
    op.execute(
        """
        CREATE TABLE feed_items (
            url TEXT NOT NULL REFERENCES feeds (url) ON DELETE CASCADE,
            item_id TEXT NOT NULL,
            seen_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (url, item_id)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS feed_items")
    op.execute("DROP TABLE IF EXISTS feeds")
