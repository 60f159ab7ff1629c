"""What a gallery and part-page walk found: a back-to-front window's CSV link led to the
station's bare JSON refusal; /app/parts/abc was a bare JSON 422 with no menu; the review
queue of a line no part has said "every part here is reviewed"; and a missed defect found
in the OK queue was said as "defect confirmed"."""
from __future__ import annotations

from .conftest import api, expect, png_bytes, post_part, seen


def test_a_back_to_front_window_offers_no_download(pages, station):
    page = pages(role="operator").open("/app/gallery?verdict=any&since=2026-12-07T15:29:00Z"
                                       "&until=2026-12-07T15:28:00Z", "#main")
    expect(page.get_by_text("“from” is not before “until”; swap them")).to_be_visible()
    expect(page.locator("#csv-parts")).to_be_hidden()


def test_a_part_address_that_is_no_record_number_says_so_in_the_app(pages, station):
    page = pages(role="operator").open("/app/parts/abc", "#part-not-a-number")
    expect(page.locator("#part-not-a-number")).to_contain_text("“abc” is not a part's record number")
    expect(page.locator("#nav")).to_be_visible()                   # the app, with its menu: a way back


def test_an_empty_queue_of_a_line_says_it_may_be_a_slip_and_an_escape_is_said_as_one(pages, station):
    page = pages(role="operator").open("/app/review?queue=todo&line=NOSUCHLINE&poll=600", "#queue-empty")
    expect(page.locator("#queue-empty")).to_contain_text("no part is on a line of that name")
    with api(station, "operator") as c:
        post_part(c, png_bytes(40, seed=98900), "escape-1", line="LEsc")         # dark: the fake judges it OK
    page = pages(role="operator").open("/app/review?queue=OK&line=LEsc&poll=600", "#current h2")
    seen(page)
    page.keyboard.press("d")
    page.keyboard.press("1")
    expect(page.locator("#status")).to_contain_text("escape-1: missed defect recorded (an escape)")


def test_back_walks_through_the_gallery_s_filters(pages, station):
    """Walk: verdict OK then Show, lot L-2 then Show, then Back: the browser left the gallery
    (each Show replaced the address before it)."""
    page = pages(role="operator").open("/app/gallery", "#main")
    page.select_option("#filters select[name=verdict], form select[name=verdict]", "OK")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**verdict=OK**")
    page.fill("input[name=lot]", "L-2")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**lot=L-2**")
    page.go_back()
    page.wait_for_url("**verdict=OK**")
    assert "lot=" not in page.url and "/app/gallery" in page.url
    expect(page.locator("input[name=lot]")).to_have_value("")
    expect(page.locator("select[name=verdict]")).to_have_value("OK")
