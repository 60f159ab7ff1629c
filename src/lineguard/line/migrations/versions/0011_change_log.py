"""The change log: who changed what on the station, and when (see line.audit).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "change_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("actor", sa.String(100), nullable=True),
        sa.Column("action", sa.String(50), nullable=False),
        sa.Column("subject", sa.String(320), nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
    )
    op.create_index("ix_change_log_at", "change_log", ["at"])
    op.create_index("ix_change_log_action", "change_log", ["action"])


def downgrade() -> None:
    op.drop_index("ix_change_log_action", table_name="change_log")
    op.drop_index("ix_change_log_at", table_name="change_log")
    op.drop_table("change_log")
