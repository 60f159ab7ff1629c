"""Reference photos of good parts per product (line.reference): the photos a product's
first model was trained on, given to the station so that a retrain learns from them and
from the stored parts reviewed good. Without them a retrain learnt from the station's
parts alone (on KolektorSDD: 68 parts, its threshold set by a false alarm, 49 of 52
defects passed).

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0032"
down_revision = "0031"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reference_photos",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("product", sa.String(100), nullable=False),
        sa.Column("line", sa.String(100), nullable=False),
        sa.Column("image_key", sa.String(200), nullable=False),
        sa.Column("image_sha256", sa.String(64), nullable=False),
        sa.Column("filename", sa.String(255), nullable=True),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("added_at", sa.DateTime, nullable=False),
        sa.Column("added_by", sa.String(100), nullable=True),
        sa.UniqueConstraint("product", "line", "image_sha256", name="uq_reference_photos_image"),
    )


def downgrade() -> None:
    op.drop_table("reference_photos")
