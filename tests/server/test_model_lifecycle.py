"""The model lifecycle's trust rules: what a retrain learns and keeps, what a restart
keeps active, which rates a version lists, where a rollback may go, and what the
pre-activation trial tries (in-process stations with the fake models)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from line.test_model_lifecycle import _wait_job

from .fake_inspector import FakeInspector, png_bytes


def _part(pid: str, line: str = "L1"):
    from lineguard.line.station import Part
    return Part(pid, line, "S1", "cell")


@pytest.fixture
def make_station(db_backend, tmp_path):
    """In-process stations (fake models) on SQLite and on PostgreSQL."""
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    db_url, schema = db_backend
    made = []

    def make(loader=FakeInspector.load, trainer=FakeInspector.fit, **kw):
        st = Station(StationConfig(data_dir=tmp_path / f"data{len(made)}", db_url=db_url, db_schema=schema, **kw),
                     loader=loader, trainer=trainer)
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


# -- 1. an unreviewed NG or REVIEW part of the audit sample is never learnt ------------------
def test_a_retrain_never_learns_audit_sample_parts_judged_ng_or_review_that_nobody_reviewed(make_station):
    st = make_station(audit_sample_rate=1.0)
    # a review band: 0.5 .. 0.7 is REVIEW
    st.add_model(FakeInspector(0.7, "band", review_threshold=0.5).to_bytes(), "cell", activate=True)
    oks = [st.inspect(png_bytes(40 + i, seed=10 + i), _part(f"ok-{i}")).record for i in range(10)]
    ngs = [st.inspect(png_bytes(230, seed=30 + i), _part(f"ng-{i}")).record for i in range(3)]
    rev = [st.inspect(png_bytes(150, seed=40 + i), _part(f"rev-{i}")).record for i in range(2)]
    false_alarm = st.inspect(png_bytes(150, seed=50), _part("fa")).record   # REVIEW, reviewed good below
    assert {r.verdict for r in oks} == {"OK"} and {r.verdict for r in ngs} == {"NG"}
    assert {r.verdict for r in rev} == {"REVIEW"} and all(r.audit_sample for r in oks + ngs + rev)
    st.review(false_alarm.id, "good", "ann", None)    # reviewed good, whatever the model said: learnt
    for source in ("sample", "both"):
        keys = dict(st.jobs.good_part_keys("cell", "", 100, source))
        assert not {r.image_key for r in ngs + rev} & set(keys), source
        assert {r.image_key for r in oks} <= set(keys) and false_alarm.image_key in keys
        assert len(keys) == 11
    job = _wait_job(st, st.jobs.submit_training("cell", "", min_images=5).id)
    assert job.status == "done", job.message
    assert job.result["images"] == 11
    mv = st.models.get("cell", "", job.result["version"])
    # learnt, the defects set the threshold at their own score and the new version passed them all
    assert mv.threshold < min(r.score for r in ngs)
    assert job.result["look_at"] == [] or all(a["image_key"] not in {r.image_key for r in ngs + rev}
                                              for a in job.result["look_at"])


# -- 2. a photo reviewed as a defect is left out whichever part it comes with ---------------
def test_a_photo_reviewed_as_a_defect_is_not_learnt_when_it_comes_again_as_another_part(make_station):
    st = make_station(audit_sample_rate=1.0)
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    photo = png_bytes(60, seed=7)
    first = st.inspect(photo, _part("esc-1")).record
    assert first.verdict == "OK"
    st.review(first.id, "defect", "ann", None, defect_type="crack")     # an escape
    again = st.inspect(photo, _part("esc-2")).record                    # the same photo, another part
    assert again.id != first.id and again.image_key == first.image_key and again.review_label is None
    other = st.inspect(png_bytes(61, seed=8), _part("good-1")).record
    for source in ("sample", "both"):
        keys = dict(st.jobs.good_part_keys("cell", "", 100, source))
        assert first.image_key not in keys and other.image_key in keys, source


# -- 3. a restart with the usual --model keeps what is active --------------------------------
@pytest.mark.one_database
def test_the_start_up_model_file_already_registered_does_not_undo_a_later_activation(make_station, tmp_path):
    from lineguard.line.orm import ModelActivation
    model = tmp_path / "cell.lgm"
    model.write_bytes(FakeInspector(0.5, "v-one").to_bytes())
    st = make_station()
    from lineguard.line.audit import cli_actor
    assert st.ensure_model(model, "cell").active                     # deployed through serve
    assert cli_actor().startswith("cli (")          # walk: "serve --model" named no account
    st.add_model(FakeInspector(0.4, "v-two").to_bytes(), "cell", activate=True, by="eng")  # a retrain, a rollback...
    mv = st.ensure_model(model, "cell")                                # the next start, the same command line
    assert (mv.version, mv.active) == (1, False)
    assert [(v.version, v.active) for v in st.models.list("cell")] == [(1, False), (2, True)]
    with st.db.session() as s:
        assert s.scalar(select(func.count()).select_from(ModelActivation)
                        .where(ModelActivation.activated_by == f"{cli_actor()} serve --model")) == 1


@pytest.mark.one_database
def test_serve_says_which_version_stays_active(make_station, tmp_path):
    from lineguard.server.app import open_station
    model = tmp_path / "cell.lgm"
    model.write_bytes(FakeInspector(0.5, "v-one").to_bytes())
    st = make_station()
    cfg = st.config
    st.close()
    said: list[str] = []

    def start(path=model):
        return open_station(cfg, str(path), "cell", "", say=said.append, loader=FakeInspector.load)

    st = start()
    st.add_model(FakeInspector(0.4, "v-two").to_bytes(), "cell", activate=True, by="eng")
    st.close()
    assert said == []
    st = start()
    st.close()
    assert len(said) == 1 and "v2" in said[0] and "stays active" in said[0] and "cell v1" in said[0]
    assert "/api/v1/models/cell/activate" in said[0]
    # a new file through serve is still registered and activated
    newer = tmp_path / "cell-3.lgm"
    newer.write_bytes(FakeInspector(0.45, "v-three").to_bytes())
    st = start(newer)
    try:
        assert [(mv.version, mv.active) for mv in st.models.list("cell")] == [(1, False), (2, False), (3, True)]
    finally:
        st.close()


@pytest.mark.one_database
def test_a_registered_file_is_activated_when_no_version_of_its_line_is_active(make_station, tmp_path):
    st = make_station()
    model = tmp_path / "l1.lgm"
    model.write_bytes(FakeInspector(0.5, "line").to_bytes())
    st.add_model(model.read_bytes(), "cell", "L1")          # uploaded, never activated
    mv = st.ensure_model(model, "cell", "L1")
    assert (mv.version, mv.active) == (1, True)


def test_a_restart_keeps_a_line_given_back_to_the_model_of_every_line(make_station, tmp_path):
    # serve --model own.lgm --line L1 deployed L1's own model; a rollback gave L1 back to the
    # product's model of every line; the next start with the same command line activated
    # own.lgm again (no version of L1 was active), undoing the rollback with no word
    from lineguard.server.app import open_station
    own = tmp_path / "own.lgm"
    own.write_bytes(FakeInspector(0.5, "own").to_bytes())
    st = make_station()
    cfg = st.config
    st.add_model(FakeInspector(0.4, "every").to_bytes(), "cell", activate=True, by="eng")
    assert st.ensure_model(own, "cell", "L1").active
    st.models.rollback("cell", "L1", by="eng")
    st.close()
    said: list[str] = []
    st = open_station(cfg, str(own), "cell", "L1", say=said.append, loader=FakeInspector.load)
    try:
        assert [(mv.version, mv.active) for mv in st.models.list("cell", "L1")] == [(1, False)]
        assert st.models.active_for("cell", "L1").line == ""
        assert len(said) == 1 and "gave line L1 back to the model of every line, cell v1" in said[0], said
    finally:
        st.close()


@pytest.mark.one_database
def test_metrics_drop_a_lines_model_when_it_is_given_back_to_the_model_of_every_line(make_station):
    st = make_station()
    st.add_model(FakeInspector(0.4, "every").to_bytes(), "cell", activate=True, by="eng")
    st.add_model(FakeInspector(0.5, "own").to_bytes(), "cell", "L1", activate=True, by="eng")

    def series() -> list[tuple[str, str]]:
        return sorted((s.labels["line"], s.value) for m in st.metrics.registry.collect()
                      if m.name == "lineguard_active_model_version" for s in m.samples)

    assert series() == [("", 1.0), ("L1", 1.0)]
    st.rollback_model("cell", "L1", by="eng")
    # L1 has no model of its own now (it stood on, naming L1's model, until a restart)
    assert series() == [("", 1.0)]


def test_metrics_show_the_versions_another_process_activated_or_gave_back(make_station):
    from lineguard.line.station import Station
    from lineguard.server.app import create_app
    st = make_station()
    st.add_model(FakeInspector(0.4, "every").to_bytes(), "cell", activate=True, by="eng")
    other = Station(st.config, loader=FakeInspector.load)      # a second process on the same database
    try:
        other.add_model(FakeInspector(0.5, "own").to_bytes(), "cell", "L1", activate=True, by="eng")
        with TestClient(create_app(station=st)) as c:
            def series() -> list[str]:
                return sorted(line.split("line=")[1].split(",")[0] for line in c.get("/metrics").text.splitlines()
                              if line.startswith("lineguard_active_model_version{"))
            # the gauge was set by each process's own changes only: this one never showed L1's model
            assert series() == ['""', '"L1"']
            other.rollback_model("cell", "L1", by="eng")
            assert series() == ['""']
    finally:
        other.close()


# -- 4. a retrain keeps the settings of the version it replaces -------------------------------
def _model_json(threshold: float = 0.5, **extra) -> bytes:
    return json.dumps({"fake_lineguard_model": True, "threshold": threshold, "version": "q", **extra}).encode()


def _load_with_backbone(path):
    """The fake model, with the detector's backbone and extra sizes its file names."""
    insp = FakeInspector.load(path)
    d = json.loads(Path(path).read_bytes())
    if d.get("backbone"):
        insp.detector = SimpleNamespace(backbone=d["backbone"], extra_scales=tuple(d.get("extra_scales") or ()),
                                        name="patchcore")
    return insp


