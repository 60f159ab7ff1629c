"""The review band (OK / REVIEW / NG) and regions that agree with the verdict.

A stub detector (score = the part's mean brightness, map = a bump whose height the test
chooses) drives the real Inspector, so verdicts, thresholds and regions are checked
exactly and without torch.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from lineguard.vision.calibration import conformal_threshold, summarize
from lineguard.vision.inspector import Inspector
from lineguard.vision.preprocess import Preprocess
from lineguard.vision.result import InspectionResult, Verdict


class _StubDetector:
    """Score: mean brightness / 255. Map: a smooth bump of height ``peak`` centred at
    (row 40, column 20) of the 64 x 64 model input, on a faint texture."""

    name = "stub"

    def __init__(self, peak: float = 0.3):
        self.peak = peak

    def score(self, x: np.ndarray):
        scores = x.reshape(len(x), -1).mean(axis=1) / 255.0
        yy, xx = np.mgrid[0:64, 0:64]
        bump = self.peak * np.exp(-((yy - 40) ** 2 + (xx - 20) ** 2) / (2 * 4.0 ** 2))
        texture = 0.01 * ((xx * 7 + yy * 3) % 5) / 4
        maps = np.stack([(bump + texture).astype(np.float32)] * len(x))
        return scores, maps


def _inspector(calibration: dict, peak: float = 0.3, min_region_area: int = 4) -> Inspector:
    insp = Inspector(_StubDetector(peak), Preprocess(image_size=64), dict(calibration),
                     info={"version": "stub-1"}, min_region_area=min_region_area)
    insp._model_id = "stub"        # the content hash needs a real detector's tensors
    return insp


def _part(value: int, size: int = 64) -> np.ndarray:
    return np.full((size, size, 3), value, np.uint8)


BAND = {"threshold": 150 / 255, "review_threshold": 100 / 255, "pixel_threshold": 0.2}


# --------------------------------------------------------------------------- verdicts


@pytest.mark.parametrize("value,verdict", [(60, "OK"), (100, "OK"), (101, "REVIEW"), (150, "REVIEW"),
                                           (151, "NG"), (230, "NG")])
def test_verdict_below_at_between_and_above_the_thresholds(value, verdict):
    r = _inspector(BAND).inspect(_part(value))
    assert r.verdict is Verdict(verdict)
    assert r.threshold == BAND["threshold"] and r.review_threshold == BAND["review_threshold"]
    assert r.needs_review == (verdict == "REVIEW") and r.is_ng == (verdict == "NG")


def test_a_model_without_a_review_threshold_judges_as_before():
    old = {"threshold": 150 / 255, "pixel_threshold": 0.2}      # calibration of a model from before bands
    insp = _inspector(old)
    assert insp.review_threshold == insp.threshold
    verdicts = [insp.inspect(_part(v)).verdict for v in (60, 100, 150, 151, 230)]
    assert verdicts == [Verdict.OK, Verdict.OK, Verdict.OK, Verdict.NG, Verdict.NG]
    assert insp.inspect(_part(60)).review_threshold == insp.threshold


# --------------------------------------------------------------------------- thresholds


def test_thresholds_are_the_conformal_quantiles_for_reject_and_for_not_ok():
    good = np.arange(1.0, 100.0)                 # n = 99 scores 1..99
    c = summarize(good, 0.05, review_rate=0.10)
    # reject: rank ceil(100 * 0.95) = 95; not OK at 0.05 + 0.10: rank ceil(100 * 0.85) = 85
    assert c["threshold"] == 95.0 and c["review_threshold"] == 85.0
    assert c["threshold"] == conformal_threshold(good, 0.05)[0]
    assert c["review_threshold"] == conformal_threshold(good, 0.15)[0]
    assert c["review_rate"] == 0.10 and c["review_rank"] == 85
    assert c["guaranteed_not_ok_rate"] == pytest.approx(15 / 100)


def test_review_rate_zero_is_no_band_and_reproduces_todays_verdicts():
    rng = np.random.default_rng(3)
    good = rng.gamma(2.0, 1.0, 150)
    plain = summarize(good, 0.02)
    zero = summarize(good, 0.02, review_rate=0.0)
    assert zero["threshold"] == plain["threshold"] == zero["review_threshold"]
    insp = _inspector({"threshold": zero["threshold"] / 100, "review_threshold": zero["review_threshold"] / 100,
                       "pixel_threshold": 0.2})
    for v in range(0, 256, 5):
        r = insp.inspect(_part(v))
        assert r.verdict is (Verdict.NG if r.score > insp.threshold else Verdict.OK)


def test_about_review_rate_of_new_good_parts_go_to_review():
    # Conformal guarantee: P(not OK) <= frr + review_rate for a new good part; on
    # average over calibration sets the review share is close to review_rate.
    rng = np.random.default_rng(0)
    frr, rr, n = 0.02, 0.08, 199
    not_ok, review = [], []
    for _ in range(300):
        c = summarize(rng.normal(size=n), frr, review_rate=rr)
        new = rng.normal(size=2000)
        not_ok.append(np.mean(new > c["review_threshold"]))
        review.append(np.mean((new > c["review_threshold"]) & (new <= c["threshold"])))
    assert np.mean(not_ok) <= frr + rr + 0.005
    assert abs(np.mean(review) - rr) < 0.01


def test_f1_strategy_never_puts_the_review_threshold_above_the_reject_threshold():
    good = np.linspace(0, 1, 50)
    defects = np.linspace(0.3, 2, 10)              # F1-optimal threshold well below the good quantiles
    c = summarize(good, 0.01, defects, "f1", review_rate=0.05)
    assert c["review_threshold"] <= c["threshold"] == c["f1_threshold"]


@pytest.mark.parametrize("frr,rr,match", [(0.01, -0.05, "review_rate must be 0"),
                                          (0.01, float("nan"), "review_rate must be 0"),
                                          (0.5, 0.5, "lower the review rate"),
                                          (0.05, 0.99, "below 1")])
def test_bad_review_rates_are_refused_with_what_to_do(frr, rr, match):
    with pytest.raises(ValueError, match=match):
        summarize(np.arange(50.0), frr, review_rate=rr)
    with pytest.raises(ValueError, match=match):
        _inspector(BAND).recalibrate([_part(v) for v in range(40, 90)], false_reject_rate=frr, review_rate=rr)


def test_recalibrate_sets_the_band_from_the_good_parts_scores_and_keeps_it_by_default():
    insp = _inspector({"threshold": 0.5, "pixel_threshold": 0.2})
    values = list(range(20, 119))                   # 99 good parts, scores value/255
    calib = insp.recalibrate([_part(v) for v in values], false_reject_rate=0.05, review_rate=0.10)
    assert insp.threshold == pytest.approx(values[95 - 1] / 255)
    assert insp.review_threshold == pytest.approx(values[85 - 1] / 255)
    assert calib["review_rate"] == 0.10
    insp.recalibrate([_part(v) for v in values], false_reject_rate=0.05)        # review_rate not given
    assert insp.review_threshold == pytest.approx(values[85 - 1] / 255)
    insp.recalibrate([_part(v) for v in values], false_reject_rate=0.05, review_rate=0)
    assert insp.review_threshold == insp.threshold


# --------------------------------------------------------------------------- result JSON


def test_review_result_json_round_trip_and_old_json_still_loads():
    r = _inspector(BAND).inspect(_part(120), source="p-120")
    d = json.loads(json.dumps(r.to_dict()))
    assert d["verdict"] == "REVIEW" and d["review_threshold"] == pytest.approx(100 / 255, abs=1e-6)
    back = InspectionResult.from_dict(d)
    assert back.verdict is Verdict.REVIEW and back.review_threshold == pytest.approx(100 / 255, abs=1e-6)
    assert back.regions == [type(g).from_dict(g.to_dict()) for g in r.regions] and back.regions
    old = {k: v for k, v in d.items() if k != "review_threshold"}
    old["verdict"] = "NG"
    was = InspectionResult.from_dict(old)
    assert was.review_threshold is None and was.ok_threshold == was.threshold


# --------------------------------------------------------------------------- regions agree


def _peak_inside(r: InspectionResult, region) -> bool:
    y, x = np.unravel_index(int(np.argmax(r.anomaly_map)), r.anomaly_map.shape)
    return region.x <= x < region.x + region.width and region.y <= y < region.y + region.height


@pytest.mark.parametrize("value,verdict", [(200, Verdict.NG), (120, Verdict.REVIEW)])
def test_a_part_not_ok_has_a_region_even_with_no_pixel_above_the_pixel_threshold(value, verdict):
    # The image score says NG (or REVIEW), but the map's bump (0.15) stays under the
    # pixel threshold (0.2), as a smoothed, resized map does.
    insp = _inspector(BAND, peak=0.15)
    r = insp.inspect(_part(value, size=128))          # the map is resized to the photo, as on the line
    assert r.verdict is verdict
    assert float(r.anomaly_map.max()) < r.pixel_threshold
    assert len(r.regions) == 1
    g = r.regions[0]
    assert _peak_inside(r, g)
    assert g.peak_score == pytest.approx(float(r.anomaly_map.max()))
    # the bump's half-height outline, not the whole part: centred near (row 80, col 40) of 128
    assert 4 <= g.width <= 40 and 4 <= g.height <= 40 and abs(g.x + g.width / 2 - 40) < 6
    assert insp.inspect(_part(60, size=128)).regions == []      # OK parts stay unmarked


def test_a_region_smaller_than_the_minimum_area_still_leaves_the_part_a_region():
    insp = _inspector(BAND, peak=0.3, min_region_area=10_000)   # every thresholded region is too small
    r = insp.inspect(_part(200))
    assert r.verdict is Verdict.NG and len(r.regions) == 1 and _peak_inside(r, r.regions[0])


def test_a_flat_map_outlines_the_whole_part():
    from lineguard.vision.regions import outline_peak
    flat = np.full((12, 20), 0.1, np.float32)
    (g,) = outline_peak(flat, flat.shape)
    assert (g.x, g.y, g.width, g.height, g.area_px) == (0, 0, 20, 12, 240)
    (g,) = outline_peak(np.full((4, 5), np.nan, np.float32), (4, 5))
    assert (g.width, g.height) == (5, 4)
