"""A quality manager's month-end walk, part 2 (Berlin, October 2026, the month of
test_month_review_walk): what the period report still left to other pages. The shifts'
test-part verification (GET /api/v1/verification answers one shift a call), the model
activations and rollbacks and why, the parts the PLC rejected without a verdict, an
active alarm's wait in a past month's report, and the SPC page's link naming it all."""
from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest

from .test_month_review_walk import OCT, add_alarms, made_october
from .test_period_report import _book
from .test_spc_api import client

SHIFTS = "06:00,14:00,22:00"
BERLIN = "Europe/Berlin"


def _check(t, name, expected, verdict, line="L1", product="cell"):
    """A test part's record as the station keeps it (a check: its name and the verdict it must get)."""
    return dict(part_id=f"p{uuid.uuid4().hex[:12]}", line=line, station="S1", product=product, verdict=verdict,
                score=0.9 if verdict == "NG" else 0.1, threshold=0.5, pixel_threshold=0.5, model_id="m1",
                model_version="v", image_sha256=uuid.uuid4().hex, image_width=8, image_height=8, created_at=t,
                test_part=name, test_expected=expected)


def put_test_parts_through(st):
    """Cell (L1) has a red rabbit and a good test part, put through every morning shift at 07:50
    on the plant's clock: on the 7th the red rabbit passed as OK (it stands failed through the
    7th's later shifts, until checked right on the 8th), on the 9th only the good one went
    through. Cap (L2) has a test part nobody put through."""
    from sqlalchemy import insert

    from lineguard.line.orm import Inspection, TestPart
    with st.db.session() as s:
        for product, name, expect in (("cell", "RR-01", "NG"), ("cell", "OK-01", "OK"), ("cap", "CAP-RR", "NG")):
            s.add(TestPart(product=product, name=name, expect=expect, created_at=dt.datetime(2026, 9, 1)))
    rows = []
    for d in range(1, 32):
        t = dt.datetime(2026, 10, d, 5 if d < 25 else 6, 50)      # 07:50 CEST, then CET
        if d != 9:
            rows.append(_check(t, "RR-01", "NG", "OK" if d == 7 else "NG"))
        rows.append(_check(t + dt.timedelta(minutes=1), "OK-01", "OK", "OK"))
    with st.db.session() as s:
        s.execute(insert(Inspection), rows)


@pytest.fixture
def october(spc_station):
    st = spc_station(timezone=BERLIN, shift_starts=SHIFTS)
    made_october(st)
    add_alarms(st)
    return st


def test_the_month_test_part_verification_per_line_and_station(october):
    """The report had no word of the test parts: the month's verification took one call of
    GET /api/v1/verification a shift (~93), added up by hand. Each shift of the month, as that
    call answers it, is now counted per line and station, and those not passed are named with
    their shift's start on the plant's clock."""
    from lineguard.line.shifts import parse_shift_starts, plant_zone, shift_of
    from lineguard.line.test_parts import verification
    put_test_parts_through(october)
    with client(october) as c:
        body = c.get("/api/v1/reports/period", params=OCT).json()
        book = _book(c.get("/api/v1/reports/period", params={**OCT, "format": "xlsx"}).content)
    ver = body["verification"]
    assert ver["shifts"] == 93
    lines = {ln["line"]: ln for ln in ver["lines"]}
    # L1: 31 morning shifts (the 9th incomplete, the 7th failed) and the 7th's two later
    # shifts, failed still; the 31st's night shift made a part and saw no test part: due
    assert {k: lines["L1"][k] for k in ("shifts", "passed", "incomplete", "due", "failed")} == {
        "shifts": 34, "passed": 29, "incomplete": 1, "due": 1, "failed": 3}
    assert {k: lines["L2"][k] for k in ("shifts", "passed", "due")} == {"shifts": 31, "passed": 0, "due": 31}
    assert [(s["station"], s["product"], s["shifts"]) for s in lines["L1"]["stations"]] == [("S1", "cell", 34)]
    missed = [v for v in ver["not_passed"] if v["line"] == "L1"]
    assert [(v["shift"], v["start_plant"], v["state"]) for v in missed] == [
        ("2026-10-07 S1 (06:00)", "2026-10-07T06:00:00+02:00", "failed"),
        ("2026-10-07 S2 (14:00)", "2026-10-07T14:00:00+02:00", "failed"),
        ("2026-10-07 S3 (22:00)", "2026-10-07T22:00:00+02:00", "failed"),
        ("2026-10-09 S1 (06:00)", "2026-10-09T06:00:00+02:00", "incomplete"),
        ("2026-10-31 S3 (22:00)", "2026-10-31T22:00:00+01:00", "due")]
    assert missed[0]["test_parts"] == "RR-01 judged OK, must be NG"
    assert missed[3]["test_parts"] == "not put through: RR-01"
    # the same states as the verification's, asked shift by shift
    starts, zone = parse_shift_starts(SHIFTS), plant_zone(BERLIN)
    # the shifts that started in October on the plant's clock (from 1 Oct 06:00 CEST)
    sh, states = shift_of(dt.datetime(2026, 10, 1, 4), starts, zone), {}
    assert sh.label == "2026-10-01 S1 (06:00)"
    while sh.start_utc < dt.datetime(2026, 10, 31, 23):
        for v in verification(october.db, sh, failures=False):
            states[(v["line"], sh.label)] = v["state"]
        sh = shift_of(sh.end_utc, starts, zone)
    assert sum(1 for (ln, _), st in states.items() if ln == "L1") == lines["L1"]["shifts"]
    assert sorted((ln, label, st) for (ln, label), st in states.items() if st != "passed") == sorted(
        (v["line"], v["shift"], v["state"]) for v in ver["not_passed"])
    # the workbook: sheets after the old ones
    assert list(book)[:7] == ["Window", "Summary", "By day", "Defect types", "Models", "By week", "Alarms"]
    head = [t for _, t in book["Verification"][0]]
    rows = [dict(zip(head, r)) for r in book["Verification"][1:]]
    l1 = next(r for r in rows if r["line"] == ("s", "L1") and r["station"] == ("s", "S1"))
    assert (l1["shifts with test parts"], l1["failed"], l1["passed"]) == (("n", "34"), ("n", "3"), ("n", "29"))
    head = [t for _, t in book["Verification not passed"][0]]
    missed_rows = [dict(zip(head, r)) for r in book["Verification not passed"][1:]]
    first = next(r for r in missed_rows if r["line"] == ("s", "L1"))
    assert first["shift start"][0] == "t" and first["state"] == ("s", "failed")


