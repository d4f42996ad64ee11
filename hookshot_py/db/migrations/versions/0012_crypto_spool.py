"""What the bridge processes without the encryption device hand to the one that holds it.

- crypto_spool: to-device events and key counts (`extras`), encrypted room events (`event`) and
  membership changes (`state`) received by a process that does not hold the bot's Olm device, kept
  until the process that holds it has handled them (`matrix/crypto_spool.py`).

Revision ID: 0012_crypto_spool
Revises: 0011_outbox_cluster
Create Date: 2026-12-01
"""

from alembic import op

revision = "0012_crypto_spool"
down_revision = "0011_outbox_cluster"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE crypto_spool (
            id BIGSERIAL PRIMARY KEY,
            kind TEXT NOT NULL,
            body TEXT NOT NULL,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE crypto_spool")
