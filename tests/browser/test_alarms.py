"""The line view's alarm: five rejected parts in a row raise it live, an operator
acknowledges it with a note, and it is gone."""
from __future__ import annotations

import re

from .conftest import api, clock_still, expect, post_part, png_bytes, page_answered


def test_a_run_of_ng_parts_raises_an_alarm_the_operator_acknowledges(pages, station):
    op = pages(role="operator")
    line = op.open("/app/", "#live.v-ok")
    panel = line.locator("#alarms-panel")
    expect(panel).to_be_hidden()
    sound = line.locator("#alarm-sound")
    expect(sound).to_have_attribute("aria-pressed", "false")
    sound.click()                               # the tablet at the line: alarms to hear
    expect(sound).to_have_text("Alarm sound: on")
    expect(panel).to_have_attribute("data-sounding", "false")
    with api(station, "operator") as c:
        for i in range(5):                      # the fake model: bright parts are NG
            assert post_part(c, png_bytes(220, seed=1500 + i), f"jam-{i}", line="L5", station="A1").status_code == 201
    item = panel.locator(".alarm-item")
    expect(item).to_have_count(1)               # live: the event stream, no reload
    expect(item).to_contain_text("Rejected parts in a row · line L5 · A1")
    expect(item).to_contain_text("5 parts in a row not passed")
    expect(panel).to_have_attribute("data-sounding", "true")
    op.shot("line-view-alarm")
    item.get_by_role("textbox").fill("feeder 2 jammed, cleared")
    item.get_by_role("combobox").select_option("handling")       # what it turned out to be
    line.wait_for_timeout(700)              # a person reads the alarm first (a tap at once is taken as a double tap's)
    item.get_by_role("button", name="Acknowledge").click()
    expect(panel).to_be_hidden()
    expect(panel).to_have_attribute("data-sounding", "false")     # quiet once none is active
    line.reload()
    expect(line.locator("#alarm-sound")).to_have_attribute("aria-pressed", "true")   # kept by this browser
    line.locator("#alarm-sound").click()
    with api(station, "operator") as c:
        (done,) = [a for a in c.get("/api/v1/alarms", params={"line": "L5"}).json()["items"]]
    assert done["ack_note"] == "feeder 2 jammed, cleared" and done["acked_by"].startswith("test-operator (key ")
    assert done["ack_cause"] == "handling"
    # the shift's handover report lists it, with who saw to it
    import datetime as dt
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    report = op.open(f"/app/report?line=L5&at={now}", "#report-alarms")
    expect(report.locator("#report-alarms tr[data-kind='ng_run']")).to_contain_text("feeder 2 jammed, cleared")
    expect(report.locator("#alarm-causes tr[data-cause='handling']")).to_contain_text("part position, fixture")
    op.shot("shift-report-alarm-causes")
    # the alarms page: the week's alarms, what they turned out to be, how long they waited
    page = op.open("/app/alarms?line=L5", "#alarm-list tr[data-kind='ng_run']")
    expect(page.locator("#alarm-summary h2")).to_have_text("1 alarm(s) in the period")
    expect(page.locator("#by-cause tr[data-cause='handling']")).to_contain_text("1")
    expect(page.locator("#alarm-list tr[data-kind='ng_run']")).to_contain_text("feeder 2 jammed, cleared")
    expect(page.locator("#alarms-csv")).to_have_attribute("href", re.compile(r"^/api/v1/alarms/export\?.*line=L5"))
    page.locator("select[name=cause]").select_option("camera")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_text("No alarms match.")).to_be_visible()
    op.shot("alarms-page")


