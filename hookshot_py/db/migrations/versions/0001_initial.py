"""Initial schema: connection mirror, generic hook ids, outbox, appservice transactions, DM rooms.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Mirror of connection state events. Room state is the truth; this makes startup one query.
    op.execute(
        """
        CREATE TABLE connections (
            room_id TEXT NOT NULL,
            event_type TEXT NOT NULL,
            state_key TEXT NOT NULL,
            connection_id TEXT NOT NULL UNIQUE,
            content JSONB NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (room_id, event_type, state_key)
        )
        """
    )
    # Secret ids of generic hooks: never in room state (also kept in the bot's room account
    # data like hookshot does, so a wiped database can be rebuilt).
    op.execute(
        """
        CREATE TABLE generic_hooks (
            hook_id TEXT PRIMARY KEY,
            room_id TEXT NOT NULL,
            state_key TEXT NOT NULL,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            UNIQUE (room_id, state_key)
        )
        """
    )
    # Every message to Matrix is a row here first.
    op.execute(
        """
        CREATE TABLE outbox (
            id BIGSERIAL PRIMARY KEY,
            room_id TEXT NOT NULL,
            sender TEXT NOT NULL,
            event_type TEXT NOT NULL,
            content JSONB NOT NULL,
            dedupe_key TEXT,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TIMESTAMPTZ,
            last_error TEXT,
            event_id TEXT,
            sent_at TIMESTAMPTZ,
            failed_at TIMESTAMPTZ
        )
        """
    )
    op.execute(
        "CREATE INDEX outbox_pending ON outbox (room_id, id) "
        "WHERE sent_at IS NULL AND failed_at IS NULL"
    )
    op.execute(
        "CREATE UNIQUE INDEX outbox_dedupe ON outbox (room_id, dedupe_key) "
        "WHERE dedupe_key IS NOT NULL"
    )
    op.execute(
        """
        CREATE TABLE appservice_txns (
            txn_id TEXT PRIMARY KEY,
            processed_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE dm_rooms (
            user_id TEXT PRIMARY KEY,
            room_id TEXT NOT NULL
        )
        """
    )
    # install_id makes outbox transaction ids unique even if the database is wiped and ids restart.
    op.execute("CREATE TABLE bridge_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    op.execute(
        "INSERT INTO bridge_meta (key, value) VALUES ('install_id', substr(md5(random()::text), 1, 12))"
    )
    op.execute(
        """
        CREATE TABLE ghost_profiles (
            user_id TEXT PRIMARY KEY,
            displayname TEXT,
            avatar_url TEXT
        )
        """
    )


def downgrade() -> None:
    for table in ("ghost_profiles", "bridge_meta", "dm_rooms", "appservice_txns", "outbox", "generic_hooks", "connections"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
