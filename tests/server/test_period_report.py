"""The period (month) report on SQLite and PostgreSQL: a made month counted by hand, the
plant's whole days (Berlin), the estimate of good parts scrapped while NG parts wait, the
workbook's typed sheets, refusals and an empty month."""
from __future__ import annotations

import datetime as dt
import io
import xml.etree.ElementTree as ET
import zipfile

import pytest

from .test_spc_api import add_parts, client

NOV = {"since": "2026-11-01", "until": "2026-11-30"}      # Berlin: 2026-10-31T23:00Z to 2026-11-30T23:00Z
_NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}


def made_month(st):
    """L1: every NG part reviewed (exact); L2: 2 of 6 NG parts waiting (an estimate)."""
    from lineguard.line.orm import Inspection
    nov2, nov3, nov4 = (dt.datetime(2026, 11, d, 8) for d in (2, 3, 4))
    s = dt.timedelta(seconds=1)
    rows = [(dt.datetime(2026, 10, 31, 23, 30), "OK", 0.1, "L1")]        # 1 Nov 00:30 in Berlin: in
    rows += [(nov2 + i * s, "OK", 0.1, "L1") for i in range(188)]
    rows += [(nov2, "OK", 0.1, "L1", None, "good", True)] * 10            # the audit sample, reviewed good
    rows += [(nov2, "OK", 0.1, "L1", None, "defect", True)]                # ... and one escape it found
    rows += [(nov3, "NG", 0.9, "L1", None, "good")] * 2 + [(nov3, "NG", 0.9, "L1", None, "defect")] * 8
    rows += [(nov3, "REVIEW", 0.45, "L1", None, "good")] * 3 + [(nov3, "REVIEW", 0.45, "L1")]
    rows += [(nov2 + i * s, "OK", 0.1, "L2") for i in range(100)]
    rows += [(nov4, "NG", 0.9, "L2", None, "good")] * 2 + [(nov4, "NG", 0.9, "L2", None, "defect")] * 2
    rows += [(nov4, "NG", 0.9, "L2")] * 2
    # outside November in Berlin: 31 Oct 23:30 and 1 Dec 00:30 on its clocks
    rows += [(dt.datetime(2026, 10, 31, 22, 30), "NG", 0.9, "L1"), (dt.datetime(2026, 11, 30, 23, 30), "NG", 0.9, "L2")]
    add_parts(st, rows)
    with st.db.session() as sn:
        defects = sn.query(Inspection).filter_by(line="L1", verdict="NG", review_label="defect").order_by(
            Inspection.id).all()
        for i, p in enumerate(defects):
            p.defect_type = "crack" if i < 5 else "dent"
        for p in sn.query(Inspection).filter_by(line="L2").all():
            p.model_id = "m2"


