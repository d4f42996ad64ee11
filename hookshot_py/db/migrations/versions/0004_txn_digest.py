"""Appservice transactions are remembered by id *and* content digest: a homeserver that numbers
its transactions from 1 again after a restart must not have them dropped as repeats.

Revision ID: 0004_txn_digest
Revises: 0003_barkeep
Create Date: 2026-12-01
"""

from alembic import op

revision = "0004_txn_digest"
down_revision = "0003_barkeep"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE appservice_txns ADD COLUMN digest BYTEA NOT NULL DEFAULT ''::bytea")
    op.execute("ALTER TABLE appservice_txns DROP CONSTRAINT appservice_txns_pkey")
    op.execute("ALTER TABLE appservice_txns ADD PRIMARY KEY (txn_id, digest)")


def downgrade() -> None:
    op.execute("DELETE FROM appservice_txns WHERE digest <> ''::bytea")
    op.execute("ALTER TABLE appservice_txns DROP CONSTRAINT appservice_txns_pkey")
    op.execute("ALTER TABLE appservice_txns DROP COLUMN digest")
    op.execute("ALTER TABLE appservice_txns ADD PRIMARY KEY (txn_id)")
