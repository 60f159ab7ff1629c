"""Test parts, a second failure in a shift: a wrong check while the station's test-part alarm
is active goes on that alarm (named, counted, sent again), the pass before the failure
standing now is the one after an earlier failure was put right, and a test part retired
after a model change undid its check is no longer asked for."""
from __future__ import annotations

import datetime as dt
import logging

import pytest
from sqlalchemy import select

from lineguard.line.orm import OutboxEvent, iso_utc

from .fake_inspector import FakeInspector
from .test_spc_api import client
from .test_test_parts import BRIGHT, DARK, _inspect, _register, _s1, _station
from .test_verification_after_change import _now, _part

LIMIT = 100      # the fake model's score 0.39: inside the 0.3-0.5 review band, REVIEW


def _sent(st):
    with st.db.session() as s:
        return [(e.payload["id"], e.payload["change"], e.payload["parts"])
                for e in s.scalars(select(OutboxEvent).where(OutboxEvent.event == "alarm").order_by(OutboxEvent.id))]


@pytest.mark.one_database
def test_a_second_wrong_check_goes_on_the_active_alarm_and_is_sent_again(spc_station, caplog):
    """The walk: RR-02 passed OK raised alarm 1; RR-02 then checked right, RR-01 came back
    REVIEW where it must be NG: no ALARM line, alarm 1 still named RR-02 with parts 1, nothing
    sent; acknowledged, the station stood failed (RR-01) with no alarm."""
    st = _station(spc_station, review_band=True)
    with client(st) as c:
        _register(c, st, "RR-01", "NG")
        _register(c, st, "RR-02", "NG")
        first = _inspect(st, DARK, 10, "a", serial="RR-02")              # a red rabbit passed
        (alarm,) = st.alarms.active()
        assert (alarm["inspection_id"], alarm["parts"]) == (first.id, 1)
        _inspect(st, BRIGHT, 12, "b", serial="RR-02")                     # put right
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="lineguard"):
            second = _inspect(st, LIMIT, 20, "c", serial="RR-01")
        assert second.verdict == "REVIEW"
        (now,) = st.alarms.active()
        assert now["id"] == alarm["id"] and now["kind"] == "test_part"                 # still latched: one
        assert (now["inspection_id"], now["first_inspection_id"]) == (second.id, first.id)
        assert (now["parts"], now["rejected"]) == (2, 1)                  # RR-02's OK, RR-01's REVIEW
        assert now["message"].startswith("test part RR-01 judged REVIEW where it must be NG")
        assert "2 wrong test-part checks" in now["message"] and "RR-02 judged OK (must be NG)" in now["message"]
        assert any(r.getMessage().startswith("ALARM line L1 station S1: test part RR-01") for r in caplog.records)
        assert _sent(st) == [(alarm["id"], "raised", 1), (alarm["id"], "updated", 2)]
        # acknowledged with RR-01 named on it; the next wrong check raises a new one
        st.alarms.acknowledge(alarm["id"], "maria (user)", cause="camera")
        assert st.alarms.active() == [] and _s1(c)["state"] == "failed"
        third = _inspect(st, LIMIT, 30, "d", serial="RR-01")
        (new,) = st.alarms.active()
        assert new["id"] != alarm["id"] and (new["inspection_id"], new["parts"]) == (third.id, 1)


