"""The Models page shows a version's rates on the random audit sample first, the rates of
every reviewed part below them labelled as such, and Compare says how many parts the
shadow left uncompared."""
from __future__ import annotations

import re
import time

import pytest

from .conftest import api, expect, post_part, png_bytes, start_fake_station
from server.conftest import fake_model_bytes


@pytest.fixture(scope="module")
def station(tmp_path_factory):
    """Every part in the audit sample: the sample's reviews are what these rates rest on."""
    srv = start_fake_station(tmp_path_factory.mktemp("browser") / "data", extra=["--audit-sample-rate", "1"])
    yield srv
    srv.stop()


def _row(page, version: int):
    return page.locator(f'#versions tr[data-version="{version}"]')


def test_the_models_page_shows_the_audit_sample_rates_first(pages, station):
    with api(station, "engineer") as c:
        r = c.post("/api/v1/models", files={"file": ("v2.lgm", fake_model_bytes(0.45, "fake-2"))},
                   data={"product": "cell"})
        assert r.status_code == 201, r.text
        assert c.post("/api/v1/models/cell/shadow", json={"line": "", "version": 2}).status_code == 200
        # 4 parts passed (2 of them defects a person found), 2 rejected (1 a false alarm): all reviewed
        for k, (value, label) in enumerate([(50, "defect"), (55, "defect"), (60, "good"), (65, "good"),
                                            (200, "good"), (210, "defect")]):
            rec = post_part(c, png_bytes(value, seed=3000 + k), f"audit-{k}").json()
            assert rec["audit_sample"] is True, rec
            assert c.post(f"/api/v1/inspections/{rec['id']}/review", json={"label": label}).status_code == 200
        for _ in range(100):    # the shadow judges each part after its answer
            if c.get("/api/v1/models/cell/compare", params={"candidate": 2}).json()["parts"] >= 6:
                break
            time.sleep(0.1)
    p = pages(role="engineer")
    page = p.open("/app/models?product=cell", "#versions table")
    rates = _row(page, 1).locator("td").nth(8)
    sample = rates.locator('[data-rates="sample"]')
    expect(sample).to_contain_text("audit sample: 6 judged, 6 reviewed")
    expect(sample).to_contain_text(re.compile(r"escapes \(defects among its OK parts reviewed\): "
                                              r"50\.0 % \(2 of 4; 95 %: \d+\.\d % – \d+\.\d %\)"))
    expect(sample).to_contain_text(re.compile(r"defects passed \(of the defects reviewed, judged OK\): "
                                              r"66\.7 % \(2 of 3; 95 %"))
    # the reviewed parts' counts stay, named for what they are, below the sample's
    expect(rates.locator('[data-rates="reviewed"]')).to_contain_text("of the parts people reviewed")
    assert rates.inner_text().index("audit sample") < rates.inner_text().index("of the parts people reviewed")
    p.shot("models-sample-rates")
    _row(page, 2).locator('button[data-act="compare"]').click()
    expect(page.locator("#compare-view")).to_be_visible()
    expect(page.locator("#uncompared-parts")).to_have_text("0")
    expect(page.locator("#not-compared-parts")).to_have_count(0)
    expect(page.locator("#compare-sample")).to_contain_text("6 judged, 6 reviewed")
    expect(page.locator("#compare-sample tr").nth(1)).to_contain_text("50.0 % (2 of 4;")
    expect(page.locator("#compare-reviewed")).to_be_visible()
    p.shot("models-compare-sample")
