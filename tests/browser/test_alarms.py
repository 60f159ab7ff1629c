"""The line view's alarm: five rejected parts in a row raise it live, an operator
acknowledges it with a note, and it is gone."""
from __future__ import annotations

from .conftest import api, expect, post_part, png_bytes


def test_a_run_of_ng_parts_raises_an_alarm_the_operator_acknowledges(pages, station):
    op = pages(role="operator")
    line = op.open("/app/", "#live.v-ok")
    panel = line.locator("#alarms-panel")
    expect(panel).to_be_hidden()
    with api(station, "operator") as c:
        for i in range(5):                      # the fake model: bright parts are NG
            assert post_part(c, png_bytes(220, seed=1500 + i), f"jam-{i}", line="L5", station="A1").status_code == 201
    item = panel.locator(".alarm-item")
    expect(item).to_have_count(1)               # live: the event stream, no reload
    expect(item).to_contain_text("Rejected parts in a row · line L5 · A1")
    expect(item).to_contain_text("5 parts in a row not passed")
    op.shot("line-view-alarm")
    item.get_by_role("textbox").fill("feeder 2 jammed, cleared")
    item.get_by_role("button", name="Acknowledge").click()
    expect(panel).to_be_hidden()
    with api(station, "operator") as c:
        (done,) = [a for a in c.get("/api/v1/alarms", params={"line": "L5"}).json()["items"]]
    assert done["ack_note"] == "feeder 2 jammed, cleared" and done["acked_by"].startswith("test-operator (key ")
    # the shift's handover report lists it, with who saw to it
    import datetime as dt
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    report = op.open(f"/app/report?line=L5&at={now}", "#report-alarms")
    expect(report.locator("#report-alarms tr[data-kind='ng_run']")).to_contain_text("feeder 2 jammed, cleared")
