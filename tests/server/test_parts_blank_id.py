"""A part sent with a blank part id: a walk's ``curl -F part_id=" "`` (curl drops a value's
leading spaces, so the field goes empty) was answered 422 "part_id: Field required", for a
field that was sent; spaces kept (a form from a script) "String should match pattern '\\S'".
Either way the sender could not tell that the id itself was blank. Every part needs its own
id (the station makes none up), so the 422 says the id is blank and what to give."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from .fake_inspector import png_bytes


@pytest.fixture
def operator(spc_station):
    """A client of an in-process station (fake model 'cell' active) with an operator's key."""
    from lineguard.line.auth import create_key
    from lineguard.server.app import create_app
    from .fake_inspector import FakeInspector
    st = spc_station()
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    with st.db.session() as s:
        key = create_key(s, "operator", name="test-operator")[1]
    with TestClient(create_app(station=st), raise_server_exceptions=False) as c:
        c.headers["X-API-Key"] = key
        c.station = st
        yield c


def _send(c, **fields):
    form = {"part_id": "P-0001", "line": "L1", "station": "S1", "product": "cell", **fields}
    return c.post("/api/v1/inspections", files={"image": ("p.png", png_bytes(40, seed=7), "image/png")}, data=form)


@pytest.mark.parametrize("blank", ["", " ", "   ", "\t"], ids=["empty", "space", "spaces", "tab"])
def test_a_part_sent_with_a_blank_id_is_told_its_id_is_blank(operator, blank):
    r = _send(operator, part_id=blank)
    assert r.status_code == 422, r.text
    message = r.json()["error"]["message"]
    assert message.startswith("part_id is blank"), message
    assert "part's id" in message, message             # what to give instead
    assert "Field required" not in message and "pattern" not in message, message
    assert operator.station.query() == []               # no part recorded under a made-up id


def test_a_blank_line_is_named_as_the_blank_field_and_no_rule_is_added(operator):
    r = _send(operator, line=" ")
    assert r.status_code == 422 and r.json()["error"]["message"].startswith("line is blank"), r.text
    # no new rule: a field left out says so as before, a part with its id passes, and the key
    # is checked before the form (a caller without one learns nothing of the fields)
    r = operator.post("/api/v1/inspections", files={"image": ("p.png", png_bytes(40, seed=8), "image/png")},
                      data={"line": "L1", "station": "S1", "product": "cell"})
    assert r.status_code == 422 and "part_id: Field required" in r.json()["error"]["message"], r.text
    r = operator.post("/api/v1/inspections", headers={"X-API-Key": ""},
                      files={"image": ("p.png", png_bytes(40, seed=9), "image/png")},
                      data={"part_id": " ", "line": "L1", "station": "S1", "product": "cell"})
    assert r.status_code == 401, r.text
    assert _send(operator).status_code == 201
