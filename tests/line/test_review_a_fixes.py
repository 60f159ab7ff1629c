"""Second-opinion review of the score-drift alarm (line.alarms, kind ``drift``): parts
the drift counts must not take in, on SQLite and PostgreSQL.

An alarm that comes due (an NG run, the NG rate, the photo rule) reads the station's
latest parts again under the line's lock (AlarmWatch._raise) and hands them to the
counts; the drift rule counted every one of them it had not seen lately. So parts that
belong to no group of the product's counts came into its baseline or its groups:

- after a rollback (M1, then M2, then M1 again) M1's parts from before M2, which a
  restart leaves out (its baseline begins after the last part M2 judged);
- after a restart, the parts between the baseline and the newest groups read back
  (only the newest whole groups are read back).

Both moved the baseline or a group by parts of another time and raised a drift alarm
over a line that had not moved.
"""
from __future__ import annotations

import numpy as np
import pytest

from lineguard.line.alarms import AlarmWatch

from .test_drift_alarm import _good, _record as drift_record


def _record(st, scores, model="m-a", verdict="OK"):
    """The drift tests' parts, judged ``verdict`` whatever their score (moved scores, no NG
    run of their own): version 1 for model m-a, 2 for any other."""
    return drift_record(st, scores, model=model, version=1 if model == "m-a" else 2, verdict=verdict)


def _kinds(watch, recs):
    return [a["kind"] for rec in recs for a in watch.after_part(rec)]


def _station(station_factory):
    # drift in groups of 20 (a baseline of 100), an NG run of 5, the NG rate over the last
    # 100 parts off: the NG run's alarm reads the last 100 parts again
    return station_factory(alarm_ng_rate=0, alarm_photo_run=0, alarm_drift_parts=20)


@pytest.mark.one_database
def test_after_a_rollback_the_models_parts_from_before_are_not_its_new_baseline(station_factory):
    st = _station(station_factory)
    rng = np.random.default_rng(11)
    # version 1 judged the line on another day, its scores higher then (another material lot)
    assert _kinds(st.alarms, _record(st, _good(rng, 150) * 3.0)) == []
    # version 2 for ten parts, then rolled back to version 1: its baseline begins afresh
    assert _kinds(st.alarms, _record(st, _good(rng, 10), model="m-b")) == []
    assert _kinds(st.alarms, _record(st, _good(rng, 30))) == []
    # five parts rejected in a row: the NG run's alarm, which reads the last 100 parts again
    assert _kinds(st.alarms, _record(st, _good(rng, 5), verdict="NG")) == ["ng_run"]
    # the line runs on as it began after the rollback: nothing moved
    assert _kinds(st.alarms, _record(st, _good(rng, 125))) == [], \
        "version 1's parts from before version 2 were counted into its new baseline"
    # as a process started now counts it: its baseline begins after version 2's last part
    restarted = AlarmWatch(st.db, st.alarms.rules)
    assert _kinds(restarted, _record(st, _good(rng, 60))) == []


def test_after_a_restart_the_parts_not_read_back_are_not_counted_when_another_alarm_rereads_them(station_factory):
    st = _station(station_factory)
    rng = np.random.default_rng(12)
    # the product's history: its baseline, three groups whose scores were high for a while
    # (the lamp replaced, the alarm acknowledged: any reason), and two groups as the baseline
    _record(st, _good(rng, 100))
    _record(st, _good(rng, 60) * 3.0)
    _record(st, _good(rng, 40))
    # a process started now reads the baseline and the newest two groups back at its first part
    restarted = AlarmWatch(st.db, st.alarms.rules)
    assert _kinds(restarted, _record(st, _good(rng, 4))) == []
    # five parts rejected in a row: the NG run's alarm reads the last 100 parts again,
    # among them the high ones the restart did not read back
    assert _kinds(restarted, _record(st, _good(rng, 5), verdict="NG")) == ["ng_run"]
    assert _kinds(restarted, _record(st, _good(rng, 10))) == [], \
        "parts the restart left out were counted in a group after another alarm read them again"
