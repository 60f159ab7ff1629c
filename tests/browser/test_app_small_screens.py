"""The operator pages on a line's 1024x768 touch tablet and on a 390x844 phone: the alarms
page's "change" says before Save that "other" needs a note (only the station's 422 said it);
the SPC charts' text is readable on a phone (scaled down from 900 units it was 4 px high);
the menu is one row at 1024 px (it wrapped onto two)."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from .conftest import api, expect, png_bytes, post_part
from .test_spc_tuning import plant_hours

TABLET = {"width": 1024, "height": 768}
PHONE = {"width": 390, "height": 844}


def _acknowledged(station, line: str, seed: int, **ack) -> int:
    """An alarm raised on ``line`` (five NG parts in a row) and acknowledged with ``ack``."""
    with api(station, "operator") as c:
        for i in range(5):                      # the fake model: bright parts are NG
            assert post_part(c, png_bytes(220, seed=seed + i), f"{line}-{i}", line=line,
                             station="A1").status_code == 201
        (alarm,) = c.get("/api/v1/alarms", params={"line": line}).json()["items"]
        assert c.post(f"/api/v1/alarms/{alarm['id']}/acknowledge", json=ack).status_code == 200
    return alarm["id"]


def _alarm(station, line: str) -> dict:
    """The one alarm of ``line``."""
    with api(station, "operator") as c:
        (a,) = c.get("/api/v1/alarms", params={"line": line}).json()["items"]
    return a


def _choose_other(page, alarm_id: int, note: str):
    row = page.locator(f"#alarm-list tr[data-id='{alarm_id}']")
    row.get_by_role("button", name=f"cause of alarm {alarm_id}").click()
    row.get_by_label(f"what alarm {alarm_id} turned out to be").select_option("other")
    row.get_by_label(f"note for alarm {alarm_id}").fill(note)
    row.get_by_role("button", name="Save").click()
    return row


def test_other_chosen_later_without_a_note_is_said_beside_the_note_and_nothing_is_sent(pages, station):
    plain = _acknowledged(station, "L-later", 97100, cause="material")
    # its note only the station's line of a cause changed since: it says nothing of what "other" was
    stamped = _acknowledged(station, "L-stamped", 97200)
    with api(station, "operator") as c:
        assert c.patch(f"/api/v1/alarms/{stamped}", json={"cause": "handling"}).status_code == 200
    assert " cause not given -> " in _alarm(station, "L-stamped")["ack_note"]
    noted = _acknowledged(station, "L-noted", 97300, cause="material", note="coil 4471 kinked")
    op = pages(role="operator", viewport=TABLET, has_touch=True)
    page = op.open("/app/alarms", f"#alarm-list tr[data-id='{plain}']")
    sent = []
    page.on("request", lambda r: sent.append((r.url, r.post_data)) if r.method == "PATCH" else None)

    for alarm_id in (plain, stamped):
        row = _choose_other(page, alarm_id, "   ")          # spaces are no note
        page.wait_for_timeout(300)
        assert sent == []                                    # nothing asked of the station
        why = row.locator(".field-why")
        expect(why).to_contain_text("“other” needs a note: write what it was")
        note = row.get_by_label(f"note for alarm {alarm_id}")
        expect(note).to_be_focused()                         # where to write it
        expect(note).to_have_attribute("aria-describedby", why.get_attribute("id"))
        # beside the field: under it, in the same cell, on screen
        box, field = why.bounding_box(), note.bounding_box()
        assert box["y"] >= field["y"] + field["height"] - 1 and box["y"] - field["y"] < 120, (box, field)
        assert box["x"] + box["width"] <= TABLET["width"], box
        expect(page.locator("#status")).to_contain_text("needs a note")
        op.shot(f"alarms-other-without-note-{alarm_id}")
    assert _alarm(station, "L-later")["ack_cause"] == "material"
    assert _alarm(station, "L-stamped")["ack_cause"] == "handling"

    # written: sent as written (trimmed), once, and the message gone
    row = page.locator(f"#alarm-list tr[data-id='{plain}']")
    row.get_by_label(f"note for alarm {plain}").fill("  air hose off the gripper ")
    expect(row.locator(".field-why")).to_be_hidden()
    row.get_by_role("button", name="Save").click()
    # the form gone: the station answered (its select offers the same words before that)
    expect(row.locator("td.cause form")).to_have_count(0)
    expect(row.locator("td.cause")).to_contain_text("other (say what in the note)")
    assert len(sent) == 1 and json.loads(sent[0][1]) == {"cause": "other", "note": "air hose off the gripper"}
    done = _alarm(station, "L-later")
    assert done["ack_cause"] == "other" and done["ack_note"].endswith("air hose off the gripper")

    # a note someone wrote at acknowledging says what it was: "other" alone is sent, as the station takes it
    row = _choose_other(page, noted, "")
    expect(row.locator("td.cause form")).to_have_count(0)
    expect(row.locator("td.cause")).to_contain_text("other (say what in the note)")
    assert len(sent) == 2 and json.loads(sent[1][1]) == {"cause": "other", "note": None}
    assert _alarm(station, "L-noted")["ack_cause"] == "other"


# what each chart's text measures on screen: its box's height, the font's size as drawn
# (the SVG's scale times its font-size), and any two of its texts whose boxes cross
CHART_TEXT = """(sel) => [...document.querySelectorAll(sel)].map((svg) => {
  const box = svg.getBoundingClientRect(), scale = box.width / svg.viewBox.baseVal.width;
  const texts = [...svg.querySelectorAll("text")].filter((t) => t.textContent.trim())
    .map((t) => ({text: t.textContent, r: t.getBoundingClientRect(),
                  px: parseFloat(getComputedStyle(t).fontSize) * scale}));
  const crossing = [], outside = [];
  texts.forEach((a, i) => {
    if (a.r.left < box.left - 0.5 || a.r.right > box.right + 0.5 || a.r.top < box.top - 0.5
        || a.r.bottom > box.bottom + 0.5) outside.push(a.text);
    for (const b of texts.slice(i + 1)) {
      if (a.r.left < b.r.right - 0.5 && b.r.left < a.r.right - 0.5 && a.r.top < b.r.bottom - 0.5
          && b.r.top < a.r.bottom - 0.5) crossing.push([a.text, b.text]);
    }
  });
  return {chart: svg.getAttribute("aria-label"), width: box.width, texts: texts.length,
          lowest: Math.min(...texts.map((t) => t.r.height)), smallest: Math.min(...texts.map((t) => t.px)),
          crossing, outside};
})"""


def _readable(charts: list, want: int) -> None:
    assert len(charts) == want, charts
    for c in charts:
        assert c["texts"] > 0, c
        assert c["lowest"] >= 10 and c["smallest"] >= 10, c     # 4-5 px when scaled down from 900 units
        assert c["crossing"] == [] and c["outside"] == [], c


def test_spc_chart_text_is_readable_on_a_phone_without_overlap(pages, station):
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, minute=0, second=0, microsecond=0)
    # twelve hours, rule alarms on many of them, two defect types
    hours = [(100, k) for k in (2, 1, 3, 2, 2, 1, 2, 3, 2, 1, 2)] + [(100, 40)]
    plant_hours(station.data_dir, "LPhone", hours, now, defect_types=("crack", "crack", "dent"))
    since = (now - dt.timedelta(hours=len(hours))).strftime("%Y-%m-%dT%H:%M:%SZ")
    p = pages(role="operator", viewport=PHONE, has_touch=True)
    page = p.open(f"/app/spc?line=LPhone&by=hour&since={since}&until={now.strftime('%Y-%m-%dT%H:%M:%SZ')}",
                  "#pareto svg")
    expect(page.locator("#p-chart circle.point")).to_have_count(len(hours))
    charts = "#p-chart svg.chart, #scores svg.chart, #pareto svg.chart"
    _readable(page.evaluate(CHART_TEXT, charts), 3)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    p.shot("spc-phone")

    # a Pareto of many long defect types, drawn at the phone's width: names, counts and legend apart
    many = page.evaluate("""() => {
      const bars = Array.from({length: 22}, (_, i) => ({defect_type: `scratch on the rim ${i}`, parts: 1200 - i,
        caught: 1200 - i, at_review: 0, escaped: 0, cumulative: (i + 1) / 22}));
      const box = document.getElementById("pareto");
      box.replaceChildren(LG.chart.pareto(bars, {width: Math.floor(box.clientWidth)}));
      return box.clientWidth;
    }""")
    assert many < 400
    _readable(page.evaluate(CHART_TEXT, "#pareto svg.chart"), 1)

    # the phone turned: the charts drawn again for the wider box, their text the same size
    page.set_viewport_size({"width": PHONE["height"], "height": PHONE["width"]})
    page.wait_for_function("() => document.querySelector('#p-chart svg.chart').viewBox.baseVal.width > 600")
    _readable(page.evaluate(CHART_TEXT, "#p-chart svg.chart, #scores svg.chart"), 2)


@pytest.mark.parametrize("role,where", [("operator", "/app/alarms"), ("engineer", "/app/changes"),
                                        ("admin", "/app/admin")])
@pytest.mark.parametrize("touch", [True, False], ids=["touch", "mouse"])
def test_the_menu_is_one_row_at_1024_px(pages, station, role, where, touch):
    p = pages(role=role, viewport=TABLET, has_touch=touch)
    page = p.open(where, "#nav a.current")
    m = page.evaluate("""() => {
      const nav = document.getElementById("nav"), links = [...nav.querySelectorAll("a")];
      const r = (el) => el.getBoundingClientRect();
      return {tops: [...new Set(links.map((a) => Math.round(r(a).top)))], link: r(links[0]).height,
              header: r(document.getElementById("top")).height, nav: r(nav), who: r(document.getElementById("who")),
              brand: r(document.querySelector("#top .brand")), current: r(nav.querySelector("a.current")),
              scrolls: nav.scrollWidth > nav.clientWidth, overflow: getComputedStyle(nav).overflowX};
    }""")
    assert len(m["tops"]) == 1, m                                  # every link on one row
    for el in ("who", "brand"):                                    # the name and the brand on that row too
        assert m[el]["top"] < m["nav"]["bottom"] and m[el]["bottom"] > m["nav"]["top"], (el, m)
    assert m["header"] < 2 * m["link"], m
    # the page one is on in sight; links that do not fit are reached by scrolling the row
    assert m["current"]["left"] >= m["nav"]["left"] - 1 and m["current"]["right"] <= m["nav"]["right"] + 1, m
    if m["scrolls"]:
        assert m["overflow"] in ("auto", "scroll"), m
    if role == "operator":                                         # the line's tablet: the whole menu in sight
        assert not m["scrolls"], m
    if touch:
        assert m["link"] >= 44, m


def test_the_score_bar_is_drawn_at_a_phones_width_on_the_part_and_review_pages(pages, station):
    """Scaled down from its 420 units to a phone's box, the bar was 9 px high and its labels 8 px."""
    with api(station, "operator") as c:
        r = post_part(c, png_bytes(220, seed=97400), "phone-bar", line="LBar", station="A1")
        assert r.status_code == 201
        part = r.json()["id"]
    bar = """() => { const s = document.querySelector('svg.scorebar'), r = s.getBoundingClientRect();
      const zone = s.querySelector('rect').getBoundingClientRect();
      return {width: r.width, bar: zone.height}; }"""
    p = pages(role="operator", viewport=PHONE, has_touch=True)
    for path, ready in ((f"/app/parts/{part}", "svg.scorebar"),
                        ("/app/review?queue=NG&line=LBar&poll=600", "svg.scorebar")):
        page = p.open(path, ready)
        _readable(page.evaluate(CHART_TEXT, "svg.scorebar"), 1)
        drawn = page.evaluate(bar)
        assert drawn["bar"] >= 13, drawn                 # 14 units drawn 1:1, not 9 px
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    p.shot("scorebar-phone")
    # at the station's screen it is drawn as before: 420 units, at most 480 px wide
    wide = pages(role="operator", viewport={"width": 1920, "height": 1080})
    page = wide.open(f"/app/parts/{part}", "svg.scorebar")
    assert page.evaluate("document.querySelector('svg.scorebar').viewBox.baseVal.width") == 420
    _readable(page.evaluate(CHART_TEXT, "svg.scorebar"), 1)


