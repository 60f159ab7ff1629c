"""Issued reports (POST /api/v1/reports/period/issue, GET /api/v1/reports/issued...): the
month's report as it was sent to the customer, read back unchanged after later reviews,
with the counts the report made now has otherwise; who may issue, and what is refused."""
from __future__ import annotations

import datetime as dt
import io
import zipfile

from sqlalchemy import inspect as sa_inspect

from lineguard.line.auth import create_key
from lineguard.line.orm import Inspection

from .conftest import downgrade
from .test_period_report import NOV, _book, made_month
from .test_spc_api import add_parts, client


def _key(st, role: str) -> dict[str, str]:
    with st.db.session() as s:
        return {"X-API-Key": create_key(s, role, name=f"issue-{role}")[1]}


def _sheets(book: bytes) -> dict[str, bytes]:
    """A workbook's files (two made a second apart differ in their zip entries' times)."""
    with zipfile.ZipFile(io.BytesIO(book)) as z:
        return {n: z.read(n) for n in z.namelist()}


def test_an_issued_report_reads_back_as_issued_after_later_reviews(spc_station):
    st = spc_station(timezone="Europe/Berlin")
    made_month(st)
    engineer = _key(st, "engineer")
    with client(st) as c:
        r = c.post("/api/v1/reports/period/issue", params={**NOV, "line": "L2"}, headers=engineer,
                   json={"note": "sent to ACME with 8D 114"})
        assert r.status_code == 201, r.text
        issued, sent = r.json()["issued"], r.json()["report"]
        assert (issued["since"], issued["until"], issued["line"]) == ("2026-10-31T23:00:00Z", "2026-11-30T23:00:00Z",
                                                                      "L2")
        assert issued["issued_by"] and issued["note"] == "sent to ACME with 8D 114" and issued["issued_at"]
        l2 = {ln["line"]: ln for ln in sent["lines"]}["L2"]
        assert l2["waiting_for_review"]["NG"] == 2

        # after the report went out, the two waiting NG parts are reviewed: one good, one a defect
        with st.db.session() as s:
            waiting = s.query(Inspection).filter_by(line="L2", verdict="NG", review_label=None).order_by(
                Inspection.id).all()
            waiting = [p for p in waiting if p.created_at.month == 11 and p.created_at.day == 4]
            assert len(waiting) == 2
            for p, label in zip(waiting, ("good", "defect")):
                p.reviewed, p.review_label = True, label

        now = c.get("/api/v1/reports/period", params={**NOV, "line": "L2"}).json()
        assert {ln["line"]: ln for ln in now["lines"]}["L2"]["waiting_for_review"]["NG"] == 0
        assert [i["id"] for i in now["issued"]] == [issued["id"]]        # this window was issued
        other = c.get("/api/v1/reports/period", params=NOV).json()        # every line: not that one
        assert other["issued"] == []

        back = c.get(f"/api/v1/reports/issued/{issued['id']}")
        assert back.status_code == 200, back.text
        body = back.json()
        assert body["report"] == sent and body["issued"] == issued       # as sent, not as now
        changed = {ch["what"]: (ch["issued"], ch["now"]) for ch in body["changed_since_issued"]}
        assert changed["L2: waiting_for_review.NG"] == (2, 0)
        assert not any(w.startswith("all lines") for w in changed)    # one line: its totals are the line's
        assert changed["L2: rejected_reviewed_good.k"] == (2, 3)
        assert all(w.startswith("L2: ") for w in changed)
        # said in the workbook's words, each change once (one review moves three counts of the same thing)
        said = [ch["said"] for ch in body["changed_since_issued"]]
        assert all(said) and "L2: NG reviewed good" in said and "L2: NG waiting" in said
        text = body["changed_text"]
        assert text.startswith(f"{len(changed)} count(s) differ in the report made from the records now"), text
        assert "(of the good parts scrapped)" not in text, text
        assert "L2: NG reviewed good 2 -> 3" in text and "L2: NG waiting 2 -> 0" in text and "_" not in text, text

        book = c.get(f"/api/v1/reports/issued/{issued['id']}", params={"format": "xlsx"})
        assert book.status_code == 200
        assert book.headers["content-disposition"].endswith(f'-20261101-20261130-issued-{issued["id"]}.xlsx"')

        listed = c.get("/api/v1/reports/issued").json()["issued"]
        assert [i["id"] for i in listed] == [issued["id"]] and "report" not in listed[0]

        # in the change log: who sent what, when
        log = c.get("/api/v1/change-log", params={"action": "report.issued"}, headers=engineer).json()
        (entry,) = log["items"]
        assert entry["subject"] == "period report 2026-11-01 to 2026-11-30 (line L2)", entry
        assert entry["actor"] == issued["issued_by"] and entry["details"]["issued_report"] == issued["id"]
        assert entry["details"]["note"] == "sent to ACME with 8D 114"


