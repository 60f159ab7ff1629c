"""The SPC page's walk: the rates "from reviewed parts" drawn each on its own scale with no
axis (8.95 % drawn longer than 46.67 % beside it), and Issue after every revision of a
window was withdrawn asking "Issue revision 3, replacing #2?" of a #2 withdrawn."""
from __future__ import annotations

import datetime as dt

from .conftest import api, expect
from .test_spc_tuning import plant_hours


def test_the_reviewed_rates_share_one_labelled_scale(pages, station):
    from lineguard.line.db import Database
    from lineguard.line.orm import Inspection
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, minute=0, second=0, microsecond=0)
    plant_hours(station.data_dir, "LWC", [(200, 20)], now, defect_types=("crack",))
    db = Database(f"sqlite:///{(station.data_dir / 'lineguard.db').resolve()}")
    with db.session() as s:      # 5 of the 20 NG parts reviewed good: two rates far apart
        for p in s.query(Inspection).filter_by(line="LWC", verdict="NG").order_by(Inspection.id).limit(5):
            p.review_label, p.defect_type = "good", None
        s.commit()
    db.dispose()
    page = pages("operator").open("/app/spc?line=LWC", "#review-rates svg.interval")
    bars = page.locator("#review-rates svg.interval")
    expect(bars).to_have_count(2)
    scales = [bars.nth(i).get_attribute("data-scale-max") for i in range(2)]
    assert scales[0] is not None and scales[0] == scales[1], scales
    # on one scale the circles stand as far from 0 as their rates: 5/20 against 5/185
    x = [float(bars.nth(i).locator("circle").get_attribute("cx")) - 6 for i in range(2)]
    assert abs(x[1] / x[0] - (5 / 20) / (5 / 185)) < 0.05 * (5 / 20) / (5 / 185), x
    expect(bars.nth(0).locator("text.scale-label")).to_have_count(2)


def test_issue_after_every_revision_was_withdrawn_says_none_stands(pages, station):
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, minute=0, second=0, microsecond=0)
    plant_hours(station.data_dir, "LWD", [(10, 1), (10, 0)], now)
    since = (now - dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    until = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    with api(station, "engineer") as c:
        for _ in range(2):
            r = c.post("/api/v1/reports/period/issue", params={"line": "LWD", "since": since, "until": until},
                       json={"note": "LWD"})
            assert r.status_code == 201, r.text
            c.post(f"/api/v1/reports/issued/{r.json()['issued']['id']}/withdraw",
                   json={"reason": "wrong customer"}).raise_for_status()
        last = r.json()["issued"]["id"]
    page = pages(role="engineer").open(f"/app/spc?line=LWD&by=hour&since={since}&until={until}", "#p-chart svg")
    asked = []

    def answer(d):
        asked.append(d.message)
        d.dismiss()
    page.once("dialog", answer)
    page.fill("#issue-note", "LWD again")
    page.click("#issue-month")
    expect(page.locator("#status")).to_contain_text("Not issued: no report stands for this window")
    assert len(asked) == 1 and f"#{last} was withdrawn and no report of this window stands" in asked[0], asked
    assert "replacing #" not in asked[0], asked
