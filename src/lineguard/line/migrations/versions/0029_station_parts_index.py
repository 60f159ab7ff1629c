"""An index on a station's parts on its line, by id: the line alarms read a station's
parts after the last one they counted (line.alarms: another process on the database
recorded them, a hot folder's watcher beside the server, two servers) and before an
alarm is written, a restarted process reads the station's latest parts back, and an
acknowledgement its newest. Along the primary key (PostgreSQL) or the line's index
(SQLite), a station idle while 300,000 parts of the line's other stations were recorded
read all of them for its next part: 72-107 ms on SQLite, 76-141 ms on PostgreSQL; on
SQLite two processes sending one station's parts by turns read the line's whole history
for each part (25-67 ms a part at 300,000); a restart's read back took 85-230 ms. Along
this one the read takes 0.03 ms (PostgreSQL), a part's whole alarm work under 1 ms on
SQLite and 1-9 ms on PostgreSQL.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-06
"""
from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_inspections_line_station_id", "inspections", ["line", "station", "id"])


def downgrade() -> None:
    op.drop_index("ix_inspections_line_station_id", table_name="inspections")
