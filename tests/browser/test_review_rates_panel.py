"""The SPC page's rates panel: the share of good parts scrapped first, with its counts; the
rejected parts reviewed good under their own label; what a claim from the audit needs."""
from __future__ import annotations

import re

from .conftest import api, expect, png_bytes, post_part


def test_spc_shows_good_parts_scrapped_first_then_rejected_parts_reviewed_good_and_the_audit_needed(pages, station):
    with api(station, "operator") as c:
        # 3 NG parts reviewed (1 good, 2 defects), 5 OK parts not reviewed: 1 of the 6 good
        # parts made was scrapped, while 1 of the 3 rejected parts was good
        ids = [post_part(c, png_bytes(b, seed=5300 + i), f"scrap-{i}", line="LSCRAP").json()["id"]
               for i, b in enumerate((200, 205, 210, 60, 62, 64, 66, 68))]
        for pid, label in zip(ids, ("good", "defect", "defect")):
            body = {"label": label, **({"defect_type": "scratch"} if label == "defect" else {})}
            assert c.post(f"/api/v1/inspections/{pid}/review", json=body).status_code == 200
        got = [c.get(f"/api/v1/inspections/{pid}").json()["verdict"] for pid in ids]
    assert got == ["NG"] * 3 + ["OK"] * 5, got
    p = pages("operator")
    page = p.open("/app/spc?line=LSCRAP", '#review-rates [data-rate="good_scrapped"]')
    rates = page.locator("#review-rates [data-rate]")
    expect(rates.first).to_have_attribute("data-rate", "good_scrapped")
    gs = page.locator('#review-rates [data-rate="good_scrapped"]')
    expect(gs).to_contain_text("Good parts scrapped")
    expect(gs).to_contain_text("1 of 6 good parts were rejected as NG: 16.67 %")
    expect(gs).to_contain_text("every NG part reviewed")
    fr = page.locator('#review-rates [data-rate="false_reject"]')
    expect(fr).to_contain_text("Rejected parts reviewed good (share of NG parts, not of good parts)")
    expect(fr).to_contain_text("1 of 3 NG parts reviewed were called good")
    expect(page.locator('#review-rates [data-rate="escape_audit"]')).to_contain_text(
        "Defective share of passed parts (audit sample)")
    # no OK part audited: the audited parts a claim of 1000 ppm at 95 % needs, and the setting
    needed = page.locator("#audit-needed")
    expect(needed).to_contain_text("under 0.1 % (1,000 ppm) at 95 % confidence")
    expect(needed).to_contain_text(re.compile(r"2,995 audited OK parts .*: 2,995 more"))
    expect(needed).to_contain_text(re.compile(r"At the audit rate of 2\.0 % that is about [\d,]+ more parts made"))
    expect(needed).to_contain_text("audit_sample_rate")
    p.shot("spc-review-rates-good-scrapped")