def test_the_month_report_counts_as_by_hand(spc_station):
    st = spc_station(timezone="Europe/Berlin")
    made_month(st)
    with client(st) as c:
        r = c.get("/api/v1/reports/period", params=NOV)
        assert r.status_code == 200, r.text
        body = r.json()
        w = body["window"]
        assert (w["since"], w["until"]) == ("2026-10-31T23:00:00Z", "2026-11-30T23:00:00Z")
        assert w["since_plant"] == "2026-11-01T00:00:00+01:00" and w["timezone"] == "Europe/Berlin"
        assert w["lineguard_version"] and w["made_at"] and w["station_host"]
        assert not body["empty"]
        total = body["total"]
        assert (total["parts"], total["OK"], total["NG"], total["REVIEW"]) == (320, 300, 16, 4)
        lines = {ln["line"]: ln for ln in body["lines"]}
        l1, l2 = lines["L1"], lines["L2"]
        assert (l1["parts"], l1["OK"], l1["NG"], l1["REVIEW"]) == (214, 200, 10, 4)
        # L1, every NG part reviewed: 2 good of the 214 - 9 confirmed defects = 205 good parts made
        gs = l1["good_scrapped"]
        assert (gs["k"], gs["n"], gs["estimate"]) == (2, 205, False)
        assert gs["rate"] == pytest.approx(2 / 205) and gs["lo"] is not None
        assert gs["share"]["text"] == "2 of 205"
        assert (l1["rejected_reviewed_good"]["k"], l1["rejected_reviewed_good"]["n"]) == (2, 10)
        ea = l1["passed_defective_audit"]
        assert (ea["k"], ea["n"], ea["needed"]) == (1, 11, 4742)
        assert ea["upper_bound"] == pytest.approx(0.3644, abs=1e-4)
        assert l1["review_workload"] == {"parts": 4, "reviewed_good": 3, "reviewed": 3,
                                         "good_share": {"rate": 1.0, "k": 3, "n": 3, "text": "3 of 3"}}
        assert l1["waiting_for_review"] == {"parts": 1, "NG": 0, "REVIEW": 1}
        # L2, 2 of 6 NG parts waiting: the good share of those reviewed (2 of 4) stands for all 6
        gs2 = l2["good_scrapped"]
        assert gs2["estimate"] is True and (gs2["k"], gs2["n"]) == (pytest.approx(3.0), pytest.approx(103.0))
        assert gs2["lo"] is None and "an estimate" in gs2["text"]
        assert l2["waiting_for_review"] == {"parts": 2, "NG": 2, "REVIEW": 0}
        # all lines: 4 of the 14 NG reviewed good, times 16 NG parts; 303 good parts passed
        gst = total["good_scrapped"]
        assert gst["estimate"] and gst["k"] == pytest.approx(4 / 14 * 16)
        assert gst["n"] == pytest.approx(4 / 14 * 16 + 303)
        # the same numbers as GET /api/v1/spc/review-rates over the same window
        rr = c.get("/api/v1/spc/review-rates", params=NOV).json()
        assert rr["good_scrapped"]["k"] == pytest.approx(gst["k"]) and rr["good_scrapped"]["n"] == pytest.approx(
            gst["n"])
        # the p-chart by day, as the p-chart route draws it over the month
        days = body["by_day"]
        assert days["centre"] == pytest.approx(16 / 320)
        assert [(p["label"], p["n"], p["ng"]) for p in days["points"]] == [
            ("2026-11-01", 1, 0), ("2026-11-02", 299, 0), ("2026-11-03", 14, 10), ("2026-11-04", 6, 6)]
        assert 1 in days["points"][2]["rules"] and any(a["label"] == "2026-11-03" for a in days["alarms"])
        pc = c.get("/api/v1/spc/p-chart", params={**NOV, "by": "day"}).json()
        assert [(p["label"], p["ucl"]) for p in pc["points"]] == [(p["label"], p["ucl"]) for p in days["points"]]
        types = body["defect_types"]
        assert types["defects"] == 11 and types["not_reviewed"] == 3
        assert [(b["defect_type"], b["parts"], b["caught"], b["escaped"]) for b in types["bars"]] == [
            ("crack", 5, 5, 0), ("(no type given)", 3, 2, 1), ("dent", 3, 3, 0)]
        assert [(m["model_id"], m["parts"]) for m in body["models"]] == [("m1", 214), ("m2", 106)]
        # one line: its numbers alone
        one = c.get("/api/v1/reports/period", params={**NOV, "line": "l2"}).json()
        assert one["window"]["line"] == "L2" and one["total"]["parts"] == 106
        assert [ln["line"] for ln in one["lines"]] == ["L2"]


def _book(data: bytes) -> dict[str, list[list[tuple[str, str]]]]:
    """Each sheet's cells as (kind, text): kind "s" for text, "n" a number, "t" a time, "b" a boolean."""
    out = {}
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        wb = ET.fromstring(z.read("xl/workbook.xml"))
        assert "xl/styles.xml" in z.namelist()
        for i, sheet in enumerate(wb.iter(f"{{{_NS['m']}}}sheet")):
            root = ET.fromstring(z.read(f"xl/worksheets/sheet{i + 1}.xml"))
            rows = []
            for row in root.iter(f"{{{_NS['m']}}}row"):
                cells = []
                for cl in row.findall("m:c", _NS):
                    assert cl.find("m:f", _NS) is None
                    t = cl.get("t")
                    kind = "s" if t == "inlineStr" else "b" if t == "b" else \
                        "t" if cl.get("s") not in (None, "0", "2") else "n"
                    node = cl.find("m:is/m:t", _NS) if kind == "s" else cl.find("m:v", _NS)
                    cells.append((kind, "" if node is None else node.text or ""))
                rows.append(cells)
            out[sheet.get("name")] = rows
    return out