def test_a_run_of_dark_photos_says_check_the_camera_and_the_gallery_finds_them(pages, station):
    from .test_review_photo_issues import activate_dim_floor_model
    activate_dim_floor_model(station, "lamp")
    op = pages(role="operator")
    line = op.open("/app/", "#live.v-ok")
    panel = line.locator("#alarms-panel")
    with api(station, "operator") as c:
        for i in range(3):                      # the lamp went out: photos at a tenth of their light
            r = post_part(c, png_bytes(8, seed=1600 + i), f"dim-{i}", product="lamp", line="L6", station="C1")
            assert r.status_code == 201 and r.json()["verdict"] == "REVIEW", r.text
    item = panel.locator(".alarm-item", has_text="line L6")
    expect(item).to_contain_text("Check the camera · line L6 · C1")
    expect(item).to_contain_text("3 of the last 5 photos unlike the model's good photos")
    expect(item).to_contain_text("too dark")
    op.shot("line-view-camera-alarm")
    gallery = op.open("/app/gallery?line=L6&verdict=&photo_doubted=true", "#gallery a.thumb")
    expect(gallery.locator("#gallery a.thumb")).to_have_count(3)
    expect(gallery.locator("#gallery .photo-doubt").first).to_contain_text("photo: too dark")
    expect(gallery.locator("select[name=photo_doubted]")).to_have_value("true")
    gallery.locator("select[name=photo_doubted]").select_option("false")
    gallery.get_by_role("button", name="Show").click()
    expect(gallery.get_by_text("No parts match these filters.")).to_be_visible()
    expect(gallery.locator("#gallery a.thumb")).to_have_count(0)
    # no CSV or Excel of nothing (a line never seen: the export's bare JSON 404)
    expect(gallery.locator("#csv-parts")).to_be_hidden()
    expect(gallery.locator("#xlsx-parts")).to_be_hidden()
    op.shot("gallery-photo-doubted")


def test_an_engineer_gives_a_station_alarm_rules_of_its_own(pages, station):
    with api(station, "operator") as c:              # a station the rules can name: it has run a part
        assert post_part(c, png_bytes(60, seed=1700), "r-0", line="L7", station="D1").status_code == 201
    op = pages(role="operator")
    page = op.open("/app/alarms", "#alarm-rules tr")
    expect(page.locator("#alarm-rules-form")).to_be_hidden()        # operators read the rules, engineers set them
    expect(page.locator("#alarm-rules tr[data-station='']")).to_contain_text("default")
    eng = pages(role="engineer")
    page = eng.open("/app/alarms", "#alarm-rules-form")
    form = page.locator("#alarm-rules-form")
    form.locator("input[name=line]").fill("L7")
    form.locator("input[name=station]").fill("D1")
    form.locator("input[name=ng_run]").fill("3")
    form.locator("input[name=ng_rate]").fill("0.05")
    form.get_by_role("button", name="Save").click()
    row = page.locator("#alarm-rules tr[data-station='D1']")
    expect(row.locator("td[data-setting=ng_run] b")).to_have_text("3")          # its own: in bold
    expect(row.locator("td[data-setting=ng_rate] b")).to_have_text("5.0% (5 NG)")
    expect(row.locator("td[data-setting=photo_run]")).to_have_text("3")         # the default
    expect(row.locator("td[data-setting=photo_run] b")).to_have_count(0)
    expect(row).to_contain_text("by test-engineer")
    eng.shot("alarm-rules")
    with api(station, "operator") as c:              # the station is counted by them: 3 in a row
        for i in range(3):
            assert post_part(c, png_bytes(220, seed=1710 + i), f"r-{i + 1}", line="L7", station="D1").status_code == 201
        (alarm,) = c.get("/api/v1/alarms", params={"line": "L7", "active": "true"}).json()["items"]
    assert alarm["parts"] == 3 and alarm["kind"] == "ng_run"
    # a setting out of range: the station's answer, nothing saved
    row.get_by_role("button", name="Edit").click()
    expect(form.locator("input[name=ng_run]")).to_have_value("3")
    form.locator("input[name=window]").fill("10")
    form.locator("input[name=ng_rate]").fill("")
    form.locator("input[name=ng_run]").fill("1")
    form.get_by_role("button", name="Save").click()
    expect(page.locator("#status")).to_contain_text("2 to 10000 parts in a row")
    with api(station, "operator") as c:              # nothing saved
        (own,) = [x["own"] for x in c.get("/api/v1/alarms/rules").json()["stations"] if x["station"] == "D1"]
    assert own == {"ng_run": 3, "ng_rate": 0.05}
    page.once("dialog", lambda d: d.accept())
    row.get_by_role("button", name="Defaults").click()
    expect(page.locator("#alarm-rules tr[data-station='D1']")).to_have_count(0)
    with api(station, "engineer") as c:
        log = c.get("/api/v1/change-log", params={"action": "alarm_rules"}).json()["items"]
    assert [e["action"] for e in log] == ["alarm_rules.cleared", "alarm_rules.set"]


