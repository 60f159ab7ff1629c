"""The score-drift line alarm (line.alarms, kind ``drift``), on SQLite and PostgreSQL.

The SPC page and the shift report showed score drift, but nobody on the line heard of it
and the PLC never did: a lens slowly getting dirty moves every part's score up for hours
before good parts are rejected; a camera knocked out of focus moves them down before
defects pass. Here simulated lines of a few thousand parts are recorded straight into the
station's database (in bulk, as the station records them) and counted part by part by the
station's AlarmWatch, as the station counts each part it records.
"""
from __future__ import annotations

import datetime as dt
import itertools
from types import SimpleNamespace

import numpy as np
import pytest
from sqlalchemy import insert, select

from lineguard.line.alarms import KINDS, AlarmWatch, alarm_code, kinds_of_code
from lineguard.line.orm import Inspection, LineAlarm, utcnow

_seq = itertools.count()
# good parts' scores: skewed, as anomaly scores are; the NG threshold passes 99 % of them
SHAPE, SCALE = 4.0, 0.05
THRESHOLD = float(np.quantile(np.random.default_rng(0).gamma(SHAPE, SCALE, 200_000), 0.99))


def _good(rng, n):
    return rng.gamma(SHAPE, SCALE, n)


def _record(st, scores, model="m-a", version=1, product="cell", station="S1", start=None, verdict=None):
    """Parts with these scores recorded at line L1 (verdict NG above THRESHOLD, or ``verdict``
    for every one), a second apart from ``start``; the records as the station hands them to
    its alarms."""
    start = start or utcnow()
    rows = [dict(part_id=f"D{next(_seq)}", line="L1", station=station, product=product, source="camera",
                 verdict=verdict or ("NG" if x > THRESHOLD else "OK"), score=float(x), threshold=THRESHOLD, pixel_threshold=0.5,
                 model_id=model, model_version=model, registry_version=version, regions=[], timings_ms={},
                 image_sha256=f"{next(_seq):064x}", image_width=64, image_height=64,
                 created_at=start + dt.timedelta(seconds=i))
            for i, x in enumerate(scores)]
    with st.db.session() as s:
        ids = s.scalars(insert(Inspection).returning(Inspection.id, sort_by_parameter_order=True), rows).all()
    return [SimpleNamespace(id=i, test_part=None, test_expected=None, photo_issues=None, review_threshold=None, **r)
            for i, r in zip(ids, rows)]


def _count(watch, recs):
    """Each part counted in turn; the alarms raised, with the index of the part that raised each."""
    raised = []
    for i, rec in enumerate(recs):
        raised += [(i, a) for a in watch.after_part(rec)]
    return raised


def _station(station_factory, **kw):
    return station_factory(**{"alarm_ng_run": 0, "alarm_ng_rate": 0, **kw})


@pytest.mark.one_database     # the rule is counted in memory; the restart tests read back on both
def test_a_stable_line_raises_no_drift_alarm_and_a_camera_knocked_out_of_focus_raises_one(station_factory):
    st = _station(station_factory)
    assert st.alarms.rules_for("L1", "S1").drift_parts == 100        # on by default
    rng = np.random.default_rng(1)
    stable = _record(st, _good(rng, 3000))
    assert _count(st.alarms, stable) == [], "a stable line raised an alarm"
    # the camera knocked out of focus: the model sees less of each part, every score lower
    knocked = _record(st, _good(rng, 400) * 0.7)
    raised = _count(st.alarms, knocked)
    assert [a["kind"] for _, a in raised] == ["drift"]
    i, alarm = raised[0]
    # the groups counted since the knock: the run's first group is all after it, and two
    # groups of 100 at most after the first group that began after it
    assert alarm["first_inspection_id"] > stable[-1].id and i < 300
    assert alarm["product"] == "cell" and alarm["parts"] == 200
    msg = alarm["message"]
    assert "moved down" in msg and "focus" in msg and "escapes" in msg and "station S1 (line L1, cell)" in msg
    assert "first 500 parts model version 1 judged here" in msg
    assert alarm_code([alarm]) == 32 and alarm["active"]


@pytest.mark.one_database     # the rule is counted in memory; the restart tests read back on both
def test_a_slow_upward_creep_raises_the_drift_alarm_before_the_ng_rate_alarm_and_once(station_factory):
    st = station_factory()                                   # every rule at its default: NG run, NG rate, drift
    rng = np.random.default_rng(2)
    # a lamp ageing: every part's score creeps up, 4 % of the score's spread per 100 parts
    n = 6000
    creep = _good(rng, n) + np.arange(n) * (0.04 * SCALE * SHAPE ** 0.5 / 100)
    # the first part counted before the rest are recorded: the watch reads the station's
    # newest records at its first part, and the rest are the line's future
    recs = _record(st, creep[:1])
    raised = _count(st.alarms, recs)
    recs += _record(st, creep[1:], start=recs[0].created_at + dt.timedelta(seconds=1))
    raised += [(i + 1, a) for i, a in _count(st.alarms, recs[1:])]
    kinds = [a["kind"] for _, a in raised]
    assert "drift" in kinds and ("ng_rate" in kinds or "ng_run" in kinds), kinds
    drift_at = next(i for i, a in raised if a["kind"] == "drift")
    reject_at = min(i for i, a in raised if a["kind"] in ("ng_rate", "ng_run"))
    assert drift_at < reject_at, "the NG alarms came before the drift alarm"
    # heard while the parts still passed: at most a few percent rejected in the last 100 then
    ng_then = sum(r.verdict == "NG" for r in recs[drift_at - 99:drift_at + 1])
    assert ng_then < 10, ng_then
    assert kinds.count("drift") == 1, "a latched drift alarm was raised again"
    drift = next(a for _, a in raised if a["kind"] == "drift")
    assert "moved up" in drift["message"] and "lens" in drift["message"] and "false rejects" in drift["message"]
    assert "since about" in drift["message"]


