"""The shift report's handover: an operator writes the shift's note on the page (kept with
who and when, printed with the report), and the station's start is listed in its shift."""
from __future__ import annotations

import datetime as dt


def test_an_operator_writes_the_handover_note_and_sees_the_stations_start(pages):
    p = pages("operator")
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    page = p.open(f"/app/report?at={now}", ready="#handover")
    page.locator("#handover-note").fill("press 2 guard loose, maintenance told at 09:10")
    page.locator("#save-note").click()
    page.wait_for_selector("#handover-note-text:has-text('press 2 guard loose')")
    assert "written by" in page.locator("#handover-note-said").inner_text()
    # said in the status line: an error left there before read as this save's
    assert page.locator("#status").inner_text() == "Handover note saved."
    assert "started" in page.locator("#stops-and-starts").inner_text()


def test_an_operator_signs_the_shift_report_and_reads_what_changed_since(pages, station):
    from .conftest import api, expect, page_answered
    from .test_spc_tuning import plant_hours
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, minute=0, second=0, microsecond=0)
    # the parts of the last whole hour, and a time in it: one shift holds both (shifts start on the hour)
    plant_hours(station.data_dir, "LSIG", [(12, 2)], now)
    at = (now - dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    p = pages("operator")
    # a shift with no part offers nothing to sign (the API refuses it: the button could only fail)
    page = p.open("/app/report?at=2020-01-06T10:00:00Z", ready="#signed")
    expect(page.locator("#sign-nothing")).to_have_text("No part in this shift: nothing to sign.")
    assert page.locator("#sign-shift").count() == 0
    page = p.open(f"/app/report?line=LSIG&at={at}", ready="#signed")
    expect(page.locator("#signed")).to_contain_text("Not signed yet")
    page.fill("#sign-note", "handed over to B shift")
    page.dblclick("#sign-shift")                                    # a double tap signs once
    expect(page.locator("#status")).to_contain_text("Signed: the report as it is now is kept as issued report")
    item = page.locator("#signed-list li")
    expect(item).to_have_count(1)
    expect(item).to_contain_text("handed over to B shift (#")
    expect(item).to_contain_text("revision 1")
    page_answered(page)
    with api(station, "operator") as c:
        (signed,) = [x for x in c.get("/api/v1/reports/issued", params={"kind": "shift"}).json()["issued"]
                     if x["line"] == "LSIG"]
        assert signed["note"] == "handed over to B shift" and signed["kind"] == "shift"
        (ng,) = c.get("/api/v1/inspections", params={"line": "LSIG", "verdict": "NG", "limit": 1}).json()["items"]
        assert c.post(f"/api/v1/inspections/{ng['id']}/review", json={"label": "good"}).status_code == 200
    item.get_by_role("button", name="changed since?").click()
    expect(page.locator("#status")).to_contain_text(f"Signed report {signed['id']}: ")
    expect(page.locator("#status")).to_contain_text("reviews: NG reviewed good (false rejects) 0 -> 1")
    p.shot("shift-report-signed")
    expect(item.locator("form.withdraw")).to_have_count(1)             # there, and hidden from an operator
    expect(item.locator("form.withdraw")).to_be_hidden()

    # a signature made in error is withdrawn by an engineer with a reason, and stays listed, marked
    eng = pages("engineer").open(f"/app/report?line=LSIG&at={at}", ready="#signed-list")
    row = eng.locator("#signed-list li")
    row.locator("input[name=reason]").fill("signed for the wrong line")
    row.get_by_role("button", name="Withdraw").click()
    expect(eng.locator("#status")).to_contain_text(f"Signed report {signed['id']} withdrawn")
    expect(row).to_contain_text("WITHDRAWN")
    expect(row).to_contain_text("signed for the wrong line")
    expect(row.get_by_role("button", name="Withdraw")).to_have_count(0)
