"""Test parts after a change of the station's judging: a check proves the station as it
judged then, so a model version made active after it (activated, rolled back to, a retrain
activated) or photos of another size (a new camera) send the verification back to due
until the test parts are put through again; the answer says why, and the PLC reads it."""
from __future__ import annotations

import datetime as dt
import itertools
import zlib

import pytest
from sqlalchemy import update

from lineguard.line.orm import Inspection, iso_utc, utcnow
from lineguard.line.station import Part
from lineguard.line.test_parts import station_state

from .conftest import png_bytes
from .fake_inspector import FakeInspector
from .test_spc_api import client
from .test_test_parts import BRIGHT, DARK, MORNING, _register, _station, _verification

AGAIN = ": put the test parts through again"
_photos = itertools.count()


def _part(st, value, part_id, serial=None, station="S1", size=64, minutes=None):
    """A part judged by the station; at ``minutes`` after MORNING (a past shift), or left
    at the time it was judged (the shift running now)."""
    # a photo of its own each time: the same part id with the same photo is the same part
    seed = zlib.crc32(f"{part_id}/{minutes}/{station}/{size}/{next(_photos)}".encode())
    rec = st.inspect(png_bytes(value, size=size, seed=seed),
                     Part(part_id=part_id, line="L1", station=station, product="cell", serial=serial)).record
    if minutes is not None:
        with st.db.session() as s:
            s.execute(update(Inspection).where(Inspection.id == rec.id)
                      .values(created_at=MORNING + dt.timedelta(minutes=minutes)))
    return rec


def _now(c, where="verification"):
    """The S1 entry of this shift's verification, as each place that shows it reads it."""
    if where == "verification":
        lines = c.get("/api/v1/verification").json()["lines"]
    elif where == "line view":
        lines = c.get("/api/v1/lines/summary").json()["verification"]
    else:
        lines = c.get("/api/v1/reports/shift", params={"at": iso_utc(utcnow())}).json()["verification"]
    (v,) = [v for v in lines if (v["line"], v["station"], v["product"]) == ("L1", "S1", "cell")]
    return v


def _plc(st):
    now = utcnow()
    return station_state(st.db, st.config.shift_at(now), "L1", "S1", "cell", now)


def test_a_model_made_active_after_the_checks_sends_the_verification_back_to_due(spc_station):
    """The walk: the red rabbit went through with the old model, then a recalibrated v2 was
    made active, and the verification still said passed, citing the old model's check."""
    st = _station(spc_station)
    with client(st) as c:
        _register(c, st, "RR-01", "NG")
        _register(c, st, "GOOD-01", "OK")
        rr = _part(st, BRIGHT, "scan-1", serial="RR-01")
        _part(st, DARK, "GOOD-01")
        _part(st, DARK, "p1")
        v = _now(c)
        assert (v["state"], v.get("reason")) == ("passed", None) and _plc(st) == "passed"
        v2 = st.add_model(FakeInspector(0.55).to_bytes(), "cell", activate=True)      # a retrain activated
        said = f"model version 2 made active at {iso_utc(v2.activated_at)} after the test parts' checks" + AGAIN
        for where in ("verification", "line view", "shift report"):
            v = _now(c, where)
            assert (v["state"], v.get("reason"), v["passed_at"]) == ("due", said, None), where
        # the old checks stay listed, marked, no longer counted
        assert [(t["name"], t["verdict"], t["right"], t["before_change"]) for t in v["test_parts"]] == [
            ("GOOD-01", "OK", None, True), ("RR-01", "NG", None, True)]
        assert _plc(st) == "due"
        _part(st, DARK, "p2")                                   # judged by v2 before its check: not verified
        again = _part(st, BRIGHT, "scan-2", serial="RR-01")
        assert again.registry_version == 2 and rr.registry_version == 1
        v = _now(c)
        assert (v["state"], v["reason"]) == ("incomplete", said) and _plc(st) == "incomplete"
        good = _part(st, DARK, "GOOD-01")
        v = _now(c)
        assert (v["state"], v["reason"], v["passed_at"]) == ("passed", None, iso_utc(good.created_at))
        assert _plc(st) == "passed"


