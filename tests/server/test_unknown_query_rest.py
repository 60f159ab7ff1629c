"""The rest of the GETs that take query parameters refuse one they do not take (422), naming
it and the ones they take, as the filtering GETs of test_unknown_query_params do: a misspelt
?lnie=L1 on the verification answered every line's, ?candiate=2 on compare said "no shadow
runs" (a 404 that sent people to start one), ?verison=1 on tuning showed the active version's
scores, ?retierd=true hid the retired test parts, ?verdcit=OK paged the NG results of a
re-scoring run, ?lien=L1 downloaded the model of every line, ?max_sid=400 on a part's photo
or overlay sent the whole stored file instead of one sized for the screen. What the pages, the demo and
the re-scoring tools send is still taken, and a caller without a key still hears 401 first.
On SQLite and PostgreSQL."""
from __future__ import annotations

import datetime as dt

import pytest

from lineguard.line.auth import create_key
from lineguard.line.orm import Inspection, RescoreRun

from .fake_inspector import FakeInspector
from .test_alarms import NG, OK, _parts, _station
from .test_spc_api import client
from .test_unknown_query_params import each_taken_and_its_typo_refused


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _plant(spc_station, **kw):
    """A station with what each endpoint needs to answer 200: two versions of the product's
    model (the active one and a candidate), parts, a test part and a re-scoring run."""
    st = _station(spc_station, alarm_ng_rate=0, **kw)
    st.add_model(FakeInspector(0.6).to_bytes(), "cell")                   # v2, not active: a candidate
    _parts(st, OK, NG, OK)
    with st.db.session() as s:
        eng = {"X-API-Key": create_key(s, "engineer", name="qe")[1]}
        run = RescoreRun(out="/archive/results", images="/archive/*.png", model_id="m-2")
        s.add(run)
        s.flush()
        run_id = run.id
        part_id = s.query(Inspection.id).filter(Inspection.image_key.is_not(None)).order_by(Inspection.id).first()[0]
    return st, eng, (run_id, part_id)


def _cases(ids: tuple[int, int]):
    run_id, part_id = ids
    # (path, what its callers send with every field filled, a misspelt one, a name it takes)
    return [
        ("/api/v1/verification", [{"line": "L1", "at": _now()}, {"line": ""}], {"lnie": "L1"}, "line"),
        ("/api/v1/products/cell/test-parts", [{"retired": "true"}], {"retierd": "true"}, "retired"),
        ("/api/v1/rescores", [{"limit": 50, "before_id": 99}, {"limit": 1}], {"befor_id": 5}, "before_id"),
        (f"/api/v1/rescores/{run_id}", [{"verdict": "error", "limit": 5, "offset": 0, "compare": "false"},
                                        {"limit": 5}], {"verdcit": "OK"}, "verdict"),
        ("/api/v1/models/cell/compare", [{"line": "", "candidate": 2}], {"candiate": 2}, "candidate"),
        ("/api/v1/models/cell/tuning", [{"line": "", "version": 1}, {"line": ""}], {"verison": 2}, "version"),
        ("/api/v1/models/cell/versions/1/file", [{"line": ""}], {"lien": "L1"}, "line"),
        (f"/api/v1/inspections/{part_id}/image", [{"max_side": 400}, {}], {"max_sid": 400}, "max_side"),
        (f"/api/v1/inspections/{part_id}/overlay", [{"max_side": 400}, {}], {"max_sid": 400}, "max_side"),
    ]


@pytest.mark.one_database
def test_a_parameter_these_endpoints_do_not_take_is_refused_naming_it_and_the_known_ones(spc_station):
    st, eng, ids = _plant(spc_station)
    with client(st) as c:
        r = c.post("/api/v1/products/cell/test-parts", json={"name": "golden-1", "expect": "OK"}, headers=eng)
        assert r.status_code == 200, r.text
        each_taken_and_its_typo_refused(c, _cases(ids), eng)
        # two at once: both named, in the order sent
        r = c.get("/api/v1/verification", params={"lnie": "L1", "att": _now()}, headers=eng)
        assert r.status_code == 422 and r.json()["error"]["message"].startswith(
            "unknown query parameters lnie, att; this endpoint takes line, at"), r.text


@pytest.mark.one_database
def test_a_caller_without_a_key_hears_401_before_the_misspelt_parameter(spc_station):
    st, eng, ids = _plant(spc_station)
    st.config.open_reads = False
    with client(st) as c:
        for path, _sent, typo, _known in _cases(ids):
            assert c.get(path, params=typo).status_code == 401, path
            r = c.get(path, params=typo, headers=eng)
            assert r.status_code == 422 and "unknown query parameter" in r.text, (path, r.text[:300])
