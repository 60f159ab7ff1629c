"""Issued reports can be withdrawn (sent in error: the wrong window, the wrong line): who
withdrew it, when and why. The report as issued stays as it was, readable, marked withdrawn.

Revision ID: 0037
Revises: 0036
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0037"
down_revision = "0036"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("issued_reports") as t:
        t.add_column(sa.Column("withdrawn_at", sa.DateTime(), nullable=True))
        t.add_column(sa.Column("withdrawn_by", sa.String(100), nullable=True))
        t.add_column(sa.Column("withdrawn_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("issued_reports") as t:
        t.drop_column("withdrawn_reason")
        t.drop_column("withdrawn_by")
        t.drop_column("withdrawn_at")
