"""An alarm acknowledged as "other (say what in the note)" needs the note: one sent with none
(or only spaces) was accepted, and the shift's count of causes had an "other" nobody could
explain. Refused with a 422 saying to write what it was; the alarm stays active."""
from __future__ import annotations

import pytest

from .test_alarms import NG, _parts, _station
from .test_spc_api import client


@pytest.mark.one_database
def test_other_without_a_note_is_refused_and_the_alarm_stays_active(spc_station):
    st = _station(spc_station, alarm_ng_rate=0)
    _parts(st, NG, NG, NG, NG, NG)
    (alarm,) = st.alarms.active()
    url, key = f"/api/v1/alarms/{alarm['id']}/acknowledge", {"X-API-Key": st.operator_key}
    with client(st) as c:
        for body in ({"cause": "other"}, {"cause": "other", "note": None}, {"cause": "other", "note": "   "}):
            bad = c.post(url, json=body, headers=key)
            assert bad.status_code == 422, (body, bad.text)
            assert "write what it was" in bad.text, bad.text
            assert [a["id"] for a in st.alarms.active()] == [alarm["id"]]     # nothing acknowledged
        done = c.post(url, json={"cause": "other", "note": "air hose off the gripper"}, headers=key)
        assert done.status_code == 200, done.text
    assert done.json()["ack_cause"] == "other" and done.json()["ack_note"] == "air hose off the gripper"
    assert st.alarms.active() == []


@pytest.mark.one_database
def test_the_other_causes_and_none_still_need_no_note(spc_station):
    st = _station(spc_station, alarm_ng_rate=0, alarm_ng_run=2)
    key = {"X-API-Key": st.operator_key}
    with client(st) as c:
        for body in ({"cause": "camera"}, {}, None):
            _parts(st, NG, NG)
            (alarm,) = st.alarms.active()
            url = f"/api/v1/alarms/{alarm['id']}/acknowledge"
            r = c.post(url, headers=key) if body is None else c.post(url, json=body, headers=key)
            assert r.status_code == 200, (body, r.text)


@pytest.mark.one_database
def test_a_cause_in_capitals_is_its_key_and_a_number_or_unknown_one_says_what_to_send(spc_station):
    """Walk: {"cause": "Process"} was refused with "String should match pattern
    '^[a-z0-9_]+$'", and the PLC's number 7 with "Input should be a valid string"."""
    st = _station(spc_station, alarm_ng_rate=0)
    _parts(st, NG, NG, NG, NG, NG)
    (alarm,) = st.alarms.active()
    url, key = f"/api/v1/alarms/{alarm['id']}/acknowledge", {"X-API-Key": st.operator_key}
    with client(st) as c:
        number = c.post(url, json={"cause": 7}, headers=key)
        assert number.status_code == 422 and "give the cause's key" in number.text, number.text
        unknown = c.post(url, json={"cause": "Lamp Out"}, headers=key)
        assert unknown.status_code == 422 and "is not one of process" in unknown.text, unknown.text
        done = c.post(url, json={"cause": " Process "}, headers=key)
        assert done.status_code == 200 and done.json()["ack_cause"] == "process", done.text
