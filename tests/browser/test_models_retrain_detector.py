"""The Models page's Retrain keeps the active version's detector: a padim product retrained
with the form as loaded (it sends no detector) became patchcore while the page said the
retrain "keeps what vN has". The line under Retrain names the detector where it is not the
default, and the job trains it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import api, expect, png_bytes, post_part, start_fake_station

TESTS = Path(__file__).resolve().parents[1]

# the fake station with model files that name their detector (tests/server/test_retrain_keeps.py)
START = """
import sys
sys.path[:0] = [{tests!r}, {server!r}]     # lineguard: as the tests import it
import fake_inspector
from server.test_retrain_keeps import load_with_settings
fake_inspector.FakeInspector.load = staticmethod(load_with_settings)
fake_inspector.serve_main(sys.argv[1:])
"""

PADIM = {"fake_lineguard_model": True, "threshold": 0.5, "version": "pd", "detector": "padim",
         "backbone": "efficientnet_lite0", "image_size": 224}


@pytest.fixture(scope="module")
def station(tmp_path_factory):
    folder = tmp_path_factory.mktemp("retrain-detector")
    script = folder / "start.py"
    script.write_text(START.format(tests=str(TESTS), server=str(TESTS / "server")))
    srv = start_fake_station(folder / "data", extra=["--audit-sample-rate", "1.0"], python_args=[str(script)])
    yield srv
    srv.stop()


def test_retrain_as_loaded_keeps_a_padim_versions_detector_and_says_so(pages, station):
    with api(station, "engineer") as c:
        r = c.post("/api/v1/models", files={"file": ("p.lgm", json.dumps(PADIM).encode())},
                   data={"product": "pcell", "activate": "true"})
        assert r.status_code == 201, r.text
        for k in range(12):           # padim learns from 10 and sets its threshold on one more
            assert post_part(c, png_bytes(20, seed=5000 + k), f"pd-{k}", product="pcell").json()["verdict"] == "OK"
    p = pages(role="engineer")
    page = p.open("/app/models?product=pcell", "#versions table")
    active = page.locator("#train-active")
    expect(active).to_contain_text("v1 has: the padim detector, efficientnet_lite0 224x224")
    page.click("#train-form button[type=submit]")
    expect(page.locator("#train-status")).to_contain_text("done", timeout=30_000)
    with api(station) as c:
        fit = c.get("/api/v1/jobs", params={"limit": 1}).json()["items"][0]["params"]["fit"]
    assert fit["detector"] == "padim" and "backbone" not in fit
    # a patchcore product's line names no detector (the default, as before)
    page = p.open("/app/models?product=cell", "#versions table")
    expect(page.locator("#train-active")).to_contain_text("v1 has:")
    expect(page.locator("#train-active")).not_to_contain_text("detector")
