"""Test parts on SQLite and PostgreSQL: registered by the serial they carry, judged like any
part, checked against their known verdict each shift, kept out of the plant's counts, and a
failed check says which parts are in doubt."""
from __future__ import annotations

import csv
import datetime as dt
import io
import zlib

import pytest
from sqlalchemy import update

from lineguard.line.auth import create_key
from lineguard.line.orm import Inspection, TestPart
from lineguard.line.station import Part
from lineguard.line.test_parts import station_state

from .conftest import png_bytes
from .test_spc_api import client

DAY = dt.datetime(2026, 11, 30)
MORNING = DAY + dt.timedelta(hours=6)     # shifts 06:00, 14:00, 22:00 UTC
REGISTERED = DAY - dt.timedelta(days=1)
DARK, BRIGHT = 60, 200                    # the fake model: OK, NG


def _station(spc_station, review_band=False, **kw):
    st = spc_station(shift_starts=("06:00", "14:00", "22:00"), **kw)
    from .fake_inspector import FakeInspector
    # a band of 0.3-0.5 (a limit sample's REVIEW) leaves DARK OK and BRIGHT NG
    st.add_model(FakeInspector(0.5, review_threshold=0.3 if review_band else None).to_bytes(), "cell",
                 activate=True)
    with st.db.session() as s:
        st.engineer_key = create_key(s, "engineer", name="eng")[1]
    return st


def _inspect(st, value, minutes, part_id, serial=None, line="L1", seed=None, station="S1"):
    """A part judged by the station itself, its record then moved to MORNING + minutes."""
    seed = seed if seed is not None else zlib.crc32(f"{part_id}/{minutes}/{station}".encode())
    rec = st.inspect(png_bytes(value, seed=seed),
                     Part(part_id=part_id, line=line, station=station, product="cell", serial=serial)).record
    with st.db.session() as s:
        s.execute(update(Inspection).where(Inspection.id == rec.id)
                  .values(created_at=MORNING + dt.timedelta(minutes=minutes)))
    return rec


def _register(c, st, name, expect, description=None):
    r = c.post("/api/v1/products/cell/test-parts", json={"name": name, "expect": expect, "description": description},
               headers={"X-API-Key": st.engineer_key})
    assert r.status_code == 200, r.text
    with st.db.session() as s:     # registered before the day these tests' parts are made
        s.execute(update(TestPart).where(TestPart.name == name).values(created_at=REGISTERED))
    return r.json()


def _verification(c, line="L1", at="2026-11-30T10:00:00Z"):
    r = c.get("/api/v1/verification", params={"line": line, "at": at})
    assert r.status_code == 200, r.text
    return {(v["line"], v["station"], v["product"]): v for v in r.json()["lines"]}


def _s1(c, **kw):
    return _verification(c, **kw)[("L1", "S1", "cell")]


