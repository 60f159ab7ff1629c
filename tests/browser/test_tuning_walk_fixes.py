"""The Tuning page, from a tester's walk: the photo check's REVIEW parts count as REVIEW, a
review band that is not there any more is said (never dropped quietly), and a threshold saved
from a false-reject target keeps the target's promise."""
from __future__ import annotations

import pytest

from .conftest import api, expect


def plant_parts(data_dir, model_id: str, parts: list[tuple[float, bool, bool]]) -> None:
    """Records of product 'cell' judged by ``model_id`` (threshold 0.5, no band), straight to
    the station's database: (score, audit sample, photo doubted)."""
    from lineguard.line.db import Database
    from lineguard.line.orm import Inspection
    db = Database(f"sqlite:///{(data_dir / 'lineguard.db').resolve()}")
    with db.session() as s:
        for i, (score, audit, doubted) in enumerate(parts):
            s.add(Inspection(part_id=f"TW-{i}", line="LT", station="S1", product="cell", source="api",
                             verdict="REVIEW" if doubted else "NG" if score > 0.5 else "OK", score=score,
                             threshold=0.5, pixel_threshold=0.5, model_id=model_id, model_version="fake-1",
                             registry_version=1, timings_ms={}, image_sha256=f"tw{i:05d}", image_width=64,
                             image_height=64, audit_sample=audit,
                             photo_issues=["blurred: sharpness 0.1"] if doubted else None))
        s.commit()
    db.dispose()


@pytest.fixture(scope="module")
def walked(station):
    with api(station) as c:
        (cell,) = [m for m in c.get("/api/v1/models", params={"product": "cell"}).json()["items"] if m["active"]]
    good = [(round(0.001 * (j + 1), 3), True, False) for j in range(300)]     # audit sample, judged OK
    ng = [(0.7, False, False)] * 2
    blurred = [(0.9, False, True)] * 3 + [(0.05, False, True)] * 2          # REVIEW whatever the score
    plant_parts(station.data_dir, cell["model_id"], good + ng + blurred)
    return station


def _version(srv, **body) -> int:
    with api(srv, "engineer") as c:
        r = c.post("/api/v1/models/cell/threshold", json=body)
        assert r.status_code == 201, r.text
        return r.json()["version"]


def test_the_photo_check_s_review_parts_are_in_the_review_load_not_the_ng_rate(pages, walked):
    p = pages(role="engineer")
    page = p.open("/app/tuning?product=cell&version=1", "#rates")
    # 307 recent parts: 5 sent to REVIEW by the photo check, 2 NG (the blurred 0.9s are not NG)
    expect(page.locator("#review-load")).to_have_text("1.63 %")
    expect(page.locator("#ng-rate")).to_have_text("0.65 %")
    expect(page.locator("#photo-review")).to_contain_text("5 of 307 by the photo check")
    # a what-if threshold: the same parts stay REVIEW
    page.locator("#threshold").fill("0.8")
    expect(page.locator("#review-load")).to_have_text("1.63 %")
    expect(page.locator("#ng-rate")).to_have_text("0.00 %")


def test_a_review_band_that_is_not_there_is_said_and_not_saved(pages, walked):
    v = _version(walked, version=1, threshold=0.5, review_threshold=0.35)
    p = pages(role="engineer")
    page = p.open(f"/app/tuning?product=cell&version={v}", "#rates")
    expect(page.locator("#use-band")).to_be_checked()
    # (b) the review slider dragged above the NG one: said, the box still ticked, Save held
    page.locator("#review-threshold").fill("0.6")
    expect(page.locator("#band-wrong")).to_contain_text("is at or above the NG threshold (0.5000)")
    expect(page.locator("#band-wrong")).to_contain_text("Lower the review threshold below the NG threshold, or untick")
    expect(page.locator("#use-band")).to_be_checked()
    expect(page.locator("#save")).to_be_disabled()
    page.locator("#review-threshold").fill("0.3")
    expect(page.locator("#band-wrong")).to_be_hidden()
    expect(page.locator("#save")).to_be_enabled()
    # (a) a target whose threshold lands under the review threshold: the band removed, said, the box unticked
    page.reload()
    page.wait_for_selector("#rates")
    page.fill("#frr-target", "1")
    page.get_by_role("button", name="Set NG threshold").click()
    expect(page.locator("#target-band-removed")).to_contain_text("the review band is removed")
    expect(page.locator("#use-band")).not_to_be_checked()
    expect(page.locator("#review-value")).to_have_text("no review band")
    # ticked again: the band is the version's, above the new threshold, said so
    page.locator("#use-band").check()
    expect(page.locator("#band-wrong")).to_contain_text("(0.3500) is at or above the NG threshold")
    expect(page.locator("#save")).to_be_disabled()


def test_a_threshold_saved_from_a_target_keeps_its_promise(pages, walked):
    p = pages(role="engineer")
    page = p.open("/app/tuning?product=cell&version=1", "#rates")
    expect(page.locator("#promise")).to_have_count(0)         # the uploaded model promises nothing
    page.fill("#frr-target", "1")
    page.get_by_role("button", name="Set NG threshold").click()
    expect(page.locator("#target-set")).to_be_visible()
    page.click("#save")
    expect(page.locator("#status")).to_contain_text("with the 1 % false-reject target's promise")
    with api(walked) as c:
        newest = max(c.get("/api/v1/models", params={"product": "cell"}).json()["items"], key=lambda m: m["version"])
    assert "from a 1% false-reject target" in newest["note"]
    page = p.open(f"/app/tuning?product=cell&version={newest['version']}", "#rates")
    expect(page.locator("#promise")).to_contain_text("its 1 % false-reject target promised at most")
