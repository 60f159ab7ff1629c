"""A station's retrain stays robust to the odd photos among its good ones, and says which
they are (real PatchCore models on tiny synthetic photos: the rule is in Inspector.fit).

A walk of the retrain: one black reference photo beside the model's good photos was named
as too dark, too flat and blurred and as scoring far above the others, and learnt all the
same: it set the new version's threshold alone (58.17 where v1 had 19.9), so a crack part
scoring 45 would pass as OK, with "warning": null. It was listed twice under look_at and
counted as two parts; and a small reference photo, read but left out for its size, was
called unreadable and the engineer told to add it again (which leaves it out again)."""
from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from line.test_model_lifecycle import _wait_job

SIDE = 128


def _photo(seed: int, side: int = SIDE, grey_patch: bool = False) -> bytes:
    """A good part: grey texture, its brightness and contrast a little its own (as a line's
    parts and lamps vary). ``grey_patch``: a patch of it without colour, its brightness,
    contrast and focus like the others' (a part unlike the others on its score, not as a
    photo)."""
    rng = np.random.default_rng(seed)
    mean, sd = (140, 20) if grey_patch else (rng.uniform(115, 165), rng.uniform(12, 28))
    arr = rng.normal(mean, sd, (side, side, 3))
    if grey_patch:      # in the middle of the others' brightness and contrast
        m = side * 5 // 16
        arr[m:side - m, m:side - m] = rng.normal(mean, sd, (side - 2 * m, side - 2 * m, 1))
    buf = io.BytesIO()
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _black() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((SIDE, SIDE, 3), np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def station(tmp_path):
    """A station whose active model (v1) is a real one, trained on 14 good photos at 64 px,
    and which retrains with the real trainer; those photos are its reference photos."""
    pytest.importorskip("torch")
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    from lineguard.vision.inspector import Inspector
    good = tmp_path / "good"
    good.mkdir()
    for i in range(14):
        (good / f"g{i:02d}.png").write_bytes(_photo(100 + i))
    model = tmp_path / "v1.lgm"
    Inspector.fit(good, image_size=64, false_reject_rate=0.1, seed=0).save(model)
    st = Station(StationConfig(data_dir=tmp_path / "data"))
    st.add_model(model.read_bytes(), "cell", activate=True)
    st.good_photos = sorted(good.iterdir())
    yield st
    st.close()


def _client(st) -> TestClient:
    from lineguard.line.auth import create_key
    from lineguard.server.app import create_app
    with st.db.session() as s:
        key = create_key(s, "engineer", name="t-engineer")[1]
    return TestClient(create_app(station=st), headers={"X-API-Key": key})


def _retrain_with(st, extra: dict[str, bytes]) -> tuple[dict, dict, dict[str, int]]:
    """Give the station the model's good photos and ``extra`` (name -> photo) as reference
    photos, retrain it as the Models page does: the job, the new version, the extras' ids."""
    with _client(st) as c:
        ids = {}
        for path in st.good_photos:
            r = c.post("/api/v1/reference-photos", files={"photo": (path.name, path.read_bytes(), "image/png")},
                       data={"product": "cell", "line": ""})
            assert r.status_code == 201, r.text
        for name, data in extra.items():
            r = c.post("/api/v1/reference-photos", files={"photo": (name, data, "image/png")},
                       data={"product": "cell", "line": ""})
            assert r.status_code == 201, r.text
            ids[name] = r.json()["id"]
        r = c.post("/api/v1/models/cell/train", json={})
        assert r.status_code == 202, r.text
        job = c.get(f"/api/v1/jobs/{_wait_job(st, r.json()['id'], timeout=240).id}").json()
        assert job["status"] == "done", job["message"]
        mv = [m for m in c.get("/api/v1/models", params={"product": "cell"}).json()["items"]
              if m["version"] == job["result"]["version"]][0]
    return job, mv, ids


def test_a_black_reference_photo_is_left_out_of_the_retrain_and_named_once(station):
    job, mv, ids = _retrain_with(station, {"black.png": _black()})
    named = [a for a in job["result"]["look_at"] if a.get("reference_photo_id") == ids["black.png"]]
    # one entry for the one photo, with both reasons: far above the others, and unlike them
    assert len(named) == 1, job["result"]["look_at"]
    black = named[0]
    assert black["reasons"] == ["score", "photo"] and black["photo_issues"], black
    assert black["inspection_id"] is None
    # left out of the model, not learnt: the 14 good photos are
    assert black.get("left_out") is True, black
    assert job["result"]["images"] == 14 and mv["train_images"] == 14
    # its score set the threshold before; now the good photos' do, far below it
    assert mv["threshold"] < black["score"] / 2, (mv["threshold"], black["score"])
    assert "were unlike them as photos (named under look_at), and were left out" in job["message"]
    # counted as reference photos, not as parts, each photo once
    n_refs = len(job["result"]["look_at"])
    assert all("reference_photo_id" in a for a in job["result"]["look_at"])
    assert f"look at {n_refs} reference photo(s) it was given" in job["message"], job["message"]
    assert "part(s)" not in job["message"].split("look at ")[1]


def test_a_threshold_set_by_a_photo_named_to_look_at_is_a_warning_of_the_version(station):
    # a part far above the others on its score, its photo like theirs: not left out (a photo
    # a person gave is kept), so its score sets the threshold: said with the version
    job, mv, ids = _retrain_with(station, {"patched.png": _photo(900, grey_patch=True)})
    patched = [a for a in job["result"]["look_at"] if a.get("reference_photo_id") == ids["patched.png"]]
    assert len(patched) == 1 and patched[0]["why"] == "score" and not patched[0].get("left_out"), patched
    assert mv["threshold"] == pytest.approx(patched[0]["score"], rel=1e-4)
    warning = job["result"]["warning"]
    assert warning and f"is the score of reference photo {ids['patched.png']}, named under look_at" in warning
    assert f"warning: {warning}" in job["message"]
    assert f"lineguard reference remove {ids['patched.png']}" in warning
    # kept with the version: its note is on the Models list
    assert warning in mv["note"], mv["note"]


def test_a_small_reference_photo_is_said_read_but_left_out_for_its_size(station):
    job, mv, ids = _retrain_with(station, {"small.png": _photo(950, side=SIDE // 4)})
    message = job["message"]
    assert "could not be read" not in message, message
    assert ("1 photo(s) given were read but left out for their size, far smaller than the others (not a photo of "
            f"the part at the line's camera): reference photo {ids['small.png']} (32 px on its short side") in message
    # added again it is left out again: removing it is the advice, not adding it again
    assert "remove such a reference photo with lineguard reference remove ID: added again, it is left out again" \
        in message
    assert "add it again from the training folder" not in message
    assert job["result"]["images"] == 14
