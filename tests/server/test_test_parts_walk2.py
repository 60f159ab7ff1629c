"""Test parts walk 2: a changed requirement is a new one (this shift's checks against the
old verdict no longer pass the set), and changing what a test part must be keeps what it is."""
from __future__ import annotations

import zlib

from lineguard.line.station import Part

from .conftest import png_bytes
from .test_spc_api import client
from .test_test_parts import BRIGHT, DARK, _register, _station


def _now_part(st, value, part_id, serial=None):
    """A part judged now, in the shift running now (the one the PLC's Verified bit reads)."""
    return st.inspect(png_bytes(value, seed=zlib.crc32(part_id.encode())),
                      Part(part_id=part_id, line="L1", station="S1", product="cell", serial=serial)).record


def _running(c):
    r = c.get("/api/v1/verification", params={"line": "L1"})
    assert r.status_code == 200, r.text
    return {(v["station"], v["product"]): v for v in r.json()["lines"]}[("S1", "cell")]


def test_changing_what_a_test_part_must_be_sends_the_shift_back_to_due(spc_station):
    st = _station(spc_station)
    with client(st) as c:
        _register(c, st, "RR-01", "NG", "crack 0.3 mm, left edge")
        assert _now_part(st, BRIGHT, "scan-1", serial="RR-01").verdict == "NG"
        assert _running(c)["state"] == "passed"
        # the engineer finds it was registered wrong: it must pass
        r = c.post("/api/v1/products/cell/test-parts", json={"name": "RR-01", "expect": "OK"},
                   headers={"X-API-Key": st.engineer_key})
        assert r.status_code == 200, r.text
        # the description was not sent: what the part is stays
        assert r.json()["description"] == "crack 0.3 mm, left edge"
        v = _running(c)
        # the NG check proved the station against NG, not OK: put it through again
        assert v["state"] == "due", v
        row = v["test_parts"][0]
        assert row["before_change"] is True and row["right"] is None and row["expect"] == "OK"
        assert "RR-01 must be OK now" in v["reason"] and "put the test parts through again" in v["reason"]
        # a check against the new requirement passes it again
        assert _now_part(st, DARK, "scan-2", serial="RR-01").test_expected == "OK"
        assert _running(c)["state"] == "passed"


def test_a_description_sent_as_null_is_cleared_and_one_sent_replaces(spc_station):
    st = _station(spc_station)
    with client(st) as c:
        h = {"X-API-Key": st.engineer_key}
        _register(c, st, "RR-01", "NG", "crack")
        r = c.post("/api/v1/products/cell/test-parts", json={"name": "RR-01", "expect": "NG", "description": "dent"},
                   headers=h)
        assert r.json()["description"] == "dent"
        r = c.post("/api/v1/products/cell/test-parts", json={"name": "RR-01", "expect": "NG", "description": None},
                   headers=h)
        assert r.json()["description"] is None


def test_a_past_shift_keeps_the_verdict_its_checks_had_to_get(spc_station):
    """A shift that ended is judged by what its test parts had to be then (each check keeps it)."""
    from .test_test_parts import _inspect, _s1
    st = _station(spc_station)
    with client(st) as c:
        _register(c, st, "RR-01", "NG")
        _inspect(st, BRIGHT, 10, "scan-1", serial="RR-01")      # 2026-11-30 06:10, a shift long ended
        assert _s1(c)["state"] == "passed"
        _register(c, st, "RR-01", "OK")
        assert _s1(c)["state"] == "passed"
