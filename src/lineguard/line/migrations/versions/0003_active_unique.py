"""One active model version per product/line, enforced by the database.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

A partial unique index (SQLite and PostgreSQL both have them): rows with active false
are not indexed, so any number of inactive versions may exist. A database where the
old race left two versions active keeps the one activated last.
"""
import datetime as dt

from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    versions = sa.table("model_versions", sa.column("id", sa.Integer), sa.column("product", sa.String),
                        sa.column("line", sa.String), sa.column("active", sa.Boolean),
                        sa.column("activated_at", sa.DateTime))
    conn = op.get_bind()
    rows = conn.execute(sa.select(versions.c.id, versions.c.product, versions.c.line, versions.c.activated_at)
                        .where(versions.c.active.is_(True))).all()
    keep: dict = {}
    for row in rows:
        best = keep.get((row.product, row.line))
        if best is None or (row.activated_at or dt.datetime.min, row.id) > (best.activated_at or dt.datetime.min,
                                                                             best.id):
            keep[(row.product, row.line)] = row
    extra = [r.id for r in rows if keep[(r.product, r.line)].id != r.id]
    if extra:
        conn.execute(versions.update().where(versions.c.id.in_(extra)).values(active=False))
    op.create_index("uq_model_versions_one_active", "model_versions", ["product", "line"], unique=True,
                    sqlite_where=sa.text("active"), postgresql_where=sa.text("active"))


def downgrade() -> None:
    op.drop_index("uq_model_versions_one_active", table_name="model_versions")
