"""Rolling back a line's first model of its own, on SQLite and PostgreSQL.

A product's model of every line (line "") judges line L1 until L1 gets a version of its
own; the rollback of that first activation answered 409 "no earlier activation stands
(each earlier one was already rolled back)": nothing had been rolled back, and no endpoint
gave the line back to the model of every line (only downloading that file and uploading it
again for L1). It gives the line back now; where nothing judged the parts before, the
refusal says so."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from lineguard.line.orm import OutboxEvent
from lineguard.line.station import Part

from .fake_inspector import FakeInspector, png_bytes
from .test_change_log import _keys, _log
from .test_spc_api import client


def _upload(c, eng, model: FakeInspector, product: str = "cell", line: str = "", activate: bool = False):
    r = c.post("/api/v1/models", files={"file": ("m.lgm", model.to_bytes())},
               data={"product": product, "line": line, "activate": "true" if activate else "false"}, headers=eng)
    assert r.status_code == 201, r.text
    return r.json()


def _versions(c, eng, line: str, product: str = "cell") -> dict[int, dict]:
    items = c.get("/api/v1/models", params={"product": product, "line": line}, headers=eng).json()["items"]
    return {m["version"]: m for m in items}


class _Parts:
    """Parts of line L1, each a new photo: which model judged it."""

    def __init__(self, st):
        self.st, self.n = st, 0

    def judged_by(self, line: str = "L1") -> str:
        self.n += 1
        out = self.st.inspect(png_bytes(40, seed=500 + self.n), Part(f"p-{self.n}", line, "S1", "cell"))
        return out.record.model_version


def test_a_lines_first_own_model_rolls_back_to_the_model_of_every_line(spc_station):
    st = spc_station()
    keys = _keys(st)
    eng = {"X-API-Key": keys["engineer"]}
    parts = _Parts(st)
    with client(st) as c:
        _upload(c, eng, FakeInspector(0.9, "every-line"), activate=True)
        _upload(c, eng, FakeInspector(0.9, "own-1"), line="L1")
        assert parts.judged_by() == "every-line"
        r = c.post("/api/v1/models/cell/activate", json={"line": "L1", "version": 1}, headers=eng)
        assert r.status_code == 200, r.text
        assert parts.judged_by() == "own-1"
        # the page is told where a rollback goes: the model of every line, not L1's own v1
        own = _versions(c, eng, "L1")[1]
        assert own["active"] and own["rollback_to"] == 1 and own["rollback_to_line"] == ""

        r = c.post("/api/v1/models/cell/rollback", json={"line": "L1", "expected_active": 1}, headers=eng)
        assert r.status_code == 200, r.text
        back = r.json()
        assert (back["line"], back["version"], back["active"]) == ("", 1, True)     # what judges L1 now
        # at once: the next part of L1 is judged by the model of every line again
        assert parts.judged_by() == "every-line"
        assert parts.judged_by("L2") == "every-line"
        # L1's own version stays registered, not active; the model of every line is untouched
        assert [(v, m["active"]) for v, m in _versions(c, eng, "L1").items()] == [(1, False)]
        assert [(v, m["active"]) for v, m in _versions(c, eng, "").items()] == [(1, True)]

        (entry,) = _log(c, keys["engineer"], action="model.rolled_back")
        assert entry["subject"] == "cell/L1" and entry["actor"] == st.who["engineer"]
        assert entry["details"]["undone"] == [1] and entry["details"]["back_to"] == "cell/* v1"
        with st.db.session() as s:
            events = [e.payload for e in s.scalars(select(OutboxEvent).where(OutboxEvent.event == "model")
                                                   .order_by(OutboxEvent.id))]
        last = events[-1]
        assert last["action"] == "given_back" and last["rollback"] is True
        assert (last["product"], last["line"], last["version"], last["for_line"]) == ("cell", "", 1, "L1")

        # nothing of L1's own stands now: a second rollback says so, and who judges the line
        r = c.post("/api/v1/models/cell/rollback", json={"line": "L1"}, headers=eng)
        assert r.status_code == 409, r.text
        msg = r.json()["error"]["message"]
        assert "none of its own versions is active" in msg and "cell/* v1" in msg
        assert "already rolled back" not in msg
        assert parts.judged_by() == "every-line"

        # activated again, the walk starts there: the rollback gives the line back once more
        assert c.post("/api/v1/models/cell/activate", json={"line": "L1", "version": 1},
                      headers=eng).status_code == 200
        assert parts.judged_by() == "own-1"
        r = c.post("/api/v1/models/cell/rollback", json={"line": "L1"}, headers=eng)
        assert r.status_code == 200 and r.json()["line"] == "", r.text
        assert parts.judged_by() == "every-line"


@pytest.mark.one_database
def test_a_lines_walk_ends_at_the_model_of_every_line(spc_station):
    st = spc_station()
    keys = _keys(st)
    eng = {"X-API-Key": keys["engineer"]}
    parts = _Parts(st)
    with client(st) as c:
        _upload(c, eng, FakeInspector(0.9, "every-line"), activate=True)
        _upload(c, eng, FakeInspector(0.9, "own-1"), line="L1", activate=True)
        _upload(c, eng, FakeInspector(0.9, "own-2"), line="L1", activate=True)
        assert _versions(c, eng, "L1")[2]["rollback_to"] == 1
        assert _versions(c, eng, "L1")[2]["rollback_to_line"] == "L1"
        r = c.post("/api/v1/models/cell/rollback", json={"line": "L1"}, headers=eng)
        assert (r.json()["line"], r.json()["version"]) == ("L1", 1), r.text
        assert parts.judged_by() == "own-1"
        r = c.post("/api/v1/models/cell/rollback", json={"line": "L1"}, headers=eng)
        assert (r.json()["line"], r.json()["version"]) == ("", 1), r.text
        assert parts.judged_by() == "every-line"
        assert [e["details"]["undone"] for e in _log(c, keys["engineer"], action="model.rolled_back")] == [[1], [2]]


@pytest.mark.one_database
def test_with_nothing_before_the_first_model_the_refusal_says_so(spc_station):
    st = spc_station()
    keys = _keys(st)
    eng = {"X-API-Key": keys["engineer"]}
    with client(st) as c:
        # a product's first model of every line: nothing judged its parts before it
        _upload(c, eng, FakeInspector(0.5, "a"), activate=True)
        assert _versions(c, eng, "")[1]["rollback_to"] is None
        r = c.post("/api/v1/models/cell/rollback", json={}, headers=eng)
        assert r.status_code == 409, r.text
        msg = r.json()["error"]["message"]
        assert "v1, active now, was the first version activated for it" in msg
        assert "already rolled back" not in msg
        # a line's own first model where the product has no model of every line: the line
        # would be left with none, so it stays
        _upload(c, eng, FakeInspector(0.5, "w"), product="washer", line="L1", activate=True)
        assert _versions(c, eng, "L1", "washer")[1]["rollback_to"] is None
        r = c.post("/api/v1/models/washer/rollback", json={"line": "L1"}, headers=eng)
        assert r.status_code == 409, r.text
        msg = r.json()["error"]["message"]
        assert "first version activated for it" in msg and "no model of every line" in msg
        assert "already rolled back" not in msg
        assert _versions(c, eng, "L1", "washer")[1]["active"]
