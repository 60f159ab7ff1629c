"""What a walk through the operator pages found: a second key press judging the part that had
just come up, a defect type carried to the next part, the line view missing parts another
process recorded and looking live with the station gone, a sign-in page with no word of why,
a UTC time in an alarm's message, a p-chart up to 110 %, and no way to upload a model."""
from __future__ import annotations

import re

from .conftest import Pages, api, expect, fake_model_bytes, png_bytes, post_part, seen, start_fake_station

ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


def _ng_parts(station, line: str, n: int, seed: int) -> list[int]:
    """n NG parts (bright: the fake model fails them); the last posted comes first in the queue."""
    with api(station, "operator") as c:
        return [post_part(c, png_bytes(220, seed=seed + i), f"{line.lower()}-{i}", line=line).json()["id"]
                for i in range(n)]


def _review(station, part: int) -> dict:
    with api(station, "operator") as c:
        got = c.get(f"/api/v1/inspections/{part}").json()
    return {"reviewed": got["review"]["reviewed"], "label": got["review"]["label"], "type": got["defect_type"]}


def test_a_second_g_pressed_just_after_the_first_does_not_judge_the_part_that_came_up(pages, station):
    ids = _ng_parts(station, "LTwiceG", 3, 98100)
    p = pages(role="operator")
    page = p.open("/app/review?queue=todo&line=LTwiceG&poll=600", "#current h2")
    expect(page.locator("#current h2")).to_contain_text("ltwiceg-2")
    seen(page)
    page.keyboard.press("g")
    expect(page.locator("#current h2")).to_contain_text("ltwiceg-1")
    page.wait_for_timeout(150)                 # pressed twice: the second meant for the part before
    page.keyboard.press("g")
    expect(page.locator("#status")).to_contain_text("ltwiceg-1 just came up: look at it, then press G again")
    assert _review(station, ids[2])["label"] == "good"
    assert _review(station, ids[1])["reviewed"] is False
    expect(page.locator("#current h2")).to_contain_text("ltwiceg-1")
    seen(page)                                 # looked at: G judges it
    page.keyboard.press("g")
    expect(page.locator("#current h2")).to_contain_text("ltwiceg-0")
    assert _review(station, ids[1])["label"] == "good"
    assert _review(station, ids[0])["reviewed"] is False


def test_a_defect_type_chosen_on_one_part_is_not_carried_to_the_next(pages, station):
    ids = _ng_parts(station, "LCarry", 2, 98200)
    with api(station, "operator") as c:
        types = c.get("/api/v1/products/cell/defect-types").json()["defect_types"]
    p = pages(role="operator")
    page = p.open("/app/review?queue=todo&line=LCarry&poll=600", "#current h2")
    expect(page.locator("#current h2")).to_contain_text("lcarry-1")
    seen(page)
    page.keyboard.press("2")                   # a type for this part ...
    expect(page.locator("#types button.on")).to_have_text(f"2 {types[1]}")
    page.keyboard.press("j")                   # ... which is skipped
    expect(page.locator("#current h2")).to_contain_text("lcarry-0")
    seen(page)
    expect(page.locator("#types button.on")).to_have_count(0)
    page.keyboard.press("d")                   # the next part's defect: its own type asked for
    expect(page.locator("#ask")).to_contain_text("Which defect?")
    assert _review(station, ids[0])["reviewed"] is False
    assert _review(station, ids[1])["reviewed"] is False


