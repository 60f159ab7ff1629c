"""What a retrain keeps of the version it replaces and what its job says (API level,
in-process stations with the fake models): the input size while the profile stays, a
review band it could not open, counts that are the model's own when it left a part out,
a detector or min_images it cannot train with refused before the job, and its detector."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from fastapi.testclient import TestClient

from lineguard.line.station import Part
from lineguard.vision.imageio import load_image

from line.test_model_lifecycle import _wait_job

from .fake_inspector import FakeInspector, png_bytes


def load_with_settings(path) -> FakeInspector:
    """The fake model with what a trained model's file says it looks at: the detector (its
    name, backbone and extra sizes), and the input size (``Preprocess.image_size``)."""
    insp = FakeInspector.load(path)
    d = json.loads(Path(path).read_bytes())
    if d.get("backbone") or d.get("detector"):
        insp.detector = SimpleNamespace(name=d.get("detector") or "patchcore", backbone=d.get("backbone"),
                                        extra_scales=tuple(d.get("extra_scales") or ()))
    size = d.get("image_size")
    if size:
        insp.preprocess = SimpleNamespace(image_size=size if isinstance(size, int) else tuple(size))
    if d.get("image_size_rule"):     # the rule it was trained with, as Inspector.fit records it
        insp.info = {**(getattr(insp, "info", None) or {}), "image_size_rule": d["image_size_rule"]}
    return insp


def fit_leaving_out_suspects(images, progress=None, exclude_suspects=False, calibrate_on=None, **params):
    """The fake trainer with ``Inspector.fit``'s way with suspects: photos far brighter than
    the others are named (``suspect_good``); the flagged ones among them (the station flags
    the audit-sample parts nobody reviewed) are left out of the model and its threshold,
    and its record says how many it learnt (``n_train``) and left out."""
    vals = np.array([load_image(p).mean() / 255.0 for p in images])
    flags = [bool(exclude_suspects)] * len(images) if isinstance(exclude_suspects, bool) else list(exclude_suspects)
    counted = [True] * len(images) if calibrate_on is None else list(calibrate_on)
    far = vals > float(np.median(vals)) + 0.25
    leave = far & np.array(flags, bool)
    keep = ~leave
    set_by = keep & np.array(counted, bool)
    insp = FakeInspector(threshold=float(vals[set_by].max()) + 0.05, version="fake-trained")
    insp.calibration = {"n_calibration": int(set_by.sum()), "suspects_excluded": int(leave.sum())}
    insp.info = {"n_train": int(keep.sum()), "photo_odd": [],
                 "suspect_good": [{"image": str(images[i]), "score": float(vals[i])}
                                  for i in np.argsort(-vals) if far[i]]}
    return insp


@pytest.fixture
def make_station(tmp_path):
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    made = []

    def make(loader=load_with_settings, trainer=FakeInspector.fit, **kw):
        st = Station(StationConfig(data_dir=tmp_path / f"data{len(made)}", **kw), loader=loader, trainer=trainer)
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


def _model(threshold: float = 0.5, **extra) -> bytes:
    return json.dumps({"fake_lineguard_model": True, "threshold": threshold, "version": "q", **extra}).encode()


def _parts(st, n: int, value: int = 40, seed0: int = 100, prefix: str = "p", want_sample=None):
    """``n`` parts of product cell (``want_sample``: only those in, or out of, the audit
    sample, drawn by the photo's hash: other seeds until enough)."""
    out, seed = [], seed0
    while len(out) < n:
        rec = st.inspect(png_bytes(value, seed=seed), Part(f"{prefix}-{seed}", "L1", "S1", "cell")).record
        seed += 1
        if want_sample is None or rec.audit_sample == want_sample:
            out.append(rec)
    return out


QUALITY_128 = {"backbone": "mobilenet_v2", "extra_scales": [0.7], "image_size": 128}


# -- 1. the input size of the version a retrain replaces, while the profile stays ------------
def test_a_retrain_keeps_the_replaced_versions_input_size_while_the_profile_stays(make_station):
    st = make_station(audit_sample_rate=1.0)
    st.add_model(_model(**QUALITY_128), "cell", activate=True)     # trained with --profile quality --image-size 128
    _parts(st, 12)
    with _client(st) as c:
        def fit_of(body):
            r = c.post("/api/v1/models/cell/train", json=body)
            assert r.status_code == 202, r.text
            _wait_job(st, r.json()["id"])
            return r.json()["params"]["fit"]
        # what the Models page sends with its form as loaded: the quality profile and 128 stay
        fit = fit_of({"line": "", "source": "both"})
        assert fit["backbone"] == "mobilenet_v2" and list(fit["extra_scales"]) == [0.7]
        assert fit["image_size"] == 128
        # a profile chosen, even the same one, trains at that profile's own input (the page says so)
        assert fit_of({"profile": "quality"})["image_size"] == "auto"
        # another profile brings its own input; a size given wins
        fit = fit_of({"profile": "fast"})
        assert fit["backbone"] == "efficientnet_lite0" and fit["image_size"] == "area224"
        assert fit_of({"image_size": 256})["image_size"] == 256
    # a long part's input (height x width) is kept as it is
    st2 = make_station(audit_sample_rate=1.0)
    st2.add_model(_model(backbone="efficientnet_lite0", image_size=[128, 320]), "cell", activate=True)
    _parts(st2, 12)
    with _client(st2) as c:
        r = c.post("/api/v1/models/cell/train", json={"line": ""})
        assert r.status_code == 202, r.text
        assert r.json()["params"]["fit"]["image_size"] == [128, 320]
        _wait_job(st2, r.json()["id"])
    # a model whose input came from a rule read from its parts' shape keeps the rule, not the
    # size it gave: applied to the retrain's own parts (a camera turned, a new ROI)
    st3 = make_station(audit_sample_rate=1.0)
    st3.add_model(_model(backbone="efficientnet_lite0", image_size=[128, 320], image_size_rule="area224"), "cell",
                  activate=True)
    _parts(st3, 12)
    with _client(st3) as c:
        r = c.post("/api/v1/models/cell/train", json={"line": ""})
        assert r.status_code == 202, r.text
        assert r.json()["params"]["fit"]["image_size"] == "area224"
        _wait_job(st3, r.json()["id"])


# -- 2. a review band that could not open is said -------------------------------------------
def test_a_retrain_on_too_few_parts_for_its_review_band_says_the_band_is_empty(make_station):
    st = make_station(audit_sample_rate=1.0)
    cal = {"threshold": 0.5, "review_threshold": 0.4, "review_rate": 0.05, "target_false_reject_rate": 0.01}
    st.add_model(_model(0.5, review_threshold=0.4, calibration=cal), "cell", activate=True)
    _parts(st, 27)
    with _client(st) as c:
        r = c.post("/api/v1/models/cell/train", json={"line": "", "source": "both"})
        assert r.status_code == 202, r.text
        assert r.json()["params"]["fit"]["review_rate"] == 0.05        # kept, as before
        job = _wait_job(st, r.json()["id"])
        assert job.status == "done", job.message
        new = c.get("/api/v1/models", params={"product": "cell"}).json()["items"]
    assert [m["review_threshold"] for m in new if m["version"] == job.result["version"]] == [None]
    band = job.result["review_band"]
    # a 5% band above a 1% false-reject rate opens on 33 parts (vision.calibration.parts_for_review_band)
    assert band["empty"] is True and band["review_rate"] == 0.05
    assert band["parts"] == 27 and band["parts_needed"] == 33
    assert "review band is empty" in job.message and "needs 33" in job.message
    assert "27 parts set the thresholds" in job.message


def test_a_retrain_whose_review_band_opened_says_nothing_of_it(make_station):
    def with_band(images, progress=None, **kw):
        insp = FakeInspector.fit(images, progress)
        insp.review_threshold = insp.threshold - 0.1
        return insp
    st = make_station(audit_sample_rate=1.0, trainer=with_band)
    cal = {"review_rate": 0.05, "target_false_reject_rate": 0.01}
    st.add_model(_model(0.5, review_threshold=0.4, calibration=cal), "cell", activate=True)
    _parts(st, 12)
    with _client(st) as c:
        job = _wait_job(st, c.post("/api/v1/models/cell/train", json={}).json()["id"])
    assert job.status == "done", job.message
    assert job.result["review_band"] == {"review_rate": 0.05, "empty": False}
    assert "review band" not in job.message


# -- 3. counts are the model's own when it left a part out -----------------------------------
def test_a_part_left_out_as_a_suspect_is_in_no_count_and_is_named_as_left_out(make_station):
    st = make_station(audit_sample_rate=0.5, trainer=fit_leaving_out_suspects)
    st.add_model(_model(0.5), "cell", activate=True)
    sample = _parts(st, 27, 40, 1000, "ok", want_sample=True)         # OK, nobody reviewed them
    odd = _parts(st, 1, 110, 3000, "odd", want_sample=True)[0]        # OK too, far brighter: a defect passed
    assert odd.verdict == "OK" and {r.verdict for r in sample} == {"OK"}
    # the old version's false alarms outside the sample, reviewed good: learnt, not counted
    false_alarms = _parts(st, 3, 150, 5000, "fa", want_sample=False)
    for r in false_alarms:
        st.review(r.id, "good", "ann", None)
    with _client(st) as c:
        r = c.post("/api/v1/models/cell/train", json={"min_images": 5})
        assert r.status_code == 202, r.text
        job = _wait_job(st, r.json()["id"])
        assert job.status == "done", job.message
        mv = [m for m in c.get("/api/v1/models", params={"product": "cell"}).json()["items"]
              if m["version"] == job.result["version"]][0]
    # the model learnt 27 + 3: the odd part is in no count
    assert job.result["images"] == 30 and mv["train_images"] == 30
    assert job.result["threshold_set_on"] == {"parts": 27, "audit_sample_only": True, "audit_sample_parts": 27}
    assert "(3 reviewed good, 27 audit sample)" in mv["trained_from"] and mv["trained_from"].count("30 parts") == 1
    assert "set on the 27 audit-sample parts" in job.message and "the other 3, reviewed good, were learnt" in job.message
    # named for a person, as left out, not as learnt from; the false alarms reviewed good were learnt
    by_id = {a["inspection_id"]: a for a in job.result["look_at"]}
    assert by_id[odd.id].get("left_out") is True
    assert all(not by_id[fa.id].get("left_out") for fa in false_alarms if fa.id in by_id)


# -- 4. what the job cannot train with is refused before it -----------------------------------
def test_an_unknown_detector_or_too_few_min_images_is_a_422_before_the_job(make_station):
    st = make_station(audit_sample_rate=1.0)
    st.add_model(_model(0.5), "cell", activate=True)
    _parts(st, 12)
    with _client(st) as c:
        r = c.post("/api/v1/models/cell/train", json={"detector": "fastflow"})
        assert r.status_code == 422, r.text
        said = r.json()["error"]["message"]
        assert "fastflow" in said and "patchcore" in said and "padim" in said
        for n in (1, 2):
            r = c.post("/api/v1/models/cell/train", json={"min_images": n})
            assert r.status_code == 422, r.text
            assert "at least 3" in r.json()["error"]["message"]
        r = c.post("/api/v1/models/cell/train", json={"detector": "padim", "min_images": 10})
        assert r.status_code == 422 and "at least 11" in r.json()["error"]["message"], r.text
        assert not c.get("/api/v1/jobs").json()["items"]          # no job started for any of them
        r = c.post("/api/v1/models/cell/train", json={"min_images": 3})
        assert r.status_code == 202, r.text
        _wait_job(st, r.json()["id"])
        # padim with the default min_images (10): trains once at least 11 parts are there
        r = c.post("/api/v1/models/cell/train", json={"detector": "padim"})
        assert r.status_code == 202, r.text
        _wait_job(st, r.json()["id"])


def test_the_routers_least_parts_are_the_detectors_own():
    from lineguard.server.routers.models import MIN_TRAIN_IMAGES
    from lineguard.vision.bundle import DETECTOR_NAMES
    from lineguard.vision.detectors import DETECTORS
    # Inspector.fit: min_good_images to learn from, and one more to set the threshold
    assert MIN_TRAIN_IMAGES == {name: DETECTORS[name].min_good_images + 1 for name in DETECTOR_NAMES}


# -- 5. the detector of the version a retrain replaces ----------------------------------------
def test_a_retrain_keeps_the_replaced_versions_detector_and_its_least_parts(make_station):
    st = make_station(audit_sample_rate=1.0)
    st.add_model(_model(detector="padim", backbone="efficientnet_lite0", image_size=224), "cell", activate=True)
    _parts(st, 10)
    with _client(st) as c:
        # padim's least (11) follows the detector kept, not only one given: 5 is refused, naming padim
        r = c.post("/api/v1/models/cell/train", json={"min_images": 5})
        assert r.status_code == 422, r.text
        assert "padim needs at least 11" in r.json()["error"]["message"]
        # the default 10 rises to padim's 11: on 10 parts no job starts that could only fail
        r = c.post("/api/v1/models/cell/train", json={"line": "", "source": "both"})
        assert r.status_code != 202 and "at least 11" in r.json()["error"]["message"], r.text
        assert not c.get("/api/v1/jobs").json()["items"]
        _parts(st, 2, seed0=500)
        # what the Models page sends: padim stays padim, on its own features (no patchcore backbone)
        r = c.post("/api/v1/models/cell/train", json={"line": "", "source": "both"})
        assert r.status_code == 202, r.text
        fit = r.json()["params"]["fit"]
        assert fit["detector"] == "padim" and "backbone" not in fit and "extra_scales" not in fit
        _wait_job(st, r.json()["id"])
        # a detector given wins
        r = c.post("/api/v1/models/cell/train", json={"detector": "patchcore", "min_images": 3})
        assert r.status_code == 202, r.text
        fit = r.json()["params"]["fit"]
        assert fit["detector"] == "patchcore" and fit["backbone"] == "efficientnet_lite0"
        _wait_job(st, r.json()["id"])


def test_a_first_model_or_one_that_names_no_detector_trains_patchcore(make_station):
    from lineguard.server.routers.models import detector_of
    assert detector_of(None) == "patchcore"                  # the product's first model
    assert detector_of(SimpleNamespace(detector=SimpleNamespace(name="padim"))) == "padim"
    st = make_station(audit_sample_rate=1.0)
    st.add_model(_model(0.5), "cell", activate=True)       # a model file that names no detector
    _parts(st, 4)
    with _client(st) as c:
        r = c.post("/api/v1/models/cell/train", json={"min_images": 3})
        assert r.status_code == 202, r.text
        assert r.json()["params"]["fit"]["detector"] == "patchcore"
        _wait_job(st, r.json()["id"])


def test_a_replaced_versions_detector_the_station_cannot_train_is_a_422_naming_what_to_say(make_station):
    st = make_station(audit_sample_rate=1.0)
    st.add_model(_model(detector="fastflow"), "cell", activate=True)   # a model made elsewhere
    _parts(st, 12)
    with _client(st) as c:
        r = c.post("/api/v1/models/cell/train", json={})
        assert r.status_code == 422, r.text
        said = r.json()["error"]["message"]
        assert "'fastflow'" in said and '"detector"' in said and "patchcore" in said and "padim" in said
        assert not c.get("/api/v1/jobs").json()["items"]
        r = c.post("/api/v1/models/cell/train", json={"detector": "padim"})    # said: trains
        assert r.status_code == 202 and r.json()["params"]["fit"]["detector"] == "padim", r.text
        _wait_job(st, r.json()["id"])


def test_the_openapi_document_says_the_detector_defaults_to_the_replaced_versions(make_station):
    st = make_station()
    with _client(st) as c:
        prop = c.get("/openapi.json").json()["components"]["schemas"]["TrainIn"]["properties"]["detector"]
    assert prop.get("default") is None and "replaced version's" in prop["description"]
