"""A walk of the README's stress-test section: copies of one photo counted as parts, scratches
thinner than the 1.25 model-input px promised on photos no larger than the input, a damaged
summary beside a model hiding the model from `lineguard info`, thumbnails refusing a whole
folder unnamed, `synth --help`'s default, and photos of two sizes pooled without a word."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from cli_runner import run_in_process
from lineguard.vision.result import InspectionResult, Verdict
from lineguard.vision.synth import make_part


class _Blind:
    """A stand-in model that catches nothing (every part OK)."""

    threshold = review_threshold = 1.0

    def __init__(self, preprocess=None):
        if preprocess is not None:
            self.preprocess = preprocess

    def inspect_batch(self, images, **_):
        return [InspectionResult(verdict=Verdict.OK, score=0.0, threshold=1.0, pixel_threshold=1.0,
                                 anomaly_map=np.zeros(im.shape[:2], np.float32)) for im in images]


def _good(n: int, size: int = 64, first: int = 0) -> list[np.ndarray]:
    return [make_part(s, size)[0] for s in range(first, first + n)]


def test_copies_of_one_photo_count_once_in_the_few_parts_warning():
    """10 held-out photos copied 4 times (40 files) read "40 good parts" with no warning."""
    from lineguard.vision.stress import run_stress
    ten = _good(10)
    good = [g.copy() for _ in range(4) for g in ten]
    study = run_stress(_Blind(), good, kinds=["spot"], per_kind=8, seed=0)
    assert study["warnings"], "40 files of 10 photos: 10 parts, under the 30 the README asks for"
    w = study["warnings"][0]
    assert "only 10 different good photo(s)" in w and "30 more were copies" in w and "10 part(s)" in w
    assert study["photo_copies"] == 30
    # 40 different photos: no warning, no copies
    study = run_stress(_Blind(), _good(40), kinds=["spot"], per_kind=8, seed=0)
    assert study["photo_copies"] == 0 and study["warnings"] == []


@pytest.mark.parametrize("side", [128, 124])      # the input's size, and a photo a little smaller
def test_scratches_are_at_least_the_promised_input_width_on_photos_no_larger_than_the_input(side):
    from lineguard.vision.stress import LINE_WIDTH_INPUT_PX, line_width, painting_for, run_stress
    pre = SimpleNamespace(input_hw=(128, 128), roi=None, orient="none", resize="stretch")
    good = _good(3, side)
    painting = painting_for(SimpleNamespace(preprocess=pre), good)
    scale = painting["photo_px_per_input_px"][0]
    for kind in ("scratch", "crack"):
        assert line_width(kind, painting, 0) / scale >= LINE_WIDTH_INPUT_PX - 1e-9, kind
    study = run_stress(_Blind(pre), good, kinds=["scratch"], per_kind=8, seed=0)
    # pod.json agrees with itself: the width painted is not under the floor it states
    assert study["kinds"]["scratch"]["line_width_input_px"] >= study["painting"]["line_width_input_px"]


def _model_here(fitted_model_path: Path, tmp_path: Path) -> Path:
    model = tmp_path / "cell.lgm"
    shutil.copyfile(fitted_model_path, model)
    return model


def test_info_shows_the_model_beside_a_damaged_summary(fitted_model_path, tmp_path):
    """A MODEL.pod.json cut short (a full disk) made `info MODEL` exit 2 with no model shown."""
    model = _model_here(fitted_model_path, tmp_path)
    damaged = tmp_path / "cell.lgm.pod.json"
    damaged.write_text('{"kind": "lineguard.pod_summary", "n_good": 40, "kin')
    r = run_in_process("info", model, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["model_id"] and "stress_test" not in info and "stress_test_unreadable" in info
    assert "warning:" in r.stderr and "not readable" in r.stderr and "lineguard stress" in r.stderr
    # a summary whole as JSON but missing its fields: the same
    damaged.write_text('{"kind": "lineguard.stress"}')
    r = run_in_process("info", model, cwd=tmp_path)
    assert r.returncode == 0 and "not readable" in r.stderr, r.stderr
    # the file the user named with --pod is still refused
    r = run_in_process("info", model, "--pod", damaged, cwd=tmp_path)
    assert r.returncode == 2 and "not a readable stress-test summary" in r.stderr


def test_stress_leaves_out_and_names_thumbnails(fitted_model_path, synth_category, tmp_path):
    """40 good photos + 3 thumbnails 12x12 refused the folder: "3 good photo(s) are under 32 px", no names."""
    model = _model_here(fitted_model_path, tmp_path)
    folder = tmp_path / "good"
    shutil.copytree(synth_category / "test" / "good", folder)
    for i in range(3):
        Image.fromarray(np.full((12, 12, 3), 120, np.uint8)).save(folder / f"thumb_{i}.png")
    r = run_in_process("stress", model, folder, "-o", "report", "--per-kind", 4, "--kinds", "spot",
                       "--threads", 1, "--no-store", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "left out:" in r.stderr and "3 photo(s) under 32 px" in r.stderr and "thumb_0.png" in r.stderr
    pod = json.loads((tmp_path / "report" / "pod.json").read_text())
    assert pod["small_left_out"]["count"] == 3 and pod["n_good"] == len(list((synth_category / "test" /
                                                                               "good").iterdir()))
    # only thumbnails: too few remain, refused as before
    only = tmp_path / "thumbs"
    only.mkdir()
    for i in range(3):
        Image.fromarray(np.full((12, 12, 3), 120, np.uint8)).save(only / f"t{i}.png")
    r = run_in_process("stress", model, only, "-o", "r2", "--per-kind", 4, "--kinds", "spot", cwd=tmp_path)
    assert r.returncode == 2 and "needs at least 2" in r.stderr
    assert "0 readable good image(s) of 32 px or more on a side (3 smaller left out)" in r.stderr, r.stderr


def test_run_stress_names_the_photos_too_small():
    from lineguard.vision.stress import run_stress
    good = _good(4) + [np.zeros((12, 12, 3), np.uint8)]
    with pytest.raises(ValueError, match=r"under 32 px.*tiny\.png"):
        run_stress(_Blind(), good, kinds=["spot"], per_kind=8, sources=[f"p{i}.png" for i in range(4)] + ["tiny.png"])


def test_synth_help_gives_the_real_default_of_n_test_good():
    r = run_in_process("synth", "--help")
    assert r.returncode == 0
    assert "n_good/4, at least 10" in r.stdout


def test_photos_of_two_sizes_are_warned_about():
    """Two camera resolutions of one shape pooled: sizes in px mixed two scales without a word."""
    from lineguard.vision.stress import run_stress
    good = _good(30, 64) + _good(10, 96, first=30)
    study = run_stress(_Blind(), good, kinds=["spot"], per_kind=8, seed=0)
    w = [x for x in study["warnings"] if "sizes" in x]
    assert w and "30 at 64x64 px" in w[0] and "10 at 96x96 px" in w[0], study["warnings"]
