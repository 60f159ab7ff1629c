"""Re-scored archives in the station database: runs, their results, the parts loaded.

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-01

Tables of their own, not ``inspections``: a re-score of an archive must not move the
live counters, the shift's defect rate or the SPC charts (see docs/scale.md).
"""
from alembic import op
import sqlalchemy as sa

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "rescore_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("out", sa.String(2048), nullable=False),
        sa.Column("images", sa.Text, nullable=False),
        sa.Column("model_id", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(100), nullable=False),
        sa.Column("mode", sa.String(200), nullable=False),
        sa.Column("listed", sa.Integer, nullable=False),
        sa.Column("counts", sa.JSON, nullable=False),
        sa.Column("starts", sa.Integer, nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime, nullable=True),
        sa.UniqueConstraint("out", "model_id", name="uq_rescore_runs_out_model"),
    )
    op.create_table(
        "rescore_results",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("rescore_runs.id"), nullable=False),
        sa.Column("path", sa.String(2048), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("mtime_ns", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("verdict", sa.String(16), nullable=True),
        sa.Column("threshold", sa.Float, nullable=True),
        sa.Column("review_threshold", sa.Float, nullable=True),
        sa.Column("pixel_threshold", sa.Float, nullable=True),
        sa.Column("n_regions", sa.Integer, nullable=True),
        sa.Column("largest_region_area", sa.BigInteger, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("scored_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("run_id", "path", name="uq_rescore_results_run_path"),
    )
    op.create_index("ix_rescore_results_run_score", "rescore_results", ["run_id", "score"])
    op.create_index("ix_rescore_results_run_verdict", "rescore_results", ["run_id", "verdict"])
    op.create_table(
        "rescore_parts",
        sa.Column("run_id", sa.Integer, sa.ForeignKey("rescore_runs.id"), primary_key=True),
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("loaded_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rescore_parts")
    op.drop_index("ix_rescore_results_run_verdict", table_name="rescore_results")
    op.drop_index("ix_rescore_results_run_score", table_name="rescore_results")
    op.drop_table("rescore_results")
    op.drop_table("rescore_runs")
