"""An index on a part's serial, by id: the inspections list filters by serial (a PLC's
PartTag, which a rework triggers again under a new part id), and the operator app's part
search asks for it on every search. With none, every list, count and export by serial read
the whole table: 25-29 ms at 100,000 parts, 460-507 ms at 1,000,000 on SQLite; along this
one 0.07-0.08 ms. Partial (serials that are set), as the defect type's.

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_inspections_serial_id", "inspections", ["serial", "id"],
                    postgresql_where=sa.text("serial IS NOT NULL"), sqlite_where=sa.text("serial IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_inspections_serial_id", table_name="inspections")
