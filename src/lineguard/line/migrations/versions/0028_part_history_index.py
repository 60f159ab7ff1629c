"""An index on a part's records on its line and product, newest last: the part's other
inspections (a part id sent again with another photo: a re-inspection after rework, a PLC
or scanner repeating an id) are read on every part sent to the API and on each record's
page. Along the unique (part_id, image_sha256) index, a part id frequent on another line
("NOREAD", a camera naming every file "image") read all of that id's records for each
part: 26 ms at 40,000 of them on SQLite, 37 ms on PostgreSQL (a sequential scan), 105 ms
at 160,000; along this one, 0.2 ms.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-06
"""
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_inspections_part_line_id", "inspections", ["part_id", "line", "product", "id"])


def downgrade() -> None:
    op.drop_index("ix_inspections_part_line_id", table_name="inspections")