def test_the_issued_workbook_is_the_issued_report(spc_station):
    """The workbook of an issued report is made from what was issued, not from the records now."""
    from lineguard.line import period_report
    st = spc_station(timezone="Europe/Berlin")
    made_month(st)
    with client(st) as c:
        r = c.post("/api/v1/reports/period/issue", params={**NOV, "line": "L2"}, headers=_key(st, "engineer"),
                   json={})
        assert r.status_code == 201, r.text
        sent = r.json()["report"]
        with st.db.session() as s:
            for p in s.query(Inspection).filter_by(line="L2", verdict="NG", review_label=None).all():
                p.reviewed, p.review_label = True, "good"
        book = c.get(f"/api/v1/reports/issued/{r.json()['issued']['id']}", params={"format": "xlsx"}).content
        now = c.get("/api/v1/reports/period", params={**NOV, "line": "L2", "format": "xlsx"}).content
    header = c.get(f"/api/v1/reports/issued/{r.json()['issued']['id']}").json()["issued"]
    assert _sheets(book) == _sheets(period_report.workbook(sent, "Europe/Berlin", header))
    assert _sheets(book) != _sheets(now)
    # the station's zone set to UTC since: the issued workbook keeps the plant times it was sent with
    with client(spc_station(timezone="UTC")) as c:
        again = c.get(f"/api/v1/reports/issued/{r.json()['issued']['id']}", params={"format": "xlsx"}).content
    assert _sheets(again) == _sheets(book)


def test_issuing_takes_an_engineer_a_month_with_parts_and_a_short_note(spc_station):
    st = spc_station(timezone="Europe/Berlin")
    made_month(st)
    with client(st) as c:
        r = c.post("/api/v1/reports/period/issue", params=NOV, headers=_key(st, "operator"), json={})
        assert r.status_code == 403, r.text
        engineer = _key(st, "engineer")
        r = c.post("/api/v1/reports/period/issue", params={"since": "2025-01-01", "until": "2025-01-31"},
                   headers=engineer, json={})
        assert r.status_code == 422 and "nothing to issue" in r.text, r.text
        assert "no part was judged in 2025-01-01 to 2025-01-31 (every line)" in r.text, r.text     # the days said
        r = c.post("/api/v1/reports/period/issue", params=NOV, headers=engineer, json={"note": "x" * 2001})
        assert r.status_code == 422, r.text
        r = c.post("/api/v1/reports/period/issue", params={**NOV, "line": "L9"}, headers=engineer, json={})
        assert r.status_code == 404, r.text                              # a line no part was made on
        assert c.get("/api/v1/reports/issued").json()["issued"] == []    # nothing kept by a refusal
        assert c.get("/api/v1/reports/issued/7").status_code == 404
        assert c.get("/api/v1/reports/issued/99999999999999999999").status_code == 422   # not a 500
        first = c.post("/api/v1/reports/period/issue", params=NOV, headers=engineer, json={}).json()["issued"]
        again = c.post("/api/v1/reports/period/issue", params=NOV, headers=engineer,
                       json={"note": "corrected"}).json()["issued"]
        assert [i["id"] for i in c.get("/api/v1/reports/issued").json()["issued"]] == [again["id"], first["id"]]
        assert [i["note"] for i in c.get("/api/v1/reports/period", params=NOV).json()["issued"]] == ["corrected", ""]