def test_the_line_view_takes_in_parts_recorded_without_an_event_once_each_and_without_redrawing(pages, station):
    with api(station, "operator") as c:
        before = [post_part(c, png_bytes(40, seed=98300 + i), f"shown-{i}", line="LHot").json()["id"]
                  for i in range(2)]
    p = pages(role="operator")
    page = p.page
    # parts a hot folder's watcher (another process on the same data folder) records bring no
    # event to this page: as if the stream never carried them
    page.route("**/api/v1/events", lambda route: route.abort())
    page.clock.install()
    p.open("/app/", "#last-parts a")
    expect(page.locator(f'#last-parts a[data-id="{before[1]}"]')).to_have_count(1)
    page.evaluate(f"window.shownThumb = document.querySelector('#last-parts a[data-id=\"{before[1]}\"]')")
    with api(station, "operator") as c:
        later = [post_part(c, png_bytes(40, seed=98310 + i), f"watched-{i}", line="LHot").json()["id"]
                 for i in range(2)]
    page.clock.fast_forward("00:31")           # the periodic refresh
    for pid in later:
        expect(page.locator(f'#last-parts a[data-id="{pid}"]')).to_have_count(1)
    # one more part for the read after: its thumb there says that read was merged (not a fixed wait)
    with api(station, "operator") as c:
        last = post_part(c, png_bytes(40, seed=98312), "watched-2", line="LHot").json()["id"]
    page.clock.fast_forward("00:31")           # and the one after: no part twice
    expect(page.locator(f'#last-parts a[data-id="{last}"]')).to_have_count(1)
    ids = [int(x) for x in page.eval_on_selector_all("#last-parts a", "els => els.map((e) => e.dataset.id)")]
    assert len(ids) == len(set(ids)) <= 24
    assert ids[:5] == [last, later[1], later[0], before[1], before[0]]      # newest first
    # the parts shown already were left as they were (no picture loaded again: no flicker)
    assert page.evaluate(f"window.shownThumb === document.querySelector('#last-parts a[data-id=\"{before[1]}\"]')")


def test_the_line_view_says_since_when_the_station_is_not_answering_and_greys_its_numbers(browser, tmp_path):
    srv = start_fake_station(tmp_path / "data")
    try:
        with srv.client(srv.keys["operator"]) as c:
            post_part(c, png_bytes(40, seed=98400), "away-0", line="LAway")
        p = Pages(browser, srv, "operator")
        try:
            page = p.open("/app/", "#live.v-ok")
            banner = page.locator("#station-away")
            expect(banner).to_be_hidden()
            srv.stop()
            expect(banner).to_be_visible(timeout=15_000)
            expect(banner).to_contain_text(re.compile(r"Station not answering since \S*\d{1,2}:\d\d:\d\d\b.*: the numbers "
                                                      r"below are from then"))
            expect(page.locator("main")).to_have_class(re.compile(r"\bstale\b"))
            parts = page.locator('.station-card[data-line="LAway"] [data-counter="parts"]')
            muted = page.evaluate("getComputedStyle(document.querySelector('.counter span')).color")
            assert parts.evaluate("(el) => getComputedStyle(el).color") == muted
            p.shot("line-view-station-away")
            srv.start()                              # back: the banner goes by itself
            expect(banner).to_be_hidden(timeout=30_000)
            expect(page.locator("main")).not_to_have_class(re.compile(r"\bstale\b"))
            expect(page.locator("#live")).to_have_text("● live")
            assert parts.evaluate("(el) => getComputedStyle(el).color") != muted
            assert not p.errors, p.errors
        finally:
            p.close()
    finally:
        srv.stop()


def test_a_session_ended_elsewhere_sends_the_line_view_to_sign_in_saying_why(pages, station):
    p = pages(role="operator")
    page = p.page
    page.clock.install()
    p.open("/app/", "#live")
    # the sign-in page asked for once: the refresh's two reads were both refused, and each sent
    # the page there, the second aborting the first (ERR_ABORTED in a CI run's wait_for_url).
    # Counted from before the sign-out: the live events' own check (every 2 s, on the server's
    # clock) may send the page there first, before a listener added after the sign-out (a
    # fresh-clone CI run counted none)
    to_signin = []
    page.on("request", lambda r: to_signin.append(r.url) if r.is_navigation_request() and "/app/signin" in r.url
            else None)
    csrf = p.ctx.request.get("/api/v1/session").json()["csrf_token"]
    assert p.ctx.request.delete("/api/v1/session", headers={"X-CSRF-Token": csrf}).ok      # signed out elsewhere
    page.clock.fast_forward("00:31")            # the wall display's next refresh
    page.wait_for_url(re.compile(r"/app/signin\?"))
    assert "why=expired" in page.url and "next=%2Fapp%2F" in page.url
    expect(page.locator("#signin-why")).to_be_visible()
    assert len(to_signin) == 1, to_signin
    expect(page.locator("#signin-why")).to_contain_text("This screen's sign-in ended: its key was revoked, it was "
                                                        "signed out elsewhere, or it was signed in too long ago.")
    # a first visit, never signed in: nothing ended, nothing said
    fresh = pages(role="")
    fresh.page.goto("/app/")
    fresh.page.wait_for_url(re.compile(r"/app/signin\?"))
    assert "why=" not in fresh.page.url
    expect(fresh.page.locator("#key-form")).to_be_visible()
    expect(fresh.page.locator("#signin-why")).to_have_count(0)
    # and no stray "null" where the reason would be (the first screen every operator sees)
    assert "null" not in fresh.page.locator("main").inner_text()


