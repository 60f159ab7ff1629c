"""Inspector.fit's ``calibrate_on``: every good image is learnt, only the named ones set
the threshold (a station's retrain names its random audit sample)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from lineguard.vision.errors import DatasetError  # noqa: E402
from lineguard.vision.inspector import Inspector  # noqa: E402
from lineguard.vision.synth import make_part  # noqa: E402

N_DRAWN, N_ODD = 24, 6


@pytest.fixture(scope="module")
def good():
    # the line's parts as drawn, then the oddest: parts the old version flagged and a person
    # reviewed good (here: the same product with a mark on it)
    drawn = [make_part(s, size=64)[0] for s in range(N_DRAWN)]
    odd = [make_part(100 + s, size=64, defect="stain")[0] for s in range(N_ODD)]
    return drawn + odd


def test_only_the_named_parts_set_the_threshold_and_every_part_is_learnt(good):
    counted = [True] * N_DRAWN + [False] * N_ODD
    every = Inspector.fit(good, image_size=64, false_reject_rate=0.1, seed=0)
    drawn = Inspector.fit(good, image_size=64, false_reject_rate=0.1, seed=0, calibrate_on=counted)
    sub = drawn.calibration["calibration_subset"]
    assert sub["parts"] == N_DRAWN and sub["learnt"] == N_DRAWN + N_ODD
    assert drawn.info["n_train"] == N_DRAWN + N_ODD and drawn.info["n_calibration"] == N_DRAWN
    assert drawn.calibration["n_calibration"] == N_DRAWN
    # the same cross-fitted scores: counting every part gives the plain fit's threshold
    assert sub["threshold_all_parts"] == pytest.approx(every.threshold)
    # the marked parts' own scores lifted the plain threshold; the drawn parts' is lower
    assert drawn.threshold < every.threshold
    assert drawn.calibration["good_score_quantiles"]["1.0"] < every.calibration["good_score_quantiles"]["1.0"]


def test_calibrate_on_must_name_every_image_and_some_that_load(good):
    with pytest.raises(ValueError, match="one flag per good image"):
        Inspector.fit(good, image_size=64, calibrate_on=[True] * 3)
    with pytest.raises(ValueError, match="holdout 0"):
        Inspector.fit(good, image_size=64, holdout=0.2, calibrate_on=[True] * len(good))
    with pytest.raises(DatasetError, match="calibrate_on"):
        Inspector.fit(good, image_size=64, calibrate_on=[False] * len(good))
    assert np.isfinite(Inspector.fit(good, image_size=64, calibrate_on=[True] * len(good)).threshold)


def test_exclude_suspects_per_part_leaves_out_only_the_flagged_far_out_parts(good):
    every = Inspector.fit(good, image_size=64, false_reject_rate=0.1, seed=0)
    far = sorted(int(s["image"][1:]) for s in every.info["suspect_good"])
    assert far and min(far) >= N_DRAWN          # only marked parts score far above the drawn ones
    for flagged in ([], far):                   # a part reviewed good stays whatever it scores
        may_leave = [i in flagged for i in range(len(good))]
        fit = Inspector.fit(good, image_size=64, false_reject_rate=0.1, seed=0, exclude_suspects=may_leave)
        assert fit.calibration["suspects_excluded"] == len(flagged)
        assert fit.info["n_train"] == len(good) - len(flagged)
