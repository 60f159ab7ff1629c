"""The cross-fitted threshold keeps its promise: over many simulated good sets, a new good
part is rejected at most at the target rate on average (the conformal guarantee is a
statement about that average, over calibration sets and new parts alike)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from lineguard.vision.inspector import Inspector  # noqa: E402
from lineguard.vision.synth import make_part  # noqa: E402

TARGET = 0.1
N_SETS = 12
N_TRAIN = 19          # (n + 1)(1 - 0.1) = 18: a real quantile, not the largest score
N_NEW = 40


@pytest.fixture(scope="module")
def parts():
    # every seed is another good part of the same product (texture, lighting and pose vary)
    return [make_part(s, size=64)[0] for s in range(N_SETS * N_TRAIN + N_NEW)]


def _rates(parts, exclude_suspects: bool) -> list[float]:
    """The false-reject rate on new good parts of each good set's calibrated threshold."""
    new = parts[-N_NEW:]
    rates = []
    for k in range(N_SETS):
        train = parts[k * N_TRAIN:(k + 1) * N_TRAIN]
        insp = Inspector.fit(train, image_size=64, false_reject_rate=TARGET, seed=k,
                             exclude_suspects=exclude_suspects)
        scores = np.array([r.score for r in insp.inspect_batch(new)])
        rates.append(float((scores > insp.threshold).mean()))
    return rates


@pytest.fixture(scope="module")
def rates(parts):
    return {flag: _rates(parts, flag) for flag in (True, False)}


@pytest.mark.parametrize("exclude_suspects", [True, False])
def test_false_reject_rate_holds_on_average_over_good_sets(rates, exclude_suspects):
    mean = float(np.mean(rates[exclude_suspects]))
    # 12 sets x 40 new parts: the mean's standard error is about 0.015 at a 10% rate (a 20% hold-out of
    # these 19 parts, the old default, averaged 0.14: the largest of 4 scores is no 90% quantile)
    assert mean <= TARGET + 0.03, f"mean false-reject rate {mean:.3f} over {N_SETS} good sets, target {TARGET}"


@pytest.mark.parametrize("exclude_suspects", [True, False])
def test_threshold_is_not_far_above_the_target_quantile(rates, exclude_suspects):
    """Not absurdly conservative either: with exchangeable scores the conformal
    threshold rejects between target - 1/(n + 1) (5% here) and the target on average;
    the cross-fitted scores are not quite exchangeable with new parts' (the final model
    knows one part more), so a quarter of the target is the floor asked for. Leaving a
    part's own bank rows out without refilling them (until 2026-12-02) gave 0.0-0.2%
    here; with the greedy refill 7.1-7.5%."""
    mean = float(np.mean(rates[exclude_suspects]))
    assert mean >= TARGET / 4, f"mean false-reject rate {mean:.3f} for a {TARGET} target: the threshold is too high"
