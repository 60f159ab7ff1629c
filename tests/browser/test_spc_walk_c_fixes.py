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


def _issued_twice(station, line: str, withdrawn: tuple[int, ...]) -> tuple[list[int], str, str]:
    """A window of ``line``'s last two hours issued twice (revisions 1 and 2), those at the
    indices ``withdrawn`` withdrawn: the ids, since and until."""
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, minute=0, second=0, microsecond=0)
    plant_hours(station.data_dir, line, [(10, 1), (10, 0)], now)
    since = (now - dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    until = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    ids = []
    with api(station, "engineer") as c:
        for _ in range(2):
            r = c.post("/api/v1/reports/period/issue", params={"line": line, "since": since, "until": until},
                       json={"note": line})
            assert r.status_code == 201, r.text
            ids.append(r.json()["issued"]["id"])
        for i in withdrawn:
            c.post(f"/api/v1/reports/issued/{ids[i]}/withdraw", json={"reason": "wrong customer"}).raise_for_status()
    return ids, since, until


def _issue_again_called_off(pages, line: str, since: str, until: str) -> tuple[object, list[str]]:
    """Issue the window again on the SPC page and call it off at its question: the page and
    what it asked."""
    page = pages(role="engineer").open(f"/app/spc?line={line}&by=hour&since={since}&until={until}", "#p-chart svg")
    asked: list[str] = []

    def answer(d):
        asked.append(d.message)
        d.dismiss()
    page.once("dialog", answer)
    page.fill("#issue-note", f"{line} again")
    page.click("#issue-month")
    return page, asked


def test_issue_after_every_revision_was_withdrawn_says_none_stands(pages, station):
    ids, since, until = _issued_twice(station, "LWD", withdrawn=(0, 1))
    page, asked = _issue_again_called_off(pages, "LWD", since, until)
    expect(page.locator("#status")).to_contain_text("Not issued: no report stands for this window")
    assert len(asked) == 1 and f"#{ids[1]} was withdrawn and no report of this window stands" in asked[0], asked
    assert "replacing #" not in asked[0], asked


def test_the_spc_pages_confirm_after_a_withdrawn_revision_says_what_the_header_will(pages, station):
    """After a withdrawn revision the page asked "#2 was withdrawn; this replaces #1, which
    still stands", where the new revision's header says it replaces #2 (review)."""
    ids, since, until = _issued_twice(station, "LWE", withdrawn=(1,))
    page, asked = _issue_again_called_off(pages, "LWE", since, until)
    expect(page.locator("#status")).to_contain_text(f"Not issued: report #{ids[0]} stands")
    assert len(asked) == 1 and f"it follows withdrawn #{ids[1]}" in asked[0], asked
    assert f"#{ids[0]}, the one that stands now, would no longer be the newest" in asked[0], asked
    assert f"this replaces #{ids[0]}" not in asked[0], asked