def test_a_phones_menu_shows_an_arrow_where_more_of_it_is_and_the_arrow_brings_it(pages, station):
    """The menu scrolled sideways with no sign of it: Models, Test parts and Alarms off the screen."""
    p = pages(role="operator", viewport=PHONE, has_touch=True)
    page = p.open("/app/", "#nav a.current")
    right, left = page.locator("#nav-right"), page.locator("#nav-left")
    alarms = page.locator("#nav a", has_text="Alarms")
    inside = """(a) => { const n = document.getElementById('nav').getBoundingClientRect(), r = a.getBoundingClientRect();
      return r.left >= n.left - 1 && r.right <= n.right + 1; }"""
    assert not alarms.evaluate(inside)                     # off to the right at first
    expect(right).to_be_visible()
    expect(left).to_be_hidden()
    box = right.bounding_box()
    assert box["x"] + box["width"] <= PHONE["width"] and box["height"] >= 30, box
    for _ in range(4):                                     # tapped until the end of the menu is in sight
        if right.is_hidden():
            break
        right.tap()
        page.wait_for_timeout(600)                         # the smooth scroll's end, then look
    expect(right).to_be_hidden()
    expect(left).to_be_visible()
    assert alarms.evaluate(inside)
    left.tap()
    page.wait_for_function("() => document.getElementById('nav').scrollLeft < 300")
    # a wide screen: the whole menu fits, no arrow
    wide = pages(role="operator").open("/app/", "#nav a.current")
    expect(wide.locator("#nav-right")).to_be_hidden()
    expect(wide.locator("#nav-left")).to_be_hidden()