def test_a_shift_passes_once_every_test_part_got_its_verdict(spc_station):
    st = _station(spc_station)
    with client(st) as c:
        assert _register(c, st, "RR-01", "NG", "crack 0.3 mm, left edge")["expect"] == "NG"
        _register(c, st, "GOOD-01", "OK")
        for i in range(5):                                  # the line's own parts before the check
            _inspect(st, DARK, i, f"p{i}")
        v = _s1(c)
        assert v["state"] == "due" and v["parts_made"] == 5 and v["parts_before_verification"] == 5
        rr = _inspect(st, BRIGHT, 10, "scan-1", serial="RR-01")     # known by its serial
        assert rr.test_part == "RR-01" and rr.test_expected == "NG" and rr.verdict == "NG"
        assert _s1(c)["state"] == "incomplete"
        _inspect(st, DARK, 11, "GOOD-01")                          # or by its part id
        for i in range(5, 8):
            _inspect(st, DARK, 20 + i, f"p{i}")
        v = _s1(c)
        assert v["state"] == "passed" and v["passed_at"] == "2026-11-30T06:11:00Z"
        assert v["parts_made"] == 8 and v["parts_before_verification"] == 5 and v["failures"] == []
        assert {t["name"]: (t["verdict"], t["right"]) for t in v["test_parts"]} == {"RR-01": ("NG", True),
                                                                                   "GOOD-01": ("OK", True)}
        # the record says what it was; the list can leave test parts out, or show only them
        part = c.get(f"/api/v1/inspections/{rr.id}").json()
        assert part["test_part"] == {"name": "RR-01", "expected": "NG", "right": True}
        own = c.get("/api/v1/inspections", params={"test_parts": "false"}).json()["items"]
        assert len(own) == 8 and all(p["test_part"] is None for p in own)
        assert len(c.get("/api/v1/inspections", params={"test_parts": "true"}).json()["items"]) == 2
        export = c.get("/api/v1/inspections/export", params={"test_parts": "true"})
        rows = list(csv.DictReader(io.StringIO(export.text.lstrip("\ufeff"))))
        assert sorted((r["test_part"], r["test_expected"], r["verdict"]) for r in rows) == [
            ("GOOD-01", "OK", "OK"), ("RR-01", "NG", "NG")]
        # the plant's numbers count the line's own parts only
        shift = c.get("/api/v1/reports/shift", params={"at": "2026-11-30T10:00:00Z"}).json()
        assert shift["totals"]["parts"] == 8 and shift["totals"]["NG"] == 0
        assert shift["verification"][0]["state"] == "passed"
        chart = c.get("/api/v1/spc/p-chart", params={"by": "shift", "since": "2026-11-30T06:00:00Z",
                                                     "until": "2026-11-30T14:00:00Z"}).json()
        assert [(p["n"], p["defects"]) for p in chart["points"]] == [(8, 0)]
        # another line that ran without its test parts is due
        _inspect(st, DARK, 30, "q1", line="L2")
        assert _verification(c, line="L2")[("L2", "S1", "cell")]["state"] == "due"


@pytest.mark.one_database
def test_a_wrong_verdict_fails_the_shift_and_bounds_the_parts_in_doubt(spc_station):
    st = _station(spc_station)
    with client(st) as c:
        _register(c, st, "RR-01", "NG")
        # yesterday's night shift: the red rabbit was rejected at 05:00
        right = _inspect(st, BRIGHT, -60, "x", serial="RR-01", seed=1)
        for i in range(4):                                          # OK parts since then: in doubt
            _inspect(st, DARK, i, f"p{i}")
        _inspect(st, BRIGHT, 5, "n1")                               # an NG part is not in doubt
        wrong = _inspect(st, DARK, 10, "y", serial="RR-01", seed=2)   # the lamp died: a defect passed
        assert wrong.verdict == "OK" and wrong.test_expected == "NG"
        v = _s1(c)
        assert v["state"] == "failed"
        (f,) = v["failures"]
        assert (f["name"], f["expected"], f["verdict"], f["inspection_id"]) == ("RR-01", "NG", "OK", wrong.id)
        assert f["last_right_at"] == "2026-11-30T05:00:00Z" and f["cleared_at"] is None
        assert f["doubt"]["verdict"] == "OK" and f["doubt"]["parts"] == 4 and f["doubt"]["since"] == f["last_right_at"]
        _inspect(st, DARK, 15, "p9")                                # made while it failed: in doubt too
        fixed = _inspect(st, BRIGHT, 20, "z", serial="RR-01", seed=3)
        _inspect(st, DARK, 25, "p10")                               # after the fix: not in doubt
        v = _s1(c)
        assert v["state"] == "passed" and fixed.test_part == "RR-01"
        (f,) = v["failures"]                                       # the shift keeps its failure on record
        assert f["cleared_at"] == "2026-11-30T06:20:00Z" and f["doubt"]["parts"] == 5
        assert right.verdict == "NG"
        # the live counters and the line view leave test parts out
        summary = c.get("/api/v1/lines/summary", params={"since": "2026-11-30T04:00:00Z"}).json()
        (row,) = summary["lines"]
        assert row["parts"] == 7 and row["ng"] == 1


