"""Barkeep: the commits the bridge watches for review news, with what it last saw of each.

Revision ID: 0003_barkeep
Revises: 0002
Create Date: 2026-11-24
"""

from alembic import op

revision = "0003_barkeep"
down_revision = "0002"
branch_labels = ("barkeep",)
depends_on = None


def upgrade() -> None:
    # One row per commit and Barkeep repository, shared by every room connected to it.
    # `snapshot` is NULL until the first poll records a baseline (CommitSnapshot.to_json());
    # `missing_since` is set while Barkeep does not know the commit (not imported yet, or gone).
    op.execute(
        """
        CREATE TABLE barkeep_watched_commits (
            instance TEXT NOT NULL,
            repo TEXT NOT NULL,
            sha TEXT NOT NULL,
            snapshot JSONB,
            watched_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            polled_at TIMESTAMPTZ,
            missing_since TIMESTAMPTZ,
            PRIMARY KEY (instance, repo, sha)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS barkeep_watched_commits")
