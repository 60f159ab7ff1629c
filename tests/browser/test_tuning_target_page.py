"""The Tuning page sets the NG threshold by a false-reject target (README step 8): typed as a
percentage, measured on the good parts of the random audit sample, with how many parts it rests
on, its 95% bound, the unreviewed audit parts counted as good and the escapes on reviewed defects; a
target the parts cannot hold is refused saying how many it needs. Before, the page had only the
slider, whose false-reject share counts the parts reviewed good (mostly the model's false alarms)."""
from __future__ import annotations

import pytest

from .conftest import api, expect


def plant_parts(data_dir, model_id: str, parts: list[tuple[float, bool, str | None]]) -> None:
    """Records of product 'cell' judged by ``model_id`` (threshold 0.5, no band), written
    straight to the station's database: (score, audit sample, review label or None)."""
    from lineguard.line.db import Database
    from lineguard.line.orm import Inspection
    db = Database(f"sqlite:///{(data_dir / 'lineguard.db').resolve()}")
    with db.session() as s:
        for i, (score, audit, label) in enumerate(parts):
            s.add(Inspection(part_id=f"TT-{i}", line="LT", station="S1", product="cell", source="api",
                             verdict="NG" if score > 0.5 else "OK", score=score, threshold=0.5, pixel_threshold=0.5,
                             model_id=model_id, model_version="fake-1", registry_version=1, timings_ms={},
                             image_sha256=f"tt{i:05d}", image_width=64, image_height=64, audit_sample=audit,
                             reviewed=label is not None, review_label=label))
        s.commit()
    db.dispose()


@pytest.fixture(scope="module")
def audited(station):
    with api(station) as c:
        (cell,) = [m for m in c.get("/api/v1/models", params={"product": "cell"}).json()["items"] if m["active"]]
    good = [(round(0.001 * (j + 1), 3), True, None) for j in range(300)]        # audit sample, judged OK
    alarms = [(0.6 + 0.005 * j, False, "good") for j in range(20)]             # false alarms reviewed good
    defects = [(0.25, False, "defect"), (0.55, False, "defect"), (0.8, False, "defect")]
    unsure = [(0.9, True, None)]                                               # audit NG nobody reviewed
    plant_parts(station.data_dir, cell["model_id"], good + alarms + defects + unsure)
    return station


def test_a_false_reject_target_moves_the_threshold_and_says_what_it_rests_on(pages, audited):
    p = pages(role="engineer")
    page = p.open("/app/tuning?product=cell", "#rates")
    expect(page.locator("#threshold-value")).to_have_text("0.5000")
    page.fill("#frr-target", "1")
    page.get_by_role("button", name="Set NG threshold").click()
    # the 300 audit good parts and the unreviewed NG one counted as good: rank ceil(302 * 0.99) = 299
    # of 301: 0.299, exactly (not the slider's step)
    expect(page.locator("#threshold-value")).to_have_text("0.2990")
    said = page.locator("#target-set")
    expect(said).to_contain_text("measured on 301 good parts of the random audit sample")
    expect(said).to_contain_text("2 of them above it")
    expect(said).to_contain_text("with 95 % confidence")
    expect(page.locator("#target-unreviewed")).to_contain_text("1 part(s) of the audit sample judged NG or REVIEW")
    expect(page.locator("#target-escapes")).to_contain_text("1 of 3 reviewed defects would be judged OK")
    expect(page.locator("#escapes")).to_have_text("33.33 %")          # the live rate agrees: 0.25 <= 0.299
    p.shot("tuning-target")
    with api(audited) as c:
        before = {m["version"] for m in c.get("/api/v1/models", params={"product": "cell"}).json()["items"]}
    page.click("#save")
    expect(page.locator("#status")).to_contain_text("saved as version")
    with api(audited) as c:
        after = c.get("/api/v1/models", params={"product": "cell"}).json()["items"]
    (new,) = [m for m in after if m["version"] not in before]
    assert new["threshold"] == 0.299
    # a target 300 parts cannot hold: refused with the count, the threshold stays
    page.fill("#frr-target", "0,1")
    page.get_by_role("button", name="Set NG threshold").click()
    expect(page.locator("#target-refused")).to_contain_text("needs at least 999 good parts; you have 301")
    expect(page.locator("#target-refused")).to_contain_text("301 parts hold a target of 0.34% or more")
    # a share typed in the % box (walk: 0.005 asked for 0.005 % and said nothing of it)
    page.fill("#frr-target", "0.005")
    page.get_by_role("button", name="Set NG threshold").click()
    expect(page.locator("#target-refused")).to_contain_text("You typed 0.005 %: for 0.5 %, type 0.5.")
    expect(page.locator("#threshold-value")).to_have_text("0.2990")
    page.fill("#frr-target", "half")
    page.get_by_role("button", name="Set NG threshold").click()
    expect(page.locator("#target-result")).to_contain_text("0.5 for 0.5 %")
    # moved by hand: the page no longer calls it the target's
    page.fill("#frr-target", "2")
    page.get_by_role("button", name="Set NG threshold").click()
    expect(page.locator("#target-set")).to_be_visible()
    page.locator("#threshold").fill("0.4")
    expect(page.locator("#target-moved")).to_contain_text("Moved by hand")
    expect(page.locator("#threshold-value")).not_to_have_text("0.2990")
