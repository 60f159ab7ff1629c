"""A partial index on the audit sample's parts, for each version's rates on the sample
(the Models page, Compare): those rates count the parts reviewed or in the audit sample,
and ``reviewed OR audit_sample`` read every record (audit_sample had no index): on 2
million parts (SQLite) 0.6-0.7 s, twice the reviewed parts' alone along their index. The
query now reads two branches, the reviewed parts along ``ix_inspections_reviewed`` and the
sample's others along this one (0.31-0.36 s; PostgreSQL goes along both too). Partial: a
few parts in a hundred are in the sample.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # the condition as the queries write it: SQLite uses a partial index only where the
    # query's own condition reads the same ("audit_sample = 1" on SQLite)
    op.create_index("ix_inspections_audit_sample", "inspections", ["product", "created_at"],
                    postgresql_where=sa.text("audit_sample = true"),
                    sqlite_where=sa.text("audit_sample = 1"))


def downgrade() -> None:
    op.drop_index("ix_inspections_audit_sample", table_name="inspections")
