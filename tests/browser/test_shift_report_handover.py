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
    assert "started" in page.locator("#stops-and-starts").inner_text()
