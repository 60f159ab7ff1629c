"""A station's retrain names the parts left out of learning the colour check, and says why
the check is off where it is.

Training learns whether the good photos are colour from the photos the photo check's
range learnt from; a few of another colour (a grey photo among colour ones: a camera
switched to mono for a moment) are left out and named (``photo_colour_odd``), and where
the photos are of two camera settings the check is off, with the reason kept
(``photo_colour_off``). `lineguard train` says both; the station's retrain job named only
the photos unlike the others in brightness or focus (``photo_odd``), so a grey part among
the parts it learnt from, or a colour check off (a greyscale or tinted part then judged on
its score alone), went unsaid on the Models page.
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent / "server"))
from fake_inspector import FakeInspector, png_bytes  # noqa: E402

from line.test_model_lifecycle import _wait_job  # noqa: E402

from lineguard.line.station import Part  # noqa: E402
from lineguard.vision import photo_check  # noqa: E402
from lineguard.vision.imageio import load_image  # noqa: E402


def _grey_png(value: int, seed: int, size: int = 64) -> bytes:
    """A part photographed by a camera switched to mono: three equal channels."""
    rng = np.random.default_rng(seed)
    plane = np.clip(rng.normal(value, 5, (size, size, 1)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(np.repeat(plane, 3, axis=2)).save(buf, format="PNG")
    return buf.getvalue()


def fit_learning_colour(images, progress=None, **params):
    """The fake trainer with Inspector.fit's colour check: learnt with the photo check's own
    rule (photo_check.colour_learnt) from the parts' photos, the odd ones named and, where
    it is off, why."""
    insp = FakeInspector.fit(images, progress=progress)
    learnt = photo_check.colour_learnt(np.stack([load_image(p) for p in images]))
    insp.info.update({"photo_colour": learnt["colour"],
                      "photo_colour_odd": [{"image": str(images[i]), "issues": what} for i, what in learnt["odd"]],
                      "photo_colour_off": (photo_check.colour_off_said(learnt["counts"]) if "counts" in learnt
                                           else None)})
    return insp


@pytest.fixture
def station(tmp_path):
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    st = Station(StationConfig(data_dir=tmp_path / "data", audit_sample_rate=1.0), loader=FakeInspector.load,
                 trainer=fit_learning_colour)
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    yield st
    st.close()


def _retrained(st, product: str) -> dict:
    from fastapi.testclient import TestClient

    from lineguard.line.auth import create_key
    from lineguard.server.app import create_app
    with st.db.session() as s:
        key = create_key(s, "engineer", name="t-engineer")[1]
    with TestClient(create_app(station=st), headers={"X-API-Key": key}) as c:
        r = c.post(f"/api/v1/models/{product}/train", json={"min_images": 5})
        assert r.status_code == 202, r.text
        assert _wait_job(st, r.json()["id"]).status == "done"
        return c.get(f"/api/v1/jobs/{r.json()['id']}").json()


def test_a_retrain_names_the_grey_part_left_out_of_learning_the_colour_check(station):
    for i in range(12):
        station.inspect(png_bytes(40, seed=100 + i), Part(f"c-{i}", "L1", "S1", "cell"))
    grey = station.inspect(_grey_png(40, seed=500), Part("mono-1", "L1", "S1", "cell")).record
    job = _retrained(station, "cell")
    named = [a for a in job["result"]["look_at"] if a["inspection_id"] == grey.id]
    assert len(named) == 1, job["result"]["look_at"]
    # named as a photo, with what is off, and as left out of the colour check (not the range)
    assert named[0]["why"] == "photo" and named[0]["colour"] is True
    assert named[0]["photo_issues"][0].startswith("greyscale photo among colour ones"), named[0]
    assert "look at 1 part(s)" in job["message"]
    assert job["result"]["photo_colour_off"] is None       # on: the other parts are colour


def test_a_retrain_on_parts_of_two_camera_settings_says_why_its_colour_check_is_off(station):
    for i in range(12):     # half the parts from a camera switched to mono
        data = _grey_png(40, seed=100 + i) if i % 2 else png_bytes(40, seed=100 + i)
        station.inspect(data, Part(f"m-{i}", "L1", "S1", "cell"))
    job = _retrained(station, "cell")
    off = job["result"]["photo_colour_off"]
    assert off and off.startswith("colour check off: of the 12 good photos it looked at, 6 colour and 6 "
                                  "greyscale"), off
    assert off in job["message"]
    # none of them named as odd: two settings, not a few odd photos
    assert not any(a.get("colour") for a in job["result"]["look_at"])
