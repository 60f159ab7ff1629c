"""Engineer's words a night-shift operator met, said in the plant's: the SPC page's limits
("0.135% chance on a stable line"), scores with no limit or meaning beside them on the line
view, the review queue and the part page ("score 71.760", the photo's "NG 71.8 / 36.3"), the
shift report's score line (it told the operator to widen a time window the page has not got),
and a restart the line view showed only while it lasted ("reconnecting…"), then nothing."""
from __future__ import annotations

import datetime as dt

from .conftest import api, expect, png_bytes, post_part


def _ng_part(station, part_id, line):
    with api(station, "operator") as c:
        r = post_part(c, png_bytes(200, seed=61001), part_id, line=line, station="W1")
        assert r.status_code == 201, r.text
        body = r.json()
    assert body["verdict"] == "NG", body
    return body


def test_the_line_view_shows_a_score_against_its_limit_and_says_what_a_score_is(pages, station):
    part = _ng_part(station, "words-line-1", "LWords")
    p = pages("operator")
    line = p.open("/app/", f"#last-parts a.thumb[data-id='{part['id']}']")
    thumb = line.locator(f"#last-parts a.thumb[data-id='{part['id']}']")
    assert "(NG above 0.500: " in thumb.get_attribute("title")
    expect(line.locator("#score-means")).to_contain_text("how unlike the good parts")
    expect(line.locator("#score-means")).to_contain_text("is its verdict, its score and the NG threshold")


def test_the_review_queue_shows_a_score_against_its_limit_and_says_what_a_score_is(pages, station):
    part = _ng_part(station, "words-review-1", "LWordsRev")
    p = pages("operator")
    review = p.open("/app/review?queue=todo&line=LWordsRev&poll=600", "#current h2")
    ratio = f"{part['score'] / part['threshold']:.2f}"
    expect(review.locator("#score-text")).to_have_text(f"score {part['score']:.3f} (NG above 0.500: {ratio}×)")
    # the label quoted is the one on this part's photo
    label = "NG " + str(float(format(part["score"], ".3g"))) + " / 0.5"      # as the overlay writes it
    expect(review.locator("#score-means")).to_contain_text(f"“{label}”")
    assert "(NG above 0.500: " in review.locator("#queue li span.muted").first.get_attribute("title")


def test_the_part_page_says_what_the_label_on_its_photo_is(pages, station):
    part = _ng_part(station, "words-part-1", "LWordsPart")
    p = pages("operator")
    page = p.open(f"/app/parts/{part['id']}", "#score-means")
    label = "NG " + str(float(format(part["score"], ".3g"))) + " / 0.5"
    expect(page.locator("#score-means")).to_contain_text(f"The label on the photo, “{label}”, is the verdict")
    assert "(NG above 0.5000: " in page.locator("h2", has_text="Score").get_attribute("title")


def test_the_spc_limits_are_said_in_plant_words_with_the_number_kept(pages, station):
    _ng_part(station, "words-spc-1", "LWordsSpc")
    p = pages("operator")
    page = p.open("/app/spc?line=LWordsSpc", "#limits-mean")
    text = page.locator("#limits-mean").inner_text()
    assert "less than once in 740 points" in text and "look for" in text and "0.135 %" in text, text


def test_the_shift_reports_score_line_names_no_time_window(pages, station):
    _ng_part(station, "words-report-1", "LWordsRep")
    p = pages("operator")
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    page = p.open(f"/app/report?at={now}&line=LWordsRep", "#drift")
    text = page.locator("#drift").inner_text()
    assert "window" not in text and "baseline" not in text, text


def test_the_line_view_keeps_this_shifts_restart_in_sight(pages, station):
    from lineguard.line.config import StationConfig
    from lineguard.line.db import Database
    from lineguard.line.orm import StationRun, utcnow
    now = utcnow()
    db = Database(StationConfig(data_dir=station.data_dir).database_url)
    try:       # a second station PC's runs, as its station writes them: stopped cleanly, back 35 s later
        with db.session() as s:
            s.add_all([StationRun(process="station on words-pc", pid=1, started_at=now - dt.timedelta(seconds=300),
                                  seen_at=now - dt.timedelta(seconds=50), stopped_at=now - dt.timedelta(seconds=50)),
                       StationRun(process="station on words-pc", pid=2, started_at=now - dt.timedelta(seconds=15),
                                  seen_at=now)])
    finally:
        db.dispose()
    p = pages("operator")
    page = p.open("/app/", "#stations")
    runs = page.locator("#station-runs")
    expect(runs).to_be_visible()
    item = runs.locator("li[data-kind='restart']", has_text="words-pc")
    expect(item).to_contain_text("station on words-pc restarted at ")
    expect(item).to_contain_text(": 35 s without judging parts")
    started = page.evaluate("(t) => LG.timeOnly(t)", (now - dt.timedelta(seconds=15)).isoformat() + "Z")
    expect(item).to_contain_text(f"restarted at {started}")
    p.shot("operator-words-line-restart")
