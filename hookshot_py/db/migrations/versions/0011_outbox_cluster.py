"""Causal order in the outbox and several bridge processes on one database.

- outbox.barrier: the row may be posted once no pending row of its room has an id up to this
  (the rows committed before its request began); outbox.origin: the process that queued it;
  outbox.uncertain: an earlier attempt may have reached the homeserver (check before resending).
- outbox_rooms: which process is delivering a room now; a row left behind by a dead process
  tells its successor to check what already reached the homeserver.
- leases: background jobs run by one process at a time.
- appservice_txns: a transaction is claimed (owner, claimed_until) before it is handled, so it is
  handled once across processes, and redone if its claimer died; processed_at is NULL until then.
- command_runs: each bot command is run once across processes, and again only if the process
  running it died (the command's replies are deduplicated in the outbox).

Revision ID: 0011_outbox_cluster
Revises: 0010_outbound_hooks
Create Date: 2026-12-01
"""

from alembic import op

revision = "0011_outbox_cluster"
down_revision = "0010_outbound_hooks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE outbox ADD COLUMN barrier BIGINT NOT NULL DEFAULT 0")
    op.execute("ALTER TABLE outbox ADD COLUMN origin TEXT NOT NULL DEFAULT ''")
    op.execute("ALTER TABLE outbox ADD COLUMN uncertain BOOLEAN NOT NULL DEFAULT false")
    # Whether another process has pending rows in a room: one probe whatever the backlog.
    op.execute(
        "CREATE INDEX outbox_pending_origin ON outbox (room_id, origin) WHERE sent_at IS NULL AND failed_at IS NULL"
    )
    # Rows queued before this version were delivered one after the other: keep that.
    op.execute(
        "UPDATE outbox o SET barrier = COALESCE((SELECT max(p.id) FROM outbox p WHERE p.room_id = o.room_id "
        "AND p.id < o.id), 0) WHERE o.sent_at IS NULL AND o.failed_at IS NULL"
    )
    op.execute(
        """
        CREATE TABLE outbox_rooms (
            room_id TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            held_since TIMESTAMPTZ NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE leases (
            name TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            expires_at TIMESTAMPTZ NOT NULL,
            last_run_at TIMESTAMPTZ
        )
        """
    )
    op.execute("ALTER TABLE appservice_txns ALTER COLUMN processed_at DROP NOT NULL")
    op.execute("ALTER TABLE appservice_txns ALTER COLUMN processed_at DROP DEFAULT")
    op.execute("ALTER TABLE appservice_txns ADD COLUMN owner TEXT")
    op.execute("ALTER TABLE appservice_txns ADD COLUMN claimed_until TIMESTAMPTZ")
    op.execute(
        """
        CREATE TABLE command_runs (
            event_id TEXT PRIMARY KEY,
            room_id TEXT NOT NULL,
            event JSONB NOT NULL,
            owner TEXT NOT NULL,
            lease_until TIMESTAMPTZ NOT NULL,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            done_at TIMESTAMPTZ
        )
        """
    )
    op.execute("CREATE INDEX command_runs_open ON command_runs (lease_until) WHERE done_at IS NULL")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS command_runs")
    op.execute("DELETE FROM appservice_txns WHERE processed_at IS NULL")
    op.execute("ALTER TABLE appservice_txns DROP COLUMN claimed_until")
    op.execute("ALTER TABLE appservice_txns DROP COLUMN owner")
    op.execute("ALTER TABLE appservice_txns ALTER COLUMN processed_at SET DEFAULT now()")
    op.execute("ALTER TABLE appservice_txns ALTER COLUMN processed_at SET NOT NULL")
    op.execute("DROP TABLE IF EXISTS leases")
    op.execute("DROP TABLE IF EXISTS outbox_rooms")
    op.execute("ALTER TABLE outbox DROP COLUMN uncertain")
    op.execute("ALTER TABLE outbox DROP COLUMN origin")
    op.execute("ALTER TABLE outbox DROP COLUMN barrier")
