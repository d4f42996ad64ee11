"""Forge webhooks converge durably: the events the rooms want, who registered the hook, and
the retry state of a change the forge refused (the `HookSync` job's queue).

Revision ID: 0007_forge_hook_sync
Revises: 0006_generic_expiry_notices
Create Date: 2026-11-26
"""

from alembic import op

revision = "0007_forge_hook_sync"
down_revision = "0006_generic_expiry_notices"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # `events`: what the hook delivers as far as the bridge knows (or was told to be entered by
    # hand); `wanted`: the union of the rooms' events. While they differ on a managed hook,
    # `needs_sync` is set and `next_sync_at` says when the job tries again.
    op.execute(
        """
        ALTER TABLE forge_webhooks
            ADD COLUMN name TEXT,
            ADD COLUMN wanted JSONB,
            ADD COLUMN registered_by TEXT,
            ADD COLUMN needs_sync BOOLEAN NOT NULL DEFAULT false,
            ADD COLUMN sync_attempts INTEGER NOT NULL DEFAULT 0,
            ADD COLUMN next_sync_at TIMESTAMPTZ,
            ADD COLUMN last_error TEXT
        """
    )
    op.execute(
        """
        UPDATE forge_webhooks
        SET registered_by = data->>'registeredBy', data = data - 'registeredBy'
        WHERE data ? 'registeredBy'
        """
    )
    op.execute("CREATE INDEX forge_webhooks_due ON forge_webhooks (next_sync_at) WHERE needs_sync")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS forge_webhooks_due")
    op.execute(
        """
        UPDATE forge_webhooks SET data = data || jsonb_build_object('registeredBy', registered_by)
        WHERE registered_by IS NOT NULL
        """
    )
    op.execute(
        """
        ALTER TABLE forge_webhooks
            DROP COLUMN name, DROP COLUMN wanted, DROP COLUMN registered_by, DROP COLUMN needs_sync,
            DROP COLUMN sync_attempts, DROP COLUMN next_sync_at, DROP COLUMN last_error
        """
    )