@pytest.mark.one_database
def test_a_retrain_inherits_review_band_false_reject_target_and_profile(make_station):
    st = make_station(audit_sample_rate=1.0, loader=_load_with_backbone)
    cal = {"threshold": 0.5, "review_threshold": 0.4, "review_rate": 0.05, "target_false_reject_rate": 0.02}
    st.add_model(_model_json(0.5, review_threshold=0.4, calibration=cal, backbone="mobilenet_v2",
                             extra_scales=[0.7]), "cell", activate=True)
    for i in range(12):
        st.inspect(png_bytes(30 + i, seed=100 + i), _part(f"p-{i}"))
    with _client(st) as c:
        # what the Models page's Retrain sends
        r = c.post("/api/v1/models/cell/train", json={"line": "", "source": "both"})
        assert r.status_code == 202, r.text
        fit = r.json()["params"]["fit"]
        assert fit["review_rate"] == 0.05 and fit["false_reject_rate"] == 0.02
        assert fit["backbone"] == "mobilenet_v2" and list(fit["extra_scales"]) == [0.7]
        _wait_job(st, r.json()["id"])
        # an explicit value still wins
        r = c.post("/api/v1/models/cell/train", json={"review_rate": 0, "false_reject_rate": 0.03,
                                                      "profile": "fast"})
        assert r.status_code == 202, r.text
        fit = r.json()["params"]["fit"]
        assert fit["review_rate"] == 0 and fit["false_reject_rate"] == 0.03
        assert fit["backbone"] == "efficientnet_lite0" and "extra_scales" not in fit
        _wait_job(st, r.json()["id"])


