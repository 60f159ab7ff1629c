"""Rows a station process writes (64 kB) and deletes again to see that the database
takes writes again after a refused part (line.station.Station.check_storage): a station
a load balancer took out of service on that fault gets no part whose write could clear it.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "write_checks",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("written_at", sa.DateTime, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("write_checks")
