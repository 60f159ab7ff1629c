"""Review history, defect types per product, the audit sample, shadow runs and the
walk back through activations.

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-01

- ``reviews``: every review of a part, appended (the inspection keeps the latest).
- ``inspections.defect_type`` (latest review's) and ``inspections.audit_sample`` (kept
  at random whatever the verdict: the unbiased sample retraining may learn from).
- ``products``: per-product settings, first the list of defect types reviewers choose from.
- ``model_shadows`` / ``shadow_results``: a candidate version judged beside the active one.
- ``model_versions``: thresholds, detector and training set, stored at upload so a list
  of versions needs no model loaded.
- ``model_activations.rolled_back_at``: an activation undone by a rollback, skipped by
  the next one, so rollbacks walk back instead of toggling.
"""
from alembic import op
import sqlalchemy as sa

revision = "0006"
down_revision = "0005"  # chained after auth's 0005 at the merge
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("inspections", sa.Column("defect_type", sa.String(100), nullable=True))
    op.add_column("inspections", sa.Column("audit_sample", sa.Boolean, nullable=False,
                                           server_default=sa.false()))
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("inspection_id", sa.Integer, sa.ForeignKey("inspections.id"), nullable=False),
        sa.Column("label", sa.String(20), nullable=False),
        sa.Column("defect_type", sa.String(100), nullable=True),
        sa.Column("reviewer", sa.String(100), nullable=True),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("verdict_at_review", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_reviews_inspection_id", "reviews", ["inspection_id", "id"])
    op.create_table(
        "products",
        sa.Column("product", sa.String(100), primary_key=True),
        sa.Column("defect_types", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("updated_by", sa.String(100), nullable=True),
    )
    op.create_table(
        "model_shadows",
        sa.Column("product", sa.String(100), primary_key=True),
        sa.Column("line", sa.String(100), primary_key=True),
        sa.Column("model_version_id", sa.Integer, sa.ForeignKey("model_versions.id"), nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("started_by", sa.String(100), nullable=True),
    )
    op.create_table(
        "shadow_results",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("inspection_id", sa.Integer, sa.ForeignKey("inspections.id"), nullable=False),
        sa.Column("model_version_id", sa.Integer, sa.ForeignKey("model_versions.id"), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("model_version_id", "inspection_id", name="uq_shadow_results_version_part"),
    )
    op.create_index("ix_shadow_results_inspection_id", "shadow_results", ["inspection_id"])
    # nullable: versions uploaded before this revision have none recorded
    op.add_column("model_versions", sa.Column("threshold", sa.Float, nullable=True))
    op.add_column("model_versions", sa.Column("review_threshold", sa.Float, nullable=True))
    op.add_column("model_versions", sa.Column("detector", sa.String(50), nullable=True))
    op.add_column("model_versions", sa.Column("train_images", sa.Integer, nullable=True))
    op.add_column("model_versions", sa.Column("trained_from", sa.Text, nullable=True))
    op.add_column("model_activations", sa.Column("rolled_back_at", sa.DateTime, nullable=True))
    op.add_column("model_activations", sa.Column("rolled_back_by", sa.String(100), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): a batch copy of model_versions
    # would drop a table model_activations still points at.
    op.drop_index("ix_shadow_results_inspection_id", table_name="shadow_results")
    op.drop_table("shadow_results")
    op.drop_table("model_shadows")
    op.drop_table("products")
    op.drop_index("ix_reviews_inspection_id", table_name="reviews")
    op.drop_table("reviews")
    op.drop_column("model_activations", "rolled_back_by")
    op.drop_column("model_activations", "rolled_back_at")
    for col in ("trained_from", "train_images", "detector", "review_threshold", "threshold"):
        op.drop_column("model_versions", col)
    op.drop_column("inspections", "audit_sample")
    op.drop_column("inspections", "defect_type")
