"""Outbound webhooks: each hook's token (encrypted) and claim, and the durable delivery queue.

Revision ID: 0010_outbound_hooks
Revises: 0009_unsupported_connections
Create Date: 2026-12-02
"""

from alembic import op

revision = "0010_outbound_hooks"
down_revision = "0009_unsupported_connections"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per outbound hook connection. `token` is the hook's `hs-ob-` token encrypted with
    # the bridge's SecretBox. `url` and `method` mirror the state, so any bridge process can
    # deliver from the database alone. A process delivers a hook's queue only while it holds the
    # lease (`lease_owner`, `lease_until`); `retry_at` is when the head of the queue may be tried.
    op.execute(
        """
        CREATE TABLE outbound_hooks (
            connection_id TEXT PRIMARY KEY,
            room_id TEXT NOT NULL,
            state_key TEXT NOT NULL,
            url TEXT NOT NULL,
            method TEXT NOT NULL,
            token BYTEA NOT NULL,
            retry_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            lease_owner TEXT,
            lease_until TIMESTAMPTZ,
            failure_notified BOOLEAN NOT NULL DEFAULT false,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX outbound_hooks_due ON outbound_hooks (retry_at)")
    # The events to send, in order per hook (`id`), and once sent or given up, the delivery log.
    op.execute(
        """
        CREATE TABLE outbound_deliveries (
            id BIGSERIAL PRIMARY KEY,
            connection_id TEXT NOT NULL REFERENCES outbound_hooks (connection_id) ON DELETE CASCADE,
            event_id TEXT NOT NULL,
            event_type TEXT NOT NULL,
            sender TEXT NOT NULL,
            event JSONB NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            last_attempt_at TIMESTAMPTZ,
            finished_at TIMESTAMPTZ,
            response_status INTEGER,
            last_error TEXT,
            UNIQUE (connection_id, event_id)
        )
        """
    )
    op.execute("CREATE INDEX outbound_deliveries_log ON outbound_deliveries (connection_id, id)")
    op.execute(
        "CREATE INDEX outbound_deliveries_pending ON outbound_deliveries (connection_id, id) "
        "WHERE status = 'pending'"
    )
    op.execute(
        "CREATE INDEX outbound_deliveries_finished ON outbound_deliveries (finished_at) "
        "WHERE status <> 'pending'"
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS outbound_deliveries")
    op.execute("DROP TABLE IF EXISTS outbound_hooks")
