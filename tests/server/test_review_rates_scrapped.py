"""GET /api/v1/spc/review-rates on SQLite and PostgreSQL: the share of good parts scrapped
beside the rejected parts reviewed good, and what a claim from the audit sample takes."""
from __future__ import annotations

import csv
import datetime as dt
import io
import math

import pytest
from test_spc_api import T0, _sheet, add_parts, client

Q = {"line": "L1", "since": "2026-11-29T00:00:00Z", "until": "2026-12-01T00:00:00Z"}


def _walk_month(t=T0):
    """A month-end walk's L1, in one day: 22 NG (2 good, 20 defects, all reviewed), 28 REVIEW
    reviewed good, 680 OK of which 14 are the audit sample (10 reviewed good); an L2 beside."""
    return ([(t, "NG", 0.9, "L1", None, "good")] * 2 + [(t, "NG", 0.9, "L1", None, "defect")] * 20
            + [(t, "REVIEW", 0.45, "L1", None, "good")] * 28
            + [(t, "OK", 0.1, "L1", None, "good", True)] * 10 + [(t, "OK", 0.1, "L1", None, None, True)] * 4
            + [(t, "OK", 0.1, "L1")] * 666 + [(t, "NG", 0.9, "L2", None, "good")] * 5 + [(t, "OK", 0.1, "L2")] * 50)


def test_good_parts_scrapped_and_rejected_parts_reviewed_good_are_two_numbers(spc_station):
    st = spc_station()
    add_parts(st, _walk_month())
    with client(st) as c:
        body = c.get("/api/v1/spc/review-rates", params=Q).json()
        gs = body["good_scrapped"]
        # 2 of 710 good parts (730 made less 20 confirmed defects) scrapped: 0.28 %; the
        # rejected parts reviewed good, 2 of 22 (9.1 %), keep their key
        assert (gs["k"], gs["n"], gs["estimate"]) == (2, 710, False)
        assert gs["rate"] == pytest.approx(2 / 710) and gs["lo"] < 2 / 710 < gs["hi"]
        assert gs["counted_since"] == body["since"]
        assert (body["false_reject"]["k"], body["false_reject"]["n"]) == (2, 22)
        assert "good_scrapped" in body["definitions"] and "not the share of good parts scrapped" in \
            body["definitions"]["false_reject"]
        ea = body["escape_audit"]
        assert (ea["k"], ea["n"], ea["needed"], ea["more_needed"], ea["waiting"]) == (0, 10, 2995, 2985, 4)
        # the station's default audit rate, 2 %, of the OK parts (680 of 730): 2981 more to draw
        assert ea["audit_sample_rate"] == 0.02
        assert ea["parts_to_make"] == math.ceil(2981 / (0.02 * 680 / 730))
        rows = list(csv.reader(io.StringIO(_sheet(c.get("/api/v1/spc/review-rates",
                                                        params={**Q, "format": "csv"})))))
        assert rows[0] == ["measure", "k", "n", "rate", "lo", "hi", "upper_bound", "target", "needed", "more_needed"]
        assert rows[1][:3] == ["good_scrapped", "2", "710"] and rows[1][6:] == ["", "", "", ""]
        assert rows[-1][:3] == ["escape_audit", "0", "10"] and rows[-1][7:] == ["0.001", "2995", "2985"]
        assert float(rows[-1][6]) == pytest.approx(ea["upper_bound"])
        assert len(rows) == 5           # the audit's claim in its own columns, not a row of its own


def test_good_parts_scrapped_is_an_estimate_while_ng_parts_wait_for_review(spc_station):
    st = spc_station()
    t = T0
    # 40 NG parts, 10 reviewed (1 good): about 4 good parts rejected of about 4 + 960
    add_parts(st, [(t, "NG", 0.9, "L1", None, "good")] + [(t, "NG", 0.9, "L1", None, "defect")] * 9
              + [(t, "NG", 0.9, "L1")] * 30 + [(t, "OK", 0.1, "L1")] * 960)
    with client(st) as c:
        gs = c.get("/api/v1/spc/review-rates", params=Q).json()["good_scrapped"]
        assert gs["estimate"] is True and gs["lo"] is None and gs["hi"] is None
        assert gs["k"] == pytest.approx(4.0) and gs["n"] == pytest.approx(964.0)
        assert "an estimate" in gs["text"] and "30 of 40 NG parts not reviewed" in gs["text"]
        rows = _sheet(c.get("/api/v1/spc/review-rates", params={**Q, "format": "csv"})).splitlines()
        assert rows[1].startswith("good_scrapped,4.0,964.0,") and rows[1].endswith(",,")


def test_good_parts_scrapped_counts_only_where_every_record_is_kept(spc_station):
    # records before the cutoff are not all kept (the record keeper deleted the unreviewed
    # ones): the reviewed rates still read them, the share of good parts scrapped does not
    from lineguard.line.orm import RecordsKept
    st = spc_station()
    old, cutoff = T0 - dt.timedelta(hours=20), T0 - dt.timedelta(hours=1)
    add_parts(st, [(old, "NG", 0.9, "L1", None, "good")] * 3 + [(T0, "NG", 0.9, "L1", None, "defect")]
              + [(T0, "OK", 0.1, "L1")] * 99)
    with st.db.session() as s:
        s.add(RecordsKept(id=1, kept_since=cutoff, keep_days=30.0))
    with client(st) as c:
        body = c.get("/api/v1/spc/review-rates", params=Q).json()
        assert (body["false_reject"]["k"], body["false_reject"]["n"]) == (3, 4)
        gs = body["good_scrapped"]
        assert (gs["k"], gs["n"]) == (0, 99) and gs["counted_since"] == "2026-11-29T23:00:00Z"


@pytest.mark.one_database
def test_exact_counts_are_whole_numbers_in_the_json(spc_station):
    st = spc_station()
    add_parts(st, _walk_month())
    with client(st) as c:
        text = c.get("/api/v1/spc/review-rates", params=Q).text
        assert '"k":2,"n":710,' in text.replace(" ", "")