@pytest.mark.one_database
def test_test_parts_images_are_kept_and_never_learnt_from(spc_station):
    from lineguard.line.config import RetentionPolicy
    st = _station(spc_station, retention=RetentionPolicy(ok_sample_rate=0.0), audit_sample_rate=0.0)
    with client(st) as c:
        _register(c, st, "GOOD-01", "OK")
        own = _inspect(st, DARK, 0, "p0", seed=5)
        test = _inspect(st, DARK, 1, "GOOD-01", seed=6)
        assert own.image_key is None and test.image_key is not None    # the shift's evidence is kept
        # reviewed as good, an own part is learnt from; a test part never is
        for rec in (own, test):
            r = c.post(f"/api/v1/inspections/{rec.id}/review", json={"label": "good"},
                       headers={"X-API-Key": st.engineer_key})
            assert r.status_code == 200, r.text
    st.config.retention = RetentionPolicy(ok_sample_rate=1.0)
    kept = _inspect(st, DARK, 2, "p1", seed=7)
    with client(st) as c:
        assert c.post(f"/api/v1/inspections/{kept.id}/review", json={"label": "good"},
                      headers={"X-API-Key": st.engineer_key}).status_code == 200
    assert st.jobs.good_part_keys("cell", "", 100, "confirmed") == [(kept.image_key, "confirmed")]


@pytest.mark.one_database
def test_registering_is_checked_and_retiring_keeps_the_history(spc_station):
    st = _station(spc_station, review_band=True)
    with client(st) as c:
        h = {"X-API-Key": st.engineer_key}
        bad = c.post("/api/v1/products/cell/test-parts", json={"name": "RR-01", "expect": "FAIL"}, headers=h)
        assert bad.status_code == 422 and "expect" in bad.text
        assert c.post("/api/v1/products/cell/test-parts", json={"name": "RR-01", "expect": "NG"}).status_code == 401
        _register(c, st, "RR-01", "NG")
        _register(c, st, "LIMIT-01", "REVIEW", "scratch at the limit")
        assert [t["name"] for t in c.get("/api/v1/products/cell/test-parts").json()["items"]] == ["LIMIT-01", "RR-01"]
        _inspect(st, BRIGHT, 1, "a", serial="RR-01")
        r = c.delete("/api/v1/products/cell/test-parts", params={"name": "LIMIT-01"}, headers=h)
        assert r.status_code == 200 and r.json()["retired_by"].startswith("eng (key ")
        assert c.delete("/api/v1/products/cell/test-parts", params={"name": "LIMIT-01"},
                        headers=h).status_code == 404
        # the shift it was retired after is still judged with it (history does not change) ...
        assert _s1(c)["state"] == "incomplete"
        # ... one after its retirement without it: RR-01 alone completes the set
        with st.db.session() as s:
            s.execute(update(TestPart).where(TestPart.name == "LIMIT-01").values(retired_at=MORNING))
        assert _verification(c, at="2026-11-30T15:00:00Z") == {}      # a line that has not run is not listed
        _inspect(st, BRIGHT, 8 * 60 + 30, "b", serial="RR-01")           # 14:30
        assert _s1(c, at="2026-11-30T15:00:00Z")["state"] == "passed"
        listed = c.get("/api/v1/products/cell/test-parts", params={"retired": "true"}).json()["items"]
        assert [(t["name"], t["retired_at"] is not None) for t in listed] == [("LIMIT-01", True), ("RR-01", False)]
        # a retired name is an ordinary part again
        assert _inspect(st, DARK, 2, "LIMIT-01").test_part is None
        # registered again, it is back
        _register(c, st, "LIMIT-01", "REVIEW")
        assert _s1(c)["state"] == "incomplete"


