"""Reference photos of good parts (line.reference): the photos a product's first model was
trained on, given to the station, are learnt by every retrain beside the stored parts
reviewed good; a retrain learnt from the station's parts alone before (on KolektorSDD: 68
parts, its threshold set by a false alarm, 49 of 52 defects passed)."""
from __future__ import annotations

import io
import json

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from lineguard.line.station import Part

from line.test_model_lifecycle import _wait_job

from .conftest import downgrade
from .fake_inspector import FakeInspector, png_bytes


class Recorder:
    """FakeInspector.fit that keeps what it was given (the photos, and which set the threshold)."""

    def __init__(self):
        self.images, self.calibrate_on = [], None

    def __call__(self, images, progress=None, calibrate_on=None, **params):
        self.images, self.calibrate_on = [str(p) for p in images], calibrate_on
        return FakeInspector.fit(images, progress=progress)


@pytest.fixture
def make_station(tmp_path, db_backend):
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    db_url, schema = db_backend
    made = []

    def make(trainer=None, **kw):
        st = Station(StationConfig(data_dir=tmp_path / f"data{len(made)}", db_url=db_url, db_schema=schema, **kw),
                     loader=FakeInspector.load, trainer=trainer or Recorder())
        st.add_model(json.dumps({"fake_lineguard_model": True, "threshold": 0.5, "version": "v1"}).encode(),
                     "cell", activate=True)
        made.append(st)
        return st

    yield make
    for st in made:
        st.close()


def _client(st, role: str = "engineer") -> TestClient:
    from lineguard.line.auth import create_key
    from lineguard.server.app import create_app
    with st.db.session() as s:
        key = create_key(s, role, name=f"t-{role}")[1]
    return TestClient(create_app(station=st), headers={"X-API-Key": key})


def _upload(c, data: bytes, name: str = "good.png", product: str = "cell", line: str = ""):
    return c.post("/api/v1/reference-photos", files={"photo": (name, data, "image/png")},
                  data={"product": product, "line": line})


def _parts(st, n: int, seed0: int = 100, value: int = 40):
    return [st.inspect(png_bytes(value, seed=s), Part(f"p-{s}", "L1", "S1", "cell")).record
            for s in range(seed0, seed0 + n)]


def test_a_retrain_learns_the_reference_photos_beside_the_stored_good_parts(make_station):
    st = make_station(audit_sample_rate=1.0)
    _parts(st, 12)
    with _client(st) as c:
        for i in range(25):
            r = _upload(c, png_bytes(45, seed=1000 + i), f"good-{i}.png")
            assert r.status_code == 201, r.text
        assert r.json()["count"] == 25
        r = c.post("/api/v1/models/cell/train", json={"line": ""})
        assert r.status_code == 202, r.text
        assert r.json()["params"]["reference"] is True
        job = _wait_job(st, r.json()["id"])
    assert job.status == "done", job.message
    trainer = st.jobs.trainer
    assert len(trainer.images) == 37
    assert sum("/reference/" in p for p in trainer.images) == 25
    # the threshold is set on the audit sample and the reference photos alike (a random draw)
    assert trainer.calibrate_on is None or all(trainer.calibrate_on)
    assert job.result["sources"] == {"reviewed_good": 0, "audit_sample": 12, "reference_photos": 25}
    assert "25 reference photos" in job.message and "12 audit sample" in job.message
    assert job.result["images"] == 37


@pytest.mark.one_database
def test_a_retrain_asked_not_to_learns_the_stored_parts_alone(make_station):
    st = make_station(audit_sample_rate=1.0)
    _parts(st, 12)
    with _client(st) as c:
        for i in range(5):
            assert _upload(c, png_bytes(45, seed=1000 + i)).status_code == 201
        r = c.post("/api/v1/models/cell/train", json={"reference": False})
        job = _wait_job(st, r.json()["id"])
    assert job.status == "done", job.message
    assert len(st.jobs.trainer.images) == 12 and not any("/reference/" in p for p in st.jobs.trainer.images)
    assert job.result["sources"]["reference_photos"] == 0


@pytest.mark.one_database
def test_reference_photos_count_toward_the_parts_a_retrain_needs(make_station):
    st = make_station(audit_sample_rate=1.0)
    _parts(st, 4)
    with _client(st) as c:
        r = c.post("/api/v1/models/cell/train", json={})
        assert r.status_code == 400 and "lineguard reference add" in r.json()["error"]["message"]
        for i in range(6):
            assert _upload(c, png_bytes(45, seed=2000 + i)).status_code == 201
        r = c.post("/api/v1/models/cell/train", json={})
        assert r.status_code == 202, r.text
        assert _wait_job(st, r.json()["id"]).status == "done"
        # not asked for, they do not count: the error says they are there
        r = c.post("/api/v1/models/cell/train", json={"reference": False})
        assert r.status_code == 400 and "reference photos not asked for, 6 kept" in r.json()["error"]["message"]


@pytest.mark.one_database
def test_a_reference_photo_reviewed_as_a_defect_is_never_learnt(make_station):
    st = make_station(audit_sample_rate=1.0)
    _parts(st, 12)
    bad = png_bytes(200, seed=7)
    rec = st.inspect(bad, Part("bad-1", "L1", "S1", "cell")).record
    with _client(st) as c:
        assert c.post(f"/api/v1/inspections/{rec.id}/review", json={"label": "defect"}).status_code in (200, 201)
        assert _upload(c, bad, "bad.png").status_code == 201
        assert _upload(c, png_bytes(45, seed=3000)).status_code == 201
        job = _wait_job(st, c.post("/api/v1/models/cell/train", json={}).json()["id"])
    assert job.status == "done", job.message
    assert job.result["sources"]["reference_photos"] == 1


