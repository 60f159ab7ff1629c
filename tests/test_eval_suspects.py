"""`lineguard eval` training its own model says what `lineguard train` says about the good
folder: photos scoring far above the others (``look at:``), the threshold without them, and
the report (metrics.json, index.html) records them. On KolektorSDD one such photo set the
threshold to 43.8 (26.3 without it) and eval passed every defect without a word."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_in_process

pytest.importorskip("torch")

from lineguard.vision.imageio import load_image, save_png_atomic  # noqa: E402
from lineguard.vision.synth import add_defect  # noqa: E402


def _cli(*args, cwd: Path) -> subprocess.CompletedProcess:
    return run_in_process(*args, cwd=cwd)     # tests/cli_runner.py: the verb in this process


@pytest.fixture(scope="module")
def category_with_bad_parts_in_good(synth_category, tmp_path_factory) -> Path:
    """The synthetic category with 20 training photos, two of them bad parts filed as good."""
    root = tmp_path_factory.mktemp("evalsus") / "cell"
    shutil.copytree(synth_category / "test", root / "test")
    shutil.copytree(synth_category / "ground_truth", root / "ground_truth")
    good = root / "train" / "good"
    good.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i, f in enumerate(sorted((synth_category / "train" / "good").glob("*.png"))[:20]):
        if i in (3, 11):
            bad, _ = add_defect(load_image(f), "missing_coating", rng)
            save_png_atomic(bad, good / f"bad_{i}.png")
        else:
            shutil.copyfile(f, good / f.name)
    return root


def test_eval_names_the_far_out_good_photos_and_records_them(category_with_bad_parts_in_good, tmp_path):
    cat = category_with_bad_parts_in_good
    r = _cli("eval", cat, "--max-train", 100, "--image-size", 128, "--frr", 0.1, "-o", tmp_path / "rep",
             cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    out = " ".join((r.stdout + r.stderr).split())
    # the same lines train prints
    assert f"look at: {cat / 'train' / 'good' / 'bad_3.png'} scores" in out
    assert f"look at: {cat / 'train' / 'good' / 'bad_11.png'} scores" in out
    assert "if those parts are bad, the threshold without them would be" in out
    assert "lineguard train --exclude-suspects" in out
    metrics = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert sorted(Path(s["image"]).name for s in metrics["suspect_good"]) == ["bad_11.png", "bad_3.png"]
    tws = metrics["threshold_without_suspects"]
    assert tws is not None and tws < metrics["threshold"]
    without = metrics["at_threshold_without_suspects"]
    # a lower threshold: never more escapes, never fewer false rejects
    assert without["escapes"] <= metrics["escapes"] and without["false_rejects"] >= metrics["false_rejects"]
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "bad_3.png" in page and f"{tws:.4f}" in page


def test_the_note_after_exclude_suspects_says_to_train_again_without_the_flag(category_with_bad_parts_in_good):
    from lineguard.vision.inspector import Inspector
    insp = Inspector.fit(category_with_bad_parts_in_good / "train" / "good", image_size=128,
                         false_reject_rate=0.1, exclude_suspects=True)
    note = insp.calibration["suspects_note"]
    assert insp.calibration["suspects_excluded"] == 2
    # it read "retrain without exclude_suspects (--exclude-suspects)": as if to add the flag
    assert "train again without the --exclude-suspects flag" in note
    assert "(--exclude-suspects)" not in note


def test_stress_says_no_size_painted_reached_nine_in_ten_caught():
    # the sentence when the fitted curve does not reach 90% caught within the sizes painted;
    # "9 in 10 are not caught at any size painted" read as 90% missed at every size
    from lineguard.vision.stress import kind_sentence
    fit = {"status": "fit", "n": 30, "hits": 10, "a50": 40.0, "a90": 180.0, "a90_95": 400.0,
           "a50_reached": True, "a90_reached": False, "a90_95_reached": False, "size_min": 5.0,
           "size_max": 100.0}
    s = kind_sentence("crack", fit, None, 50.0)
    assert "not caught at any size" not in s
    assert "no size painted (up to 100 px) reaches 9 in 10 caught" in s
    assert "do not rely" not in s           # the sentence says what was measured, not a verdict on the kind
    assert "(10 of 30 caught)" in s
