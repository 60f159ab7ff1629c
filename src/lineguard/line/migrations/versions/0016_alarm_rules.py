"""Each station's own alarm rules, where they differ from the process's (line.alarm_rules);
the PLC answer that raised a no_verdict alarm and an index to read a station's newest
answers by (line.alarms).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alarm_rules",
        sa.Column("line", sa.String(100), primary_key=True),
        sa.Column("station", sa.String(100), primary_key=True),
        sa.Column("ng_run", sa.Integer, nullable=True),
        sa.Column("ng_rate", sa.Float, nullable=True),
        sa.Column("rate_window", sa.Integer, nullable=True),
        sa.Column("photo_run", sa.Integer, nullable=True),
        sa.Column("no_verdict_run", sa.Integer, nullable=True),
        sa.Column("escalate_min", sa.Float, nullable=True),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("updated_by", sa.String(100), nullable=True),
    )
    op.add_column("alarms", sa.Column("signal_id", sa.Integer, nullable=True))
    # a station's newest PLC answers, read by the no_verdict alarm with the PLC waiting
    op.create_index("ix_line_signals_station_id", "line_signals", ["line", "station", "id"])


def downgrade() -> None:
    op.drop_index("ix_line_signals_station_id", table_name="line_signals")
    with op.batch_alter_table("alarms") as batch:
        batch.drop_column("signal_id")
    op.drop_table("alarm_rules")
