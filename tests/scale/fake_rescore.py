"""The ``lineguard`` CLI with the torch-free FakeInspector standing in for every model.

    python tests/scale/fake_rescore.py rescore --model fake.json --images DIR --out r.parquet ...

So a test can run (and kill -9) a real ``lineguard rescore`` process in a second,
without fitting a model. Score = mean brightness; see tests/server/fake_inspector.py.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from fake_inspector import FakeInspector  # noqa: E402


class BatchFake(FakeInspector):
    def inspect_batch(self, images, batch_size: int = 16):
        return [self.inspect(i) for i in images]


def load_fake(model, threads=None, **_kw) -> BatchFake:
    """``Inspector.load`` for fake model files (bytes or a path)."""
    if isinstance(model, (bytes, bytearray)):
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
            f.write(model)
        model = f.name
    return BatchFake.load(model)


def use_fake_models() -> None:
    from lineguard.vision.inspector import Inspector
    Inspector.load = staticmethod(load_fake)


if __name__ == "__main__":
    use_fake_models()
    from lineguard.cli import app
    app(prog_name="lineguard")
