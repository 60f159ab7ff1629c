"""The 90% bound of a threshold set on good photos with copies among them counts every
different part: 27 photos of which 26 different are 26 parts, not 25 (27 / (27 / 26) is
25.999999999999996 in floats, and floored bare it read "<= 8.80%", the bound for 25)."""
from __future__ import annotations

import numpy as np

from lineguard.vision.calibration import beta_quantile, conformal_threshold


def test_a_copy_among_the_good_photos_leaves_the_bound_of_the_different_parts():
    scores = np.arange(27, dtype=float)
    scores[26] = scores[25]                       # the last photo is a copy of the one before
    groups = [str(i) for i in range(26)] + ["25"]  # a copy is kept in its photo's group
    copies = [False] * 26 + [True]
    _, with_copy = conformal_threshold(scores, 0.1, groups=groups, copies=copies)
    _, different = conformal_threshold(np.arange(26, dtype=float), 0.1)
    assert with_copy["effective_calibration_parts"] == 26.0
    # one part above the threshold out of 26 parts, as for 26 different photos
    assert with_copy["false_reject_rate_upper_90"] == different["false_reject_rate_upper_90"] \
        == beta_quantile(0.9, 2, 25)


def test_a_target_whose_rank_is_a_whole_number_gets_that_rank():
    # 150 * (1 - 0.18) is 123.00000000000001 in floats: the 123rd of 149 good parts' scores sets
    # an 18% threshold, where the 124th was taken (a higher threshold than the target calls for:
    # more defects pass)
    thr, info = conformal_threshold(np.arange(149, dtype=float), 0.18)
    assert info["rank"] == 123 and thr == 122.0