def test_a_window_issued_again_is_its_next_revision_and_says_what_it_replaces(spc_station):
    st = spc_station(timezone="Europe/Berlin")
    made_month(st)
    engineer = _key(st, "engineer")
    with client(st) as c:
        def issue(params: dict, note: str) -> dict:
            r = c.post("/api/v1/reports/period/issue", params=params, headers=engineer, json={"note": note})
            assert r.status_code == 201, r.text
            return r.json()["issued"]
        first = issue({**NOV, "line": "L2"}, "sent")
        every = issue(NOV, "every line")                           # another scope: its own first revision
        second = issue({**NOV, "line": "L2"}, "corrected: 8D 114 closed")
        assert (first["revision"], first["replaces"], first["replaced_by"]) == (1, None, None)   # as issued then
        assert (every["revision"], every["replaces"]) == (1, None)
        assert (second["revision"], second["replaces"], second["replaced_by"]) == (2, first["id"], None)

        listed = {i["id"]: i for i in c.get("/api/v1/reports/issued").json()["issued"]}
        assert (listed[first["id"]]["revision"], listed[first["id"]]["replaced_by"]) == (1, second["id"])
        assert listed[every["id"]]["replaced_by"] is None
        one = c.get(f"/api/v1/reports/issued/{first['id']}").json()["issued"]
        assert one == listed[first["id"]]
        assert [(i["id"], i["revision"]) for i in c.get("/api/v1/reports/period", params={**NOV, "line": "L2"})
                .json()["issued"]] == [(second["id"], 2), (first["id"], 1)]

        # the older revision's workbook says which replaced it; the newer one's which it replaces
        old = _book(c.get(f"/api/v1/reports/issued/{first['id']}", params={"format": "xlsx"}).content)
        window = {row[0][1]: row[1][1] for row in old["Window"][1:]}
        assert window["issued report"] == f"#{first['id']}, revision 1"
        assert window["replaced by issued report"].startswith(f"#{second['id']} ")
        new = _book(c.get(f"/api/v1/reports/issued/{second['id']}", params={"format": "xlsx"}).content)
        window = {row[0][1]: row[1][1] for row in new["Window"][1:]}
        assert window["replaces issued report"] == f"#{first['id']}" and "replaced by issued report" not in window
        assert window["issued note"] == "corrected: 8D 114 closed"

        log = c.get("/api/v1/change-log", params={"action": "report.issued"}, headers=engineer).json()["items"]
        assert log[0]["details"]["issued_report"] == second["id"]
        assert (log[0]["details"]["revision"], log[0]["details"]["replaces"]) == (2, first["id"])
        assert "revision" not in log[-1]["details"] and "replaces" not in log[-1]["details"]


def test_a_report_sent_in_error_is_withdrawn_once_with_a_reason_and_stays_readable(spc_station):
    st = spc_station(timezone="Europe/Berlin")
    made_month(st)
    engineer = _key(st, "engineer")
    with client(st) as c:
        issued = c.post("/api/v1/reports/period/issue", params={**NOV, "line": "L1"}, headers=engineer,
                        json={"note": "sent to ACME"}).json()["issued"]
        assert issued["withdrawn"] is None
        url = f"/api/v1/reports/issued/{issued['id']}/withdraw"
        assert c.post(url, headers=_key(st, "operator"), json={"reason": "x"}).status_code == 403
        r = c.post(url, headers=engineer, json={"reason": "   "})
        assert r.status_code == 422 and "say why" in r.text, r.text
        assert c.post(url, headers=engineer, json={}).status_code == 422
        assert c.post(url, headers=engineer, json={"reason": "x" * 2001}).status_code == 422
        assert c.post("/api/v1/reports/issued/999999/withdraw", headers=engineer,
                      json={"reason": "x"}).status_code == 404
        assert c.get(f"/api/v1/reports/issued/{issued['id']}").json()["issued"]["withdrawn"] is None   # none kept

        r = c.post(url, headers=engineer, json={"reason": "sent for the wrong line: L2 was meant"})
        assert r.status_code == 200, r.text
        wd = r.json()["issued"]["withdrawn"]
        assert wd["reason"] == "sent for the wrong line: L2 was meant" and wd["by"] == issued["issued_by"] and wd["at"]
        again = c.post(url, headers=engineer, json={"reason": "twice"})
        assert again.status_code == 409 and "withdrawn already" in again.text and "wrong line" in again.text

        body = c.get(f"/api/v1/reports/issued/{issued['id']}").json()
        assert body["issued"]["withdrawn"] == wd and body["issued"]["note"] == "sent to ACME"
        assert body["report"]["window"]["line"] == "L1"                  # the report itself as it was
        assert [i["withdrawn"] for i in c.get("/api/v1/reports/issued").json()["issued"]] == [wd]
        assert c.get("/api/v1/reports/period", params={**NOV, "line": "L1"}).json()["issued"][0]["withdrawn"] == wd

        r = c.get(f"/api/v1/reports/issued/{issued['id']}", params={"format": "xlsx"})
        assert r.headers["content-disposition"].endswith(f'-issued-{issued["id"]}-WITHDRAWN.xlsx"')
        window = {row[0][1]: row[1][1] for row in _book(r.content)["Window"][1:]}
        assert window["WITHDRAWN"] == "sent for the wrong line: L2 was meant"

        (entry,) = c.get("/api/v1/change-log", params={"action": "report.withdrawn"}, headers=engineer).json()["items"]
        assert entry["subject"] == "period report 2026-11-01 to 2026-11-30 (line L1)", entry
        assert entry["details"] == {"issued_report": issued["id"], "reason": "sent for the wrong line: L2 was meant"}


