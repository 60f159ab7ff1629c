"""Where an escape was found: a quality manager's month-end walk. Only the audit sample's
flag said anything, so an 8D report (and the customer's "how many of these did you find
before we did?") could not be answered; and the month report's Pareto of defect types
covered every line together unless one line was asked for."""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from sqlalchemy import inspect as sa_inspect

from lineguard.line.auth import create_key
from lineguard.line.orm import Inspection

from .conftest import downgrade
from .test_period_report import _book
from .test_spc_api import add_parts, client

T = dt.datetime(2026, 10, 12, 8)
OCT = {"since": "2026-10-01", "until": "2026-10-31"}
WEB = Path(__file__).resolve().parents[2] / "src" / "lineguard" / "server" / "web"


def _ids(st) -> dict[tuple[str, str, bool], list[int]]:
    with st.db.session() as s:
        out: dict[tuple[str, str, bool], list[int]] = {}
        for r in s.query(Inspection).order_by(Inspection.id):
            out.setdefault((r.line, r.verdict, bool(r.audit_sample)), []).append(r.id)
        return out


def _operator(st) -> dict[str, str]:
    with st.db.session() as s:
        return {"X-API-Key": create_key(s, "operator", "q.lead", by="test")[1]}


@pytest.mark.one_database
def test_an_escape_review_says_where_it_was_found_and_anything_else_is_refused(spc_station):
    st = spc_station()
    add_parts(st, [(T, "OK", 0.1), (T, "OK", 0.1, "L1", None, None, True), (T, "NG", 0.9)])
    ids = _ids(st)
    ok, audited, ng = ids[("L1", "OK", False)][0], ids[("L1", "OK", True)][0], ids[("L1", "NG", False)][0]
    key = _operator(st)
    url = "/api/v1/inspections/{}/review".format
    with client(st) as c:
        r = c.post(url(ok), json={"label": "defect", "defect_type": "scratch", "found_by": "customer"}, headers=key)
        assert r.status_code == 200, r.text
        assert r.json()["review"]["found_by"] == "customer"
        assert c.get(f"/api/v1/inspections/{ok}").json()["review"]["found_by"] == "customer"
        # a word not on the list: 422 with the list, nothing stored
        bad = c.post(url(ok), json={"label": "defect", "found_by": "the customer"}, headers=key)
        assert bad.status_code == 422, bad.text
        err = bad.json()["error"]
        assert err["found_by"] == ["audit", "station review", "next process", "customer", "other"]
        assert "'the customer' is not one of: audit, station review, next process, customer, other" in err["message"]
        # not an escape: a rejected part, or a passed part reviewed good, has no "found by"
        for part, body in ((ng, {"label": "defect", "found_by": "customer"}),
                           (ok, {"label": "good", "found_by": "next process"})):
            r = c.post(url(part), json=body, headers=key)
            assert r.status_code == 422 and "goes with label 'defect' on a part the station passed (OK)" in \
                r.json()["error"]["message"], r.text
        # the audit sample's word only for a part drawn for it
        r = c.post(url(ok), json={"label": "defect", "found_by": "audit"}, headers=key)
        assert r.status_code == 422 and "not drawn for it" in r.json()["error"]["message"], r.text
        assert c.post(url(audited), json={"label": "defect", "found_by": "audit"}, headers=key).status_code == 200
        # the same review said again with another place is a review of its own; a later
        # "good" says no escape, so no place
        assert c.post(url(ok), json={"label": "defect", "defect_type": "scratch", "found_by": "next process"},
                      headers=key).status_code == 200
        good = c.post(url(ok), json={"label": "good"}, headers=key)
        assert good.status_code == 200 and good.json()["review"]["found_by"] is None, good.text
        history = c.get(f"/api/v1/inspections/{ok}/reviews").json()["items"]
    assert [(h["label"], h["found_by"]) for h in history] == [
        ("defect", "customer"), ("defect", "next process"), ("good", None)]
    assert not st.get(ng).reviewed


