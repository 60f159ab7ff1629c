"""Since when the parts' records are all kept: the cutoff of the last deletion of old
records (line.record_keeper), whichever process on the database made it.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "records_kept",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kept_since", sa.DateTime, nullable=False),
        sa.Column("keep_days", sa.Float, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("records_kept")
