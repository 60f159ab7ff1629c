"""What the photo check found off about each re-scored archive image (line.scale.rescore):
a list, as a part's record has it (inspections.photo_issues); NULL: nothing off, or a run
from before.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("rescore_results", sa.Column("photo_issues", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rescore_results") as batch:
        batch.drop_column("photo_issues")
