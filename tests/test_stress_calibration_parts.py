"""`lineguard stress` on the good parts that set the model's reject threshold.

A model trained with ``--holdout`` sets its threshold on the held-out good parts: by
construction it sits above all but its target share of their scores. Stressed on its own
training folder, the learnt photos were left out and the study ran on the 12 held-out ones:
"0 judged NG unpainted (false-reject rate 0.0%)" beside the calibration's promise, a figure
set, not measured. Training now keeps their prints, and stress leaves them out as it leaves
out the photos the model learned from (recalibrate refuses those likewise).
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cli_runner import run_in_process


def _cli(*args, cwd: Path) -> subprocess.CompletedProcess:
    return run_in_process(*args, cwd=cwd)     # tests/cli_runner.py: the verb in this process


@pytest.fixture(scope="module")
def held_out_model(synth_category, tmp_path_factory) -> Path:
    """Trained by the CLI with 30% of the good photos held out to set the threshold."""
    pytest.importorskip("torch")
    out = tmp_path_factory.mktemp("holdout") / "cell.lgm"
    r = _cli("train", synth_category / "train" / "good", "-o", out, "--image-size", 128, "--holdout", 0.3,
             "--frr", 0.1, "--threads", 1, cwd=out.parent)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "threshold from 12 held out" in r.stdout
    return out


def _stress(model: Path, folder: Path, cwd: Path) -> subprocess.CompletedProcess:
    return _cli("stress", model, folder, "-o", "report", "--per-kind", 4, "--kinds", "spot", "--threads", 1,
                "--no-store", cwd=cwd)


def test_stress_on_the_training_folder_of_a_held_out_model_is_refused(held_out_model, synth_category, tmp_path):
    r = _stress(held_out_model, synth_category / "train" / "good", tmp_path)
    text = " ".join((r.stdout + r.stderr).split())
    # before: exit 0, "12 good parts, 0 judged NG unpainted (false-reject rate 0.0%)"
    assert r.returncode == 2, text
    assert "all 40 readable photos are photos this model learned from or that set its reject threshold" in text
    assert "false-reject rate 0.0%" not in text
    assert not (tmp_path / "report").exists()


def test_stress_leaves_out_the_photos_that_set_the_threshold(held_out_model, synth_category, tmp_path):
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for f in sorted((synth_category / "train" / "good").glob("*.png")):
        (mixed / f"train_{f.name}").write_bytes(f.read_bytes())
    new = sorted((synth_category / "test" / "good").glob("*.png"))
    for f in new:
        (mixed / f"new_{f.name}").write_bytes(f.read_bytes())
    r = _stress(held_out_model, mixed, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    err = " ".join(r.stderr.split())
    assert "left out: 12 photo(s) that set the reject threshold (held out at training" in err
    assert "left out: 28 photo(s) the model learned from" in err
    assert r.stdout.startswith(f"{len(new)} good parts")
    pod = json.loads((tmp_path / "report" / "pod.json").read_text())
    assert pod["n_good"] == len(new)
    assert pod["calibration_left_out"]["count"] == 12 and pod["learnt_left_out"]["count"] == 28
    assert all(n.startswith(str(mixed / "train_")) for n in pod["calibration_left_out"]["images"])


def test_a_held_out_threshold_without_prints_is_warned_of(held_out_model, synth_category, tmp_path):
    """A model that cannot tell its calibration parts (trained before they were kept, by the
    Python API, or recalibrated on parts it keeps no prints of) says so in the study."""
    from lineguard.vision.bundle import CALIBRATION_PHOTOS
    from lineguard.vision.inspector import Inspector
    insp = Inspector.load(held_out_model)
    assert len(insp.calibration[CALIBRATION_PHOTOS]) == 12
    del insp.calibration[CALIBRATION_PHOTOS]
    older = tmp_path / "older.lgm"
    insp.save(older)
    r = _stress(older, synth_category / "test" / "good", tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    err = " ".join(r.stderr.split())
    assert "threshold was set on 12 good part(s) it did not learn from, and it keeps no prints of them" in err
    # a model whose parts are known (here: none of the new ones) gives no such warning
    (tmp_path / "again").mkdir()
    r = _stress(held_out_model, synth_category / "test" / "good", tmp_path / "again")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "keeps no prints of them" not in r.stderr


def test_info_counts_the_calibration_prints(held_out_model):
    """`lineguard info` on an edge install shows how many, not a list of hashes."""
    from lineguard.vision import bundle
    from lineguard.vision.inspector import Inspector
    assert bundle.describe(held_out_model)["calibration"][bundle.CALIBRATION_PHOTOS] == 12
    # and with torch (`lineguard info`, the station's model list): a count too
    insp = Inspector.load(held_out_model)
    assert insp.describe()["calibration"][bundle.CALIBRATION_PHOTOS] == 12
    assert len(insp.calibration[bundle.CALIBRATION_PHOTOS]) == 12      # the model itself keeps them