def test_a_products_first_model_trains_with_the_defaults():
    from lineguard.server.routers.models import inherited_training, profile_of
    assert inherited_training(None) == {"review_rate": 0.0, "false_reject_rate": 0.01, "profile": "fast"}
    assert profile_of(SimpleNamespace(detector=SimpleNamespace(backbone="efficientnet_lite0"))) == "fast"
    assert profile_of(SimpleNamespace(detector=SimpleNamespace(params={"backbone": "mobilenet_v2",
                                                                       "extra_scales": [0.7]}))) == "quality"
    assert inherited_training(SimpleNamespace(calibration={"review_rate": 0.1}))["review_rate"] == 0.1


# -- 5. a never-activated line version lists no rates of the product-wide one ----------------
def test_a_line_version_of_the_same_file_lists_only_the_parts_it_judged(make_station):
    from lineguard.line.compare import version_rates
    st = make_station()
    data = FakeInspector(0.5, "same").to_bytes()
    wide = st.add_model(data, "cell", activate=True)
    own = st.add_model(data, "cell", "L1")           # cell/L1 v1: same model, same number
    assert (own.model_id, own.version) == (wide.model_id, wide.version)
    judged = [st.inspect(png_bytes(v, seed=200 + i), _part(f"w-{i}")).record for i, v in enumerate((40, 230))]
    st.review(judged[0].id, "good", "ann", None)
    st.review(judged[1].id, "defect", "ann", None, defect_type="crack")
    with st.db.session() as s:
        rates = version_rates(s, [wide, own])
    assert rates[own.id] is None
    assert (rates[wide.id]["n_good"], rates[wide.id]["n_defect"]) == (1, 1)
    # activated for L1, it judges L1's parts from then on: those are its own
    st.activate_model("cell", "L1", 1, force=True)
    later = st.inspect(png_bytes(45, seed=300), _part("w-later")).record
    st.review(later.id, "good", "ann", None)
    with st.db.session() as s:
        rates = version_rates(s, [wide, own])
    assert (rates[own.id]["n_good"], rates[own.id]["n_defect"]) == (1, 0)
    assert (rates[wide.id]["n_good"], rates[wide.id]["n_defect"]) == (1, 1)