@pytest.mark.one_database
def test_the_parts_export_says_where_an_escape_was_found_in_its_last_column(spc_station):
    st = spc_station()
    add_parts(st, [(T, "OK", 0.1), (T + dt.timedelta(seconds=1), "OK", 0.1)])
    first = _ids(st)[("L1", "OK", False)][0]
    with client(st) as c:
        assert c.post(f"/api/v1/inspections/{first}/review", json={"label": "defect", "found_by": "next process"},
                      headers=_operator(st)).status_code == 200
        text = c.get("/api/v1/inspections/export").content.decode("utf-8-sig")
    header, *rows = [line.split(",") for line in text.strip().split("\r\n")]
    assert header[-1] == "found_by" and header[-3:-1] == ["image_width", "image_height"]
    by_id = {row[0]: row[-1] for row in rows}
    assert by_id == {str(first): "next process", str(first + 1): ""}


def test_the_month_report_splits_escapes_by_where_found_and_gives_each_line_its_pareto(spc_station):
    """Two lines in October: L1's escapes found by the audit sample, the station's review,
    the customer (two) and one not said; L2 makes the dents, L1 the cracks."""
    st = spc_station(timezone="UTC")
    rows = [(T, "OK", 0.1, ln) for ln in ("L1", "L2") for _ in range(20)]
    rows += [(T, "OK", 0.2, "L1", None, None, True)] + [(T, "OK", 0.2, "L1")] * 4
    rows += [(T, "NG", 0.9, "L1")] * 3 + [(T, "NG", 0.9, "L2")] * 2
    add_parts(st, rows)
    ids = _ids(st)
    key = _operator(st)
    escapes = ids[("L1", "OK", False)][-4:]
    reviews = [(ids[("L1", "OK", True)][0], "audit"), (escapes[0], "station review"), (escapes[1], "customer"),
               (escapes[2], "customer"), (escapes[3], None)]
    with client(st) as c:
        for part, found in reviews:
            body = {"label": "defect", "defect_type": "crack", **({"found_by": found} if found else {})}
            assert c.post(f"/api/v1/inspections/{part}/review", json=body, headers=key).status_code == 200
        for part in ids[("L1", "NG", False)]:
            assert c.post(f"/api/v1/inspections/{part}/review", json={"label": "defect", "defect_type": "crack"},
                          headers=key).status_code == 200
        for part in ids[("L2", "NG", False)]:
            assert c.post(f"/api/v1/inspections/{part}/review", json={"label": "defect", "defect_type": "dent"},
                          headers=key).status_code == 200
        body = c.get("/api/v1/reports/period", params=OCT).json()
        book = _book(c.get("/api/v1/reports/period", params={**OCT, "format": "xlsx"}).content)
    lines = {ln["line"]: ln for ln in body["lines"]}
    l1 = lines["L1"]["escapes"]
    assert (l1["parts"], l1["audit"], l1["found_otherwise"]) == (5, 1, 4)
    assert l1["found_otherwise_by"] == {"station review": 1, "next process": 0, "customer": 2, "other": 0,
                                        "not said": 1}
    assert l1["text"] == ("5 passed parts reviewed as defects: 1 found by the audit sample, 4 found otherwise "
                          "(1 at the station's review, 2 by the customer, 1 where not said)")
    assert body["total"]["escapes"]["found_otherwise_by"]["customer"] == 2
    assert lines["L2"]["escapes"]["found_otherwise_by"] == dict.fromkeys(l1["found_otherwise_by"], 0)
    # the Pareto of every line as it was, and each line's own beside it
    assert [(b["defect_type"], b["parts"]) for b in body["defect_types"]["bars"]] == [("crack", 8), ("dent", 2)]
    per_line = {p["line"]: p for p in body["defect_types_by_line"]}
    assert [(b["defect_type"], b["parts"], b["escaped"]) for b in per_line["L1"]["bars"]] == [("crack", 8, 5)]
    assert [(b["defect_type"], b["parts"], b["caught"]) for b in per_line["L2"]["bars"]] == [("dent", 2, 2)]
    assert (per_line["L1"]["defects"], per_line["L2"]["defects"]) == (8, 2)
    # the workbook: the split at the Summary's end, each line's Pareto on a sheet of its own
    head = [t for _, t in book["Summary"][0]]
    summary = {row[0][1]: dict(zip(head, row)) for row in book["Summary"][1:]}
    assert head[-5:] == ["found otherwise: at the station's review", "found otherwise: at the next process",
                         "found otherwise: by the customer", "found otherwise: elsewhere",
                         "found otherwise: where not said"]
    assert summary["L1"]["found otherwise: by the customer"] == ("n", "2")
    assert list(book)[-1] == "Defect types by line"
    assert [(r[0][1], r[1][1], r[2][1]) for r in book["Defect types by line"][1:]] == [
        ("L1", "crack", "8"), ("L2", "dent", "2")]


