"""`recalibrate` keeps the prints of the good photos that set the new threshold.

The README promises that `eval` says how many of the good test photos are photos the model
learned from or set its threshold on. The prints were kept for `train --holdout` only, so a
model recalibrated on part of test/good was evaluated on test/good with no word: its
false-reject figure there is where the threshold was put, not a measurement.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runner import run_in_process

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from lineguard.vision.bundle import CALIBRATION_PHOTOS  # noqa: E402
from lineguard.vision.evaluate import evaluate  # noqa: E402
from lineguard.vision.inspector import Inspector  # noqa: E402


def _some_good(synth_category: Path, folder: Path, which: slice) -> Path:
    folder.mkdir()
    for f in sorted((synth_category / "test" / "good").glob("*.png"))[which]:
        shutil.copy(f, folder / f.name)
    return folder


def _recalibrate(model: Path, good: Path, out: Path) -> None:
    r = run_in_process("recalibrate", model, good, "-o", out, "--frr", "0.2", "--narrow-ok", "--keep-odd-parts",
                       "--threads", "1")
    assert r.returncode == 0, r.stdout + r.stderr


def _notes(model: Path, synth_category: Path) -> str:
    return " ".join(evaluate(Inspector.load(model), synth_category)["notes"])


def test_eval_says_how_many_good_test_photos_set_a_recalibrated_threshold(fitted_model_path, synth_category,
                                                                          tmp_path):
    n_good = len(list((synth_category / "test" / "good").glob("*.png")))
    first = _some_good(synth_category, tmp_path / "first", slice(0, 6))
    _recalibrate(fitted_model_path, first, tmp_path / "first.lgm")
    assert len(Inspector.load(tmp_path / "first.lgm").calibration[CALIBRATION_PHOTOS]) == 6
    notes = _notes(tmp_path / "first.lgm", synth_category)
    assert f"6 of the {n_good} good test photos are photos that set its threshold" in notes, notes
    assert "flatter" in notes

    # recalibrated again on others: the threshold is theirs now, and so are the prints kept
    others = _some_good(synth_category, tmp_path / "others", slice(6, None))
    _recalibrate(tmp_path / "first.lgm", others, tmp_path / "again.lgm")
    notes = _notes(tmp_path / "again.lgm", synth_category)
    assert f"{n_good - 6} of the {n_good} good test photos are photos that set its threshold" in notes, notes


_NO_TORCH = """
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "scipy"):
            raise ImportError(name + " is blocked in this test")
sys.meta_path.insert(0, _Block())
"""


def test_an_export_recalibrated_on_the_edge_keeps_them(exported, synth_category, tmp_path):
    """On the edge install (no torch, no scipy): recalibrate the .onnx, then eval it."""
    some = _some_good(synth_category, tmp_path / "some", slice(0, 5))
    out = tmp_path / "re.onnx"
    code = _NO_TORCH + f"""
import json
from lineguard import Inspector
from lineguard.cli import app
from lineguard.vision.evaluate import evaluate
app(["recalibrate", {str(exported)!r}, {str(some)!r}, "--frr", "0.2", "--narrow-ok", "--keep-odd-parts",
     "--threads", "1", "-o", {str(out)!r}], standalone_mode=False)
report = evaluate(Inspector.load({str(out)!r}), {str(synth_category)!r})
print(json.dumps({{"notes": report["notes"],
                  "blocked_loaded": sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "scipy"))}}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    res = json.loads(done.stdout.strip().splitlines()[-1])
    assert res["blocked_loaded"] == []
    n_good = len(list((synth_category / "test" / "good").glob("*.png")))
    assert f"5 of the {n_good} good test photos are photos that set its threshold" in " ".join(res["notes"])
    assert len(Inspector.load(out).calibration[CALIBRATION_PHOTOS]) == 5
