"""Indexes on a station's production parts of each verdict by time, and on its test parts
by time (partial: each part is in one of the two): the line view polls its shift counters
every few seconds. Grouped along the creation time, SQLite read every part of the shift and
sorted it by line, station and verdict on each poll: the statement took 68 ms at 50,000
parts and 352-779 ms at 200,000, the summary 243-354 ms and 0.9-1.4 s; the test parts'
count read the whole table (40-150 ms at 100,000-300,000 rows, whatever the shift). Along
these each (line, station, verdict) is counted where its parts lie together: 2-3 ms at
1,000-10,000 parts, 6 ms at 50,000, 34-36 ms at 200,000; the summary 15-43 ms. PostgreSQL
goes on grouping (deleted parts' index entries stay until VACUUM, and the walk along these
stepped over them: server.routers.live.shift_counts); the test parts' index serves it too.
python -m benchmarks.line_summary_bench.

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_inspections_production_verdict", "inspections", ["line", "station", "verdict", "created_at"],
                    postgresql_where=sa.text("test_part IS NULL"), sqlite_where=sa.text("test_part IS NULL"))
    op.create_index("ix_inspections_test_station", "inspections", ["line", "station", "created_at"],
                    postgresql_where=sa.text("test_part IS NOT NULL"), sqlite_where=sa.text("test_part IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_inspections_test_station", table_name="inspections")
    op.drop_index("ix_inspections_production_verdict", table_name="inspections")
