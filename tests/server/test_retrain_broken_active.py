"""A retrain away from an active version whose model file cannot be read (deleted,
corrupt), through the REST API: the moment a plant needs a retrain most. A request that
gives every setting the retrain would otherwise take from that version never reads its
file; one that leaves settings to it is refused before the job with every setting to give
named at once (``settings_needed``), the detector taken from the version's registry row;
given those, the retrain runs and its version can be activated."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lineguard.line.orm import ModelVersion
from lineguard.line.station import Part

from line.test_model_lifecycle import _wait_job

from .fake_inspector import FakeInspector, png_bytes
from .test_retrain_keeps import load_with_settings

# a padim model trained with the quality profile at 128 px and a 5% review band: every
# setting a retrain keeps differs from the station's defaults
PADIM_QUALITY = {"fake_lineguard_model": True, "threshold": 0.5, "version": "pq", "review_threshold": 0.4,
                 "calibration": {"review_rate": 0.05, "target_false_reject_rate": 0.02},
                 "detector": "padim", "backbone": "mobilenet_v2", "extra_scales": [0.7], "image_size": 128}

# what the Models page's Retrain form sends as loaded
PAGE_BODY = {"line": "", "source": "both"}
# what the station needs given when it cannot read the version (its detector is on the row)
NEEDED = ["review_rate", "false_reject_rate", "profile", "photo_check"]
GIVEN = {"review_rate": 0.05, "false_reject_rate": 0.02, "profile": "quality", "photo_check": True}


class Plant:
    """A station of product cell (PADIM_QUALITY active, 14 audit-sample parts judged OK)
    that can be restarted on its data folder, counting the model files it reads."""

    def __init__(self, tmp_path: Path):
        self.data = tmp_path / "data"
        self.loads: list[str] = []
        self.st = self._start()
        with self.client() as c:
            r = c.post("/api/v1/models", files={"file": ("pq.lgm", json.dumps(PADIM_QUALITY).encode())},
                       data={"product": "cell", "activate": "true"})
            assert r.status_code == 201, r.text
            assert r.json()["detector"] == "padim"       # on the version's row, read off the file at upload
        for i in range(14):
            self.st.inspect(png_bytes(40, seed=300 + i), Part(f"c-{i}", "L1", "S1", "cell"))
        self.file = Path(self.st.models.store.path(self.st.models.active_for("cell", "").file_key))

    def _load(self, path):
        self.loads.append(str(path))
        return load_with_settings(path)

    def _start(self):
        from lineguard.line.config import StationConfig
        from lineguard.line.station import Station
        return Station(StationConfig(data_dir=self.data, audit_sample_rate=1.0), loader=self._load,
                       trainer=FakeInspector.fit)

    def restart(self) -> None:
        """As after a power cut: nothing loaded, the model read from its file when needed."""
        self.st.close()
        self.st = self._start()
        self.loads.clear()

    def client(self) -> TestClient:
        from lineguard.line.auth import create_key
        from lineguard.server.app import create_app
        with self.st.db.session() as s:
            key = create_key(s, "engineer", name="t-engineer")[1]
        return TestClient(create_app(station=self.st), headers={"X-API-Key": key})

    def break_file(self, how: str) -> None:
        if how == "deleted":
            self.file.unlink()
        else:
            self.file.write_bytes(b"\x00\x01 half a model")


@pytest.fixture
def plant(tmp_path):
    p = Plant(tmp_path)
    yield p
    p.st.close()


def _train(c: TestClient, plant: Plant, body: dict) -> dict:
    r = c.post("/api/v1/models/cell/train", json=body)
    assert r.status_code == 202, r.text
    job = _wait_job(plant.st, r.json()["id"])
    assert job.status == "done", job.message
    return {**r.json()["params"]["fit"], "result": job.result}


@pytest.mark.parametrize("broken", [None, "corrupt", "deleted"])
def test_a_retrain_given_every_setting_it_keeps_reads_no_model_file(plant, broken):
    plant.restart()
    if broken:
        plant.break_file(broken)
    with plant.client() as c:
        every = {**PAGE_BODY, **GIVEN, "detector": "padim", "image_size": 128}
        fit = _train(c, plant, every)
        assert fit["detector"] == "padim" and fit["image_size"] == 128 and fit["review_rate"] == 0.05
        # a profile given trains at its own input: the replaced version's is not asked for
        # (it was: the file read for nothing, and a 422 "say image_size" when unreadable)
        fit = _train(c, plant, {**PAGE_BODY, **GIVEN, "detector": "padim"})
        assert fit["image_size"] == "auto"
        # the detector is on the version's row: the file is not read for it either
        fit = _train(c, plant, {**PAGE_BODY, **GIVEN})
        assert fit["detector"] == "padim"
    assert str(plant.file) not in plant.loads      # (each new version's own file is read as it is registered)


@pytest.mark.parametrize("broken", ["corrupt", "deleted"])
def test_a_broken_active_version_names_every_setting_to_give_at_once_and_the_retrain_goes_on(plant, broken):
    plant.restart()
    plant.break_file(broken)
    with plant.client() as c:
        r = c.post("/api/v1/models/cell/train", json=PAGE_BODY)
        assert r.status_code == 422, r.text
        err = r.json()["error"]
        assert err["settings_needed"] == NEEDED and err["version"] == 1 and err["detector"] == "padim"
        for k in NEEDED:
            assert f'"{k}"' in err["message"]
        assert "version 1" in err["message"] and "padim" in err["message"]
        assert plant.st.jobs.recent() == []                   # refused before any job
        # what one answer named is all it takes: the photo check was asked for only after the
        # rest were given (a second 422)
        fit = _train(c, plant, {**PAGE_BODY, **GIVEN, "activate": True})
        assert fit["detector"] == "padim" and fit["image_size"] == "auto"
        assert fit["review_rate"] == 0.05 and fit["false_reject_rate"] == 0.02 and fit["photo_check"] is True
        assert fit["result"]["activated"] is True             # retrained away from the broken version
        active = [m["version"] for m in c.get("/api/v1/models", params={"product": "cell"}).json()["items"]
                  if m["active"]]
        assert active == [fit["result"]["version"]] and active != [1]
        r = c.post("/api/v1/models/cell/train", json=PAGE_BODY)
        assert r.status_code == 202, r.text                   # the new active version is read as usual


def test_a_version_whose_row_lacks_its_detector_names_the_detector_too(plant):
    with plant.st.db.session() as s:       # registered before the detector was recorded
        s.query(ModelVersion).filter(ModelVersion.product == "cell").update({"detector": None})
    plant.restart()
    plant.break_file("corrupt")
    with plant.client() as c:
        r = c.post("/api/v1/models/cell/train", json={**PAGE_BODY, **GIVEN})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["settings_needed"] == ["detector"]
        assert _train(c, plant, {**PAGE_BODY, **GIVEN, "detector": "padim"})["detector"] == "padim"