def test_rejects_without_a_verdict_and_repeated_escalation_are_shown(pages, station):
    """What the PLC rejected without a verdict (no part record) on the line view's card and
    in the shift report, and an alarm escalated twice on the line view. Rows as the PLC
    link and the escalation write them, straight into the station's database."""
    import datetime as dt
    from lineguard.line.config import StationConfig
    from lineguard.line.db import Database
    from lineguard.line.orm import LineAlarm, LineSignal, utcnow
    with api(station, "operator") as c:              # the station has run a part this shift
        assert post_part(c, png_bytes(60, seed=1800), "nv-0", line="L8", station="E1").status_code == 201
    db = Database(StationConfig(data_dir=station.data_dir).database_url)
    now = utcnow()
    try:
        with db.session() as s:
            for i in range(3):
                s.add(LineSignal(protocol="modbus", line="L8", station="E1", trigger_seq=i + 1, part_tag=0,
                                 recipe_id=1, product="cell", inspection_id=None, signal="NG", result_code=11,
                                 reason="no image for the trigger: camera lost", triggered_at=now, answered_at=now))
            s.add(LineAlarm(line="L8", station="E1", product="cell", kind="no_verdict", raised_at=now,
                            message="3 parts in a row answered NG to the PLC without a verdict at station E1",
                            inspection_id=0, first_inspection_id=0, parts=3, rejected=3,
                            escalated_at=now, escalations=2, escalate_at=now + dt.timedelta(minutes=5)))
    finally:
        db.dispose()
    op = pages(role="operator")
    line = op.open("/app/", "section.station-card[data-line='L8']")
    card = line.locator("section.station-card[data-line='L8'][data-station='E1']")
    expect(card.locator("dd[data-fact=no-verdict]")).to_have_text("3")
    expect(card.locator("dd[data-fact=no-verdict].v-ng")).to_have_count(1)
    item = line.locator("#alarms-panel .alarm-item", has_text="line L8")
    expect(item).to_contain_text("Parts rejected without a verdict · line L8 · E1")
    expect(item.locator(".escalated")).to_contain_text("(×2)")
    expect(item.get_by_role("link", name="the part that raised it")).to_have_count(0)     # no part record
    op.shot("line-view-no-verdict")
    report = op.open(f"/app/report?line=L8&at={now.isoformat()}Z", "#totals")
    expect(report.locator("#no-verdict")).to_contain_text("3 rejected by the PLC without a verdict in time")
    expect(report.locator("#report-alarms tr[data-kind='no_verdict']")).to_contain_text("2 times")


def test_the_cause_of_an_acknowledged_alarm_is_given_later_on_the_alarms_page(pages, station):
    with api(station, "operator") as c:
        for i in range(5):
            assert post_part(c, png_bytes(220, seed=1700 + i), f"coil-{i}", line="L-cause", station="B1").status_code == 201
        (alarm,) = [a for a in c.get("/api/v1/alarms", params={"line": "L-cause"}).json()["items"]]
        assert c.post(f"/api/v1/alarms/{alarm['id']}/acknowledge", json={}).status_code == 200   # no cause yet
    op = pages(role="operator")
    page = op.open("/app/alarms?line=L-cause", "#alarm-list tr[data-kind='ng_run']")
    expect(page.locator("#by-cause tr[data-cause='none']")).to_contain_text("1")
    row = page.locator(f"#alarm-list tr[data-id='{alarm['id']}']")
    expect(row.locator("td.cause")).to_contain_text("not given")
    row.get_by_role("button", name=f"cause of alarm {alarm['id']}").click()
    row.get_by_label(f"what alarm {alarm['id']} turned out to be").select_option("material")
    row.get_by_label(f"note for alarm {alarm['id']}").fill("coil 4471 out of spec")
    row.get_by_role("button", name="Save").click()
    expect(row.locator("td.cause")).to_contain_text("material or supplier batch")
    expect(row.locator("td.note")).to_contain_text("coil 4471 out of spec")
    expect(page.locator("#by-cause tr[data-cause='material']")).to_contain_text("1")   # counted at once
    expect(page.locator("#by-cause tr[data-cause='none']")).to_have_count(0)
    op.shot("alarms-cause-later")
    with api(station, "operator") as c:
        (done,) = c.get("/api/v1/alarms", params={"line": "L-cause"}).json()["items"]
    assert done["ack_cause"] == "material" and "coil 4471 out of spec" in done["ack_note"]


