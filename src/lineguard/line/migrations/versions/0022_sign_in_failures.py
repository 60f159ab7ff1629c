"""Failed sign-ins kept in the database (line.sign_ins), not in each server process's
memory: several processes or stations on one database count the same tries, an admin's
lift clears them all, and a restart hands a guesser no new ones.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sign_in_failures",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("who", sa.String(300), nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_sign_in_failures_who_at", "sign_in_failures", ["who", "at"])
    op.create_index("ix_sign_in_failures_at", "sign_in_failures", ["at"])


def downgrade() -> None:
    op.drop_index("ix_sign_in_failures_at", "sign_in_failures")
    op.drop_index("ix_sign_in_failures_who_at", "sign_in_failures")
    op.drop_table("sign_in_failures")
