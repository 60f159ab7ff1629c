"""The model's record counts escapes as the line judges the defects: by the verdict.

`lineguard train --defects` was made to count a defect photo as escaped only where the
model judges it OK (a photo the photo check doubts is REVIEW whatever its score: caught at
review, not shipped), but by a recount in the CLI after fitting. Trained from Python
(Inspector.fit), recalibrated (Inspector.recalibrate) or retrained by the station, the
record still counted escapes by score alone: defect photos taken under a cooler lamp,
sent to REVIEW by the colour check at the line, were counted as shipped. Here the record's
escapes must be the defect photos Inspector.inspect judges OK.
"""
from __future__ import annotations

import numpy as np
import pytest

from lineguard.vision.result import Verdict
from lineguard.vision.synth import make_part

pytest.importorskip("torch")

SIZE = 64
KINDS = ("scratch", "crack", "dent", "particle", "stain")
NOTHING_TOLD = "no defect the photo check doubts passes on its score: the two counts agree, the test tells nothing"


def _cool(a: np.ndarray) -> np.ndarray:
    """The part under a cooler lamp (blue up 12%): the colour check doubts it."""
    b = a.astype(np.float32)
    b[..., 2] *= 1.12
    return np.clip(b, 0, 255).astype(np.uint8)


def _dim(a: np.ndarray) -> np.ndarray:
    """The part with the lamp dimmed by 30%: the photo check finds it too dark."""
    return (a.astype(np.float32) * 0.7).astype(np.uint8)


@pytest.fixture(scope="module")
def good():
    return [make_part(s, SIZE)[0] for s in range(20)]


def _faint(seed: int, kind: str, size=SIZE) -> np.ndarray:
    """A defect barely there (a tenth of its contrast): it scores like a good part, as the
    defects a model misses do."""
    part, bad = make_part(seed, size)[0].astype(np.float32), make_part(seed, size, defect=kind)[0]
    return np.clip(part + 0.1 * (bad - part), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def defects():
    """Defect parts as taken (some faint), again under a cooler lamp, a few under a dimmed
    lamp, and two from a camera of another shape (96 x 64 where the good photos are square):
    each of the last three the photo check doubts."""
    taken = [make_part(100 + i, SIZE, defect=KINDS[i % len(KINDS)])[0] for i in range(10)]
    faint = [_faint(200 + i, KINDS[i % len(KINDS)]) for i in range(4)]
    wide = [_faint(210 + i, KINDS[i], size=(SIZE, 96)) for i in range(2)]
    return taken + faint + [_cool(a) for a in taken + faint] + [_dim(a) for a in taken[:2] + faint] + wide


def _judged(insp, photos) -> tuple[int, list]:
    results = insp.inspect_batch(photos)
    return sum(r.verdict is Verdict.OK for r in results), results


def _doubted_yet_passing_on_score(insp, results) -> int:
    # the defects that tell the two counts apart: a score that passes, a photo the check doubts
    return sum(bool(r.photo_issues) and r.score <= insp.review_threshold for r in results)


def test_a_model_trained_from_python_counts_as_escapes_only_the_defects_it_judges_ok(good, defects):
    from lineguard.vision.inspector import Inspector
    insp = Inspector.fit(good, image_size=SIZE, false_reject_rate=0.1, defect_images=defects, seed=0)
    ok, results = _judged(insp, defects)
    assert _doubted_yet_passing_on_score(insp, results) >= 1, NOTHING_TOLD
    # each of the photo check's doubts is counted: the range's, the colour's and the shape's
    said = [r.photo_issues[0] for r in results if r.photo_issues]
    assert any(i.startswith("too dark") for i in said) and any(i.startswith("colour cast") for i in said)
    assert any(i.startswith("photo 96 x 64") for i in said), said
    at = insp.calibration["at_frr_threshold"]
    assert at["n_defect"] == len(defects)
    assert at["escapes"] == ok, (at, ok)
    assert at["escape_rate"] == pytest.approx(ok / len(defects))
    # the doubted defects are said as caught at review, as eval says them
    assert at["defects_photo_review"] == sum(bool(r.photo_issues) for r in results)


def test_an_f1_threshold_records_the_escapes_the_model_lets_through(good, defects):
    from lineguard.vision.inspector import Inspector
    insp = Inspector.fit(good, image_size=SIZE, false_reject_rate=0.1, defect_images=defects,
                         threshold_strategy="f1", seed=0)
    ok, results = _judged(insp, defects)
    assert _doubted_yet_passing_on_score(insp, results) >= 1, NOTHING_TOLD
    c = insp.calibration
    assert c["at_f1_threshold"]["escapes"] == ok, (c["at_f1_threshold"], ok)
    assert c["measured_escape_rate"] == pytest.approx(ok / len(defects))


def test_recalibrating_counts_escapes_by_the_verdict_too(good, defects):
    from lineguard.vision.inspector import Inspector
    insp = Inspector.fit(good, image_size=SIZE, false_reject_rate=0.1, seed=0)
    fresh = [make_part(s, SIZE)[0] for s in range(300, 320)]      # good parts it did not learn from
    c = insp.recalibrate(fresh, false_reject_rate=0.1, defect_images=defects)
    ok, results = _judged(insp, defects)
    assert _doubted_yet_passing_on_score(insp, results) >= 1, NOTHING_TOLD
    assert c["at_frr_threshold"]["escapes"] == ok, (c["at_frr_threshold"], ok)


def test_after_a_planned_lamp_change_the_defects_are_judged_by_the_photo_check_learnt_again(good, defects):
    # recalibrate --photo-range after a cooler lamp went in: from then on the cool photos are
    # the line's and the old lamp's are doubted, so the record counts by the check as relearnt
    from lineguard.vision.inspector import Inspector
    insp = Inspector.fit(good, image_size=SIZE, false_reject_rate=0.1, seed=0)
    fresh = [_cool(make_part(s, SIZE)[0]) for s in range(300, 320)]
    c = insp.recalibrate(fresh, false_reject_rate=0.1, defect_images=defects, photo_range=True)
    ok, results = _judged(insp, defects)
    assert _doubted_yet_passing_on_score(insp, results) >= 1, NOTHING_TOLD
    assert c["at_frr_threshold"]["escapes"] == ok, (c["at_frr_threshold"], ok)