def test_a_double_tap_on_acknowledge_acknowledges_only_the_alarm_tapped(pages, station):
    """The second tap of a double tap landed on the next alarm's button, slid up under the
    finger, and acknowledged an alarm nobody had read."""
    with api(station, "operator") as c:
        for st_name in ("T1", "T2"):
            for i in range(5):
                assert post_part(c, png_bytes(220, seed=1900 + i + (10 if st_name == "T2" else 0)),
                                 f"tap-{st_name}-{i}", line="L-tap", station=st_name).status_code == 201
    op = pages(role="operator", viewport={"width": 1280, "height": 800}, has_touch=True)
    line = op.open("/app/", "#alarms-panel .alarm-item")
    items = line.locator("#alarms-panel .alarm-item", has_text="line L-tap")
    expect(items).to_have_count(2)
    # a 10-inch panel: what to do beside what it is, so alarms leave the counters on screen;
    # the note a finger-sized field
    first = items.first
    ack_box, message_box = first.get_by_role("button", name="Acknowledge").bounding_box(), \
        first.locator("p").last.bounding_box()
    assert ack_box["y"] < message_box["y"] + message_box["height"], (ack_box, message_box)
    assert first.get_by_role("textbox").bounding_box()["height"] >= 44
    clock_still(line)
    acks = []                                                      # the acknowledgements the page sent
    line.on("request", lambda r: acks.append(r.url) if r.method == "POST" and "/acknowledge" in r.url else None)
    items.first.get_by_role("button", name="Acknowledge").tap()
    expect(items).to_have_count(1)
    items.first.get_by_role("button", name="Acknowledge").tap()   # the second tap: on the alarm slid up
    expect(line.locator("#status")).to_contain_text("just changed")
    # a request the page makes after the second tap, answered: an acknowledgement sent at it went
    # before it (the station read 1.5 s on missed one it took long to save)
    page_answered(line)
    assert len(acks) == 1, acks                                    # the first tap's
    with api(station, "operator") as c:
        active = c.get("/api/v1/alarms", params={"line": "L-tap", "active": "true"}).json()["items"]
    assert len(active) == 1


def test_an_engineer_adds_the_plants_own_cause_and_the_line_view_offers_it(pages, station):
    eng = pages(role="engineer")
    page = eng.open("/app/alarms", "#alarm-causes tr[data-cause='other']")
    expect(page.locator("#alarm-causes tr[data-cause='camera']")).to_contain_text("built in")
    page.locator("#alarm-cause-form input[name=label]").fill("die wear on press 4")
    page.locator("#alarm-cause-form").get_by_role("button", name="Add").click()
    row = page.locator("#alarm-causes tr[data-cause='die_wear_on_press_4']")
    expect(row).to_contain_text("die wear on press 4")
    code = row.locator("td").first.inner_text()
    assert int(code) >= 7                                 # after the six built in: the PLC's number for it
    expect(page.locator("#status")).to_contain_text(f"PLC number {code}")
    # offered at once by the filter above, no reload needed
    expect(page.locator("#filters select[name=cause] option[value='die_wear_on_press_4']")).to_have_count(1)
    eng.shot("alarm-causes")
    with api(station, "operator") as c:
        for i in range(5):
            assert post_part(c, png_bytes(220, seed=2100 + i), f"die-{i}", line="L-die", station="P4").status_code == 201
    op = pages(role="operator")
    line = op.open("/app/", "#alarms-panel .alarm-item")
    item = line.locator("#alarms-panel .alarm-item", has_text="line L-die")
    item.get_by_role("combobox").select_option("die_wear_on_press_4")
    line.wait_for_timeout(700)
    item.get_by_role("button", name="Acknowledge").click()
    expect(item).to_have_count(0)
    # retired: no longer offered, the alarm that had it keeps its name
    page.once("dialog", lambda d: d.accept())
    row.get_by_role("button", name="Retire").click()
    expect(row).to_contain_text("(retired)")
    expect(row.get_by_role("button", name="Retire")).to_have_count(0)
    page = eng.open("/app/alarms?line=L-die", "#alarm-list tr[data-kind='ng_run']")
    expect(page.locator("#alarm-list tr[data-kind='ng_run'] td.cause")).to_contain_text("die wear on press 4 (retired)")