@pytest.mark.one_database
def test_a_failure_stands_into_the_next_shift_until_put_right(spc_station):
    st = _station(spc_station)
    with client(st) as c:
        _register(c, st, "RR-01", "NG")
        _inspect(st, BRIGHT, 0, "a", serial="RR-01", seed=11)            # 06:00 right
        wrong = _inspect(st, DARK, 7 * 60 + 20, "b", serial="RR-01", seed=12)   # 13:20 wrong
        for i in range(3):
            _inspect(st, DARK, 8 * 60 + 10 + i, f"late{i}")               # 14:10.. the next shift's parts
        v = _s1(c, at="2026-11-30T15:00:00Z")
        assert v["state"] == "failed" and v["parts_made"] == 3
        (f,) = v["failures"]
        assert f["inspection_id"] == wrong.id and f["cleared_at"] is None and f["doubt"]["parts"] == 3
        row = v["test_parts"][0]
        assert (row["right"], row["this_shift"]) == (False, False)
        # retiring the red rabbit does not clear the alarm of the shift it was in use in
        assert c.delete("/api/v1/products/cell/test-parts", params={"name": "RR-01"},
                        headers={"X-API-Key": st.engineer_key}).status_code == 200
        assert _s1(c, at="2026-11-30T15:00:00Z")["state"] == "failed"
        _register(c, st, "RR-01", "NG")
        _inspect(st, BRIGHT, 9 * 60, "c", serial="RR-01", seed=13)       # 15:00 right again
        _inspect(st, DARK, 9 * 60 + 5, "after")                          # not in doubt
        v = _s1(c, at="2026-11-30T16:00:00Z")
        assert v["state"] == "passed" and v["passed_at"] == "2026-11-30T15:00:00Z"
        (f,) = v["failures"]                                               # still on this shift's record
        assert f["cleared_at"] == "2026-11-30T15:00:00Z" and f["doubt"]["parts"] == 3


@pytest.mark.one_database
def test_each_station_is_verified_on_its_own(spc_station):
    st = _station(spc_station)
    with client(st) as c:
        _register(c, st, "RR-01", "NG")
        _inspect(st, DARK, 10, "x", serial="RR-01", station="S2", seed=21)     # S2 lets it pass
        _inspect(st, BRIGHT, 11, "y", serial="RR-01", station="S1", seed=22)   # S1 rejects it
        for i in range(5):
            _inspect(st, DARK, 12 + i, f"s2-{i}", station="S2")
        both = _verification(c)
        assert both[("L1", "S1", "cell")]["state"] == "passed"
        s2 = both[("L1", "S2", "cell")]
        assert s2["state"] == "failed" and s2["failures"][0]["doubt"]["parts"] == 5
        assert s2["failures"][0]["doubt"]["since"] == "2026-11-29T00:00:00Z"   # never right: since registered


@pytest.mark.one_database
def test_checks_just_before_the_shift_count_for_it(spc_station):
    st = _station(spc_station)
    with client(st) as c:
        _register(c, st, "RR-01", "NG")
        _inspect(st, BRIGHT, -10, "a", serial="RR-01")          # 05:50, the test parts before the shift
        _inspect(st, DARK, 5, "p1")
        v = _s1(c)
        assert v["state"] == "passed" and v["passed_at"] == "2026-11-30T06:00:00Z"
        assert v["parts_before_verification"] == 0


@pytest.mark.one_database
def test_a_good_part_rejected_puts_the_rejects_in_doubt(spc_station):
    st = _station(spc_station)
    with client(st) as c:
        _register(c, st, "GOOD-01", "OK")
        _inspect(st, DARK, 0, "GOOD-01", seed=31)                # right at 06:00
        _inspect(st, BRIGHT, 5, "n1")
        _inspect(st, BRIGHT, 6, "n2")
        _inspect(st, DARK, 7, "ok1")
        _inspect(st, BRIGHT, 10, "GOOD-01", seed=32)             # the lamp too bright: a good part rejected
        (f,) = _s1(c)["failures"]
        assert f["doubt"]["verdict"] == "NG" and f["doubt"]["parts"] == 2 and "false rejects" in f["doubt"]["what"]


def test_test_parts_stay_out_of_the_parts_metric_and_are_counted_apart(spc_station):
    st = _station(spc_station)
    with client(st) as c:
        _register(c, st, "RR-01", "NG")
        _inspect(st, DARK, 0, "own")
        _inspect(st, DARK, 1, "a", serial="RR-01")
        text = c.get("/metrics").text
    assert 'lineguard_parts_total{line="L1",station="S1",verdict="OK"} 1.0' in text
    assert 'lineguard_test_part_checks_total{line="L1",result="wrong",station="S1"} 1.0' in text


