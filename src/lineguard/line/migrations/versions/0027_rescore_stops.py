"""Why a rescore run stopped: ``rescore_runs.stopped_at`` and ``stop_reason``.

A run had only ``finished_at``, so one that ended on an error, Ctrl-C or SIGTERM read as
"running" in ``GET /api/v1/rescores`` for ever, like one still scoring; now it says when and
why it stopped, and how to go on (run the same command again).

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("rescore_runs", sa.Column("stopped_at", sa.DateTime(), nullable=True))
    op.add_column("rescore_runs", sa.Column("stop_reason", sa.String(2000), nullable=True))


def downgrade() -> None:
    # a plain DROP COLUMN (SQLite 3.35 on), not alembic's table rebuild: rebuilt, the old
    # table could not be dropped under the rescore parts' and results' foreign keys
    for column in ("stop_reason", "stopped_at"):
        op.execute(f"ALTER TABLE rescore_runs DROP COLUMN {column}")
