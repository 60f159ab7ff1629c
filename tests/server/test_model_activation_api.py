"""Activate and roll back through the API on SQLite and PostgreSQL: the good-parts check
and force, the expected_active precondition, and refusals that say what to do."""
from __future__ import annotations

import pytest

from lineguard.line.station import Part

from .fake_inspector import FakeInspector, png_bytes
from .test_change_log import _keys, _log
from .test_spc_api import client


def _upload(c, eng, model: FakeInspector, product: str = "cell", activate: bool = False):
    r = c.post("/api/v1/models", files={"file": ("m.lgm", model.to_bytes())},
               data={"product": product, "activate": "true" if activate else "false"}, headers=eng)
    assert r.status_code == 201, r.text
    return r.json()


def _active(c, eng, product: str = "cell") -> list[int]:
    return [m["version"] for m in c.get("/api/v1/models", params={"product": product}, headers=eng).json()["items"]
            if m["active"]]


def _line_with_good_parts(st, c, eng, n: int, seed: int = 0) -> None:
    """The cell's v1 active and ``n`` good parts judged by it, their images kept."""
    _upload(c, eng, FakeInspector(0.5, "cell-1"), activate=True)
    for i in range(n):
        st.inspect(png_bytes(40, seed=seed + i), Part(f"good-{i}", "L1", "S1", "cell"))


@pytest.mark.one_database
def test_a_model_of_another_product_is_refused_until_forced(spc_station):
    st = spc_station()
    keys = _keys(st)
    eng = {"X-API-Key": keys["engineer"]}
    with client(st) as c:
        _line_with_good_parts(st, c, eng, 12)
        _upload(c, eng, FakeInspector(0.1, "washer-3"))        # a washer model uploaded as cell
        r = c.post("/api/v1/models/cell/activate", json={"version": 2}, headers=eng)
        assert r.status_code == 409, r.text
        err = r.json()["error"]
        assert err["code"] == "rejects_good_parts" and err["parts_tried"] == 12 and err["judged_ng"] == 12
        assert "v2 judges 12 of the 12 latest good parts of 'cell' NG" in err["message"]
        assert "v1, active now, judged them 12 OK" in err["message"] and "shadow" in err["message"]
        assert _active(c, eng) == [1]
        r = c.post("/api/v1/models/cell/activate", json={"version": 2, "force": True}, headers=eng)
        assert r.status_code == 200 and r.json()["active"], r.text
        entry = _log(c, keys["engineer"], action="model.activated")[0]
        assert entry["subject"] == "cell/* v2" and entry["actor"] == st.who["engineer"]
        assert entry["details"]["forced"] == "judged 12 of the 12 latest good parts NG"


@pytest.mark.one_database
def test_an_upload_asking_to_activate_is_tried_on_the_good_parts_too(spc_station):
    # POST /models with activate=true skipped the check: the same road onto the line
    st = spc_station()
    keys = _keys(st)
    eng = {"X-API-Key": keys["engineer"]}
    with client(st) as c:
        _line_with_good_parts(st, c, eng, 8, seed=100)
        r = c.post("/api/v1/models", files={"file": ("m.lgm", FakeInspector(0.1, "washer-3").to_bytes())},
                   data={"product": "cell", "activate": "true"}, headers=eng)
        assert r.status_code == 409, r.text
        err = r.json()["error"]
        assert err["code"] == "rejects_good_parts" and err["message"].startswith("uploaded as version 2, not activated")
        assert _active(c, eng) == [1]
        assert [m["version"] for m in c.get("/api/v1/models", params={"product": "cell"}, headers=eng)
                .json()["items"]] == [1, 2]                      # kept, to be tried in shadow or forced
        _upload(c, eng, FakeInspector(0.6, "cell-3"), activate=True)     # a good one goes on
        assert _active(c, eng) == [3]