@pytest.mark.one_database
def test_odd_input_is_refused_with_what_to_do(spc_station):
    st = _station(spc_station)
    h = {"X-API-Key": st.engineer_key}
    with client(st) as c:
        for body in ({"name": "RR\x00", "expect": "NG"}, {"name": "RR", "expect": "NG", "description": "a\x00"}):
            assert c.post("/api/v1/products/cell/test-parts", json=body, headers=h).status_code == 422
        assert c.get("/api/v1/verification", params={"line": "L\x00"}).status_code == 422
        assert c.delete("/api/v1/products/cell/test-parts", params={"name": "R\x00"}, headers=h).status_code == 422
        r = c.post("/api/v1/products/cel/test-parts", json={"name": "RR-01", "expect": "NG"}, headers=h)
        assert r.status_code == 404 and "no model for product 'cel'" in r.json()["error"]["message"]
        # the one meant named, as an inspection of a misspelt product is answered
        assert "did you mean 'cell'?" in r.json()["error"]["message"] and r.json()["error"]["did_you_mean"] == ["cell"]
        for at in ("0001-01-01T00:00:00Z", "9999-12-31T23:00:00Z"):
            for path in ("/api/v1/verification", "/api/v1/reports/shift"):
                r = c.get(path, params={"at": at})
                assert r.status_code == 422 and "use a time between" in r.json()["error"]["message"], (path, at)
        # a name is stripped on the way in and on the way out; a scanner's trailing space still matches
        assert _register(c, st, " RR-02 ", "NG")["name"] == "RR-02"
        assert _inspect(st, BRIGHT, 0, "x", serial="RR-02\r").test_part == "RR-02"
        assert c.delete("/api/v1/products/cell/test-parts", params={"name": " RR-02 "}, headers=h).status_code == 200
        # line= (left blank in a form) is every line
        _register(c, st, "RR-03", "NG")
        _inspect(st, DARK, 1, "own")
        assert len(c.get("/api/v1/verification", params={"line": "", "at": "2026-11-30T10:00:00Z"}).json()["lines"]) == 1


def test_a_change_made_while_the_book_reloads_is_not_lost(spc_station):
    from types import SimpleNamespace

    from lineguard.line.test_parts import TestPartBook
    st = _station(spc_station)
    book = TestPartBook(st.db, reload_s=3600)

    def session_while_a_change_lands():
        book._changed()                 # another thread registers a test part as this reload reads
        return st.db.session()

    book.db = SimpleNamespace(session=session_while_a_change_lands)
    assert book.match("cell", "RR-01", "p") is None
    book.db = st.db
    with st.db.session() as s:          # what that change wrote
        s.add(TestPart(product="cell", name="RR-01", expect="NG", created_at=REGISTERED))
    assert book.match("cell", "RR-01", "p") is not None     # read again at once, not an hour later


@pytest.mark.one_database
def test_a_test_part_named_like_another_but_for_case_is_refused(spc_station):
    st = _station(spc_station, review_band=True)
    with client(st) as c:
        h = {"X-API-Key": st.engineer_key}
        _register(c, st, "RR-01", "NG")
        alike = c.post("/api/v1/products/cell/test-parts", json={"name": "rr-01", "expect": "OK"}, headers=h)
        assert alike.status_code == 409 and "'RR-01'" in alike.json()["error"]["message"]
        assert "must be NG" in alike.json()["error"]["message"]
        assert [t["name"] for t in c.get("/api/v1/products/cell/test-parts").json()["items"]] == ["RR-01"]
        _register(c, st, "RR-01", "REVIEW")                  # the same name changed: fine
        assert c.delete("/api/v1/products/cell/test-parts", params={"name": "RR-01"}, headers=h).status_code == 200
        _register(c, st, "rr-01", "OK")                      # the other retired: the name is free