def test_a_rollback_is_a_change_too_and_so_is_a_model_that_judged_in_between(spc_station):
    st = _station(spc_station)
    with client(st) as c:
        _register(c, st, "RR-01", "NG")
        st.add_model(FakeInspector(0.55).to_bytes(), "cell", activate=True)
        _part(st, BRIGHT, "a", serial="RR-01")                  # checked with v2
        assert _now(c)["state"] == "passed"
        back = st.rollback_model("cell", "")                   # v1 judges again
        assert back.version == 1
        v = _now(c)
        assert v["state"] == "due" and _plc(st) == "due"
        assert v["reason"] == f"model version 1 made active at {iso_utc(back.activated_at)} after the test " \
                              "parts' checks" + AGAIN
        _part(st, BRIGHT, "b", serial="RR-01")                  # checked with v1
        assert _now(c)["state"] == "passed"
        # v2 again, a part judged by it, rolled back at once: v1 judges as when it was checked,
        # but the line's parts were judged otherwise in between
        st.activate_model("cell", "", 2, force=True)
        p = _part(st, DARK, "p1")
        st.rollback_model("cell", "")
        v = _now(c)
        assert v["state"] == "due" and v["reason"] == (
            f"model version 2 judged the station's parts after the test parts' checks (the latest at "
            f"{iso_utc(p.created_at)})" + AGAIN)
        _part(st, BRIGHT, "c", serial="RR-01")
        assert _now(c)["state"] == "passed" and _plc(st) == "passed"
        # a wrong check is not undone by a change: it stands until put right
        _part(st, DARK, "d", serial="RR-01")                    # the red rabbit passed
        st.add_model(FakeInspector(0.6).to_bytes(), "cell", activate=True)
        v = _now(c)
        assert v["state"] == "failed" and v["failures"][-1]["cleared_at"] is None and _plc(st) == "failed"
        _part(st, BRIGHT, "e", serial="RR-01")                  # right with the new model
        assert _now(c)["state"] == "passed"


@pytest.mark.one_database
def test_photos_of_another_size_send_the_verification_back_to_due(spc_station):
    """A new camera: its first part (another width x height than the station's parts before)
    makes the station's verification due; another station with its old camera keeps its own."""
    st = _station(spc_station)
    at = "2026-11-30T10:00:00Z"
    shift = st.config.shift_at(MORNING + dt.timedelta(hours=4))
    with client(st) as c:
        _register(c, st, "RR-01", "NG")
        _part(st, BRIGHT, "a", serial="RR-01", size=256, minutes=10)
        _part(st, BRIGHT, "a2", serial="RR-01", size=256, minutes=11, station="S2")
        for i in range(3):
            _part(st, DARK, f"p{i}", size=256, minutes=20 + i)
            _part(st, DARK, f"q{i}", size=256, minutes=20 + i, station="S2")
        assert _verification(c, at=at)[("L1", "S1", "cell")]["state"] == "passed"
        _part(st, DARK, "new-cam-1", size=384, minutes=80)       # 07:20, the new camera's first part
        _part(st, DARK, "new-cam-2", size=384, minutes=81)
        # one part of another size, or two, may be a cropping camera's: not yet a camera change
        assert _verification(c, at=at)[("L1", "S1", "cell")]["state"] == "passed"
        _part(st, DARK, "new-cam-3", size=384, minutes=82)
        both = _verification(c, at=at)
        v = both[("L1", "S1", "cell")]
        assert v["state"] == "due" and v["reason"] == \
            "photos of 384x384 since 2026-11-30T07:20:00Z, 256x256 before" + AGAIN
        assert v["test_parts"][0]["before_change"] is True and v["parts_before_verification"] == 6
        assert both[("L1", "S2", "cell")]["state"] == "passed"
        assert station_state(st.db, shift, "L1", "S1", "cell", MORNING + dt.timedelta(hours=4)) == "due"
        _part(st, BRIGHT, "b", serial="RR-01", size=384, minutes=90)    # put through on the new camera
        _part(st, DARK, "new-cam-4", size=384, minutes=95)
        v = _verification(c, at=at)[("L1", "S1", "cell")]
        assert (v["state"], v["reason"], v["passed_at"]) == ("passed", None, "2026-11-30T07:30:00Z")
        assert v["parts_before_verification"] == 6 and v["parts_made"] == 7
        assert station_state(st.db, shift, "L1", "S1", "cell", MORNING + dt.timedelta(hours=4)) == "passed"


@pytest.mark.one_database
def test_a_station_whose_photos_vary_in_size_stays_verified(spc_station):
    """A camera that crops each part's region, or two sizes by turns, is no camera change:
    only photos of one other size, with none of the check's size once they began, are."""
    st = _station(spc_station)
    at = "2026-11-30T10:00:00Z"
    with client(st) as c:
        _register(c, st, "RR-01", "NG")
        _part(st, BRIGHT, "a", serial="RR-01", size=256, minutes=10)      # the shift's first record
        _part(st, DARK, "one", size=200, minutes=15)             # a cropping camera's next part: no change
        assert _verification(c, at=at)[("L1", "S1", "cell")]["state"] == "passed"
        for i, size in enumerate((200, 232, 256, 200, 232)):
            _part(st, DARK, f"p{i}", size=size, minutes=20 + i)
        assert _verification(c, at=at)[("L1", "S1", "cell")]["state"] == "passed"
        for i, size in enumerate((384, 256, 384)):                          # two sizes by turns
            _part(st, DARK, f"q{i}", size=size, minutes=40 + i)
        v = _verification(c, at=at)[("L1", "S1", "cell")]
        assert (v["state"], v["reason"]) == ("passed", None)
