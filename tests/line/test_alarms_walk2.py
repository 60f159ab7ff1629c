"""Line alarms walk 2: a drift alarm restarts the baseline of the product whose scores
moved only (a product-switching station's other products stay guarded), also after a
restart; run and rate alarms over parts of several products name them all."""
from __future__ import annotations

import numpy as np
import pytest

from lineguard.line.alarms import AlarmWatch

from .test_drift_alarm import _count, _good, _record, _station


def _by_turns(st, rng, n, cell=1.0, frame=1.0):
    """n parts of each product, cell and frame by turns (a product-switching line)."""
    out = []
    for _ in range(n // 50):
        out += _record(st, _good(rng, 50) * cell, product="cell", model="m-cell")
        out += _record(st, _good(rng, 50) * frame, product="frame", model="m-frame")
    return out


def test_a_drift_alarm_of_one_product_keeps_the_other_products_baseline_also_after_a_restart(station_factory):
    st = _station(station_factory)
    rng = np.random.default_rng(11)
    assert _count(st.alarms, _by_turns(st, rng, 600)) == []
    counts = st.alarms._counts[("L1", "S1")]
    assert counts.drift["cell"].baseline_count == counts.drift["frame"].baseline_count == 500
    # the frame's scores move up; the cell's stay
    raised = _count(st.alarms, _by_turns(st, rng, 300, frame=1.5))
    assert [(a["kind"], a["product"]) for _, a in raised] == [("drift", "frame")]
    assert counts.drift["cell"].baseline_count == 500, "the frame's alarm restarted the cell's baseline"
    assert counts.drift["frame"].baseline_count < 500
    st.alarms.acknowledge(raised[0][1]["id"], "quality", note="new frame lot, accepted")
    assert counts.drift["cell"].baseline_count == 500
    # a process started now reads the cell's complete baseline back, not one begun after the frame's alarm
    restarted = AlarmWatch(st.db, st.alarms.rules)
    assert _count(restarted, _by_turns(st, rng, 100, frame=1.5)) == []
    again = restarted._counts[("L1", "S1")]
    assert again.drift["cell"].baseline_count == 500
    # and the cell's own move is still told against it
    raised = _count(restarted, _by_turns(st, rng, 400, cell=1.5, frame=1.5))
    assert [(a["kind"], a["product"]) for _, a in raised] == [("drift", "cell")]


def test_a_plant_cause_labelled_without_a_letter_gets_a_key_with_one(station_factory):
    """A key of digits alone read as a PLC number: the API's "7" was the plant's cause, the
    PLC's AlarmAckCause 7 another one."""
    from lineguard.line import alarm_causes
    from lineguard.line.errors import InvalidRequest
    st = station_factory()
    c = alarm_causes.add(st.db, "7", by="qe")
    assert c["code"] == 7 and c["key"] == "cause_7"
    assert alarm_causes.add(st.db, "4 - 2", by="qe")["key"] == "cause_8"
    with pytest.raises(InvalidRequest, match="needs a letter"):
        alarm_causes.add(st.db, "press four", by="qe", key="9")
    assert alarm_causes.add(st.db, "press four", by="qe", key="press_4")["key"] == "press_4"


@pytest.mark.parametrize("label", ["Other", "OTHER", "other (say what in the note)", "other:", "Camera",
                                   "Camera, lens or lighting"])
def test_a_plant_cause_called_like_a_built_in_one_is_refused(station_factory, label):
    from lineguard.line import alarm_causes
    from lineguard.line.errors import Conflict
    st = station_factory()
    with pytest.raises(Conflict) as refused:
        alarm_causes.add(st.db, label, by="qe")
    said = str(refused.value)
    assert ("note" in said) if label.lower().startswith("other") else ("built in already (camera" in said)
    assert [c for c in alarm_causes.listing(st.db) if not c["built_in"]] == []
    # a cause that only begins like one is the plant's own
    assert alarm_causes.add(st.db, label.split()[0].strip(":,") + " mount loose", by="qe")["code"] == 7


def test_a_run_over_parts_of_two_products_names_both_and_each_product_s_report_lists_it(station_factory):
    from lineguard.line.alarms import history
    st = station_factory(alarm_ng_rate=0, alarm_drift_parts=0)
    recs = _record(st, [0.9] * 3, product="cell", verdict="NG") + _record(st, [0.9] * 2, product="frame", verdict="NG")
    raised = _count(st.alarms, recs)
    assert [a["kind"] for _, a in raised] == ["ng_run"]
    alarm = raised[0][1]
    assert alarm["product"] == "cell, frame", alarm
    assert "station S1 (line L1, 3 cell and 2 frame)" in alarm["message"]
    # each product's shift report (the history narrowed to it) lists it; a product named
    # like a part of one does not
    assert [a["id"] for a in history(st.db, product="cell")] == [alarm["id"]]
    assert [a["id"] for a in history(st.db, product="frame")] == [alarm["id"]]
    assert history(st.db, product="cel") == [] and history(st.db, product="cell, frame") != []
    # a run of one product's parts names that one alone, as before
    st.alarms.acknowledge(alarm["id"], "lead", note="coil")
    raised = _count(st.alarms, _record(st, [0.9] * 5, product="frame", verdict="NG"))
    assert raised[0][1]["product"] == "frame" and "(line L1, frame)" in raised[0][1]["message"]


def test_a_rate_alarm_names_the_products_of_the_rejected_parts(station_factory):
    st = station_factory(alarm_ng_run=0, alarm_window=20, alarm_ng_rate=0.2, alarm_drift_parts=0)
    recs = []
    for product in ("cell", "frame", "cell", "frame"):
        recs += _record(st, [0.1] * 3, product=product, verdict="OK")
        recs += _record(st, [0.9] * 1, product=product, verdict="NG")
    raised = _count(st.alarms, recs)
    assert [a["kind"] for _, a in raised] == ["ng_rate"]
    assert raised[0][1]["product"] == "cell, frame"
    assert "4 of the last 16 parts NG at station S1 (line L1, 2 cell and 2 frame)" in raised[0][1]["message"]


def _escalated_alarm(st, first, every_min, times, next_due):
    import datetime as dt
    from lineguard.line.orm import LineAlarm
    day = dt.datetime(2026, 11, 30)
    with st.db.session() as s:
        s.add(LineAlarm(line="L1", station="S1", product="cell", kind="ng_run", message="5 parts in a row",
                        raised_at=day + dt.timedelta(hours=13, minutes=30), inspection_id=1, first_inspection_id=1,
                        parts=5, rejected=5, escalated_at=day + first, escalations=times,
                        escalate_again_min=every_min, escalate_at=day + next_due))
    return day


def test_an_ended_shift_s_report_counts_the_escalations_by_its_end_not_since(station_factory):
    import datetime as dt
    from lineguard.line.shift_report import shift_report
    st = station_factory()
    h = lambda hh, mm: dt.timedelta(hours=hh, minutes=mm)     # noqa: E731
    # escalated at 13:40 and every 5 minutes since, nobody acknowledging: 4 by the shift's
    # end at 14:00, 9 by 14:22 (the last at 14:20, the next due 14:25)
    day = _escalated_alarm(st, h(13, 40), 5, 9, h(14, 25))
    rep = shift_report(st.db, shift_starts=("06:00", "14:00", "22:00"), at=day + h(10, 0), now=day + h(14, 22))
    a = rep["alarms"][0]
    assert a["at_end"] == {"acknowledged": False, "escalated": True}
    assert a["escalations"] == 4, a
    assert "escalated 5 more times after the shift's end (9 in all)" in a["later"]


def test_escalations_that_came_late_are_counted_as_far_as_can_be_known(station_factory):
    import datetime as dt
    from lineguard.line.shift_report import shift_report
    st = station_factory()
    h = lambda hh, mm: dt.timedelta(hours=hh, minutes=mm)     # noqa: E731
    # every 5 minutes from 13:40, the third at 14:05 (the processes were down a while): the
    # second came between 13:45 and 14:00, its time not kept
    day = _escalated_alarm(st, h(13, 40), 5, 3, h(14, 10))
    a = shift_report(st.db, shift_starts=("06:00", "14:00", "22:00"), at=day + h(10, 0),
                     now=day + h(15, 0))["alarms"][0]
    assert a["escalations"] == 1
    assert "escalated 3 times in all, 1 to 2 of them by the shift's end" in a["later"]


def test_a_long_list_of_products_is_cut_between_whole_names():
    from lineguard.line.alarms import _products_field
    names = [(f"product-{i:02d}-" + "x" * 20, 1) for i in range(6)]
    field = _products_field(names)
    assert len(field) <= 100 and field.endswith(", ..."), field
    for part in field.split(", ")[:-1]:
        assert part in {n for n, _ in names}, part