def test_a_new_model_version_begins_the_baseline_afresh_also_after_a_restart(station_factory):
    st = _station(station_factory)
    rng = np.random.default_rng(3)
    a = _record(st, _good(rng, 900), model="m-a", version=1)
    assert _count(st.alarms, a) == []
    # version 2 scores on another scale (another model): compared with version 1's first
    # parts every group of it would have moved up
    b = _record(st, _good(rng, 900) * 2.0, model="m-b", version=2)
    assert _count(st.alarms, b) == [], "a new model's scores were compared with the old model's"
    # a restart: the baseline read back is version 2's first parts, not version 1's
    restarted = AlarmWatch(st.db, st.alarms.rules)
    b2 = _record(st, _good(rng, 300) * 2.0, model="m-b", version=2)
    assert _count(restarted, b2) == []
    # and drift against version 2's baseline is still heard: its lens getting dirty
    dirty = _record(st, _good(rng, 400) * 2.0 * 1.4, model="m-b", version=2)
    raised = _count(restarted, dirty)
    assert [x["kind"] for _, x in raised] == ["drift"]
    assert "model version 2" in raised[0][1]["message"]


def test_a_drift_run_cut_by_a_restart_still_raises_and_an_acknowledged_one_counts_afresh(station_factory):
    st = _station(station_factory)
    rng = np.random.default_rng(4)
    _count(st.alarms, _record(st, _good(rng, 600)))
    up = _record(st, _good(rng, 150) * 1.5)       # one group and a half moved up: no alarm yet
    assert _count(st.alarms, up) == []
    restarted = AlarmWatch(st.db, st.alarms.rules)
    raised = _count(restarted, _record(st, _good(rng, 100) * 1.5))
    assert [x["kind"] for _, x in raised] == ["drift"], "a run cut by a restart raised no alarm"
    alarm = raised[0][1]
    restarted.acknowledge(alarm["id"], "shift lead", note="lens wiped")
    # wiped: the scores are back, no alarm
    assert _count(restarted, _record(st, _good(rng, 500))) == []
    with st.db.session() as s:
        assert [k for (k,) in s.execute(select(LineAlarm.kind))] == ["drift"]


def test_after_a_drift_alarm_the_moved_scores_are_the_baseline_and_a_further_move_is_told(station_factory):
    st = _station(station_factory)
    rng = np.random.default_rng(7)
    _count(st.alarms, _record(st, _good(rng, 500)))
    raised = _count(st.alarms, _record(st, _good(rng, 300) * 1.5))
    assert [x["kind"] for _, x in raised] == ["drift"]
    st.alarms.acknowledge(raised[0][1]["id"], "quality", note="new material lot, accepted")
    # the line runs on at the moved level: told once, not again every two groups, neither
    # here nor by a process started now (the baseline read back after the acknowledgement)
    assert _count(st.alarms, _record(st, _good(rng, 1000) * 1.5)) == []
    restarted = AlarmWatch(st.db, st.alarms.rules)
    assert _count(restarted, _record(st, _good(rng, 300) * 1.5)) == []
    # a further move from the new level is told again
    raised = _count(restarted, _record(st, _good(rng, 300) * 2.5))
    assert [x["kind"] for _, x in raised] == ["drift"]
    assert "moved up" in raised[0][1]["message"]


def test_drift_is_appended_as_alarm_code_bit_5():
    assert KINDS[:5] == ("ng_run", "ng_rate", "photo", "no_verdict", "test_part")    # the PLC's bits kept
    assert alarm_code([{"kind": "drift"}]) == 1 << 5
    assert kinds_of_code(1 << 5 | 1) == ["ng_run", "drift"]


@pytest.mark.parametrize("bad", [1, 19, 10_001, -1])
def test_a_drift_group_size_out_of_range_is_refused_with_its_range(bad):
    from lineguard.line.alarm_rules import AlarmRules
    with pytest.raises(ValueError, match="20 to 10000 parts"):
        AlarmRules(drift_parts=bad)
    assert AlarmRules(drift_parts=0).part_kinds == ("ng_run", "ng_rate", "photo")


def test_a_late_part_of_the_model_before_is_not_counted_and_breaks_nothing():
    """Parts commit out of order across threads: one judged by the model before an
    activation can be counted after the new model's first part. It is left out; the
    product's counts stay (a None in their place failed every later part of the station)."""
    from lineguard.line.alarm_rules import AlarmRules
    from lineguard.line.alarms import _Counts, _Drift
    counts = _Counts(AlarmRules(ng_run=0, ng_rate=0))
    counts.drift["cell"] = _Drift("cell", "new", counts.rules)
    counts.add(10, "OK", score=0.1, product="cell", model_id="new")
    counts.add(9, "OK", score=0.1, product="cell", model_id="old")      # the model before, late
    assert counts.drift["cell"].model_id == "new" and counts.due() == []
    counts.raise_floor("drift", 10)
    assert counts.drift["cell"].model_id == "new"