def test_an_alarm_acknowledged_meanwhile_says_when_on_the_plant_s_clock(pages, station):
    with api(station, "operator") as c:
        for i in range(5):                      # five rejected in a row: the alarm
            post_part(c, png_bytes(220, seed=98500 + i), f"race-{i}", line="LRace", station="R1")
        (alarm,) = [a for a in c.get("/api/v1/alarms", params={"line": "LRace"}).json()["items"] if not a["acked_at"]]
    p = pages(role="operator")
    page = p.page
    page.route("**/api/v1/events", lambda route: route.abort())    # the other screen's acknowledgement unheard
    page = p.open("/app/", "#alarms-panel .alarm-item")
    with api(station, "engineer") as c:
        assert c.post(f"/api/v1/alarms/{alarm['id']}/acknowledge", json={"note": "seen to"}).status_code == 200
        acked_at = c.get("/api/v1/alarms", params={"line": "LRace"}).json()["items"][0]["acked_at"]
    page.wait_for_timeout(700)
    page.locator(f'.alarm-item[data-id="{alarm["id"]}"]').get_by_role("button", name="Acknowledge").click()
    status = page.locator("#status")
    expect(status).to_contain_text("was acknowledged already, by ")
    text = status.inner_text()
    assert not ISO_UTC.search(text), text
    assert page.evaluate("(t) => LG.when(t)", acked_at) in text


def test_the_p_chart_stops_at_100_percent_and_keeps_its_last_label_inside(pages, station):
    p = pages(role="operator", viewport={"width": 1024, "height": 768})
    page = p.open("/app/spc", "#main > *")
    draw = """(ucl) => {
      // a shift's subgroups as the station names them: each labelled, the last one at the edge
      const pts = Array.from({length: 10}, (_, i) => ({label: `2026-12-0${i} S${1 + i % 3} (${6 + 8 * (i % 3)}:00)`,
        n: 4, defects: i === 9 ? 4 : 1, p: i === 9 ? 1 : 0.25, ucl, lcl: 0, rules: []}));
      const el = LG.chart.pchart({points: pts, centre: 0.3});
      document.getElementById("main").appendChild(el);
      const box = el.getBoundingClientRect();
      const labels = [...el.querySelectorAll(".xlabels text")].map((t) => t.getBoundingClientRect());
      const out = {axis: [...el.querySelectorAll(".axis text")].map((t) => t.textContent),
        left: Math.min(...labels.map((r) => r.left)) - box.left, right: box.right - Math.max(...labels.map((r) => r.right))};
      el.remove();
      return out;
    }"""
    capped = page.evaluate(draw, 0.95)
    assert capped["axis"][-1] == "100.0%", capped          # a rate never passes 100 %
    assert capped["right"] >= 0 and capped["left"] >= 0, capped
    above = page.evaluate(draw, 1.3)                       # a limit drawn above 100 %: in sight
    assert float(above["axis"][-1].rstrip("%")) >= 130, above


