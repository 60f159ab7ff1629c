"""Parts on the edges of the plant's shifts, hours and days: a shift start the clocks jump
over or show twice, a part in the last millisecond before a boundary on SQLite, and the
plant's clock in the .xlsx export on the day the clocks go back."""
from __future__ import annotations

import datetime as dt
import io
import re
import uuid
import xml.etree.ElementTree as ET
import zipfile
from zoneinfo import ZoneInfo

import pytest

from lineguard.line.orm import Inspection
from lineguard.line.shifts import parse_shift_starts, shift_of

BERLIN = ZoneInfo("Europe/Berlin")
# 2026's two changes in Berlin: 29 March 02:00 -> 03:00, 25 October 03:00 -> 02:00
DST_DAYS = (dt.date(2026, 3, 29), dt.date(2026, 10, 25))
START_LISTS = ("02:30,10:30,18:30", "06:00,14:00,22:00", "02:00,10:00,18:00", "03:00,11:00,19:00",
               "02:15,02:45,14:00", "01:30,13:30", "00:00", "02:59")


@pytest.mark.parametrize("starts", START_LISTS)
def test_every_minute_of_both_dst_days_is_in_exactly_one_shift_that_holds_it(starts):
    st = parse_shift_starts(starts)
    seen: dict[str, tuple[dt.datetime, dt.datetime]] = {}
    for day in DST_DAYS:
        t = dt.datetime.combine(day, dt.time(0)) - dt.timedelta(hours=12)
        prev = None
        while t < dt.datetime.combine(day, dt.time(0)) + dt.timedelta(hours=36):
            sh = shift_of(t, st, BERLIN)
            assert sh.start_utc <= t < sh.end_utc, (t, sh)
            # one window a label: the same shift asked at any of its minutes is the same shift
            assert seen.setdefault(sh.label, (sh.start_utc, sh.end_utc)) == (sh.start_utc, sh.end_utc), sh
            if prev is not None and prev != sh:
                assert sh.start_utc == prev.end_utc, (prev, sh)     # no gap, no overlap
            # labelled by the day and start its first minute shows on the plant's clock, or
            # (a start the clocks jumped over) the moment they jumped past it
            first = sh.start_utc.replace(tzinfo=dt.timezone.utc).astimezone(BERLIN)
            label_day, label_start = re.fullmatch(r"(\S+) S\d+ \((\d\d:\d\d)\)", sh.label).groups()
            assert first.date().isoformat() == label_day
            assert first.strftime("%H:%M") == label_start or first.hour == 3 and label_start.startswith("02"), sh
            prev = sh
            t += dt.timedelta(minutes=1)


def test_a_start_in_the_skipped_hour_begins_when_the_clocks_jump_and_in_the_repeated_hour_at_its_first():
    st = parse_shift_starts("02:30,10:30,18:30")
    spring = shift_of(dt.datetime(2026, 3, 29, 1, 15), st, BERLIN)        # 03:15 CEST
    assert spring.label == "2026-03-29 S1 (02:30)"
    assert (spring.start_utc, spring.end_utc) == (dt.datetime(2026, 3, 29, 1, 0), dt.datetime(2026, 3, 29, 8, 30))
    night = shift_of(dt.datetime(2026, 3, 29, 0, 59), st, BERLIN)         # 01:59 CET, before the jump
    assert night.label == "2026-03-28 S3 (18:30)" and night.end_utc == spring.start_utc
    autumn = shift_of(dt.datetime(2026, 10, 25, 1, 15), st, BERLIN)       # 02:15 CET, the second 02:15
    assert autumn.label == "2026-10-25 S1 (02:30)"
    assert autumn.start_utc == dt.datetime(2026, 10, 25, 0, 30)           # 02:30 CEST, the first showing


def _part(t, verdict="OK"):
    return Inspection(part_id=f"p{uuid.uuid4().hex[:10]}", line="L1", station="S1", product="cell",
                      verdict=verdict, score=0.2 if verdict == "OK" else 0.9, threshold=0.5, pixel_threshold=0.5,
                      model_id="m1", model_version="v", registry_version=1, image_sha256=uuid.uuid4().hex,
                      image_width=8, image_height=8, created_at=t)