def test_one_line_and_a_station_typed_in_another_case(october):
    put_test_parts_through(october)
    with client(october) as c:
        ver = c.get("/api/v1/reports/period", params={**OCT, "line": "L1", "station": "s1"}).json()["verification"]
    assert [(ln["line"], ln["shifts"], ln["failed"]) for ln in ver["lines"]] == [("L1", 34, 3)]


def add_model_changes(st):
    """Cell's model of L1: v1 from September; v2 made active on the 12th at 09:00 (CEST), forced
    past a trial that rejected good parts, and rolled back the next morning; one activation
    in September, outside the month."""
    from lineguard.line.orm import ChangeLogEntry, ModelActivation, ModelVersion
    with st.db.session() as s:
        v1 = ModelVersion(product="cell", line="L1", version=1, model_id="m1", file_key="k1", active=True)
        v2 = ModelVersion(product="cell", line="L1", version=2, model_id="m2", file_key="k2",
                          note="retrained on the new supplier's parts")
        s.add_all([v1, v2])
        s.flush()
        s.add(ModelActivation(product="cell", line="L1", model_version_id=v1.id,
                              activated_at=dt.datetime(2026, 9, 2, 8), activated_by="eng.anna"))
        at = dt.datetime(2026, 10, 12, 7)
        s.add(ModelActivation(product="cell", line="L1", model_version_id=v2.id, activated_at=at,
                              activated_by="eng.ben", rolled_back_at=dt.datetime(2026, 10, 13, 5, 30),
                              rolled_back_by="q.manager"))
        s.add(ChangeLogEntry(at=at + dt.timedelta(seconds=1), actor="eng.ben", action="model.activated",
                             subject="cell/L1 v2", details={"model_id": "m2", "forced": "rejected 31 of 50 good parts",
                                                            "unshadowed": "activated without a shadow comparison"}))
        s.add(ChangeLogEntry(at=dt.datetime(2026, 10, 13, 5, 30, 1), actor="q.manager", action="model.rolled_back",
                             subject="cell/L1 v1", details={"undone": [2]}))


@pytest.mark.one_database
def test_the_month_model_activations_and_rollbacks_and_why(october):
    """The report listed the models that judged parts: that v2 was forced live past a trial
    that rejected good parts, and rolled back the next morning, was on the change log alone."""
    add_model_changes(october)
    with client(october) as c:
        body = c.get("/api/v1/reports/period", params=OCT).json()
        other = c.get("/api/v1/reports/period", params={**OCT, "line": "L2"}).json()
        book = _book(c.get("/api/v1/reports/period", params={**OCT, "format": "xlsx"}).content)
    ch = body["model_changes"]
    assert [(c["change"], c["at_plant"], c["version"], c["undone"], c["by"]) for c in ch] == [
        ("activated", "2026-10-12T09:00:00+02:00", 2, None, "eng.ben"),
        ("rolled back", "2026-10-13T07:30:00+02:00", None, [2], "q.manager")]
    assert ch[0]["forced"] is True and ch[0]["forced_text"] == "rejected 31 of 50 good parts"
    assert ch[0]["text"] == "cell on L1: version 2 made active by eng.ben (forced: rejected 31 of 50 good parts)"
    assert "activated without a shadow comparison" in ch[0]["words"]
    assert ch[0]["note"] == "retrained on the new supplier's parts"
    assert ch[1]["text"] == "cell on L1: version 2 rolled back by q.manager, back to cell/L1 v1"
    assert other["model_changes"] == []
    head = [t for _, t in book["Model changes"][0]]
    rows = [dict(zip(head, r)) for r in book["Model changes"][1:]]
    assert [(r["change"][1], r["when"][0], r["forced"]) for r in rows] == [
        ("activated", "t", ("b", "1")), ("rolled back", "t", ("b", "0"))]


