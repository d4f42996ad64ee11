"""User tokens (encrypted), OAuth states, webhooks the bridge registered on forges.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE user_tokens (
            user_id TEXT NOT NULL,
            service TEXT NOT NULL,
            instance TEXT NOT NULL DEFAULT '',
            ciphertext BYTEA NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (user_id, service, instance)
        )
        """
    )
    # OAuth `state` values handed out and not yet used (hookshot kept these in memory only).
    op.execute(
        """
        CREATE TABLE oauth_states (
            state TEXT PRIMARY KEY,
            service TEXT NOT NULL,
            user_id TEXT NOT NULL,
            data JSONB NOT NULL DEFAULT '{}',
            created_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )
        """
    )
    # One webhook per forge project, shared by every room connected to it.
    op.execute(
        """
        CREATE TABLE forge_webhooks (
            service TEXT NOT NULL,
            instance TEXT NOT NULL DEFAULT '',
            project TEXT NOT NULL,
            hook_id TEXT,
            secret_ciphertext BYTEA NOT NULL,
            events JSONB NOT NULL DEFAULT '[]',
            url TEXT NOT NULL,
            data JSONB NOT NULL DEFAULT '{}',
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (service, instance, project)
        )
        """
    )


def downgrade() -> None:
    for table in ("forge_webhooks", "oauth_states", "user_tokens"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
