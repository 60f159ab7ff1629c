"""Initial station tables: inspections, model registry, API keys, jobs.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""
from alembic import op
import sqlalchemy as sa

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inspections",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("part_id", sa.String(200), nullable=False),
        sa.Column("line", sa.String(100), nullable=False),
        sa.Column("station", sa.String(100), nullable=False),
        sa.Column("product", sa.String(100), nullable=False),
        sa.Column("lot", sa.String(200)),
        sa.Column("serial", sa.String(200)),
        sa.Column("source", sa.String(50), nullable=False),
        sa.Column("verdict", sa.String(4), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("pixel_threshold", sa.Float, nullable=False),
        sa.Column("model_id", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(100), nullable=False),
        sa.Column("registry_version", sa.Integer),
        sa.Column("regions", sa.JSON),
        sa.Column("timings_ms", sa.JSON),
        sa.Column("image_sha256", sa.String(64), nullable=False),
        sa.Column("image_width", sa.Integer, nullable=False),
        sa.Column("image_height", sa.Integer, nullable=False),
        sa.Column("image_key", sa.String(200)),
        sa.Column("heatmap_key", sa.String(200)),
        sa.Column("heatmap_scale", sa.Float),
        sa.Column("overlay_key", sa.String(200)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("reviewed", sa.Boolean, nullable=False),
        sa.Column("review_label", sa.String(20)),
        sa.Column("reviewer", sa.String(100)),
        sa.Column("review_note", sa.Text),
        sa.Column("reviewed_at", sa.DateTime),
        sa.UniqueConstraint("part_id", "image_sha256", name="uq_inspections_part_image"),
    )
    op.create_index("ix_inspections_verdict", "inspections", ["verdict"])
    op.create_index("ix_inspections_created_at", "inspections", ["created_at"])
    op.create_index("ix_inspections_reviewed", "inspections", ["reviewed"])
    op.create_index("ix_inspections_line_created", "inspections", ["line", "created_at"])
    op.create_index("ix_inspections_product_created", "inspections", ["product", "created_at"])

    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("product", sa.String(100), nullable=False),
        sa.Column("line", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("model_id", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(100), nullable=False),
        sa.Column("file_key", sa.String(200), nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("uploaded_at", sa.DateTime, nullable=False),
        sa.Column("uploaded_by", sa.String(100)),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("activated_at", sa.DateTime),
        sa.UniqueConstraint("product", "line", "version", name="uq_model_versions_version"),
    )
    op.create_index("ix_model_versions_product", "model_versions", ["product"])

    op.create_table(
        "model_activations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("product", sa.String(100), nullable=False),
        sa.Column("line", sa.String(100), nullable=False),
        sa.Column("model_version_id", sa.Integer, sa.ForeignKey("model_versions.id"), nullable=False),
        sa.Column("activated_at", sa.DateTime, nullable=False),
        sa.Column("activated_by", sa.String(100)),
    )

    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("prefix", sa.String(16), nullable=False, unique=True),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("name", sa.String(100)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("revoked", sa.Boolean, nullable=False),
    )

    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("progress", sa.Float, nullable=False),
        sa.Column("message", sa.Text),
        sa.Column("params", sa.JSON),
        sa.Column("result", sa.JSON),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime),
    )


def downgrade() -> None:
    for name in ("jobs", "api_keys", "model_activations", "model_versions", "inspections"):
        op.drop_table(name)