def add_no_verdict(st):
    """PLC answers: L1 three NG without a verdict in October (one judged later), an NG with
    its verdict and one NG in September (neither counted); L3 ran no judged part at all."""
    from lineguard.line.orm import LineSignal
    rows = [("L1", dt.datetime(2026, 10, 3, 9), None, None, "NG"),
            ("L1", dt.datetime(2026, 10, 3, 10), None, 7, "NG"),
            ("L1", dt.datetime(2026, 10, 20, 15), None, None, "NG"),
            ("L1", dt.datetime(2026, 10, 20, 16), 5, None, "NG"),
            ("L1", dt.datetime(2026, 9, 20, 9), None, None, "NG"),
            ("L3", dt.datetime(2026, 10, 15, 9), None, None, "NG")]
    with st.db.session() as s:
        for i, (line, t, insp, late, signal) in enumerate(rows):
            s.add(LineSignal(protocol="modbus", line=line, station="S1", trigger_seq=i, part_tag=i, recipe_id=1,
                             product="cell", inspection_id=insp, late_inspection_id=late, signal=signal,
                             result_code=2, reason="inspection window missed", triggered_at=t, answered_at=t))


@pytest.mark.one_database
def test_parts_the_plc_rejected_without_a_verdict_per_line(october):
    """The shift report counts the parts the PLC rejected without a verdict; the month report
    had no such count, so the month's scrap was short of its shifts' by those parts."""
    from lineguard.line.shift_report import shift_report
    add_no_verdict(october)
    with client(october) as c:
        body = c.get("/api/v1/reports/period", params=OCT).json()
        book = _book(c.get("/api/v1/reports/period", params={**OCT, "format": "xlsx"}).content)
    lines = {ln["line"]: ln for ln in body["lines"]}
    assert {k: lines["L1"]["no_verdict"][k] for k in ("parts", "judged_later", "never_judged")} == {
        "parts": 3, "judged_later": 1, "never_judged": 2}
    assert lines["L3"]["no_verdict"]["parts"] == 1 and lines["L3"]["parts"] == 0
    assert body["total"]["no_verdict"]["parts"] == 4
    # the sum of the shift reports of the shifts they were made in
    shifts = sum(shift_report(october.db, SHIFTS, BERLIN, at=t)["totals"]["no_verdict"]
                 for t in (dt.datetime(2026, 10, 3, 9), dt.datetime(2026, 10, 15, 9), dt.datetime(2026, 10, 20, 15)))
    assert shifts == body["total"]["no_verdict"]["parts"]
    head = [t for _, t in book["Summary"][0]]
    # then the escapes found otherwise by where found (five columns, added after these)
    assert head[-8:-5] == ["rejected by the PLC without a verdict", "of them judged later", "never judged"]
    rows = {r[0][1]: dict(zip(head, r)) for r in book["Summary"][1:]}
    assert rows["L1"]["rejected by the PLC without a verdict"] == ("n", "3")
    assert rows["all lines"]["never judged"] == ("n", "3")


@pytest.mark.one_database
def test_a_past_month_says_an_active_alarm_waited_to_the_month_end(october):
    """The alarm raised at 23:30 on the 31st and still active read 'waited' some 50000
    minutes in October's report made in December, and more each time it was made."""
    with client(october) as c:
        al = c.get("/api/v1/reports/period", params=OCT).json()["alarms"]
        book = _book(c.get("/api/v1/reports/period", params={**OCT, "format": "xlsx"}).content)
    assert al["oldest_active_waiting_min"] == 30.0
    assert al["oldest_active_waiting_until"] == "2026-10-31T23:00:00Z"
    assert "by the window's end" in al["oldest_active_text"] and "still active now" in al["oldest_active_text"]
    assert [a["waiting_min"] for a in al["items"]] == [None, None, None, 30.0]
    head = [t for _, t in book["Alarms"][0]]
    assert head[:10] == ["line", "station", "product", "kind", "raised", "message", "acknowledged", "by",
                         "turned out to be", "note"]
    assert book["Alarms"][4][10][0] == "n" and float(book["Alarms"][4][10][1]) == 30.0


def test_the_spc_page_link_says_the_workbook_holds_weeks_and_alarms():
    js = (Path(__file__).resolve().parents[2] / "src/lineguard/server/web/spc.js").read_text(encoding="utf-8")
    label = js.split('id: "xlsx-month"}, "', 1)[1].split('"', 1)[0]
    assert "weeks" in label and "alarms" in label, label
