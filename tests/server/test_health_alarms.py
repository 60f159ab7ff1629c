"""/health and the line's alarms: a station whose alarms nobody answers is not "ok".

A camera's bad week: two alarms stood unacknowledged, every part went NG, and /health
said "ok" all along, so a plant monitor reading only the status saw nothing. An alarm
left unacknowledged past its escalation time (its station's escalate_min) now makes the
status "degraded" (200: parts are still judged and stored), named "alarm LINE/STATION"
among the faults; /health counts the active alarms by kind with the oldest's wait, and
no part data."""
from __future__ import annotations

import datetime as dt

import pytest

from sqlalchemy import update

from lineguard.line.auth import create_key
from lineguard.line.orm import LineAlarm
from lineguard.line.station import Part

from .conftest import png_bytes
from .fake_inspector import FakeInspector
from .test_spc_api import client

NG = 200            # the fake model's score is brightness: 0.78, NG
_seq = iter(range(10**6))


def _station(spc_station, **kw):
    st = spc_station(alarm_ng_run=2, alarm_ng_rate=0, **kw)
    st.add_model(FakeInspector(0.5, review_threshold=0.4).to_bytes(), "cell", activate=True)
    return st


def _ng_parts(st, n, station="S1"):
    for _ in range(n):
        i = next(_seq)
        st.inspect(png_bytes(NG, seed=i), Part(part_id=f"HA-part-{i}", line="L1", station=station, product="cell"))


def _due(st, minutes_ago: float) -> None:
    """Every active alarm came due for escalation ``minutes_ago`` (as if raised that long before)."""
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    with st.db.session() as s:
        s.execute(update(LineAlarm).where(LineAlarm.acked_at.is_(None))
                  .values(escalate_at=now - dt.timedelta(minutes=minutes_ago),
                          raised_at=now - dt.timedelta(minutes=minutes_ago + 10)))


@pytest.mark.one_database
def test_an_alarm_left_unanswered_past_its_escalation_makes_health_degraded(spc_station):
    st = _station(spc_station)
    with client(st) as c:
        h = c.get("/health").json()
        assert h["status"] == "ok" and h["alarms"]["active"] == 0 and h["alarms"]["oldest"] is None

        _ng_parts(st, 2)                                  # an NG run: raised, not yet due for escalation
        (alarm,) = st.alarms.active()
        r = c.get("/health")
        h = r.json()
        assert (r.status_code, h["status"], h["faults"]) == (200, "ok", {})
        assert h["alarms"]["active"] == 1 and h["alarms"]["by_kind"] == {"ng_run": 1}
        assert h["alarms"]["stations"] == ["L1/S1"] and h["alarms"]["past_escalation"] == 0
        assert h["alarms"]["oldest"]["kind"] == "ng_run" and h["alarms"]["oldest"]["escalated"] is False
        assert h["alarms"]["oldest"]["waiting_min"] == pytest.approx(0, abs=0.5)     # raised just now
        # no part data: not the part ids, not the alarm's message (it names parts)
        assert "HA-part" not in r.text and "inspection_id" not in r.text and alarm["message"] not in r.text

        # due and not yet escalated (no process looking for escalations): already said
        _due(st, 5)
        r = c.get("/health")
        h = r.json()
        assert (r.status_code, h["status"]) == (200, "degraded")
        assert list(h["faults"]) == ["alarm L1/S1"]
        said = h["faults"]["alarm L1/S1"]
        assert "1 alarm(s) unacknowledged past their escalation time" in said and "ng_run" in said
        assert "unacknowledged for 15 min" in said
        assert h["alarms"]["past_escalation"] == 1 and h["alarms"]["oldest"]["waiting_min"] == pytest.approx(15, abs=0.5)

        # escalated (the due time moved on, or none again): still said, with how often
        assert [a["level"] for a in st.alarms.escalate_due()] == [1]
        h = c.get("/health").json()
        assert h["status"] == "degraded" and "escalated 1 time(s)" in h["faults"]["alarm L1/S1"]
        assert h["alarms"]["oldest"]["escalated"] is True

        # acknowledged: ok again
        with st.db.session() as s:
            key = create_key(s, "operator", name="line-tablet")[1]
        ack = c.post(f"/api/v1/alarms/{alarm['id']}/acknowledge", json={"note": "lens cleaned"},
                     headers={"X-API-Key": key})
        assert ack.status_code == 200, ack.text
        h = c.get("/health").json()
        assert (h["status"], h["faults"], h["alarms"]["active"]) == ("ok", {}, 0)


def test_alarms_are_counted_by_kind_and_station_and_a_stopping_fault_still_wins(spc_station):
    st = _station(spc_station, alarm_photo_run=0)
    _ng_parts(st, 2, station="S1")
    _ng_parts(st, 2, station="S2")
    with client(st) as c:
        h = c.get("/health").json()
        assert h["alarms"]["active"] == 2 and h["alarms"]["by_kind"] == {"ng_run": 2}
        assert h["alarms"]["stations"] == ["L1/S1", "L1/S2"] and h["status"] == "ok"
        _due(st, 1)
        h = c.get("/health").json()
        assert h["status"] == "degraded" and set(h["faults"]) == {"alarm L1/S1", "alarm L1/S2"}
        # a fault that stops parts is still a 503, the alarms said beside it
        st.faults["camera"] = "no frame for 30 s"
        r = c.get("/health")
        assert (r.status_code, r.json()["status"]) == (503, "fault")
        assert {"camera", "alarm L1/S1", "alarm L1/S2"} <= set(r.json()["faults"])


@pytest.mark.one_database
def test_a_station_that_escalates_nothing_is_not_degraded_by_its_alarms(spc_station):
    # escalate_min 0: the plant chose no escalation; an active alarm is counted, not a fault
    st = _station(spc_station, alarm_escalate_min=0)
    _ng_parts(st, 2)
    with client(st) as c:
        h = c.get("/health").json()
        assert (h["status"], h["alarms"]["active"], h["alarms"]["past_escalation"]) == ("ok", 1, 0)
