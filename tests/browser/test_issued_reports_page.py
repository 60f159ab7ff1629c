"""The SPC page's issued period reports: an engineer issues the window shown with a note
(not filters typed since), the list shows it with its Excel as issued; an operator sees the list, not the button."""
from __future__ import annotations

import datetime as dt

from .conftest import api, expect, page_answered
from .test_spc_tuning import plant_hours


def test_an_engineer_issues_the_period_report_and_an_operator_reads_the_list(pages, station):
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, minute=0, second=0, microsecond=0)
    plant_hours(station.data_dir, "LI", [(20, 1), (20, 2)], now)
    since = (now - dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    until = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    with api(station, "operator") as c:
        before = {r["id"] for r in c.get("/api/v1/reports/issued").json()["issued"]}

    page = pages(role="engineer").open(f"/app/spc?line=LI&by=hour&since={since}&until={until}", "#p-chart svg")
    issue_posts: list[str] = []
    page.on("request", lambda r: issue_posts.append(r.url) if r.method == "POST" and "/issue" in r.url else None)
    page.fill("#filters input[name=line]", "LX")         # typed, Show not pressed: the charts are LI's
    page.fill("#issue-note", "sent to ACME with 8D 114")
    page.dblclick("#issue-month")                          # a double tap issues it once
    expect(page.locator("#status")).to_contain_text("Period report issued")
    row = page.locator("#issued-table tbody tr").filter(has_text="sent to ACME with 8D 114")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("LI")
    page_answered(page)
    assert len(issue_posts) == 1, issue_posts

    with api(station, "operator") as c:
        (new,) = [r for r in c.get("/api/v1/reports/issued").json()["issued"] if r["id"] not in before]
        assert (new["line"], new["since"], new["until"], new["note"]) == ("LI", since, until,
                                                                          "sent to ACME with 8D 114")
        sent = c.get(f"/api/v1/reports/issued/{new['id']}").json()["report"]
        assert sent["total"]["parts"] == 40 and sent["total"]["NG"] == 3
    href = row.locator("a", has_text="Excel").get_attribute("href")
    assert href == f"/api/v1/reports/issued/{new['id']}?format=xlsx"

    # what differs since: nothing yet; then an NG part reviewed good, and the counts that moved are said
    row.get_by_role("button", name="changed since?").click()
    expect(page.locator("#status")).to_contain_text(f"Issued report {new['id']}: the report made from the records "
                                                    "now has the same counts")
    with api(station, "operator") as c:
        (ng,) = c.get("/api/v1/inspections", params={"line": "LI", "verdict": "NG", "limit": 1}).json()["items"]
        assert c.post(f"/api/v1/inspections/{ng['id']}/review", json={"label": "good"}).status_code == 200
    row.get_by_role("button", name="changed since?").click()
    said = page.locator("#status")
    expect(said).to_contain_text("count(s) differ in the report made from the records now")
    assert "LI: NG reviewed good 0 -> 1" in said.text_content(), said.text_content()

    op = pages(role="operator").open(f"/app/spc?line=LI&by=hour&since={since}&until={until}", "#p-chart svg")
    expect(op.locator("#issued-table tbody tr").filter(has_text="sent to ACME with 8D 114")).to_have_count(1)
    expect(op.locator("#issue-month")).to_be_hidden()


def test_a_corrected_report_is_the_next_revision_and_one_sent_in_error_is_withdrawn(pages, station):
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, minute=0, second=0, microsecond=0)
    plant_hours(station.data_dir, "LW", [(10, 1), (10, 0)], now)
    since = (now - dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    until = now.strftime("%Y-%m-%dT%H:%M:%SZ")

    page = pages(role="engineer").open(f"/app/spc?line=LW&by=hour&since={since}&until={until}", "#p-chart svg")
    expect(page.locator("#issue-window")).to_contain_text("(the filters' window)")
    page.fill("#issue-note", "LW first, to ACME")
    page.click("#issue-month")
    first = page.locator("#issued-table tbody tr").filter(has_text="LW first, to ACME")
    expect(first).to_have_count(1)
    page.fill("#issue-note", "LW corrected, to ACME")
    page.once("dialog", lambda d: d.accept())     # a new revision of a window issued is asked first
    page.click("#issue-month")
    expect(page.locator("#status")).to_contain_text("; revision 2, replaces #")
    second = page.locator("#issued-table tbody tr").filter(has_text="LW corrected, to ACME")
    with api(station, "operator") as c:
        ids = {r["note"]: r["id"] for r in c.get("/api/v1/reports/issued").json()["issued"]
               if r["note"].startswith("LW ")}
    expect(second.locator(".issued-state")).to_have_text(f"#{ids['LW corrected, to ACME']}, revision 2 · replaces "
                                                         f"#{ids['LW first, to ACME']}")
    expect(first.locator(".issued-state")).to_have_text(f"#{ids['LW first, to ACME']}, revision 1 · replaced by "
                                                        f"#{ids['LW corrected, to ACME']}")

    # withdrawn with a reason: it stays listed, marked, and no longer offers Withdraw
    first.locator("input[name=reason]").fill("sent to the wrong customer")
    first.get_by_role("button", name="Withdraw").click()
    expect(page.locator("#status")).to_contain_text(f"Issued report {ids['LW first, to ACME']} withdrawn")
    expect(first.locator(".issued-state")).to_contain_text("WITHDRAWN")
    expect(first.locator(".issued-state")).to_contain_text("sent to the wrong customer")
    expect(first.get_by_role("button", name="Withdraw")).to_have_count(0)
    expect(second.get_by_role("button", name="Withdraw")).to_have_count(1)
    page_answered(page)
    with api(station, "operator") as c:
        got = c.get(f"/api/v1/reports/issued/{ids['LW first, to ACME']}").json()["issued"]["withdrawn"]
        assert got["reason"] == "sent to the wrong customer"

    # the window Issue keeps is said before it is pressed: without from/until the last whole month
    page = pages(role="engineer").open("/app/spc?line=LW", "#p-chart-window")
    today = dt.date.fromisoformat(page.evaluate("LG.isoToLocal(new Date().toISOString())")[:10])
    last = today.replace(day=1) - dt.timedelta(days=1)
    expect(page.locator("#issue-window")).to_have_text(
        f"Issue keeps the last whole month, {last.replace(day=1).isoformat()} to {last.isoformat()} (plant days); set "
        "from/until and Show for another window.")
    # January's is the December before; a leap year's February has 29 days
    assert page.evaluate("LG.lastWholeMonth(Date.UTC(2027, 0, 15, 12))") == ["2026-12-01", "2026-12-31"]
    assert page.evaluate("LG.lastWholeMonth(Date.UTC(2028, 2, 10, 12))") == ["2028-02-01", "2028-02-29"]

    op = pages(role="operator").open(f"/app/spc?line=LW&by=hour&since={since}&until={until}", "#p-chart svg")
    row = op.locator("#issued-table tbody tr").filter(has_text="LW corrected, to ACME")
    expect(row.locator(".issued-state")).to_contain_text("revision 2")
    expect(row.locator("form.withdraw")).to_have_count(1)         # there, and hidden from an operator
    expect(row.locator("form.withdraw")).to_be_hidden()


def test_older_issued_reports_are_a_tap_away(pages, station):
    """The list stopped at the last 20: a report issued two years ago, asked for in an audit,
    could not be found on the page."""
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, minute=0, second=0, microsecond=0)
    plant_hours(station.data_dir, "LO", [(2, 0)], now)
    since = (now - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    until = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    with api(station, "engineer") as c:
        for i in range(41):
            r = c.post("/api/v1/reports/period/issue", params={"line": "LO", "since": since, "until": until},
                       json={"note": f"copy {i}"})
            assert r.status_code == 201, r.text
        everything = c.get("/api/v1/reports/issued", params={"kind": "period", "limit": 1000}).json()["issued"]
        first = c.get("/api/v1/reports/issued", params={"kind": "period", "limit": 20}).json()
        second = c.get("/api/v1/reports/issued", params={"kind": "period", "limit": 20,
                                                         "before": first["next_before"]}).json()
    assert [r["id"] for r in first["issued"] + second["issued"]] == [r["id"] for r in everything[:40]]
    page = pages(role="operator").open(f"/app/spc?line=LO&since={since}&until={until}", "#issued-table")
    rows = page.locator("#issued-table tbody tr")
    expect(rows).to_have_count(20)
    page.click("#issued-older")
    expect(rows).to_have_count(40)
    expect(rows.nth(39)).to_have_attribute("data-issued", str(everything[39]["id"]))
    page.click("#issued-older")
    expect(rows).to_have_count(min(60, len(everything)))
    if len(everything) <= 60:
        expect(page.locator("#issued-older")).to_be_hidden()