@pytest.mark.one_database
def test_the_pass_before_a_failure_is_the_one_after_an_earlier_failure_was_put_right(spc_station):
    """The walk: RR-02 failed, was put right, and the full set passed (84 parts made before);
    then RR-01 failed: passed_before_failure_at null and 88 parts counted before it, read
    from the shift's first wrong check, not the one standing."""
    st = _station(spc_station)
    with client(st) as c:
        _register(c, st, "RR-01", "NG")
        _register(c, st, "RR-02", "NG")
        for i in range(4):                                               # made before any pass
            _inspect(st, DARK, 1 + i, f"p{i}")
        _inspect(st, DARK, 10, "a", serial="RR-02")                      # 06:10 wrong
        _inspect(st, BRIGHT, 15, "b", serial="RR-02")                    # 06:15 put right
        _inspect(st, BRIGHT, 16, "c", serial="RR-01")                    # 06:16 the set passes
        v = _s1(c)
        assert (v["state"], v["passed_at"], v["parts_before_verification"]) == ("passed", "2026-11-30T06:16:00Z", 4)
        for i in range(4, 8):                                            # made under the pass
            _inspect(st, DARK, 16 + i, f"p{i}")
        _inspect(st, DARK, 30, "d", serial="RR-01")                      # 06:30 wrong, standing
        v = _s1(c)
        assert v["state"] == "failed" and v["passed_before_failure_at"] == "2026-11-30T06:16:00Z"
        assert (v["parts_made"], v["parts_before_verification"]) == (8, 4)
        # the failure standing counts the parts made under the pass as its parts in doubt
        standing = [f for f in v["failures"] if f["cleared_at"] is None]
        assert [(f["name"], f["doubt"]["parts"]) for f in standing] == [("RR-01", 4)]


def test_a_test_part_retired_after_a_rollback_undid_its_check_is_no_longer_asked_for(spc_station):
    """The walk: RR-03 checked right under v2, a rollback made v1 active (due, right); RR-03
    retired and every other test part put through again: S1 stayed incomplete with RR-03
    listed, which no part can check any more (a part named RR-03 is a production part)."""
    st = _station(spc_station)
    with client(st) as c:
        _register(c, st, "RR-01", "NG")
        _register(c, st, "RR-03", "NG")
        st.add_model(FakeInspector(0.55).to_bytes(), "cell", activate=True)
        _part(st, BRIGHT, "a", serial="RR-01")
        _part(st, BRIGHT, "b", serial="RR-03")
        assert _now(c)["state"] == "passed"
        assert st.rollback_model("cell", "").version == 1
        assert _now(c)["state"] == "due"
        r = c.delete("/api/v1/products/cell/test-parts", params={"name": "rr-03"},
                     headers={"X-API-Key": st.engineer_key})
        assert r.status_code == 200, r.text
        assert _part(st, BRIGHT, "c", serial="RR-03").test_part is None       # a production part now
        again = _part(st, BRIGHT, "d", serial="RR-01")
        v = _now(c)
        assert (v["state"], v["reason"]) == ("passed", None), v
        assert [(t["name"], t["before_change"]) for t in v["test_parts"]] == [("RR-01", False)]
        assert v["passed_at"] == v["test_parts"][0]["checked_at"] == iso_utc(again.created_at)


def test_a_pass_stays_the_one_before_the_failure_when_a_second_part_fails_before_the_first_is_put_right():
    """A right 06:01, B right 06:05 (the set passes), A wrong 06:10, B wrong 06:20, A right
    06:30: B's failure stands, and the set last passed at 06:05 (the pass was forgotten at
    A's failure, and every part of the shift counted as made before a pass)."""
    from types import SimpleNamespace

    from lineguard.line.test_parts import _passed_before_failure

    def at(hh_mm: str) -> dt.datetime:
        return dt.datetime(2026, 12, 7, *map(int, hh_mm.split(":")))

    def check(name: str, when: str, right: bool):
        return SimpleNamespace(test_part=name, created_at=at(when), test_expected="NG",
                               verdict="NG" if right else "OK")
    asked = [SimpleNamespace(name="A"), SimpleNamespace(name="B")]
    checks = [check("A", "06:01", True), check("B", "06:05", True), check("A", "06:10", False),
              check("B", "06:20", False), check("A", "06:30", True)]
    assert _passed_before_failure(asked, checks, at("06:00")) == at("06:05")
    # never all right before the failure: no pass
    assert _passed_before_failure(asked, checks[:1] + checks[2:], at("06:00")) is None
