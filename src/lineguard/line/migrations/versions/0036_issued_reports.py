"""Issued reports: a period's report as it was sent to the customer (who issued it, when,
their note, the report's JSON), kept unchanged while the parts' reviews go on changing the
report made from the records now.

Revision ID: 0036
Revises: 0035
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0036"
down_revision = "0035"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "issued_reports",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("since", sa.DateTime(), nullable=False),
        sa.Column("until", sa.DateTime(), nullable=False),
        sa.Column("line", sa.String(100), nullable=False),
        sa.Column("station", sa.String(100), nullable=False),
        sa.Column("product", sa.String(100), nullable=False),
        sa.Column("issued_by", sa.String(100), nullable=True),
        sa.Column("issued_at", sa.DateTime(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("report", sa.Text(), nullable=False),
    )
    op.create_index("ix_issued_reports_window", "issued_reports", ["kind", "since", "until", "id"])


def downgrade() -> None:
    op.drop_index("ix_issued_reports_window", table_name="issued_reports")
    op.drop_table("issued_reports")
