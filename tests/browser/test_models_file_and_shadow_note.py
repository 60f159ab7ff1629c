"""The Models page says which version's file cannot be loaded (and offers it no activation),
and what an activation did to the shadow running (compared with the new live version from
then on), on screen until the next change."""
from __future__ import annotations

import hashlib

from .conftest import api, expect
from server.conftest import fake_model_bytes


def _row(page, version: int):
    return page.locator(f'#versions tr[data-version="{version}"]')


def test_an_unusable_file_and_the_shadows_new_baseline_are_shown(pages, station):
    with api(station, "engineer") as c:
        for version, activate in (("truth-1", "true"), ("truth-2", "false"), ("truth-3", "false"),
                                  ("truth-4", "false")):
            r = c.post("/api/v1/models", files={"file": (f"{version}.lgm", fake_model_bytes(0.5, version))},
                       data={"product": "truth", "activate": activate})
            assert r.status_code == 201, r.text
        assert c.post("/api/v1/models/truth/shadow", json={"version": 2}).status_code == 200
    # v3's file lost from the models folder (a restore without it): stored under its content's hash
    digest = hashlib.sha256(fake_model_bytes(0.5, "truth-3")).hexdigest()
    (station.data_dir / "models" / digest[:2] / digest[2:4] / f"{digest}.lgm").unlink()

    p = pages(role="engineer")
    page = p.open("/app/models?product=truth", "#versions table")
    page.on("dialog", lambda d: d.accept())
    expect(_row(page, 3).locator('[data-what="file-problem"]')).to_contain_text(
        "file unusable: missing from the station's models folder")
    expect(_row(page, 3).locator('button[data-act="activate"]')).to_have_count(0)
    expect(_row(page, 3).locator('button[data-act="shadow"]')).to_have_count(0)
    expect(_row(page, 3).locator('[data-what="cannot-activate"]')).to_be_visible()
    expect(_row(page, 4).locator('[data-what="file-problem"]')).to_have_count(0)

    note = page.locator("#change-note")
    expect(note).to_be_hidden()
    _row(page, 4).locator('button[data-act="activate"]').click()
    expect(note).to_be_visible()
    expect(note).to_contain_text("truth/* v2 runs on in shadow, compared from now on with truth/* v4")
    expect(_row(page, 4)).to_have_attribute("data-state", "active")
