"""Recalibrating on a narrow batch: good photos from one lot, shift or lamp setting. On
magnetic tiles, a model recalibrated on its 40 darkest held-out photos rejected 13% of the
other good tiles (0.2% after 40 taken at random), with exit 0 and only the generic
"check" line. Now `recalibrate` compares what the photos cover with what the model learnt
from (its photo range) and refuses a narrow batch unless told (--narrow-ok)."""
from __future__ import annotations

import copy

import numpy as np
import pytest
from cli_runner import run_in_process

pytest.importorskip("torch")

from lineguard.vision.imageio import load_image, save_png_atomic  # noqa: E402
from lineguard.vision.synth import write_dataset  # noqa: E402


@pytest.fixture(scope="module")
def line_photos(tmp_path_factory):
    """Good parts from the line since training (another seed: photos the model did not
    learn from), as folders: the darkest quarter (one lamp setting), the quarter nearest
    the middle brightness (one lot), and a batch taken across the whole brightness range
    (every third photo in brightness order)."""
    root = tmp_path_factory.mktemp("narrow")
    fresh = write_dataset(root / "line", n_good=60, n_defect=0, size=128, seed=7, n_test_good=0)
    photos = sorted((fresh / "train" / "good").glob("*.png"))
    by_brightness = sorted(photos, key=lambda p: float(load_image(p).mean()))
    folders = {}
    for name, chosen in (("one_lamp", by_brightness[:15]), ("one_lot", by_brightness[22:37]),
                         ("across_the_line", by_brightness[::3])):
        folders[name] = root / name
        folders[name].mkdir()
        for p in chosen:
            (folders[name] / p.name).write_bytes(p.read_bytes())
    return folders


def _recalibrate(model, folder, out, *flags):
    # tests/cli_runner.py: the verb in this process; --keep-odd-parts so a part scoring far
    # above the others (the other refusal) does not decide what these tests see
    return run_in_process("recalibrate", model, folder, "-o", out, "--threads", 1, "--keep-odd-parts", *flags,
                          cwd=out.parent)


def test_the_record_says_what_a_batch_covers_of_the_training_photos(fitted_inspector, line_photos):
    narrow = copy.deepcopy(fitted_inspector).recalibrate(line_photos["one_lamp"])
    cov = narrow["photo_coverage"]
    assert "brightness" in cov["narrow"], cov
    assert cov["brightness"]["covered"] < cov["bar"] < cov["expected"]
    assert cov["brightness"]["learnt"] == fitted_inspector.info["photo_range"]["brightness"][2:]
    wide = copy.deepcopy(fitted_inspector).recalibrate(line_photos["across_the_line"])
    assert wide["photo_coverage"]["narrow"] == [], wide["photo_coverage"]
    # trained with --no-photo-check (or before the check): nothing to compare the batch with
    unchecked = copy.deepcopy(fitted_inspector)
    unchecked.info["photo_range"] = None
    assert "photo_coverage" not in unchecked.recalibrate(line_photos["one_lamp"])


def test_recalibrate_refuses_a_narrow_batch_and_says_what_it_covers(fitted_model_path, line_photos, tmp_path):
    out = tmp_path / "v2.lgm"
    r = _recalibrate(fitted_model_path, line_photos["one_lamp"], out)
    assert r.returncode == 2, r.stderr
    assert not out.exists()
    err = " ".join(r.stderr.split())
    assert "narrow batch" in err and "brightness" in err
    assert "where the model learnt from" in err                  # what it covers against what it learnt
    assert "rejected" in err                                     # the false-reject risk
    assert "several lots, shifts and lamp settings" in err and "--narrow-ok" in err   # the ways forward
    assert "Nothing written" in err
    # the same model on good parts from across the line: written, nothing said of it
    r = _recalibrate(fitted_model_path, line_photos["across_the_line"], out)
    assert r.returncode == 0, r.stderr
    assert out.exists() and "narrow" not in r.stderr


def test_narrow_ok_writes_it_and_still_says_so(fitted_inspector, fitted_model_path, line_photos, tmp_path):
    out = tmp_path / "v2.lgm"
    r = _recalibrate(fitted_model_path, line_photos["one_lamp"], out, "--narrow-ok")
    assert r.returncode == 0, r.stderr
    assert out.exists()
    assert "warning:" in r.stderr and "narrow batch" in r.stderr and "--narrow-ok" in r.stderr
    # a model without a photo range (--no-photo-check): nothing to judge, nothing new said
    unchecked = copy.deepcopy(fitted_inspector)
    unchecked.info["photo_range"] = None
    model = unchecked.save(tmp_path / "unchecked.lgm")
    r = _recalibrate(model, line_photos["one_lamp"], tmp_path / "v3.lgm")
    assert r.returncode == 0, r.stderr
    assert "narrow" not in r.stderr


def _under_new_lamp(folder, to):
    """A planned brighter lamp: the same parts, every photo 25% brighter."""
    to.mkdir()
    for p in sorted(folder.glob("*.png")):
        save_png_atomic(np.clip(load_image(p).astype(np.float32) * 1.25, 0, 255).astype(np.uint8), to / p.name)
    return to


def test_photo_range_judges_the_spread_not_where_the_new_lamp_puts_it(fitted_model_path, line_photos, tmp_path):
    # with --photo-range the range is learnt again from these photos, so a batch all
    # brighter than training is no fault; one lot under the new lamp still is narrow
    out = tmp_path / "v2.lgm"
    r = _recalibrate(fitted_model_path, _under_new_lamp(line_photos["one_lot"], tmp_path / "lot"), out,
                     "--photo-range")
    assert r.returncode == 2, r.stderr
    assert "narrow batch" in r.stderr and not out.exists()
    r = _recalibrate(fitted_model_path, _under_new_lamp(line_photos["across_the_line"], tmp_path / "line"), out,
                     "--photo-range")
    assert r.returncode == 0, r.stderr
    assert "narrow" not in r.stderr
