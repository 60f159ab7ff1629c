"""Line signals keep the PLC's part id and recipe id whole: both protocols carry UInt32.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

``line_signals.part_tag`` and ``recipe_id`` were INTEGER, which PostgreSQL stores as
32-bit signed: a part numbered past 2,147,483,647 (a PLC counter that runs long, or an
encoder-derived id) made the line signal fail to insert, so what the PLC was told for
that part was lost. BIGINT holds every UInt32. SQLite's INTEGER is already 64-bit, so
nothing is rebuilt there.
"""
from alembic import op
import sqlalchemy as sa

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_COLUMNS = ("part_tag", "recipe_id")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    for col in _COLUMNS:
        op.alter_column("line_signals", col, type_=sa.BigInteger, existing_type=sa.Integer,
                        existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    # A row holding an id past 2**31 - 1 makes this fail rather than be cut: keep BIGINT then.
    for col in _COLUMNS:
        op.alter_column("line_signals", col, type_=sa.Integer, existing_type=sa.BigInteger,
                        existing_nullable=False)