@pytest.mark.one_database
def test_the_month_report_as_a_workbook_has_typed_sheets(spc_station):
    st = spc_station(timezone="Europe/Berlin")
    made_month(st)
    with client(st) as c:
        r = c.get("/api/v1/reports/period", params={**NOV, "format": "xlsx"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats-officedocument.spreadsheetml")
    assert 'filename="lineguard-period-20261101-20261130.xlsx"' in r.headers["content-disposition"]
    book = _book(r.content)
    assert list(book) == ["Window", "Summary", "By day", "Defect types", "Models", "By week", "Alarms",
                          "Verification", "Verification not passed", "Model changes", "Defect types by line"]
    window = {row[0][1]: row[1] for row in book["Window"][1:]}
    assert window["since"][0] == "t" and window["time zone"] == ("s", "Europe/Berlin")
    head = [t for _, t in book["Summary"][0]]
    assert "good parts scrapped share (0-1)" in head and "estimate" in head
    rows = {row[0][1]: dict(zip(head, row)) for row in book["Summary"][1:]}
    assert list(rows) == ["L1", "L2", "all lines"]
    assert rows["L1"]["parts judged"] == ("n", "214") and rows["L1"]["NG reviewed (n)"] == ("n", "10")
    kind, share = rows["L1"]["good parts scrapped share (0-1)"]
    assert kind == "n" and float(share) == pytest.approx(2 / 205)
    assert rows["L2"]["estimate"] == ("b", "1") and float(rows["L2"]["good parts scrapped (k)"][1]) == 3.0
    assert rows["all lines"]["waiting for review"] == ("n", "3")
    days = book["By day"]
    assert [c[1] for c in days[0][:3]] == ["day starts", "day", "parts judged"]
    assert [(row[0][0], row[1][1], row[2]) for row in days[1:]] == [
        ("t", "2026-11-01", ("n", "1")), ("t", "2026-11-02", ("n", "299")), ("t", "2026-11-03", ("n", "14")),
        ("t", "2026-11-04", ("n", "6"))]
    assert [row[0][1] for row in book["Defect types"][1:]] == ["crack", "(no type given)", "dent"]
    assert [(row[1][1], row[3]) for row in book["Models"][1:]] == [("m1", ("n", "214")), ("m2", ("n", "106"))]


@pytest.mark.parametrize("params, says", [
    ({"since": "2026-12-01", "until": "2026-11-01"}, "must be before until"),
    ({"since": "2025-06-01", "until": "2026-11-30"}, "longer than 400 days"),
    ({"since": "yesterday"}, "since"),
    ({**NOV, "format": "csv"}, "format"),
    ({**NOV, "lnie": "L1"}, "unknown query parameter lnie"),
])
@pytest.mark.one_database
def test_a_window_it_cannot_report_is_a_422_saying_what_to_send(spc_station, params, says):
    st = spc_station(timezone="Europe/Berlin")
    with client(st) as c:
        r = c.get("/api/v1/reports/period", params=params)
    assert r.status_code == 422, r.text
    assert says in r.json()["error"]["message"], r.json()


def test_a_month_with_no_parts_is_a_report_that_says_so(spc_station):
    st = spc_station(timezone="Europe/Berlin")
    made_month(st)
    with client(st) as c:
        r = c.get("/api/v1/reports/period", params={"since": "2026-06-01", "until": "2026-06-30"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["empty"] is True and body["text"].startswith("no part was judged in this window")
        assert body["total"]["parts"] == 0 and body["lines"] == [] and body["by_day"]["points"] == []
        assert body["total"]["good_scrapped"]["rate"] is None and body["models"] == []
        book = _book(c.get("/api/v1/reports/period", params={"since": "2026-06-01", "until": "2026-06-30",
                                                            "format": "xlsx"}).content)
        assert len(book["By day"]) == 1 and [c[1] for c in book["Summary"][1][:2]] == ["all lines", "0"]


def test_the_window_left_out_is_the_plants_whole_days():
    from lineguard.line.period_report import window
    now = dt.datetime(2026, 12, 6, 10, 0)
    # neither: the last whole month on the plant's clocks
    assert window(None, None, "Europe/Berlin", now) == (dt.datetime(2026, 10, 31, 23), dt.datetime(2026, 11, 30, 23))
    # no since: from the first of until's month (month to date)
    assert window(None, dt.datetime(2026, 11, 15, 23), "Europe/Berlin", now)[0] == dt.datetime(2026, 10, 31, 23)
    # no until: up to today's 00:00; since today: up to now
    assert window(dt.datetime(2026, 11, 30, 23), None, "Europe/Berlin", now)[1] == dt.datetime(2026, 12, 5, 23)
    assert window(dt.datetime(2026, 12, 6, 8), None, "Europe/Berlin", now)[1] == now


@pytest.mark.one_database
def test_the_report_needs_a_reader(spc_station):
    st = spc_station()
    st.config.open_reads = False
    with client(st) as c:
        assert c.get("/api/v1/reports/period", params=NOV).status_code == 401