@pytest.mark.one_database
def test_a_test_part_retired_in_the_shift_before_it_was_put_through_is_no_longer_asked_for(spc_station):
    """Retired mid-shift (lost, a typo) before anyone put it through: a part sent with its
    name is a production part now, so it could never complete the set, and the line's
    Verified bit would stay off for the rest of the shift. One checked wrong before its
    retirement still fails the shift."""
    st = _station(spc_station)
    with client(st) as c:
        _register(c, st, "RR-01", "NG")
        _register(c, st, "TYPO-01", "OK")
        _register(c, st, "GOOD-01", "OK")
        _inspect(st, BRIGHT, 10, "a", serial="RR-01")
        _inspect(st, BRIGHT, 12, "b", serial="GOOD-01")                  # wrong: a good part rejected
        with st.db.session() as s:
            s.execute(update(TestPart).where(TestPart.name.in_(["TYPO-01", "GOOD-01"]))
                      .values(retired_at=MORNING + dt.timedelta(minutes=30)))
        v = _s1(c)
        assert v["state"] == "failed" and [t["name"] for t in v["test_parts"]] == ["GOOD-01", "RR-01"]
        assert [f["name"] for f in v["failures"]] == ["GOOD-01"]


@pytest.mark.one_database
def test_the_shift_passes_without_a_test_part_retired_in_it_unseen(spc_station):
    st = _station(spc_station)
    with client(st) as c:
        _register(c, st, "RR-01", "NG")
        _register(c, st, "TYPO-01", "OK")
        _inspect(st, BRIGHT, 10, "a", serial="RR-01")
        assert _s1(c)["state"] == "incomplete"
        with st.db.session() as s:
            s.execute(update(TestPart).where(TestPart.name == "TYPO-01")
                      .values(retired_at=MORNING + dt.timedelta(minutes=30)))
        assert _s1(c)["state"] == "passed"


@pytest.mark.one_database
def test_a_product_whose_every_test_part_was_retired_unseen_has_none_to_verify(spc_station):
    """Its only red rabbit lost and retired mid-shift before anyone put it through: nothing
    can complete the set, so "due" held the Verified bit off (and the line view amber) for
    the rest of the shift; nothing was verified, so not "passed" either."""
    st = _station(spc_station)
    at = DAY + dt.timedelta(hours=10)
    shift = st.config.shift_at(at)
    with client(st) as c:
        _register(c, st, "RR-01", "NG")
        _inspect(st, DARK, 10, "a")                                      # a production part
        assert _s1(c)["state"] == "due"
        assert station_state(st.db, shift, "L1", "S1", "cell", at) == "due"
        assert station_state(st.db, shift, "L1", "S2", "cell", at) == "due"       # not run yet
        with st.db.session() as s:
            s.execute(update(TestPart).where(TestPart.name == "RR-01")
                      .values(retired_at=MORNING + dt.timedelta(minutes=30)))
        assert ("L1", "S1", "cell") not in _verification(c)
        assert station_state(st.db, shift, "L1", "S1", "cell", at) == "none"
        assert station_state(st.db, shift, "L1", "S2", "cell", at) == "none"
        # before it was retired the shift was still due
        assert station_state(st.db, shift, "L1", "S1", "cell", MORNING + dt.timedelta(minutes=20)) == "due"


def test_a_test_part_scanned_in_another_case_is_the_test_part(spc_station):
    st = _station(spc_station)
    with client(st) as c:
        _register(c, st, "RR-01", "NG")
        rec = _inspect(st, BRIGHT, 10, "scan-1", serial="rr-01\r")      # a scanner's lower-case label
        assert (rec.test_part, rec.test_expected) == ("RR-01", "NG")
        assert _s1(c)["state"] == "passed"
        assert _verification(c, line="l1")[("L1", "S1", "cell")]["state"] == "passed"     # the line typed so too
        # and retired by the name typed so
        r = c.delete("/api/v1/products/cell/test-parts", params={"name": "rr-01"}, headers={"X-API-Key": st.engineer_key})
        assert r.status_code == 200 and r.json()["name"] == "RR-01", r.text


