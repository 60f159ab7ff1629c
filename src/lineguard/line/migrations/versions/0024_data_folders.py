"""The data folders that keep a PostgreSQL station database's files (line.data_folders):
one folder per database (or schema), so a second station with a folder of its own is
refused at start instead of losing the first one's models and photos.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "data_folders",
        sa.Column("folder_id", sa.String(36), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("first_seen", sa.DateTime, nullable=False),
        sa.Column("last_seen", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("data_folders")
