"""Records are found by their image's SHA-256 alone.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03

The disk keeper (``line.disk``) deletes an image file only once no record names it, and
records naming one file are those with its SHA-256 (the same image sent for two parts);
the only index on the column led with ``part_id``, so each check read the whole table.
A re-score's comparison with the live verdicts joins on the same column.
"""
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_inspections_image_sha256", "inspections", ["image_sha256"])


def downgrade() -> None:
    op.drop_index("ix_inspections_image_sha256", table_name="inspections")
