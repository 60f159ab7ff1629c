"""What a model version looks at (backbone, input size, extra scales), so the versions
list tells a quality profile's version from a fast one's (their thresholds are on other
scales and look unlike each other without it).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("model_versions", sa.Column("features", sa.String(100), nullable=True))


def downgrade() -> None:
    # a plain DROP COLUMN (SQLite 3.35+): a batch copy of the table drops it, which its
    # foreign keys (shadows, activations) refuse
    op.drop_column("model_versions", "features")