@pytest.mark.one_database
def test_a_retirement_later_in_the_shift_does_not_move_its_pass_back(spc_station):
    """OK-01 checked at 06:05, RR-01 never put through and retired at 12:00: the shift passed
    at 12:00 (the Verified bit was off until then), not at 06:05 with no part made before."""
    st = _station(spc_station)
    with client(st) as c:
        _register(c, st, "RR-01", "NG")
        _register(c, st, "OK-01", "OK")
        _inspect(st, DARK, 5, "a", serial="OK-01")
        for i in range(4):
            _inspect(st, DARK, 60 + i, f"p{i}")                          # 07:00..: parts before the pass
        with st.db.session() as s:
            s.execute(update(TestPart).where(TestPart.name == "RR-01")
                      .values(retired_at=MORNING + dt.timedelta(hours=6)))
        _inspect(st, DARK, 6 * 60 + 30, "late")                          # 12:30: after it
        v = _s1(c, at="2026-11-30T13:00:00Z")
        assert v["state"] == "passed" and v["passed_at"] == "2026-11-30T12:00:00Z"
        assert v["parts_before_verification"] == 4


@pytest.mark.one_database
def test_a_failure_carried_by_a_test_part_retired_now_does_not_hold_the_shift(spc_station):
    """RR-01 wrong in the shift before, then retired: it can never be checked right again,
    so the shift it was retired in is judged without it (as the next one is)."""
    st = _station(spc_station)
    with client(st) as c:
        _register(c, st, "RR-01", "NG")
        _register(c, st, "OK-01", "OK")
        _inspect(st, DARK, -60, "a", serial="RR-01")                     # 05:00: passed as OK, wrong
        _inspect(st, DARK, -55, "b", serial="OK-01")
        assert _s1(c, at="2026-11-30T05:30:00Z")["state"] == "failed"
        _inspect(st, DARK, 10, "c", serial="OK-01")                      # 06:10 in the next shift
        assert _s1(c)["state"] == "failed"                               # carried
        with st.db.session() as s:
            s.execute(update(TestPart).where(TestPart.name == "RR-01")
                      .values(retired_at=MORNING + dt.timedelta(minutes=30)))
        v = _s1(c)
        assert v["state"] == "passed" and v["failures"] == [] and v["passed_at"] == "2026-11-30T06:30:00Z"
        assert _s1(c, at="2026-11-30T05:30:00Z")["state"] == "failed"      # the shift it failed in stays so


@pytest.mark.one_database
def test_a_red_rabbit_passed_raises_a_line_alarm_sent_like_the_others(spc_station):
    """A red rabbit judged OK showed on the line view and turned Verified off, but raised no
    alarm: no pager, no andon, no escalation, no PLC Alarm bit for the one event that says
    the station's OK parts cannot be trusted."""
    from lineguard.line.alarms import alarm_code
    from lineguard.line.orm import OutboxEvent
    from sqlalchemy import select
    st = _station(spc_station)
    with client(st) as c:
        _register(c, st, "RR-01", "NG")
        _register(c, st, "GOOD-1", "OK")
        _inspect(st, BRIGHT, 0, "x", serial="RR-01", seed=1)            # right: nothing
        _inspect(st, DARK, 1, "g", serial="GOOD-1", seed=2)
        assert st.alarms.active() == []
        wrong = _inspect(st, DARK, 10, "y", serial="RR-01", seed=3)      # the lamp died: a defect passed
        (alarm,) = st.alarms.active()
        assert (alarm["kind"], alarm["inspection_id"], alarm["station"]) == ("test_part", wrong.id, "S1")
        assert "test part RR-01 judged OK where it must be NG" in alarm["message"]
        assert "passes defects" in alarm["message"] and alarm_code([alarm]) == 16
        y2 = _inspect(st, DARK, 11, "y2", serial="RR-01", seed=4)        # latched: no second one ...
        (latched,) = st.alarms.active()
        # ... the check goes on it instead, counted and sent again (a wrong check is never a repeat)
        assert (latched["id"], latched["inspection_id"], latched["parts"]) == (alarm["id"], y2.id, 2)
        with st.db.session() as s:
            sent = [e.payload for e in s.scalars(select(OutboxEvent).where(OutboxEvent.event == "alarm")
                                                 .order_by(OutboxEvent.id))]
        assert [(m["kind"], m["change"]) for m in sent] == [("test_part", "raised"), ("test_part", "updated")]
        assert c.get("/api/v1/alarms", params={"kind": "test_part"}).json()["items"][0]["id"] == alarm["id"]
        st.alarms.acknowledge(alarm["id"], "maria (user)", cause="camera")
        wrong_again = _inspect(st, DARK, 12, "y3", serial="RR-01", seed=5)   # a new wrong check after it
        assert [a["inspection_id"] for a in st.alarms.active()] == [wrong_again.id]
        # a good master rejected: the rejects are in doubt
        st.alarms.acknowledge(st.alarms.active()[0]["id"], "maria (user)")
        _inspect(st, BRIGHT, 13, "g2", serial="GOOD-1", seed=6)
        (harsh,) = st.alarms.active()
        assert "rejects good parts it must pass" in harsh["message"]


