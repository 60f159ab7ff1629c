"""/metrics for what a plant's alerting needs of the line alarms, on SQLite and PostgreSQL.

lineguard_alarms_active told an alert that an alarm stands, not that nobody has looked at
it for 40 minutes: lineguard_alarms_unacknowledged_seconds (the oldest's age per kind) and
lineguard_alarms_past_escalation do, read from the database at each scrape. The drift
rule's state lived in memory only: lineguard_score_drift_shift (the latest group's rank
shift, the number the drift alarm tests) and lineguard_score_drift_baseline_parts show a
slow creep on a dashboard before the alarm, set as each group completes, not per part.
Parts with chosen scores are recorded in bulk and counted by the station's AlarmWatch, as
in test_drift_alarm.
"""
from __future__ import annotations

import datetime as dt
import itertools
from types import SimpleNamespace

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import insert, update

from lineguard.line import spc
from lineguard.line.alarms import AlarmWatch
from lineguard.line.metrics import StationMetrics
from lineguard.line.orm import Inspection, LineAlarm, utcnow

_seq = itertools.count()
THRESHOLD = 0.5
S1 = {"line": "L1", "station": "S1"}


def _record(st, scores, product="cell", model="m-a", test_part=None, test_expected=None):
    """Parts with these scores recorded at station S1 of line L1 (NG above THRESHOLD); the
    records as the station hands them to its alarms."""
    start = utcnow()
    rows = [dict(part_id=f"M{next(_seq)}", line="L1", station="S1", product=product, source="camera",
                 verdict="NG" if x > THRESHOLD else "OK", score=float(x), threshold=THRESHOLD, pixel_threshold=0.5,
                 model_id=model, model_version=model, registry_version=1, regions=[], timings_ms={},
                 image_sha256=f"{next(_seq):064x}", image_width=64, image_height=64,
                 created_at=start + dt.timedelta(seconds=i))
            for i, x in enumerate(scores)]
    with st.db.session() as s:
        ids = s.scalars(insert(Inspection).returning(Inspection.id, sort_by_parameter_order=True), rows).all()
    return [SimpleNamespace(id=i, test_part=test_part, test_expected=test_expected, photo_issues=None,
                            review_threshold=None, **r) for i, r in zip(ids, rows)]


def _count(watch, recs):
    return [a for rec in recs for a in watch.after_part(rec)]


def _value(metrics, name, **labels):
    return metrics.registry.get_sample_value(name, {**S1, **labels})


def _raised_at(alarm):
    return dt.datetime.fromisoformat(alarm["raised_at"].replace("Z", "+00:00"))


def test_the_oldest_alarms_age_per_kind_and_those_past_escalation_at_each_scrape(station_factory, monkeypatch):
    from lineguard.line import alarms as alarms_mod
    st = station_factory(alarm_ng_rate=0, alarm_drift_parts=0)      # escalated after 10 min (the default)
    m = st.metrics
    (run,) = _count(st.alarms, _record(st, [0.9] * 5))                  # five rejects in a row
    assert run["kind"] == "ng_run"
    # a test part judged OK where it must be NG: a second alarm, of another kind, later
    (wrong,) = _count(st.alarms, _record(st, [0.1], test_part="RR-01", test_expected="NG"))
    assert wrong["kind"] == "test_part"
    t0, t1 = _raised_at(run), _raised_at(wrong)

    def scrape(at):
        """count_active as the /metrics route calls it, the station's clock at ``at``"""
        monkeypatch.setattr(alarms_mod, "utcnow", lambda: at.astimezone(dt.timezone.utc).replace(tzinfo=None))
        st.alarms.count_active()

    scrape(t0 + dt.timedelta(minutes=1))
    assert _value(m, "lineguard_alarms_unacknowledged_seconds", kind="ng_run") == 60.0
    assert _value(m, "lineguard_alarms_past_escalation") == 0

    # nobody came for 40 minutes: both past their escalation time, escalated or not yet
    later = t0 + dt.timedelta(minutes=40)
    scrape(later)
    assert _value(m, "lineguard_alarms_unacknowledged_seconds", kind="ng_run") == 2400.0
    assert _value(m, "lineguard_alarms_unacknowledged_seconds", kind="test_part") == (later - t1).total_seconds()
    assert _value(m, "lineguard_alarms_past_escalation") == 2
    assert st.metrics.alarms_active.labels("L1", "S1")._value.get() == 2
    # escalated (no repeat set: no escalation time left) is still past it
    assert len(st.alarms.escalate_due(now=later)) == 2
    scrape(later)
    assert _value(m, "lineguard_alarms_past_escalation") == 2

    st.alarms.acknowledge(run["id"], "shift lead", note="worn punch changed")
    scrape(later)
    # the kind acknowledged stays at 0 (an alert on it resolves); the other ages on
    assert _value(m, "lineguard_alarms_unacknowledged_seconds", kind="ng_run") == 0
    assert _value(m, "lineguard_alarms_unacknowledged_seconds", kind="test_part") == (later - t1).total_seconds()
    assert _value(m, "lineguard_alarms_past_escalation") == 1
    st.alarms.acknowledge(wrong["id"], "quality", note="camera refocused")
    scrape(later)
    assert _value(m, "lineguard_alarms_unacknowledged_seconds", kind="test_part") == 0
    assert _value(m, "lineguard_alarms_past_escalation") == 0


