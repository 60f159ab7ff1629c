"""The period report after the record keeper deleted old parts: every count of one report
over the same window, the records kept (a month emptied by it said "no part was judged"
beside "4 of 6 NG parts reviewed were good"); and an issued report's changes each said in
words, counted as listed."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import delete

from lineguard.line.auth import create_key
from lineguard.line.orm import Inspection, RecordsKept

from .test_period_report import NOV, made_month
from .test_spc_api import add_parts, client

CUTOFF = dt.datetime(2026, 10, 10)
SEP = {"since": "2026-09-01", "until": "2026-09-30"}
OCT = {"since": "2026-10-01", "until": "2026-10-31"}


def _kept_since_october_10th(st) -> None:
    """September and October's parts, then the record keeper's deletion before CUTOFF: the
    reviewed parts stay, the others go."""
    sep, oct5, oct15 = dt.datetime(2026, 9, 10, 8), dt.datetime(2026, 10, 5, 8), dt.datetime(2026, 10, 15, 8)
    rows = [(sep, "OK", 0.1)] * 20 + [(sep, "NG", 0.9, "L1", None, "good")] * 4
    rows += [(sep, "NG", 0.9, "L1", None, "defect")] * 2 + [(sep, "NG", 0.9)] * 4
    rows += [(sep, "REVIEW", 0.45, "L1", None, "good")] * 2 + [(sep, "REVIEW", 0.45)]
    rows += [(oct5, "OK", 0.1)] * 10 + [(oct5, "NG", 0.9, "L1", None, "good")] * 5
    rows += [(oct5, "REVIEW", 0.45, "L1", None, "good")] * 3
    rows += [(oct15, "OK", 0.1)] * 20 + [(oct15, "NG", 0.9, "L1", None, "good"), (oct15, "NG", 0.9, "L1", None, "defect")]
    rows += [(oct15, "NG", 0.9)] * 2 + [(oct15, "REVIEW", 0.45, "L1", None, "good"), (oct15, "REVIEW", 0.45)]
    add_parts(st, rows)
    with st.db.session() as s:
        s.execute(delete(Inspection).where(Inspection.created_at < CUTOFF, Inspection.reviewed.is_(False)))
        s.add(RecordsKept(id=1, kept_since=CUTOFF, keep_days=60.0))


def test_a_month_the_record_keeper_emptied_says_so_and_counts_no_review(spc_station):
    st = spc_station()
    _kept_since_october_10th(st)
    with client(st) as c:
        r = c.get("/api/v1/reports/period", params=SEP)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["empty"] is True and body["total"]["parts"] == 0, body["text"]
        assert "deleted by the record keeper" in body["text"] and "2026-10-10 00:00" in body["text"], body["text"]
        assert "no part was judged in this window" not in body["text"]
        total = body["total"]
        # its reviews are of parts the report no longer counts: not said beside 0 parts
        assert total["rejected_reviewed_good"]["n"] == 0 and total["review_workload"]["reviewed"] == 0, total
        assert total["good_scrapped"]["ng_reviewed"] == 0 and total["escapes"]["parts"] == 0
        assert body["lines"] == [] and body["defect_types"]["bars"] == []
        # nothing to issue, and said why
        with st.db.session() as s:
            engineer = {"X-API-Key": create_key(s, "engineer", name="walk2")[1]}
        refused = c.post("/api/v1/reports/period/issue", params=SEP, headers=engineer, json={})
        assert refused.status_code == 422 and "deleted by the record keeper" in refused.text, refused.text


def test_a_month_across_the_cutoff_counts_its_reviews_from_the_cutoff_too(spc_station):
    st = spc_station()
    _kept_since_october_10th(st)
    with client(st) as c:
        body = c.get("/api/v1/reports/period", params=OCT).json()
    total = body["total"]
    assert (total["parts"], total["NG"], total["REVIEW"]) == (26, 4, 2), total
    assert body["window"]["records_incomplete"].startswith("parts recorded before 2026-10-10T00:00:00Z")
    # the kept parts' own reviews: 1 of the 2 NG reviewed good, 1 of 2 REVIEW parts reviewed
    fr, rw, gs = total["rejected_reviewed_good"], total["review_workload"], total["good_scrapped"]
    assert (fr["k"], fr["n"]) == (1, 2), fr
    assert (rw["parts"], rw["reviewed"], rw["reviewed_good"]) == (2, 1, 1), rw
    assert rw["reviewed"] <= rw["parts"]
    assert (gs["ng_reviewed"], gs["ng_reviewed_good"]) == (fr["n"], fr["k"]), gs
    assert total["waiting_for_review"] == {"parts": 3, "NG": 2, "REVIEW": 1}


def test_every_count_changed_since_issued_is_said_in_words_and_counted(spc_station):
    st = spc_station(timezone="Europe/Berlin")
    made_month(st)
    with st.db.session() as s:
        engineer = {"X-API-Key": create_key(s, "engineer", name="walk2")[1]}
    with client(st) as c:
        r = c.post("/api/v1/reports/period/issue", params={**NOV, "line": "L2"}, headers=engineer, json={})
        assert r.status_code == 201, r.text
        with st.db.session() as s:      # one waiting NG part reviewed good after it went out
            part = s.query(Inspection).filter_by(line="L2", verdict="NG", reviewed=False).order_by(
                Inspection.id).first()
            part.reviewed, part.review_label = True, "good"
        body = c.get(f"/api/v1/reports/issued/{r.json()['issued']['id']}").json()
    changed = body["changed_since_issued"]
    assert changed and all(ch["said"] for ch in changed), changed
    said = {ch["what"]: ch["said"] for ch in changed}
    assert said["L2: good_scrapped.ng_reviewed"] == "L2: NG reviewed (of the good parts scrapped)", said
    text = body["changed_text"]
    assert text.startswith(f"{len(changed)} count(s) differ in the report made from the records now"), text
    # each change said once, the counts moving with them counted
    assert "L2: NG reviewed good 2 -> 3" in text and "(of the good parts scrapped)" not in text, text
    assert "moved with those said" in text, text
