"""Alarms escalated again while left unacknowledged (line.alarms): how many times, and
every how many minutes (the raising process's setting, stored on the alarm).
``escalate_at`` becomes the next escalation's due time; an alarm escalated already has
none (it was escalated once, as it had to be).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("alarms", sa.Column("escalations", sa.Integer, nullable=False, server_default="0"))
    op.add_column("alarms", sa.Column("escalate_again_min", sa.Float, nullable=True))
    op.add_column("alarm_rules", sa.Column("escalate_again_min", sa.Float, nullable=True))
    op.execute("UPDATE alarms SET escalations = 1, escalate_at = NULL WHERE escalated_at IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("alarm_rules") as batch:
        batch.drop_column("escalate_again_min")
    with op.batch_alter_table("alarms") as batch:
        batch.drop_column("escalate_again_min")
        batch.drop_column("escalations")
