"""Generic webhooks: which expiry dates the room was already warned about (once, across restarts).

Revision ID: 0006_generic_expiry_notices
Revises: 0005_feeds
Create Date: 2026-12-01
"""

from alembic import op

revision = "0006_generic_expiry_notices"
down_revision = "0005_feeds"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A row means "no (more) notice for this hook and this expiry date": the notice was queued,
    # or the hook was set to expire within the warning window by its creator. Changing the
    # expiry date arms the notice again. Also used by static hooks, which have no generic_hooks row.
    op.execute(
        """
        CREATE TABLE generic_expiry_notices (
            room_id TEXT NOT NULL,
            state_key TEXT NOT NULL,
            expiration_date TEXT NOT NULL,
            noted_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (room_id, state_key, expiration_date)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS generic_expiry_notices")