def test_migration_0037_adds_withdrawal_and_takes_it_back_keeping_the_reports(spc_station):
    st = spc_station(timezone="Europe/Berlin")
    made_month(st)
    with client(st) as c:
        assert c.post("/api/v1/reports/period/issue", params=NOV, headers=_key(st, "engineer"),
                      json={"note": "kept"}).status_code == 201

    def columns() -> set[str]:
        return {col["name"] for col in sa_inspect(st.db.engine).get_columns("issued_reports", schema=st.db.schema)}
    assert {"withdrawn_at", "withdrawn_by", "withdrawn_reason"} <= columns()
    downgrade(st.db, "0036")
    assert not {"withdrawn_at", "withdrawn_by", "withdrawn_reason"} & columns()
    st.db.upgrade()
    assert {"withdrawn_at", "withdrawn_by", "withdrawn_reason"} <= columns()
    with client(st) as c:
        assert [(i["note"], i["withdrawn"]) for i in c.get("/api/v1/reports/issued").json()["issued"]] == [
            ("kept", None)]


def test_migration_0036_adds_issued_reports_and_takes_them_back(spc_station):
    st = spc_station()

    def tables() -> set[str]:
        return set(sa_inspect(st.db.engine).get_table_names(schema=st.db.schema))
    assert "issued_reports" in tables()
    downgrade(st.db, "0035")
    assert "issued_reports" not in tables()
    st.db.upgrade()
    assert "issued_reports" in tables()


def test_the_changes_of_a_report_of_two_lines_name_the_totals_and_the_line():
    from lineguard.line.issued_reports import changes, changes_text

    def report(l1_ng: int) -> dict:
        lines = [{"line": "L1", "parts": 10, "NG": l1_ng, "ng_share": {"rate": l1_ng / 10, "k": l1_ng, "n": 10}},
                 {"line": "L2", "parts": 5, "NG": 1, "ng_share": {"rate": 0.2, "k": 1, "n": 5}}]
        return {"total": {"parts": 15, "NG": l1_ng + 1}, "lines": lines}
    assert changes(report(2), report(2)) == []
    assert changes_text([]) == "the report made from the records now has the same counts"
    assert changes(report(2), report(3)) == [{"what": "all lines: NG", "said": "all lines: NG", "issued": 3, "now": 4},
                                             {"what": "L1: NG", "said": "L1: NG", "issued": 2, "now": 3}]   # no shares


