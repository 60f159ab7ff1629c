"""The shift report page for a shift no one has worked yet (said so: no running shift's words,
no note or signature form), and the every-line report listing its lines' notes and signatures
(it said "no note yet" and "Not signed yet" beside them: an operator wrote a second copy)."""
from __future__ import annotations

import datetime as dt


def test_a_shift_ahead_says_it_has_not_started_and_offers_the_running_one(pages):
    from .conftest import expect
    ahead = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    page = pages("operator").open(f"/app/report?at={ahead}", ready="#not-started")
    expect(page.locator("#shift-label")).to_have_text("This shift has not started yet")
    assert page.locator("#handover-note").count() == 0 and page.locator("#sign-shift").count() == 0
    shown = page.locator("#report").inner_text()
    assert "(running)" not in shown and "ran through the shift" not in shown and "still active" not in shown
    page.locator("#running-shift").click()
    expect(page.locator("#shift-label")).to_contain_text("(running)")


def test_the_every_line_report_shows_each_lines_note_and_signature(pages, station):
    from .conftest import api, expect
    from .test_spc_tuning import plant_hours
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, minute=0, second=0, microsecond=0)
    plant_hours(station.data_dir, "LNOTE", [(12, 2)], now)
    at = (now - dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with api(station, "operator") as c:
        assert c.put("/api/v1/reports/shift/note", json={"at": at, "line": "LNOTE",
                                                         "note": "belt 2 squeaks"}).status_code == 200
        assert c.post("/api/v1/reports/shift/sign", json={"at": at, "line": "LNOTE",
                                                          "note": "to B shift"}).status_code == 201
    page = pages("operator").open(f"/app/report?at={at}", ready="#handover")
    expect(page.locator("#lines-notes p[data-line=LNOTE]")).to_contain_text("belt 2 squeaks")
    expect(page.locator("#signed-lines li[data-line=LNOTE]")).to_contain_text("to B shift")
    expect(page.locator("#lines-notes")).to_contain_text("Each line's note and signatures are on its own report")
    link = page.locator("#lines-notes p[data-line=LNOTE] a")
    assert "line=LNOTE" in link.get_attribute("href")


def test_a_tablet_whose_clock_runs_ahead_still_reaches_the_running_shift(pages):
    """"Show the running shift" asks for the shift at this device's now: a tablet two days
    ahead of the station was refused ("has not started"), and the page's own button asked
    the same again. It is asked again at the station's now."""
    from .conftest import expect
    page = pages("operator").open("/app/report", ready="#running-shift")
    page.clock.set_fixed_time(page.evaluate("Date.now()") / 1000 + 2 * 86400)
    page.locator("#running-shift").click()
    expect(page.locator("#shift-label")).to_contain_text("(running)")
    assert page.locator("#not-started").count() == 0


def test_a_tablet_whose_clock_runs_behind_reaches_the_running_shift_not_the_one_before(pages):
    """A tablet's clock behind the station's (at a shift change, minutes are enough) asked for
    the shift before and showed it, ended, where the running one was asked for: the button
    asks for the station's now (at=now)."""
    from .conftest import expect
    page = pages("operator").open("/app/report", ready="#running-shift")
    page.clock.set_fixed_time(page.evaluate("Date.now()") / 1000 - 86400)
    page.locator("#running-shift").click()
    expect(page.locator("#shift-label")).to_contain_text("(running)")
