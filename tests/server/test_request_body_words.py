"""A JSON body the station cannot use is said so a person with curl knows what to send.

A walk through retraining got pydantic's own words: "Input should be a valid dictionary or
object to extract fields from" (curl -d without a JSON Content-Type), "11: JSON decode
error", "Field required" (no body at all), "Input should be less than 0.5" for a
false-reject rate of 5 (meant as 5%), and "must be a non-empty list of names" for a list
of two names, one of them empty.
"""
from __future__ import annotations

import pytest

from .fake_inspector import FakeInspector
from .test_model_lifecycle import _client, make_station  # noqa: F401 - the fixture


def _problem(r) -> str:
    assert r.status_code == 422, (r.status_code, r.text)
    return r.json()["error"]["message"]


@pytest.mark.one_database
def test_bodies_the_station_cannot_use_say_what_to_send(make_station):  # noqa: F811 - the fixture
    st = make_station()
    st.add_model(FakeInspector(0.5, "a").to_bytes(), "cell", activate=True)
    c = _client(st)
    url = "/api/v1/models/cell/train"
    said = _problem(c.post(url, content=b'{"line": "L1"}',
                           headers={"Content-Type": "application/x-www-form-urlencoded"}))
    assert "Content-Type: application/json" in said and "x-www-form-urlencoded" in said, said
    said = _problem(c.post(url, content=b'{"line": }', headers={"Content-Type": "application/json"}))
    assert said.startswith("the body is not valid JSON (") and "at character 10" in said, said
    said = _problem(c.post(url, headers={"Content-Type": "application/json"}))
    assert "needs a JSON body" in said, said
    said = _problem(c.post(url, json={"false_reject_rate": 5}))
    assert "false_reject_rate" in said and "0.01 for 1%" in said, said
    said = _problem(c.put("/api/v1/products/cell/defect-types", json={"defect_types": ["scratch", " "]}))
    assert "number 2 of the list is empty" in said, said
    # a body that is right goes on to the station's own answer (no part stored yet to learn)
    r = c.post(url, json={})
    assert r.status_code == 400 and "only 0 stored parts" in r.json()["error"]["message"], r.text
