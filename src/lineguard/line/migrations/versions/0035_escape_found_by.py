"""Where an escape was found: ``found_by`` on each review and on the part (its latest
review's, as ``defect_type``), one of line.reviews.FOUND_BY ("audit", "station review",
"next process", "customer", "other"); NULL: not said (every review before this revision).

Revision ID: 0035
Revises: 0034
Create Date: 2026-12-06
"""
from alembic import op
import sqlalchemy as sa

revision = "0035"
down_revision = "0034"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("reviews", sa.Column("found_by", sa.String(20), nullable=True))
    op.add_column("inspections", sa.Column("found_by", sa.String(20), nullable=True))


def downgrade() -> None:
    # plain DROP COLUMN (SQLite 3.35+), as 0006's: a batch copy of inspections would drop
    # a table that reviews, shadow results and line signals point at
    op.drop_column("inspections", "found_by")
    op.drop_column("reviews", "found_by")