def test_an_audit_sample_part_the_customer_found_counts_as_the_customer_s(spc_station):
    """Walk: a part drawn for the audit sample and reviewed "found_by: customer" was
    reported "1 by the audit sample" in the shift and month reports. The sample's rate
    still counts it (it is a defect among the sampled parts); where it was found is the
    review's word. A sampled part whose review names no place stays the audit's."""
    st = spc_station(timezone="UTC")
    add_parts(st, [(T, "OK", 0.1, "L1", None, None, True)] * 3 + [(T, "OK", 0.1)] * 5)
    sampled = _ids(st)[("L1", "OK", True)]
    key = _operator(st)
    with client(st) as c:
        for part, found in zip(sampled, ("customer", "audit", None)):
            body = {"label": "defect", "defect_type": "crack", **({"found_by": found} if found else {})}
            assert c.post(f"/api/v1/inspections/{part}/review", json=body, headers=key).status_code == 200
        month = c.get("/api/v1/reports/period", params=OCT).json()
        shift = c.get("/api/v1/reports/shift", params={"line": "L1", "at": T.isoformat() + "Z"}).json()
    escapes = month["total"]["escapes"]
    assert (escapes["parts"], escapes["audit"], escapes["found_otherwise"]) == (3, 2, 1)
    assert escapes["found_otherwise_by"]["customer"] == 1
    assert month["total"]["passed_defective_audit"]["k"] == 3       # the sample's rate: every sampled defect
    reviews = shift["reviews"]
    assert (reviews["escapes"], reviews["escapes_audit"], reviews["escapes_found_otherwise_by"]["customer"]) \
        == (3, 2, 1)
    assert reviews["escapes_text"] == "2 by the audit sample, 1 by the customer"


def test_migration_0035_adds_found_by_and_takes_it_back(spc_station):
    st = spc_station()

    def columns(table: str) -> set[str]:
        return {c["name"] for c in sa_inspect(st.db.engine).get_columns(table, schema=st.db.schema)}
    assert "found_by" in columns("inspections") and "found_by" in columns("reviews")
    downgrade(st.db, "0034")
    assert "found_by" not in columns("inspections") | columns("reviews")
    st.db.upgrade()
    assert "found_by" in columns("inspections") and "found_by" in columns("reviews")


def test_the_part_page_offers_the_station_s_places_where_an_escape_is_found():
    """The part page's choice of where an escape was found is the station's list (a word the
    station refuses would be a 422 at the operator's click)."""
    from lineguard.line.reviews import FOUND_BY
    page = (WEB / "part.js").read_text(encoding="utf-8")
    offered = re.findall(r'\["([a-z ]+)", "[^"]+"\]', page[page.index('"found_by"'):])
    assert tuple(offered) == FOUND_BY
    assert "found_by:" in page and "x.found_by" in page
