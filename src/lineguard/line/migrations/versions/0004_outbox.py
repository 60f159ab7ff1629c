"""The outbox (results and events committed with their records, delivered by workers)
and the line signals (what the PLC was told for each trigger, and why).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(36), nullable=False, unique=True),
        sa.Column("event", sa.String(20), nullable=False),
        sa.Column("line", sa.String(100), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_outbox_line_id", "outbox", ["line", "id"])
    op.create_index("ix_outbox_created_at", "outbox", ["created_at"])
    op.create_table(
        "outbox_deliveries",
        sa.Column("outbox_id", sa.Integer, primary_key=True),
        sa.Column("sink", sa.String(200), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("delivered_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "outbox_sinks",
        sa.Column("sink", sa.String(200), primary_key=True),
        sa.Column("since_id", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "line_signals",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("protocol", sa.String(20), nullable=False),
        sa.Column("line", sa.String(100), nullable=False),
        sa.Column("station", sa.String(100), nullable=False),
        sa.Column("trigger_seq", sa.Integer, nullable=False),
        sa.Column("part_tag", sa.Integer, nullable=False),
        sa.Column("recipe_id", sa.Integer, nullable=False),
        sa.Column("product", sa.String(100), nullable=True),
        sa.Column("inspection_id", sa.Integer, nullable=True),
        sa.Column("late_inspection_id", sa.Integer, nullable=True),
        sa.Column("signal", sa.String(8), nullable=False),
        sa.Column("result_code", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("triggered_at", sa.DateTime, nullable=False),
        sa.Column("answered_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_line_signals_line_triggered", "line_signals", ["line", "triggered_at"])


def downgrade() -> None:
    op.drop_index("ix_line_signals_line_triggered", table_name="line_signals")
    op.drop_table("line_signals")
    op.drop_table("outbox_sinks")
    op.drop_table("outbox_deliveries")
    op.drop_index("ix_outbox_created_at", table_name="outbox")
    op.drop_index("ix_outbox_line_id", table_name="outbox")
    op.drop_table("outbox")
