"""Edge verbs: export (ONNX)."""
from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    pass