def test_an_engineer_uploads_a_model_from_the_models_page_and_reads_the_station_s_refusal(pages, station):
    op = pages(role="operator")
    page = op.open("/app/models", "#versions")
    expect(page.locator("#upload")).to_be_hidden()           # the station takes uploads from engineers only
    p = pages(role="engineer")
    page = p.open("/app/models?product=plate", "#versions")
    form = page.locator("#upload-form")
    expect(form).to_be_visible()
    form.locator("input[type=file]").set_input_files(
        files=[{"name": "plate-1.lgm", "mimeType": "application/octet-stream", "buffer": fake_model_bytes(0.5, "plate-1")}])
    expect(form.locator("input[name=product]")).to_have_value("plate")
    form.locator("input[name=note]").fill("from the lab")
    form.locator("input[name=activate]").check()
    form.locator("button[type=submit]").click()
    expect(page.locator("#status")).to_contain_text("uploaded: version 1")
    row1 = page.locator('#versions tr[data-version="1"]')
    expect(row1).to_have_attribute("data-state", "active")
    expect(row1).to_contain_text("from the lab")
    with api(station, "operator") as c:
        for k in range(6):                                  # the product's good parts a new version is tried on
            assert post_part(c, png_bytes(40, seed=98600 + k), f"plate-{k}", product="plate").json()["verdict"] == "OK"
    # a model that fails every good part of the product, asked to judge the line: refused, the
    # refusal said and asked about as an activation's is; called off, it stays inactive
    asked = []
    page.on("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    form.locator("input[type=file]").set_input_files(
        files=[{"name": "washer.lgm", "mimeType": "application/octet-stream", "buffer": fake_model_bytes(0.1, "washer")}])
    form.locator("input[name=activate]").check()
    form.locator("button[type=submit]").click()
    expect(page.locator("#status")).to_contain_text("uploaded as version 2, not activated")
    assert any("v2 judges" in a and "anyway" in a for a in asked), asked
    expect(page.locator('#versions tr[data-version="2"]')).to_have_attribute("data-state", "inactive")
    expect(row1).to_have_attribute("data-state", "active")
    # a file that is no model: the station's words
    form.locator("input[type=file]").set_input_files(
        files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not a model"}])
    form.locator("button[type=submit]").click()
    expect(page.locator("#status")).to_have_class("error")
    with api(station, "engineer") as c:
        versions = c.get("/api/v1/models", params={"product": "plate"}).json()["items"]
    assert sorted(v["version"] for v in versions) == [1, 2]


def test_a_review_pressed_after_the_session_ended_is_named_on_the_sign_in_page(pages, station):
    """Walk: the session ran out on the review queue; G went nowhere, the page went to sign
    in saying only that the session ended, and the part was back in the queue with no word
    that its review was not saved."""
    with api(station, "operator") as c:
        part = post_part(c, png_bytes(220, seed=98700), "lost-1", line="LLost").json()["id"]
    p = pages(role="operator")
    page = p.open("/app/review?queue=todo&line=LLost&poll=600", "#current h2")
    seen(page)
    csrf = p.ctx.request.get("/api/v1/session").json()["csrf_token"]
    assert p.ctx.request.delete("/api/v1/session", headers={"X-CSRF-Token": csrf}).ok      # ended meanwhile
    page.keyboard.press("g")
    page.wait_for_url(re.compile(r"/app/signin\?"))
    expect(page.locator("#signin-why")).to_contain_text("Not saved: the review of lost-1 (good). Do it again once "
                                                        "signed in.")
    assert "lost" not in page.url      # kept in the tab, not the address: a link cannot write the alert
    page.goto("/app/signin?why=expired&lost=call+555+with+your+password")
    expect(page.locator("#signin-why")).not_to_contain_text("555")
    with api(station, "operator") as c:
        assert c.get(f"/api/v1/inspections/{part}").json()["review"]["reviewed"] is False


def test_a_sign_in_ended_elsewhere_sends_the_review_queue_to_sign_in(pages, station):
    """The review queue kept showing "ana operator" after ana's sign-in ended (disabled by an
    admin): the stream's `ended` went unheard, and only its 20 s poll would have noticed. The
    page's own timers are stopped here, so only the stream can tell it."""
    from .conftest import api
    with api(station) as c:
        assert c.post("/api/v1/users", json={"username": "anke", "password": "anke-first-pw",
                                             "role": "operator"}).status_code == 201
    p = pages(role=None)
    page = p.page
    page.clock.install()
    assert p.ctx.request.post("/api/v1/session", data={"username": "anke", "password": "anke-first-pw"}).status == 200
    p.open("/app/review", "#queue")
    page.clock.pause_at(page.evaluate("Date.now()") + 1000)      # no poll, no refresh: the stream alone
    csrf = p.ctx.request.get("/api/v1/session").json()["csrf_token"]
    assert p.ctx.request.delete("/api/v1/session", headers={"X-CSRF-Token": csrf}).ok      # ended elsewhere
    page.wait_for_url(re.compile(r"/app/signin\?"), timeout=30000)
    assert "next=%2Fapp%2Freview" in page.url
