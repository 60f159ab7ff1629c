"""When a line alarm left unacknowledged is due to be escalated, and when it was
(line.alarms: the raising process's escalate_min, stored on the alarm so that every
process on the database escalates it alike; alarms from before have none).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("alarms", sa.Column("escalate_at", sa.DateTime, nullable=True))
    op.add_column("alarms", sa.Column("escalated_at", sa.DateTime, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alarms") as batch:
        batch.drop_column("escalated_at")
        batch.drop_column("escalate_at")
