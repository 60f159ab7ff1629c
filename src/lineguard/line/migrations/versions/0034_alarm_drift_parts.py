"""A station's own setting for the score-drift alarm (line.alarms, ``drift``): the parts
of each group its scores are compared in (NULL: the process's default, 0: off).

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-06
"""
from alembic import op
import sqlalchemy as sa

revision = "0034"
down_revision = "0033"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("alarm_rules", sa.Column("drift_parts", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alarm_rules") as batch:
        batch.drop_column("drift_parts")