# -- 6. no rollback offered to a version whose file is gone; a copy can be downloaded ---------
@pytest.mark.one_database
def test_rollback_passes_versions_whose_file_is_missing(make_station):
    st = make_station()
    v1 = st.add_model(FakeInspector(0.5, "up").to_bytes(), "cell", activate=True)
    v2 = st.add_model(FakeInspector(0.45, "job").to_bytes(), "cell", activate=True,
                      trained_from="job 7: 20 parts reviewed as good")
    st.add_model(FakeInspector(0.55, "up3").to_bytes(), "cell", activate=True)
    st.models.store.path(v2.file_key).unlink()          # a restore without the station-made version's file
    with _client(st) as eng:
        def rollback_to():
            return [m.get("rollback_to") for m in eng.get("/api/v1/models", params={"product": "cell"}).json()[
                "items"] if m["active"]]
        assert rollback_to() == [1]
        r = eng.post("/api/v1/models/cell/rollback", json={"line": ""})
        assert r.status_code == 200 and r.json()["version"] == 1
        # with only a version whose file is missing before it, none is offered, and the refusal says why
        st.models.store.path(v1.file_key).unlink()
        assert eng.post("/api/v1/models", files={"file": ("v4.lgm", FakeInspector(0.6, "v4").to_bytes())},
                        data={"product": "cell", "activate": "true"}).status_code == 201
        assert rollback_to() == [None]
        r = eng.post("/api/v1/models/cell/rollback", json={"line": ""})
        assert r.status_code == 409 and r.json()["error"]["code"] == "model_file_missing"
        assert "upload the same model file again" in r.json()["error"]["message"]


@pytest.mark.one_database
def test_a_versions_file_can_be_downloaded_by_an_engineer(make_station):
    st = make_station()
    st.add_model(FakeInspector(0.5, "up").to_bytes(), "cell", activate=True)
    v2 = st.add_model(FakeInspector(0.45, "job").to_bytes(), "cell", "L1",
                      trained_from="job 7: 20 parts reviewed as good")
    with _client(st) as eng, _client(st, "operator") as op:
        r = eng.get("/api/v1/models/cell/versions/1/file", params={"line": "L1"})
        assert r.status_code == 200 and r.content == FakeInspector(0.45, "job").to_bytes()
        assert "cell-L1-v1" in r.headers["content-disposition"]
        assert eng.get("/api/v1/models/cell/versions/1/file").content == FakeInspector(0.5, "up").to_bytes()
        assert op.get("/api/v1/models/cell/versions/1/file").status_code == 403
        assert eng.get("/api/v1/models/cell/versions/9/file").status_code == 404
        st.models.store.path(v2.file_key).unlink()
        r = eng.get("/api/v1/models/cell/versions/1/file", params={"line": "L1"})
        assert r.status_code == 409 and r.json()["error"]["code"] == "model_file_missing"
        assert "trained by a job" in r.json()["error"]["message"]


def test_the_missing_file_message_of_a_station_made_version_says_what_can_be_done():
    from lineguard.line.registry import file_missing_message
    tuned = SimpleNamespace(product="cell", line="L1", version=4, trained_from=None,
                            note="thresholds of v3 tuned: 0.5 -> 0.6")
    msg = file_missing_message(tuned)
    assert "tuned" in msg and "/api/v1/models/cell/versions/4/file?line=L1" in msg
    assert "upload the same model file again" not in msg
    uploaded = SimpleNamespace(product="cell", line="", version=1, trained_from=None, note="from cell.lgm")
    assert "upload the same model file again" in file_missing_message(uploaded)


# -- 7. the trial before activation leaves out the parts the version learned from ------------
class _Pre:
    sensor_bits = None
    decode_scale = None

    @staticmethod
    def load(path):
        from lineguard.vision.imageio import load_image
        return load_image(path), None


def _print(arr) -> str:
    from lineguard.vision.inspector import photo_prints
    return photo_prints(np.stack([np.asarray(arr)]))[0]