@pytest.mark.one_database
def test_reference_photos_pass_a_parts_checks_and_need_an_engineer(make_station):
    st = make_station(max_upload_bytes=200_000)
    good = png_bytes(45, seed=1)
    with _client(st, "operator") as c:
        assert _upload(c, good).status_code == 403
    with _client(st) as c:
        assert _upload(c, b"").status_code == 400
        r = _upload(c, b"not a photo at all")
        assert r.status_code == 415 and "PNG, JPEG" in r.json()["error"]["message"]
        r = _upload(c, good[:60], "cut.png")
        assert r.status_code == 422 and "cut.png" in r.json()["error"]["message"]
        big = io.BytesIO()
        Image.frombytes("RGB", (400, 400), bytes(range(256)) * 1875).save(big, format="BMP")
        r = _upload(c, big.getvalue(), "big.bmp")
        assert r.status_code == 413, r.text
        assert not list((st.config.data_dir / "reference").glob("??/??/*"))     # nothing refused was kept
        first = _upload(c, good, "a.png")
        assert first.status_code == 201
        again = _upload(c, good, "a-copy.png")
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
        listed = c.get("/api/v1/reference-photos", params={"product": "cell"}).json()
        assert listed["count"] == 1 and listed["for_training"] == 1
        assert listed["items"][0]["width"] == 64 and listed["items"][0]["filename"] == "a.png"
        img = c.get(f"/api/v1/reference-photos/{first.json()['id']}/image")
        assert img.status_code == 200 and img.content == good
        path = st.config.data_dir / "reference" / first.json()["image_key"]
        assert path.is_file()
        assert c.delete(f"/api/v1/reference-photos/{first.json()['id']}").status_code == 204
        assert c.get("/api/v1/reference-photos", params={"product": "cell"}).json()["count"] == 0
        assert c.delete(f"/api/v1/reference-photos/{first.json()['id']}").status_code == 404
        log = c.get("/api/v1/change-log").json()
    actions = [e["action"] for e in log["items"]]
    assert "reference.added" in actions and "reference.removed" in actions


def test_a_reference_photo_for_a_slip_of_a_known_product_is_refused_unless_said_new(make_station):
    st = make_station()                           # a model of cell
    good = png_bytes(45, seed=1)
    with _client(st) as c:
        r = _upload(c, good, product="Cell")
        assert r.status_code == 409, r.text
        err = r.json()["error"]
        assert "did you mean 'cell'?" in err["message"] and "new_product=true" in err["message"], err
        assert c.get("/api/v1/reference-photos").json()["count"] == 0          # nothing kept
        r = c.post("/api/v1/reference-photos", files={"photo": ("good.png", good, "image/png")},
                   data={"product": "Cell", "new_product": "true"})
        assert r.status_code == 201 and r.json()["product"] == "Cell", r.text
        assert "new product 'Cell'" in r.json()["warning"]
        r = _upload(c, good, product="cell")
        assert r.status_code == 201 and r.json()["warning"] is None


def test_a_lines_retrain_learns_the_products_photos_and_its_own_not_another_lines(make_station):
    st = make_station(audit_sample_rate=1.0)
    for s in range(100, 112):
        st.inspect(png_bytes(40, seed=s), Part(f"p-{s}", "L2", "S1", "cell"))
    with _client(st) as c:
        assert _upload(c, png_bytes(45, seed=1)).status_code == 201
        assert _upload(c, png_bytes(45, seed=2), line="L2").status_code == 201
        assert _upload(c, png_bytes(45, seed=3), line="L3").status_code == 201
        assert c.get("/api/v1/reference-photos", params={"product": "cell", "line": "L2"}).json()["for_training"] == 2
        job = _wait_job(st, c.post("/api/v1/models/cell/train", json={"line": "L2"}).json()["id"])
    assert job.status == "done", job.message
    assert job.result["sources"]["reference_photos"] == 2


@pytest.mark.one_database
def test_the_reference_photos_set_the_threshold_the_parts_reviewed_good_after_false_alarms_do_not(make_station):
    st = make_station(audit_sample_rate=0.0)
    recs = _parts(st, 5, value=90)       # the old version's false alarms, reviewed good
    with _client(st) as c:
        for rec in recs:
            assert c.post(f"/api/v1/inspections/{rec.id}/review", json={"label": "good"}).status_code in (200, 201)
        for i in range(25):
            assert _upload(c, png_bytes(45, seed=4000 + i)).status_code == 201
        job = _wait_job(st, c.post("/api/v1/models/cell/train", json={}).json()["id"])
    assert job.status == "done", job.message
    assert st.jobs.trainer.calibrate_on == [False] * 5 + [True] * 25
    assert "threshold was set on the 25 audit-sample parts and reference photos" in job.message


def test_migration_0032_adds_the_reference_photos_table_and_takes_it_back(make_station):
    from sqlalchemy import inspect as sa_inspect, text
    from lineguard.line.db import schema_revisions
    st = make_station()

    def tables():
        return set(sa_inspect(st.db.engine).get_table_names(schema=st.db.schema))
    assert "reference_photos" in tables()
    downgrade(st.db, "0031")
    assert "reference_photos" not in tables()
    st.db.upgrade()
    assert "reference_photos" in tables()
    with st.db.session() as s:
        assert s.execute(text("SELECT version_num FROM alembic_version")).scalar() == schema_revisions()[0]