def test_a_line_view_left_open_offers_a_cause_added_since_and_no_longer_one_retired(pages, station):
    with api(station, "operator") as c:
        for i in range(5):
            assert post_part(c, png_bytes(220, seed=2200 + i), f"open-{i}", line="L-open", station="Q1").status_code == 201
    op = pages(role="operator")
    op.page.clock.install()                     # a panel left open for days: its minutes, run fast
    line = op.open("/app/", "#alarms-panel .alarm-item")
    item = line.locator("#alarms-panel .alarm-item", has_text="line L-open")
    options = item.locator("select[name=cause] option")
    expect(options.filter(has_text="strip jammed at the feeder")).to_have_count(0)
    with api(station, "engineer") as c:
        added = c.post("/api/v1/alarm-causes", json={"label": "strip jammed at the feeder"})
        assert added.status_code == 201, added.text
    op.page.clock.run_for(61_000)
    expect(options.filter(has_text="strip jammed at the feeder")).to_have_count(1)
    item.locator("select[name=cause]").select_option(added.json()["key"])
    with api(station, "engineer") as c:
        assert c.delete("/api/v1/alarm-causes", params={"key": added.json()["key"]}).status_code == 200
    op.page.clock.run_for(61_000)
    expect(options.filter(has_text="strip jammed at the feeder")).to_have_count(0)
    assert item.locator("select[name=cause]").input_value() == ""     # not left chosen, to be refused


def test_an_active_alarm_told_more_shows_its_new_message_on_the_line_view(pages, station):
    """A test part's further wrong check goes on the active alarm (its message names it):
    the line view drew an alarm's text once, so the operator kept reading the first check.
    The row as the station updates it, straight into its database; a part after it makes
    the line view refresh its summary."""
    from lineguard.line.config import StationConfig
    from lineguard.line.db import Database
    from lineguard.line.orm import LineAlarm, utcnow
    db = Database(StationConfig(data_dir=station.data_dir).database_url)
    try:
        with db.session() as s:
            alarm = LineAlarm(line="L11", station="R1", product="cell", kind="test_part", raised_at=utcnow(),
                              message="test part RR-02 (must be NG) was judged OK", inspection_id=0,
                              first_inspection_id=0, parts=1, rejected=0)
            s.add(alarm)
            s.flush()
            alarm_id = alarm.id
        op = pages(role="operator")
        line = op.open("/app/", "#alarms-panel .alarm-item")
        item = line.locator(f"#alarms-panel .alarm-item[data-id='{alarm_id}']")
        expect(item.locator(".alarm-message")).to_have_text("test part RR-02 (must be NG) was judged OK")
        item.get_by_role("textbox").fill("rabbit RR-02 re-run")        # being typed: kept through the update
        with db.session() as s:
            s.get(LineAlarm, alarm_id).message = ("test part RR-01 (must be NG) was judged REVIEW; wrong checks "
                                                  "since the alarm: RR-01, RR-02")
        with api(station, "operator") as c:    # a part refreshes the line view's summary (within 5 s)
            assert post_part(c, png_bytes(60, seed=1900), "after-update", line="L11", station="R1").status_code == 201
        # the part's event refreshes the summary 5 s on, the page's own refresh every 30 s covers
        # an event missed on a loaded machine (a CI run waited 15 s in vain)
        expect(item.locator(".alarm-message")).to_contain_text("RR-01 (must be NG) was judged REVIEW", timeout=45000)
        expect(line.locator("#alarm-announce")).to_contain_text("Alarm updated")
        expect(item.get_by_role("textbox")).to_have_value("rabbit RR-02 re-run")
    finally:
        with db.session() as s:
            s.get(LineAlarm, alarm_id).acked_at = utcnow()
        db.dispose()
