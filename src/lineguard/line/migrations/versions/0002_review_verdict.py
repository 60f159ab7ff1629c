"""Room for the REVIEW verdict, and the review threshold each inspection was judged by.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

``verdict`` was VARCHAR(4) (OK, NG); "REVIEW" needs 6, widened to 16. On PostgreSQL
widening a varchar changes the catalogue only (no table rewrite, the index stays).
SQLite does not enforce VARCHAR lengths (the column has TEXT affinity), so there the
column is left as it is: changing its declared type would mean copying the whole
inspections table at start-up for nothing.
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _is_sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    if not _is_sqlite():
        op.alter_column("inspections", "verdict", existing_type=sa.String(4), type_=sa.String(16),
                        existing_nullable=False)
    # nullable: records from before review bands, and models without one, have none
    op.add_column("inspections", sa.Column("review_threshold", sa.Float, nullable=True))


def downgrade() -> None:
    bind = op.get_bind()
    n = bind.execute(sa.text("SELECT COUNT(*) FROM inspections WHERE verdict = 'REVIEW'")).scalar()
    if n:
        raise RuntimeError(f"{n} inspections have the verdict REVIEW, which the older schema cannot hold; "
                           "export or relabel them before downgrading")
    with op.batch_alter_table("inspections") as batch:
        batch.drop_column("review_threshold")
    if not _is_sqlite():
        op.alter_column("inspections", "verdict", existing_type=sa.String(16), type_=sa.String(4),
                        existing_nullable=False)
