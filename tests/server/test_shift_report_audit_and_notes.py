"""The shift report's audited OK parts, its handover notes after the shift starts changed,
and whether several models judged a shift that made nothing."""
from __future__ import annotations

import datetime as dt
import uuid

from lineguard.line import handover
from lineguard.line.orm import Inspection
from lineguard.line.period_report import period_report
from lineguard.line.shift_report import shift_report

BERLIN = "Europe/Berlin"
THREE = ("06:00", "14:00", "22:00")


def _part(t, verdict="OK", line="L1", station="S1", label=None, audit=False, found_by=None, model="m1",
          score=0.2):
    return Inspection(part_id=f"p{uuid.uuid4().hex[:10]}", line=line, station=station, product="cell",
                      verdict=verdict, score=score, threshold=0.5, pixel_threshold=0.5, model_id=model,
                      model_version="v", image_sha256=uuid.uuid4().hex, image_width=8, image_height=8, created_at=t,
                      reviewed=label is not None, review_label=label, audit_sample=audit, found_by=found_by)


def test_ok_parts_audited_are_the_audit_samples_not_every_ok_part_reviewed(spc_station):
    st = spc_station(timezone=BERLIN)
    t = dt.datetime(2026, 12, 7, 8)          # 09:00 in Berlin: the 06:00 shift
    parts = [_part(t + dt.timedelta(minutes=i)) for i in range(40)]
    parts += [_part(t, label="good", audit=True) for _ in range(2)]
    parts += [_part(t, label="defect", audit=True, found_by="station review")]
    # escapes the customer and the next process reported: reviewed, but not drawn by the audit
    parts += [_part(t, label="defect", found_by="customer"), _part(t, label="defect", found_by="next process"),
              _part(t, label="good")]
    with st.db.session() as s:
        s.add_all(parts)
    rep = shift_report(st.db, THREE, BERLIN, line="L1", at=t, now=t + dt.timedelta(days=1))
    month = period_report(st.db, dt.datetime(2026, 12, 6, 23), dt.datetime(2026, 12, 7, 23), timezone=BERLIN,
                          line="L1", audit_rate=0.2, now=t + dt.timedelta(days=1))
    audited = month["lines"][0]["passed_defective_audit"]["n"]
    assert audited == 3
    # the audit sample's 3, as the period report counts the same parts; not the 6 OK parts reviewed
    assert rep["reviews"]["ok_audited"] == audited, rep["reviews"]


def test_a_handover_note_stays_on_the_report_after_the_shift_starts_changed(spc_station):
    st = spc_station(timezone=BERLIN)
    # written under 06:00/14:00/22:00: the 14:00 shift's note (13:00Z) and the 22:00 shift's (21:00Z)
    handover.write_note(st.db, dt.datetime(2026, 12, 7, 13), "L1", "press 3 leaks oil", "ana")
    handover.write_note(st.db, dt.datetime(2026, 12, 7, 21), "L1", "camera 2 cleaned", "ben")
    # the 06:00 shift's note: that shift ends at 18:00 under the new starts, before the night shift
    handover.write_note(st.db, dt.datetime(2026, 12, 7, 5), "L1", "morning: all fine", "cem")
    now = dt.datetime(2026, 12, 9)
    # the station started again with 06:00/18:00: 20:30Z is in the 18:00 shift (17:00Z to 05:00Z)
    rep = shift_report(st.db, ("06:00", "18:00"), BERLIN, line="L1", at=dt.datetime(2026, 12, 7, 20, 30), now=now)
    note = rep["handover_note"]
    assert rep["shift"]["start"] == "2026-12-07T17:00:00Z" and note["note"] is None
    other = [(o["shift_start"], o["note"], o["written_by"]) for o in note["other_shifts"]]
    assert other == [("2026-12-07T13:00:00Z", "press 3 leaks oil", "ana"),
                     ("2026-12-07T21:00:00Z", "camera 2 cleaned", "ben")], other
    # a note written for the new night shift is its note; the old ones overlapping it stay beside it
    handover.write_note(st.db, dt.datetime(2026, 12, 7, 17), "L1", "night: line 1 slow", "dan")
    rep = shift_report(st.db, ("06:00", "18:00"), BERLIN, line="L1", at=dt.datetime(2026, 12, 7, 20, 30), now=now)
    assert rep["handover_note"]["note"] == "night: line 1 slow"
    assert [o["shift_start"] for o in rep["handover_note"]["other_shifts"]] == ["2026-12-07T13:00:00Z",
                                                                             "2026-12-07T21:00:00Z"]


def test_the_shift_before_keeps_its_note_to_itself_when_the_starts_did_not_change(spc_station):
    st = spc_station(timezone=BERLIN)
    handover.write_note(st.db, dt.datetime(2026, 12, 7, 13), "L1", "press 3 leaks oil", "ana")
    rep = shift_report(st.db, THREE, BERLIN, line="L1", at=dt.datetime(2026, 12, 7, 22), now=dt.datetime(2026, 12, 9))
    # the 22:00 shift: the 14:00 shift's note is that shift's, ended where this one began
    assert rep["handover_note"]["note"] is None and rep["handover_note"]["other_shifts"] == []
    own = shift_report(st.db, THREE, BERLIN, line="L1", at=dt.datetime(2026, 12, 7, 14), now=dt.datetime(2026, 12, 9))
    assert own["handover_note"]["note"] == "press 3 leaks oil" and own["handover_note"]["other_shifts"] == []


def test_a_shift_that_made_nothing_was_not_judged_by_several_models(spc_station):
    st = spc_station(timezone=BERLIN)
    t = dt.datetime(2026, 12, 7, 6)          # 07:00 in Berlin: the 06:00 shift; two models in it on L2
    parts = [_part(t + dt.timedelta(minutes=i), line="L2", station="S2", model="m1" if i % 2 else "m2",
                   score=0.1 + 0.001 * i) for i in range(60)]
    with st.db.session() as s:
        s.add_all(parts)
    now = dt.datetime(2026, 12, 9)
    idle = shift_report(st.db, THREE, BERLIN, line="L2", at=dt.datetime(2026, 12, 7, 14), now=now)
    assert idle["totals"]["parts"] == 0 and idle["models"] == []
    # no part scored in this shift: nothing compared, so no models that differ
    assert idle["drift"]["models_differ"] is False, idle["drift"]
    ran = shift_report(st.db, THREE, BERLIN, line="L2", at=t, now=now)
    assert ran["drift"]["models_differ"] is True and len(ran["models"]) == 2