@pytest.mark.one_database
def test_a_limit_sample_needs_a_review_band_in_the_product_s_model(spc_station):
    """Walk: LIM-01 registered as REVIEW for a product whose model has no review band (every
    part OK or NG) failed every shift, raised a test-part alarm and put every NG part since
    in doubt; retiring it did not clear the failure."""
    st = _station(spc_station)
    with client(st) as c:
        h = {"X-API-Key": st.engineer_key}
        r = c.post("/api/v1/products/cell/test-parts", json={"name": "LIM-01", "expect": "REVIEW"}, headers=h)
        assert r.status_code == 409 and "has a review band" in r.json()["error"]["message"], r.text
        assert c.get("/api/v1/products/cell/test-parts").json()["items"] == []
        _register(c, st, "LIM-01", "NG")          # as the verdict it gets now: taken
    from .fake_inspector import FakeInspector
    st.add_model(FakeInspector(0.5, review_threshold=0.3).to_bytes(), "cell", activate=True)
    with client(st) as c:
        _register(c, st, "LIM-01", "REVIEW")


@pytest.mark.one_database
def test_a_shift_that_failed_after_it_passed_counts_only_the_parts_made_before_the_pass(spc_station):
    """Walk: passed at 14:19, a wrong check at 14:23: the line view said "113 part(s) made
    this shift without a passed verification", 47 of them made while the pass stood (the
    failure's doubt counts those, from the last right check)."""
    st = _station(spc_station)
    with client(st) as c:
        _register(c, st, "RR-01", "NG")
        for i in range(5):
            _inspect(st, DARK, i, f"p{i}")
        _inspect(st, BRIGHT, 10, "scan-1", serial="RR-01")            # passed at 06:10
        for i in range(5, 8):
            _inspect(st, DARK, 20 + i, f"p{i}")
        _inspect(st, DARK, 40, "scan-2", serial="RR-01")              # wrong at 06:40
        v = _s1(c)
        assert v["state"] == "failed" and v["passed_before_failure_at"] == "2026-11-30T06:10:00Z", v
        assert v["parts_made"] == 8 and v["parts_before_verification"] == 5
        assert v["failures"][0]["doubt"]["parts"] == 3        # the parts made under the pass: in doubt
        # never passed before it failed (line L2): every part of the shift, as before
        _inspect(st, DARK, 1, "q1", line="L2")
        _inspect(st, DARK, 2, "scan-3", serial="RR-01", line="L2")
        v = _verification(c, line="L2")[("L2", "S1", "cell")]
        assert v["state"] == "failed" and v["passed_before_failure_at"] is None and v["parts_before_verification"] == 1


@pytest.mark.one_database
def test_a_product_the_station_has_no_model_for_is_told_in_whole_sentences(spc_station):
    """QA walk: "...no model for product 'nosuch' It knows: cell": the sentence ran on."""
    st = _station(spc_station)
    with client(st) as c:
        r = c.post("/api/v1/products/nosuch/test-parts", json={"name": "RR-01", "expect": "NG"},
                   headers={"X-API-Key": st.engineer_key})
        assert r.status_code == 404, r.text
        assert r.json()["error"]["message"] == ("this station has no model for product 'nosuch'. It knows: cell. "
                                                "Register test parts for a product it inspects (upload its model "
                                                "first).")