class _Memorizer(FakeInspector):
    """A retrained model that fits its training photos and nothing else: OK on a photo it
    learned, NG on any other (what an overfit or wrong model does to the line's parts)."""

    learnt: list = []

    def to_bytes(self) -> bytes:
        d = json.loads(super().to_bytes())
        d["learnt"] = list(self.learnt)
        return json.dumps(d).encode()

    @classmethod
    def load(cls, path):
        base = FakeInspector.load(path)
        insp = cls(base.threshold, base.model_version)
        insp.model_id = base.model_id
        insp.learnt = json.loads(Path(path).read_bytes()).get("learnt") or []
        insp.preprocess = _Pre()
        insp.info = {"learnt_photos": list(insp.learnt)}
        return insp

    @classmethod
    def fit(cls, images, progress=None, **params):
        insp = cls(0.5, "memorizer")
        insp.learnt = [_print(_Pre.load(str(p))[0]) for p in images]
        return insp

    def inspect(self, image):
        res = super().inspect(image)
        if not self.learnt:
            return res
        from lineguard.vision.imageio import load_image
        from lineguard.vision.result import Verdict
        seen = _print(load_image(image)) in self.learnt
        return dataclasses.replace(res, verdict=Verdict.OK if seen else Verdict.NG)


def test_the_trial_before_activation_leaves_out_the_parts_a_retrain_learned_from(make_station):
    from lineguard.line.config import RetentionPolicy
    from lineguard.line.errors import RejectsGoodParts
    st = make_station(audit_sample_rate=0.0, retention=RetentionPolicy(ok_sample_rate=1.0),
                      loader=_Memorizer.load, trainer=_Memorizer.fit)
    st.add_model(_Memorizer(0.5, "first").to_bytes(), "cell", activate=True)
    for i in range(8):       # good parts of the line, not reviewed: the retrain does not learn them
        assert st.inspect(png_bytes(40 + i, seed=500 + i), _part(f"line-{i}")).record.verdict == "OK"
    learnt = [st.inspect(png_bytes(50 + i, seed=600 + i), _part(f"rev-{i}")).record for i in range(12)]
    for r in learnt:          # the latest: reviewed good, what the retrain learns
        st.review(r.id, "good", "ann", None)
    job = _wait_job(st, st.jobs.submit_training("cell", "", min_images=10, source="confirmed").id)
    assert job.status == "done", job.message
    version = job.result["version"]
    with pytest.raises(RejectsGoodParts) as err:
        st.activate_model("cell", "", version)
    assert err.value.details["learnt_left_out"] == 12
    assert err.value.details["parts_tried"] == 8 and err.value.details["judged_ng"] == 8
    assert "12 it learned from left out" in err.value.message
    assert st.models.active_for("cell", "").version == 1


def test_compare_and_retrain_for_a_line_or_product_nothing_is_stored_of_are_404s(make_station):
    """Compare for line L9 answered 200 with "parts": 0 (as if the shadow judged none); a
    retrain for "cel" was a 400 asking for more reviews of it."""
    st = make_station(audit_sample_rate=1.0)
    st.add_model(FakeInspector(0.5, "a").to_bytes(), "cell", activate=True)
    st.add_model(FakeInspector(0.4, "b").to_bytes(), "cell")
    for i in range(3):
        st.inspect(png_bytes(40 + i, seed=700 + i), _part(f"c-{i}"))
    c = _client(st)
    assert c.get("/api/v1/models/cell/compare", params={"line": "L1", "candidate": 2}).status_code == 200
    r = c.get("/api/v1/models/cell/compare", params={"line": "l1", "candidate": 2})
    assert r.status_code == 404 and r.json()["error"]["did_you_mean"] == ["L1"], r.json()
    r = c.get("/api/v1/models/cell/compare", params={"line": "L9", "candidate": 2})
    assert r.status_code == 404 and "The lines the station knows: L1" in r.json()["error"]["message"], r.json()
    r = c.post("/api/v1/models/cel/train", json={})
    assert r.status_code == 404 and r.json()["error"]["did_you_mean"] == ["cell"], r.json()
    # a product with no name close to one it holds: no retrain can learn it (it was a 400, "review more of its parts")
    r = c.post("/api/v1/models/nothing/train", json={})
    assert r.status_code == 404 and r.json()["error"]["known"] == ["cell"], r.json()
    assert "holds nothing of product 'nothing'" in r.json()["error"]["message"] and "reference add" in r.json()[
        "error"]["message"], r.json()
    r = c.post("/api/v1/models/cell/train", json={"line": "l1"})
    assert r.status_code == 404 and r.json()["error"]["did_you_mean"] == ["L1"], r.json()
    assert c.get("/api/v1/jobs").json()["items"] == []
