"""DESIGN.md's layers, checked: a module imports only its own layer and the ones below
(vision < runtime < line < server < cli), lazily or not."""
from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "src" / "lineguard"
LAYERS = ["vision", "runtime", "line", "server", "cli"]


def _imported_layers(source: str, rel: tuple[str, ...]) -> set[str]:
    """Layers a module imports; ``rel``: its path parts under lineguard/, no suffix."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = list(rel[:-1])[: len(rel) - node.level]
                names = [".".join(["lineguard", *base, *(node.module or "").split(".")]).rstrip(".")]
                if not node.module:
                    names = [f"{names[0]}.{a.name}" for a in node.names]
            else:
                names = [node.module or ""]
        for n in names:
            parts = n.split(".")
            if parts[0] == "lineguard" and len(parts) > 1 and parts[1] in LAYERS:
                found.add(parts[1])
    return found


def test_imports_point_down():
    wrong = []
    for layer in LAYERS:
        for path in sorted((PKG / layer).rglob("*.py")):
            for other in _imported_layers(path.read_text(), path.relative_to(PKG).with_suffix("").parts):
                if LAYERS.index(other) > LAYERS.index(layer):
                    wrong.append(f"{path.relative_to(PKG)} ({layer}) imports lineguard.{other}")
    assert not wrong, "\n".join(wrong)


def test_the_checker_sees_every_form_of_import():
    probe = ("vision", "detectors", "probe")
    assert _imported_layers("from ...runtime import onnx_file", probe) == {"runtime"}
    assert _imported_layers("def f():\n    from ..line import x", probe) == {"vision"}  # lineguard.vision.line
    assert _imported_layers("from .. import bundle", probe) == {"vision"}
    assert _imported_layers("import lineguard.server.app", probe) == {"server"}
