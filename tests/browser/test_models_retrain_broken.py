"""The Models page retrains away from an active version whose model file cannot be read
(corrupt on disk, found after a restart): the station names the settings it cannot take
from that version, the page shows exactly those fields (filled in from the version's
record where it says), and Retrain with them trains the new version."""
from __future__ import annotations

import hashlib
import json

import pytest

from .conftest import api, expect, png_bytes, post_part, start_fake_station
from .test_models_retrain_defaults import START, TESTS

# a padim model trained with the quality profile at 128 px and a 5% review band
PADIM_QUALITY = {"fake_lineguard_model": True, "threshold": 0.5, "version": "pq", "review_threshold": 0.4,
                 "calibration": {"review_rate": 0.05, "target_false_reject_rate": 0.02},
                 "detector": "padim", "backbone": "mobilenet_v2", "extra_scales": [0.7], "image_size": 128}


@pytest.fixture(scope="module")
def station(tmp_path_factory):
    folder = tmp_path_factory.mktemp("retrain-broken")
    script = folder / "start.py"
    script.write_text(START.format(tests=str(TESTS), server=str(TESTS / "server")))
    srv = start_fake_station(folder / "data", extra=["--audit-sample-rate", "1.0"], python_args=[str(script)])
    # stopped however the set-up ends: a set-up refused half-way (an upload's 409) left its
    # station running after the test run, as no teardown runs for a fixture that failed
    try:
        data = json.dumps(PADIM_QUALITY).encode()
        with api(srv, "engineer") as c:
            r = c.post("/api/v1/models", files={"file": ("pq.lgm", data)},
                       data={"product": "bcell", "activate": "true"})
            assert r.status_code == 201, r.text
            for k in range(12):           # the audit sample's parts, judged OK: what a retrain learns
                assert post_part(c, png_bytes(20, seed=5000 + k), f"b-{k}", product="bcell").json()["verdict"] == "OK"
        # the version's file corrupt on disk, found when the station starts again
        stored = list((folder / "data").rglob(hashlib.sha256(data).hexdigest() + "*"))
        assert len(stored) == 1, stored
        srv.stop()
        stored[0].write_bytes(b"\x00\x01 half a model")
        srv.start()
        yield srv
    finally:
        srv.stop()


def test_retrain_from_the_page_away_from_an_unreadable_active_version(pages, station):
    p = pages(role="engineer")
    page = p.open("/app/models?product=bcell", "#versions table")
    expect(page.locator("#train-active")).to_contain_text("v1 has: the padim detector")
    page.click("#train-form button[type=submit]")
    why = page.locator("#train-needed-why")
    expect(why).to_be_visible()
    expect(why).to_contain_text("Version 1 cannot be read")
    expect(why).to_contain_text("its detector, padim, is kept")
    needed = page.locator("#train-needed")
    # the fields the station named, no more: its detector is on its record
    expect(needed.locator("input[name=review_rate]")).to_have_value("")      # it had a band: how wide is asked
    expect(needed.locator("input[name=false_reject_rate]")).to_have_value("0.01")
    expect(needed.locator("input[name=photo_check]")).to_be_checked()
    expect(needed.locator("[name=detector]")).to_have_count(0)
    expect(page.locator("#train-form select[name=profile]")).to_have_value("quality")    # its features' backbone
    p.shot("models-retrain-broken-asks")
    page.fill("#train-needed input[name=review_rate]", "0.05")
    page.fill("#train-needed input[name=false_reject_rate]", "0.02")
    page.click("#train-form button[type=submit]")
    expect(page.locator("#train-status")).to_contain_text("done", timeout=30_000)
    expect(why).to_be_hidden()
    with api(station) as c:
        job = c.get("/api/v1/jobs", params={"limit": 1}).json()["items"][0]
    fit = job["params"]["fit"]
    assert job["params"]["product"] == "bcell" and job["status"] == "done"
    assert fit["detector"] == "padim" and fit["image_size"] == "auto"
    assert fit["review_rate"] == 0.05 and fit["false_reject_rate"] == 0.02 and fit["photo_check"] is True