def test_activate_and_rollback_against_the_version_seen_active(spc_station):
    st = spc_station()
    keys = _keys(st)
    eng = {"X-API-Key": keys["engineer"]}
    with client(st) as c:
        for thr in (0.5, 0.6, 0.7):
            _upload(c, eng, FakeInspector(thr, f"v-{thr}"))
        assert c.post("/api/v1/models/cell/activate", json={"version": 1, "expected_active": 0},
                      headers=eng).status_code == 200
        # engineer A activates v3 seen against v1; B, whose page still shows v1, wants v2
        r = c.post("/api/v1/models/cell/activate", json={"version": 3, "expected_active": 1}, headers=eng)
        assert r.status_code == 200 and r.json()["rollback_to"] == 1      # as the versions' list says it
        r = c.post("/api/v1/models/cell/activate", json={"version": 2, "expected_active": 1}, headers=eng)
        assert r.status_code == 409 and r.json()["error"]["code"] == "active_changed"
        assert "v3 is active now" in r.json()["error"]["message"] and r.json()["error"]["active_version"] == 3
        assert _active(c, eng) == [3]
        # a rollback sent against v1 (a stale page) undoes nothing
        r = c.post("/api/v1/models/cell/rollback", json={"expected_active": 1}, headers=eng)
        assert r.status_code == 409 and r.json()["error"]["code"] == "active_changed"
        r = c.post("/api/v1/models/cell/rollback", json={"expected_active": 3}, headers=eng)
        assert r.status_code == 200 and r.json()["version"] == 1
        rolled = _log(c, keys["engineer"], action="model.rolled_back")
        assert len(rolled) == 1 and rolled[0]["details"]["undone"] == [3]
        assert c.post("/api/v1/models/cell/activate", json={"version": 2, "expected_active": -1},
                      headers=eng).status_code == 422


@pytest.mark.one_database
def test_refusals_of_activate_and_rollback_say_what_to_do(spc_station):
    st = spc_station()
    keys = _keys(st)
    eng = {"X-API-Key": keys["engineer"]}
    with client(st) as c:
        _upload(c, eng, FakeInspector(0.5, "a"), activate=True)
        v2 = _upload(c, eng, FakeInspector(0.6, "b"))
        mv = st.models.get("cell", "", 2)
        st.models.store.path(mv.file_key).unlink()
        st.models.forget(v2["model_id"])
        r = c.post("/api/v1/models/cell/activate", json={"version": 2}, headers=eng)
        assert r.status_code == 409 and r.json()["error"]["code"] == "model_file_missing", r.text
        assert "missing from the station's models folder" in r.json()["error"]["message"]
        assert "/" + str(st.config.data_dir).strip("/") not in r.text          # no station paths
        r = c.post("/api/v1/models/washer/rollback", json={}, headers=eng)
        assert r.status_code == 404 and "unknown product 'washer'" in r.json()["error"]["message"]


@pytest.mark.one_database
def test_a_shadow_ended_by_its_activation_is_not_running_when_stopped_again(spc_station):
    """QA walk: stopping a shadow no longer running answered "no shadow runs for product
    'cell'", read as "it never had any", though its past runs are kept for the comparison."""
    st = spc_station()
    eng = {"X-API-Key": _keys(st)["engineer"]}
    with client(st) as c:
        _line_with_good_parts(st, c, eng, 3)
        _upload(c, eng, FakeInspector(0.5, "cell-2"))
        assert c.post("/api/v1/models/cell/shadow", json={"version": 2}, headers=eng).status_code == 200
        assert c.post("/api/v1/models/cell/activate", json={"version": 2, "force": True},
                      headers=eng).status_code == 200                    # activating it ends the shadow
        r = c.delete("/api/v1/models/cell/shadow", headers=eng)
        assert r.status_code == 404, r.text
        said = r.json()["error"]["message"]
        assert said.startswith("no shadow is running for product 'cell': nothing to stop"), said
        assert "POST /api/v1/models/cell/shadow" in said
