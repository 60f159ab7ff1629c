"""Users (name + scrypt password hash + role) and sign-in sessions (cookie token, hashed).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(100), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "sign_in_sessions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("key_id", sa.Integer, sa.ForeignKey("api_keys.id"), nullable=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_sign_in_sessions_key_id", "sign_in_sessions", ["key_id"])
    op.create_index("ix_sign_in_sessions_user_id", "sign_in_sessions", ["user_id"])
    op.create_index("ix_sign_in_sessions_expires_at", "sign_in_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_sign_in_sessions_expires_at", table_name="sign_in_sessions")
    op.drop_index("ix_sign_in_sessions_user_id", table_name="sign_in_sessions")
    op.drop_index("ix_sign_in_sessions_key_id", table_name="sign_in_sessions")
    op.drop_table("sign_in_sessions")
    op.drop_table("users")
