"""Saying later that an acknowledged alarm was "other" needs a note, as acknowledging with
"other" does: PATCH /api/v1/alarms/{id} took {"cause": "other"} with none, and the shift's
count of causes had an "other" nobody could explain. The alarm's own note counts (a PATCH
only adds to it); a missing or still-active alarm is said as before. On SQLite and PostgreSQL."""
from __future__ import annotations

import pytest

from .test_alarms import NG, _parts, _station
from .test_spc_api import client

SAID = "the cause 'other' needs a note: write what it was"


@pytest.mark.one_database
def test_other_set_later_without_a_note_is_refused_and_the_alarm_keeps_its_cause(spc_station):
    st = _station(spc_station, alarm_ng_rate=0, alarm_ng_run=2)
    _parts(st, NG, NG)
    (alarm,) = st.alarms.active()
    key = {"X-API-Key": st.operator_key}
    url = f"/api/v1/alarms/{alarm['id']}"
    with client(st) as c:
        # still active: said so first (acknowledge it), not a note asked for
        early = c.patch(url, json={"cause": "other"}, headers=key)
        assert early.status_code == 409, early.text
        assert c.post(url + "/acknowledge", json={"cause": "camera"}, headers=key).status_code == 200
        for body in ({"cause": "other"}, {"cause": "other", "note": None}, {"cause": "other", "note": "  "}):
            bad = c.patch(url, json=body, headers=key)
            assert bad.status_code == 422, (body, bad.text)
            assert bad.json()["error"]["message"].startswith(SAID), bad.text
        (kept,) = st.alarms.history()
        assert kept["ack_cause"] == "camera" and not kept["ack_note"], kept
        assert c.patch(url, json={"cause": "other"}).status_code == 401
        assert c.patch("/api/v1/alarms/999999", json={"cause": "other"}, headers=key).status_code == 404
        done = c.patch(url, json={"cause": "other", "note": "air hose off the gripper"}, headers=key)
        assert done.status_code == 200, done.text
    assert done.json()["ack_cause"] == "other" and "air hose off the gripper" in done.json()["ack_note"]


@pytest.mark.one_database
def test_the_alarms_own_note_counts_and_the_other_causes_need_none(spc_station):
    st = _station(spc_station, alarm_ng_rate=0, alarm_ng_run=2)
    key = {"X-API-Key": st.operator_key}
    with client(st) as c:
        _parts(st, NG, NG)
        (noted,) = st.alarms.active()
        assert c.post(f"/api/v1/alarms/{noted['id']}/acknowledge", json={"note": "gripper jammed, freed"},
                      headers=key).status_code == 200
        r = c.patch(f"/api/v1/alarms/{noted['id']}", json={"cause": "other"}, headers=key)
        assert r.status_code == 200, r.text
        assert r.json()["ack_cause"] == "other" and r.json()["ack_note"].startswith("gripper jammed, freed\n")
        # the other causes need no note; the next alarm, acknowledged without one, does for "other"
        _parts(st, NG, NG)
        (bare,) = st.alarms.active()
        url = f"/api/v1/alarms/{bare['id']}"
        assert c.post(url + "/acknowledge", headers=key).status_code == 200
        bad = c.patch(url, json={"cause": "other"}, headers=key)
        assert bad.status_code == 422 and bad.json()["error"]["message"].startswith(SAID), bad.text
        r = c.patch(url, json={"cause": "handling"}, headers=key)
        assert r.status_code == 200 and r.json()["ack_cause"] == "handling", r.text


@pytest.mark.one_database
def test_the_stations_own_lines_of_causes_changed_are_not_a_note(spc_station):
    """Each cause changed without a note adds a history line to the alarm's note ("[... UTC,
    who] cause A -> B"): those counted as a note, so an alarm changed once without a word
    was then set to "other" with none. A line with a note after it still counts."""
    st = _station(spc_station, alarm_ng_rate=0, alarm_ng_run=2)
    key = {"X-API-Key": st.operator_key}
    with client(st) as c:
        _parts(st, NG, NG)
        (alarm,) = st.alarms.active()
        url = f"/api/v1/alarms/{alarm['id']}"
        assert c.post(url + "/acknowledge", json={"cause": "camera"}, headers=key).status_code == 200
        moved = c.patch(url, json={"cause": "handling"}, headers=key)
        assert moved.status_code == 200 and " cause " in moved.json()["ack_note"], moved.text
        bad = c.patch(url, json={"cause": "other"}, headers=key)
        assert bad.status_code == 422 and bad.json()["error"]["message"].startswith(SAID), bad.text
        said = c.patch(url, json={"cause": "camera", "note": "lens fogged"}, headers=key)
        assert said.status_code == 200 and said.json()["ack_note"].endswith("; lens fogged"), said.text
        r = c.patch(url, json={"cause": "other"}, headers=key)
        assert r.status_code == 200 and r.json()["ack_cause"] == "other", r.text
