"""Both bounds on a tuned threshold live in line.tuning, where every way of saving one passes.

The upper bound (at most MAX_RAISE times the threshold the good parts set) was checked in
line.tuning, the lower one (at least 1/MAX_RAISE of it) only in the REST API's router: no
verb of the command line saves thresholds today, but anything calling
``tuning.save_thresholds`` (a script at the station, a verb to come) saved 5e-324 as a
tuned version, and activated it rejects every part, good ones too."""
from __future__ import annotations

import pytest

from lineguard.line import tuning
from lineguard.line.errors import InvalidRequest

from .conftest import FakeInspector


@pytest.fixture
def cell_station(station_factory):
    """Product 'cell' on every line, v1 calibrated by its good parts at 0.5, review from 0.3."""
    st = station_factory()
    st.add_model(FakeInspector(0.5, "v-a", review_threshold=0.3).to_bytes(), "cell", activate=True)
    return st


@pytest.mark.parametrize("threshold, review_threshold, says", [
    (5e-324, None, "threshold 4.94066e-324 is less than 1/100 of 0.5"),     # every part NG
    (0.004, None, "every part would be NG, good parts too"),
    (0.6, 1e-9, "review_threshold 1e-09 is less than 1/100 of 0.5"),       # every part to REVIEW
])
@pytest.mark.one_database
def test_saving_a_threshold_far_below_the_good_parts_is_refused_below_the_api(cell_station, threshold,
                                                                            review_threshold, says):
    st = cell_station
    with pytest.raises(InvalidRequest, match="set it within the scores the Tuning page shows") as refused:
        tuning.save_thresholds(st, "cell", "", 1, threshold, review_threshold, note="from a script", by="tester")
    assert says in str(refused.value)
    assert [m.version for m in st.models.list("cell")] == [1]       # no version half-made


@pytest.mark.one_database
def test_both_bounds_hold_against_the_calibrated_threshold_along_a_chain_of_tunings(cell_station):
    """v1 calibrated at 0.5 -> 0.01 -> 0.001: each step above 1/100 of the one before, the
    last under 1/100 of what the good parts set, so it is refused as the first step would
    be; likewise 51 from 0.01, far under 100 times the step before but past 100 times 0.5."""
    st = cell_station
    v2 = tuning.save_thresholds(st, "cell", "", 1, 0.01, None, by="tester")
    with pytest.raises(InvalidRequest, match="less than 1/100 of 0.5"):
        tuning.save_thresholds(st, "cell", "", v2.version, 0.001, None, by="tester")
    with pytest.raises(InvalidRequest, match="more than 100 times 0.5"):
        tuning.save_thresholds(st, "cell", "", v2.version, 51.0, None, by="tester")
    # a hundredth of the calibrated threshold is still one an engineer may set, the band's too
    mv = tuning.save_thresholds(st, "cell", "", v2.version, 0.005, None, by="tester")
    assert tuning.model_calibration(st, mv)["threshold"] == 0.005
    mv = tuning.save_thresholds(st, "cell", "", 1, 0.6, 0.005, by="tester")
    assert tuning.model_calibration(st, mv)["review_threshold"] == 0.005