# the mean grey (0 black - 255 white) of a strip of a box's edge, from a screenshot
def _edge_grey(page, selector: str, side: str) -> float:
    from io import BytesIO
    from PIL import Image
    b = page.locator(selector).bounding_box()
    x = b["x"] + (b["width"] - 8 if side == "right" else 0)
    img = Image.open(BytesIO(page.screenshot(clip={"x": x, "y": b["y"], "width": 8, "height": b["height"]})))
    px = list(img.convert("L").getdata())
    return sum(px) / len(px)


def test_a_table_wider_than_a_phone_is_shaded_at_the_edge_with_more_beyond_it(pages, station):
    """The shift report's tables scrolled in their box with nothing to say so ("NG rate" read "47.")."""
    p = pages(role="operator", viewport=PHONE, has_touch=True)
    page = p.open("/app/report", "#report")
    # an empty wide table (no text to darken the edge) in a panel, as the pages build them
    page.evaluate("""() => {
      const table = LG.h("table", {}, LG.h("tr", {}, LG.h("td", {})));
      // sized through the CSSOM: the pages' CSP refuses style attributes
      Object.assign(table.style, {width: "900px", minWidth: "900px", height: "60px"});
      Object.assign(table.querySelector("td").style, {border: "none"});
      const wrap = LG.h("div", {class: "table-wrap", id: "wide-wrap"}, table);
      document.getElementById("main").prepend(LG.h("div", {class: "panel"}, wrap));
    }""")
    assert page.evaluate("(() => { const w = document.getElementById('wide-wrap'); "
                         "return w.scrollWidth > w.clientWidth; })()")
    assert _edge_grey(page, "#wide-wrap", "right") < 245            # a shade: more to the right
    assert _edge_grey(page, "#wide-wrap", "left") > 252             # nothing to the left
    page.evaluate("document.getElementById('wide-wrap').scrollLeft = 10000")
    page.wait_for_timeout(100)                                       # drawn again
    assert _edge_grey(page, "#wide-wrap", "right") > 252
    assert _edge_grey(page, "#wide-wrap", "left") < 245
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_the_line_views_alarm_note_has_a_phones_width_for_its_hint(pages, station):
    """Cause and note side by side: the note's "what was found and done" read "what was found an"."""
    # (left active: the line view shows it with its cause and note)
    with api(station, "operator") as c:
        for i in range(5):
            assert post_part(c, png_bytes(220, seed=97600 + i), f"LNote-{i}", line="LNote",
                             station="A1").status_code == 201
        (alarm,) = c.get("/api/v1/alarms", params={"line": "LNote"}).json()["items"]
    p = pages(role="operator", viewport=PHONE, has_touch=True)
    page = p.open("/app/", f"input[aria-label='note for alarm {alarm['id']}']")
    fits = page.evaluate("""(sel) => {
      const el = document.querySelector(sel), cs = getComputedStyle(el);
      const ctx = document.createElement("canvas").getContext("2d");
      ctx.font = `${cs.fontSize} ${cs.fontFamily}`;
      const room = el.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
      return {room, text: ctx.measureText(el.placeholder).width, right: el.getBoundingClientRect().right};
    }""", f"input[aria-label='note for alarm {alarm['id']}']")
    assert fits["text"] <= fits["room"], fits
    assert fits["right"] <= PHONE["width"], fits


def test_the_models_versions_are_cards_on_a_phone_with_activate_in_reach(pages, station):
    """Walk: a version's row was 762 px tall on a phone (its rates squeezed into 88 px) and
    Activate / Roll back sat at x 883, a sideways scroll away."""
    from .conftest import fake_model_bytes
    with api(station, "engineer") as c:
        for _ in range(2):
            r = c.post("/api/v1/models", files={"file": ("phone.lgm", fake_model_bytes())},
                       data={"product": "phonecell", "activate": "false"})
            assert r.status_code == 201, r.text
    p = pages(role="engineer", viewport=PHONE, has_touch=True)
    page = p.open("/app/models?product=phonecell", "#versions table")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    button = page.locator('#versions [data-act="activate"]').first
    box = button.bounding_box()
    assert box and box["x"] + box["width"] <= PHONE["width"], box
    assert page.locator("#versions td[data-label='rates of its parts']").first.bounding_box()["width"] > 250
    p.shot("models-phone")
