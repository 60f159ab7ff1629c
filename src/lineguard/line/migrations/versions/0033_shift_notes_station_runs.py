"""The shift handover: a note per shift and line (shift_notes, only ever added: the newest
is the note, the earlier ones its history with who and when), and each station process's
runs (station_runs: started, last sign of life, stopped cleanly), so the shift report
lists a restart or an outage and how long no part was judged.

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shift_notes",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("shift_start", sa.DateTime(), nullable=False),
        sa.Column("line", sa.String(100), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("written_by", sa.String(100), nullable=True),
        sa.Column("written_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_shift_notes_shift_line", "shift_notes", ["shift_start", "line", "id"])
    op.create_table(
        "station_runs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("process", sa.String(320), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
        sa.Column("stopped_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_station_runs_process_started", "station_runs", ["process", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_station_runs_process_started", table_name="station_runs")
    op.drop_table("station_runs")
    op.drop_index("ix_shift_notes_shift_line", table_name="shift_notes")
    op.drop_table("shift_notes")