def test_a_shift_report_signed_at_the_handover_reads_back_as_handed_over(spc_station):
    """The shift lead signs the handover report; reviews after it change the report made now,
    not the one signed, and the counts that moved are said in words."""
    from .test_shift_report import _plant
    st = spc_station(shift_starts=("06:00", "14:00", "22:00"))
    _plant(st)
    operator = _key(st, "operator")
    at = {"at": "2026-11-30T10:00:00Z", "line": "L1"}
    with client(st) as c:
        r = c.post("/api/v1/reports/shift/sign", headers=operator, json={**at, "note": "to B shift: 13 NG wait"})
        assert r.status_code == 201, r.text
        signed, sent = r.json()["issued"], r.json()["report"]
        assert (signed["kind"], signed["since"], signed["until"], signed["line"]) == (
            "shift", "2026-11-30T06:00:00Z", "2026-11-30T14:00:00Z", "L1")
        assert sent["reviews"]["waiting"] == 14 and signed["revision"] == 1
        shown = c.get("/api/v1/reports/shift", params=at).json()
        assert [x["id"] for x in shown["signed"]] == [signed["id"]]
        assert c.get("/api/v1/reports/shift", params={"at": at["at"]}).json()["signed"] == []   # every line: not it

        # the next shift reviews two of the waiting NG parts as good
        with st.db.session() as s:
            waiting = s.query(Inspection).filter_by(line="L1", verdict="NG", review_label=None).filter(
                Inspection.created_at >= dt.datetime(2026, 11, 30, 6), Inspection.created_at < dt.datetime(
                    2026, 11, 30, 14)).limit(2).all()
            for p in waiting:
                p.reviewed, p.review_label = True, "good"
        body = c.get(f"/api/v1/reports/issued/{signed['id']}").json()
        assert body["report"] == sent and body["issued"]["note"] == "to B shift: 13 NG wait"
        changed = {ch["what"]: (ch["issued"], ch["now"]) for ch in body["changed_since_issued"]}
        assert changed["reviews: false_rejects"] == (3, 5) and changed["reviews: waiting"] == (14, 12), changed
        assert "shift: parts" not in changed                                  # the parts made did not change
        assert "reviews: NG reviewed good (false rejects) 3 -> 5" in body["changed_text"], body["changed_text"]
        assert c.get(f"/api/v1/reports/issued/{signed['id']}", params={"format": "xlsx"}).status_code == 422

        assert [i["id"] for i in c.get("/api/v1/reports/issued", params={"kind": "shift"}).json()["issued"]] == [
            signed["id"]]
        assert c.get("/api/v1/reports/issued", params={"kind": "period"}).json()["issued"] == []
        (entry,) = c.get("/api/v1/change-log", params={"action": "report.signed"},
                         headers=_key(st, "engineer")).json()["items"]
        assert entry["subject"] == "shift report 2026-11-30 S1 (06:00) (line L1)", entry
        # a shift with no part: nothing to sign; a reader key may not sign
        r = c.post("/api/v1/reports/shift/sign", headers=operator, json={"at": "2026-10-01T10:00:00Z"})
        assert r.status_code == 422 and "nothing to sign" in r.text, r.text
        assert c.post("/api/v1/reports/shift/sign", json=at).status_code in (401, 403)


def test_a_signed_shift_is_compared_over_its_own_window_after_the_shift_starts_change(spc_station):
    """Walk: signed with shifts at 06:00/14:00/22:00, then the station restarted with
    02:30/10:30/18:30: the signed 06:00-14:00 shift was compared with the 02:30 shift holding
    its start, and "changed" by parts no one had recorded since (parts judged 4 -> 3)."""
    st = spc_station(shift_starts=("06:00", "14:00", "22:00"))
    add_parts(st, [(dt.datetime(2026, 11, 30, h, 30), "OK", 0.1) for h in (6, 7, 8, 11)])
    with client(st) as c:
        r = c.post("/api/v1/reports/shift/sign", headers=_key(st, "operator"),
                   json={"at": "2026-11-30T07:00:00Z", "line": "L1"})
        assert r.status_code == 201, r.text
        signed = r.json()["issued"]["id"]
    st.close()
    moved = spc_station(shift_starts=("02:30", "10:30", "18:30"))
    with client(moved) as c:
        body = c.get(f"/api/v1/reports/issued/{signed}").json()
    assert body["changed_since_issued"] == [], body["changed_text"]
    assert body["changed_text"] == "the report made from the records now has the same counts"


def test_two_engineers_issuing_a_window_at_the_same_instant_get_one_revision_1(spc_station, monkeypatch):
    """Two taps on Issue (two engineers, or one double tap through two requests) at the same
    instant: each insert saw only its own row until the other committed (PostgreSQL), so
    both were kept as revision 1 of the window and neither was refused."""
    import threading
    import time

    from lineguard.line import issued_reports
    from lineguard.line.errors import Conflict

    st = spc_station(timezone="Europe/Berlin")
    made_month(st)
    with client(st) as c:
        report = c.get("/api/v1/reports/period", params={**NOV, "line": "L2"}).json()
    logged = issued_reports.audit.record

    def slow_log(*a, **kw):         # each issue's transaction held open a while after its insert
        time.sleep(1.0)
        return logged(*a, **kw)
    monkeypatch.setattr(issued_reports.audit, "record", slow_log)
    start, kept, refused = threading.Barrier(2), [], []

    def issue(note: str) -> None:
        start.wait()
        try:
            kept.append(issued_reports.issue(st.db, report, "engineer", note, revision_meant=1))
        except Conflict as exc:
            refused.append(str(exc))
    both = [threading.Thread(target=issue, args=(n,)) for n in ("sent by Ana", "sent by Ben")]
    for t in both:
        t.start()
    for t in both:
        t.join(30)
    assert len(kept) == 1 and kept[0]["revision"] == 1, (kept, refused)
    assert len(refused) == 1 and "this would be its revision 2" in refused[0], refused
    assert [i["revision"] for i in issued_reports.issued_for(st.db, report)] == [1]
