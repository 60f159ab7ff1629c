"""Inspector.fit's ``exclude_odd_suspects``: a good photo odd on both counts (far above the
others in score, and unlike them as a photo: left out of the photo check's range) is left
out of the model and the threshold, whoever gave it; one odd on its score alone stays.

A station's retrain asks for it: one black reference photo among its good photos set the
new version's threshold alone (58.17 where the version before had 19.9), and a crack part
scoring 45 would have passed as OK. `lineguard train` does not: its default is unchanged.
"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch")

from lineguard.vision.inspector import Inspector  # noqa: E402


def _good(seed: int, side: int = 128, grey_patch: bool = False) -> np.ndarray:
    """A good part: grey texture, its brightness and contrast a little its own.
    ``grey_patch``: a patch without colour, its brightness, contrast and focus like the
    others' (unlike them on its score only)."""
    rng = np.random.default_rng(seed)
    mean, sd = (140, 20) if grey_patch else (rng.uniform(115, 165), rng.uniform(12, 28))
    arr = rng.normal(mean, sd, (side, side, 3))
    if grey_patch:
        m = side * 5 // 16
        arr[m:side - m, m:side - m] = rng.normal(mean, sd, (side - 2 * m, side - 2 * m, 1))
    return np.clip(arr, 0, 255).astype(np.uint8)


@pytest.fixture
def folder(tmp_path):
    for i in range(14):
        Image.fromarray(_good(100 + i)).save(tmp_path / f"good-{i:02d}.png")
    return tmp_path


def _fit(photos, **kw):
    return Inspector.fit(sorted(photos), image_size=64, false_reject_rate=0.1, seed=0, **kw)


def test_a_black_photo_among_the_good_ones_is_left_out_of_the_model_and_its_threshold(folder):
    black = folder / "black.png"
    Image.fromarray(np.zeros((128, 128, 3), np.uint8)).save(black)
    kept = _fit(folder.iterdir())          # lineguard train's default: it stays, and sets the threshold
    left = _fit(folder.iterdir(), exclude_odd_suspects=True)
    # named on both counts by either fit
    for m in (kept, left):
        assert [s["image"] for s in m.info["suspect_good"]] == [str(black)]
        assert [o["image"] for o in m.info["photo_odd"]] == [str(black)]
    assert kept.info["n_train"] == 15 and kept.calibration["threshold_set_by"] == str(black)
    assert kept.info["suspects_left_out"] == []
    # left out of the model (the 14 good photos learnt) and of the threshold, and said so
    assert left.info["n_train"] == 14 and left.info["suspects_left_out"] == [str(black)]
    assert left.calibration["suspects_excluded"] == 1
    assert left.calibration["threshold_set_by"] != str(black)
    # the good photos' scores set it: far below the black frame's
    assert left.threshold < kept.threshold / 2, (left.threshold, kept.threshold)


def test_a_photo_odd_on_its_score_alone_stays_and_is_named_as_setting_the_threshold(folder):
    patched = folder / "patched.png"
    Image.fromarray(_good(900, grey_patch=True)).save(patched)
    m = _fit(folder.iterdir(), exclude_odd_suspects=True)
    assert [s["image"] for s in m.info["suspect_good"]] == [str(patched)]
    assert m.info["photo_odd"] == []
    # a person gave it as good and only a person can tell: learnt, and it sets the threshold
    assert m.info["n_train"] == 15 and m.info["suspects_left_out"] == []
    assert m.calibration["threshold_set_by"] == str(patched)
    assert m.threshold == pytest.approx(m.info["suspect_good"][0]["score"], rel=1e-5)
