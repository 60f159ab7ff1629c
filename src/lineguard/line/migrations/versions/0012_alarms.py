"""Line alarms: a run of rejected parts, or a high reject rate, at a station (see line.alarms).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alarms",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("line", sa.String(100), nullable=False),
        sa.Column("station", sa.String(100), nullable=False),
        sa.Column("product", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("raised_at", sa.DateTime, nullable=False),
        sa.Column("inspection_id", sa.Integer, nullable=False),
        sa.Column("first_inspection_id", sa.Integer, nullable=False),
        sa.Column("parts", sa.Integer, nullable=False),
        sa.Column("rejected", sa.Integer, nullable=False),
        sa.Column("acked_at", sa.DateTime, nullable=True),
        sa.Column("acked_by", sa.String(100), nullable=True),
        sa.Column("ack_note", sa.Text, nullable=True),
        sa.Column("acked_after_id", sa.Integer, nullable=True),
    )
    op.create_index("ix_alarms_station_acked", "alarms", ["line", "station", "acked_at"])
    op.create_index("ix_alarms_raised_at", "alarms", ["raised_at"])
    # one active alarm of a kind per station, whichever process raises it
    op.create_index("uq_alarms_active", "alarms", ["line", "station", "kind"], unique=True,
                    sqlite_where=sa.text("acked_at IS NULL"), postgresql_where=sa.text("acked_at IS NULL"))


def downgrade() -> None:
    op.drop_index("uq_alarms_active", table_name="alarms")
    op.drop_index("ix_alarms_raised_at", table_name="alarms")
    op.drop_index("ix_alarms_station_acked", table_name="alarms")
    op.drop_table("alarms")
