"""The plant's own alarm causes beside the six built in (line.alarm_causes), each with
the PLC number it is acknowledged by (7 on), kept for good.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alarm_causes",
        sa.Column("key", sa.String(20), primary_key=True),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("code", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("created_by", sa.String(100), nullable=True),
        sa.Column("retired_at", sa.DateTime, nullable=True),
        sa.Column("retired_by", sa.String(100), nullable=True),
        sa.UniqueConstraint("code", name="uq_alarm_causes_code"),
    )


def downgrade() -> None:
    op.drop_table("alarm_causes")
