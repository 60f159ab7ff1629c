"""Alembic environment: the station passes its own connection (see lineguard.line.db)."""
from __future__ import annotations

from alembic import context

from lineguard.line.orm import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only via lineguard.line.db.upgrade
    raise RuntimeError("run migrations through lineguard.line.db.Database.upgrade()")

context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
