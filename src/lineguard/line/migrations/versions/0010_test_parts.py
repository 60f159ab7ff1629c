"""Test parts: parts of known verdict put through the line each shift.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04

A table of a product's test parts, and on each record the test part it was (NULL for
the line's own parts) with the verdict it had to get, so a shift's verification is read
from the records and the counts a plant reports by can leave test parts out.
"""
from alembic import op
import sqlalchemy as sa

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "test_parts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("product", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("expect", sa.String(16), nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("created_by", sa.String(100), nullable=True),
        sa.Column("retired_at", sa.DateTime, nullable=True),
        sa.Column("retired_by", sa.String(100), nullable=True),
        sa.UniqueConstraint("product", "name", name="uq_test_parts_product_name"),
    )
    # plain ADD COLUMN (nullable, no default): instant on both backends, where a batch
    # alter would copy a year of records in SQLite
    op.add_column("inspections", sa.Column("test_part", sa.String(200), nullable=True))
    op.add_column("inspections", sa.Column("test_expected", sa.String(16), nullable=True))
    # the checks are few among the parts: "test_part IS NOT NULL" reads them by this index
    op.create_index("ix_inspections_test_part", "inspections", ["test_part", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_inspections_test_part", table_name="inspections")
    with op.batch_alter_table("inspections") as batch:
        batch.drop_column("test_expected")
        batch.drop_column("test_part")
    op.drop_table("test_parts")
