"""Which process sends to a sink: ``outbox_sinks.claimed_by`` and ``claimed_until``.

Two processes on one database configured with the same receiver (two stations with the
same --mqtt broker, a server and a hot folder's watcher) each read the whole outbox and
sent every row: a third of the messages reached the broker twice with nothing wrong.
Now the process holding a sink's claim sends to it; the claim runs out (by the
database's clock) when its process dies, and another takes it over (line.outbox).

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-06
"""
from alembic import op
import sqlalchemy as sa

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox_sinks", sa.Column("claimed_by", sa.String(100), nullable=True))
    op.add_column("outbox_sinks", sa.Column("claimed_until", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox_sinks") as batch:
        batch.drop_column("claimed_until")
        batch.drop_column("claimed_by")