def test_a_part_in_the_last_millisecond_of_a_shift_is_charted_in_that_shift(station_factory):
    from lineguard.line.shift_report import shift_report
    from lineguard.line.spc_data import Filters, Periods, defect_subgroups, score_subgroups
    st = station_factory(timezone="Europe/Berlin")
    last = dt.datetime(2026, 10, 24, 19, 59, 59, 999600)     # 21:59:59.9996 CEST: the late shift's last part
    with st.db.session() as s:
        s.add_all([_part(dt.datetime(2026, 10, 24, 12, 0)), _part(last, "NG"), _part(dt.datetime(2026, 10, 24, 20, 0))])
    f = Filters(since=dt.datetime(2026, 10, 24), until=dt.datetime(2026, 10, 25))
    by_hour = defect_subgroups(st.db, f, "hour", Periods("hour", timezone="Europe/Berlin"))
    assert [(g.label, g.n, g.defects) for g in by_hour] == [("2026-10-24 14:00", 1, 0), ("2026-10-24 21:00", 1, 1),
                                                            ("2026-10-24 22:00", 1, 0)]
    groups, _models = score_subgroups(st.db, f, "shift", Periods("shift", timezone="Europe/Berlin"))
    assert [(label, len(scores)) for label, _start, scores in groups] == [("2026-10-24 S2 (14:00)", 2),
                                                                          ("2026-10-24 S3 (22:00)", 1)]
    # the report's totals (a range) and its point on the p-chart count the same parts
    rep = shift_report(st.db, timezone="Europe/Berlin", at=dt.datetime(2026, 10, 24, 19, 0))
    assert rep["totals"]["parts"] == 2 and rep["totals"]["NG"] == 1
    assert rep["control"]["p"] == pytest.approx(0.5)


# -- the .xlsx export: what a spreadsheet shows -------------------------------------------

def _shown(book: bytes) -> list[list[str]]:
    """Each row's time cells as a spreadsheet shows them: its number format applied, the
    value rounded to the format's last digit (as a spreadsheet rounds at display)."""
    ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
    with zipfile.ZipFile(io.BytesIO(book)) as z:
        styles = ET.fromstring(z.read("xl/styles.xml"))
        sheet = ET.fromstring(z.read("xl/worksheets/sheet1.xml"))
    codes = {f.get("numFmtId"): f.get("formatCode") for f in styles.iter(f"{{{ns['m']}}}numFmt")}
    xfs = [xf.get("numFmtId") for xf in styles.find("m:cellXfs", ns)]
    out = []
    for row in list(sheet.iter(f"{{{ns['m']}}}row"))[1:]:
        cells = []
        for c in row.findall("m:c", ns):
            code = codes.get(xfs[int(c.get("s") or 0)])
            if code is None or "hh" not in code:
                continue
            m = re.fullmatch(r'yyyy\\-mm\\-dd\\ hh:mm:ss(\.0+)?(?:\\ "(.*)")?', code)
            assert m, code
            digits = len(m.group(1) or ".") - 1
            step = dt.timedelta(seconds=10 ** -digits)
            when = dt.datetime(1899, 12, 30) + dt.timedelta(days=float(c.find("m:v", ns).text))
            when = dt.datetime.min + round((when - dt.datetime.min) / step) * step
            text = when.strftime("%Y-%m-%d %H:%M:%S") + (f".{when.microsecond // 10 ** (6 - digits):0{digits}d}"
                                                        if digits else "")
            cells.append(text + (f" {m.group(2)}" if m.group(2) else ""))
        out.append(cells)
    return out


def _workbook(records, zone) -> bytes:
    from lineguard.line.part_records import write_workbook
    out = io.BytesIO()
    write_workbook(records, out, zone)
    return out.getvalue()


def _records(*times):
    parts = [_part(t) for t in times]
    for i, p in enumerate(parts):
        p.id, p.regions, p.photo_issues = i + 1, [], None
    return parts


def test_the_xlsx_shows_a_part_made_just_before_six_in_the_shift_it_was_made():
    # 05:59:59.5 and 05:59:59.9997 CET: the night shift's, though a sheet rounding at
    # display showed them as 06:00:00, the morning shift's first second
    rows = _shown(_workbook(_records(dt.datetime(2026, 12, 2, 4, 59, 59, 500000),
                                     dt.datetime(2026, 12, 2, 4, 59, 59, 999700)), BERLIN))
    # created_at (UTC), then plant_time (reviewed_at empty)
    assert rows[0] == ["2026-12-02 04:59:59.500", "2026-12-02 05:59:59.500 +01:00"]
    assert rows[1] == ["2026-12-02 04:59:59.999", "2026-12-02 05:59:59.999 +01:00"]


def test_the_xlsx_tells_the_two_half_past_twos_of_the_day_the_clocks_go_back_apart():
    rows = _shown(_workbook(_records(dt.datetime(2026, 10, 25, 0, 30), dt.datetime(2026, 10, 25, 1, 30)), BERLIN))
    assert rows[0][1] == "2026-10-25 02:30:00.000 +02:00" and rows[1][1] == "2026-10-25 02:30:00.000 +01:00"
    # and the CSV as it was: the offset in the text
    from lineguard.line.part_records import COLUMNS, csv_lines
    text = "".join(csv_lines(_records(dt.datetime(2026, 10, 25, 0, 30)), BERLIN, bom=False))
    header, row = text.splitlines()
    assert dict(zip(header.split(","), row.split(",")))["plant_time"] == "2026-10-25T02:30:00.000+02:00"
    assert header.split(",") == COLUMNS
