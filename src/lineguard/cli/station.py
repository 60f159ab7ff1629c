"""Station verbs: serve, keys, watch, camera."""
from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    pass
