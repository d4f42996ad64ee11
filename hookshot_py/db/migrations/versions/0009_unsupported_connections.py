"""Connections kept but not served (service disabled or not implemented), and whether the room
was told (once, across restarts).

Revision ID: 0009_unsupported_connections
Revises: 0008_gitlab_reviews
Create Date: 2026-12-02
"""

from alembic import op

revision = "0009_unsupported_connections"
down_revision = "0008_gitlab_reviews"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # `event_type` is the canonical type (legacy aliases are read as their canonical type).
    op.execute(
        """
        CREATE TABLE unsupported_connections (
            room_id TEXT NOT NULL,
            event_type TEXT NOT NULL,
            state_key TEXT NOT NULL,
            content JSONB NOT NULL,
            reported_at TIMESTAMPTZ,
            first_seen_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (room_id, event_type, state_key)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS unsupported_connections")