def test_an_alarm_another_process_raised_long_ago_shows_its_age_at_the_scrape(station_factory):
    """The /metrics route counts the database's alarms, not only those raised here."""
    from lineguard.server.app import create_app
    st = station_factory(alarm_ng_rate=0, alarm_drift_parts=0)
    other = AlarmWatch(st.db, st.alarms.rules)          # a hot folder's watcher beside the server
    (alarm,) = _count(other, _record(st, [0.9] * 5))
    with st.db.session() as s:                          # raised 40 minutes ago, due at 30
        s.execute(update(LineAlarm).where(LineAlarm.id == alarm["id"])
                  .values(raised_at=utcnow() - dt.timedelta(minutes=40),
                          escalate_at=utcnow() - dt.timedelta(minutes=30)))
    with TestClient(create_app(station=st)) as c:
        text = c.get("/metrics").text
    line = next((ln for ln in text.splitlines()
                 if ln.startswith('lineguard_alarms_unacknowledged_seconds{kind="ng_run",line="L1",station="S1"}')), "")
    assert line, "no age of the ng_run alarm on /metrics"
    # 40 minutes, and the seconds since the update (a scrape here comes well within 5 minutes)
    assert 2400 <= float(line.split()[-1]) < 2700, line
    assert 'lineguard_alarms_past_escalation{line="L1",station="S1"} 1.0' in text


def _good(rng, n):
    return rng.gamma(4.0, 0.05, n)


def test_the_drift_rules_shift_and_baseline_are_set_as_each_group_completes(station_factory, monkeypatch):
    st = station_factory(alarm_ng_run=0, alarm_ng_rate=0)   # drift in groups of 100, a baseline of 500
    m = st.metrics
    shown = []        # each time the station's drift series are set
    show = getattr(st.alarms, "_show_drift", lambda key, counts: None)
    monkeypatch.setattr(st.alarms, "_show_drift", lambda key, counts: (shown.append(key), show(key, counts)),
                        raising=False)
    rng = np.random.default_rng(5)
    base_scores = _good(rng, 500)
    base = _record(st, base_scores)
    assert _count(st.alarms, base[:250]) == []
    # the baseline fills: its parts so far by whole groups, no shift yet
    assert _value(m, "lineguard_score_drift_baseline_parts", product="cell") == 200
    assert _value(m, "lineguard_score_drift_shift", product="cell") is None
    _count(st.alarms, base[250:])
    assert _value(m, "lineguard_score_drift_baseline_parts", product="cell") == 500
    assert _value(m, "lineguard_score_drift_shift", product="cell") is None

    stable = _good(rng, 100)
    _count(st.alarms, _record(st, stable))
    sorted_base = np.sort(base_scores)
    stable_shift = _value(m, "lineguard_score_drift_shift", product="cell")
    assert stable_shift == spc.rank_shift(sorted_base, stable)[0] and abs(stable_shift) < 0.1
    # set as the 100th part of each group completed, not at every part: the first part
    # (the product's counts read) and 6 groups (5 of the baseline, 1 tested) of 600 parts
    assert len(shown) == 1 + 6

    # a restart: the process started now reads the baseline and the groups back at its
    # first part and shows them at once, not 100 parts later
    restarted = AlarmWatch(st.db, st.alarms.rules, metrics=StationMetrics())
    m = restarted.metrics
    # the camera knocked out of focus: every score lower; the shift the drift alarm tests
    knocked = _good(rng, 150) * 0.7
    recs = _record(st, knocked)
    assert _count(restarted, recs[:1]) == []
    assert _value(m, "lineguard_score_drift_baseline_parts", product="cell") == 500
    assert _value(m, "lineguard_score_drift_shift", product="cell") == stable_shift
    assert _count(restarted, recs[1:]) == []
    shift = _value(m, "lineguard_score_drift_shift", product="cell")
    assert shift == spc.rank_shift(sorted_base, knocked[:100])[0] and shift < -0.2

    # the second group moved: the alarm, and the moved scores are the new baseline
    (alarm,) = _count(restarted, _record(st, _good(rng, 50) * 0.7))
    assert alarm["kind"] == "drift"
    assert _value(m, "lineguard_score_drift_shift", product="cell") is None
    assert _value(m, "lineguard_score_drift_baseline_parts", product="cell") == 0
