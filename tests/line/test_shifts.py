"""Shift boundaries in the plant's zone, across midnight and a daylight-saving change."""
import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from lineguard.line.shifts import parse_shift_starts, shift_of

BERLIN = ZoneInfo("Europe/Berlin")
STARTS = parse_shift_starts("06:00,14:00,22:00")


def test_night_shift_belongs_to_the_day_it_started():
    # 02:30 Berlin on 2 Dec (winter, UTC+1) = 01:30 UTC: night shift that began 1 Dec 22:00
    s = shift_of(dt.datetime(2026, 12, 2, 1, 30), STARTS, BERLIN)
    assert s.label == "2026-12-01 S3 (22:00)"
    assert s.start_utc == dt.datetime(2026, 12, 1, 21, 0)
    assert s.end_utc == dt.datetime(2026, 12, 2, 5, 0)


def test_day_shift_in_summer_time():
    s = shift_of(dt.datetime(2026, 7, 1, 12, 0), STARTS, BERLIN)   # 14:00 Berlin (UTC+2)
    assert s.label == "2026-07-01 S2 (14:00)"
    assert s.start_utc == dt.datetime(2026, 7, 1, 12, 0)


def test_shift_across_the_spring_change_is_seven_hours():
    # 29 March 2026: clocks go 02:00 -> 03:00 in Berlin, so the night shift is 7 h long
    s = shift_of(dt.datetime(2026, 3, 29, 0, 30), STARTS, BERLIN)
    assert s.end_utc - s.start_utc == dt.timedelta(hours=7)


@pytest.mark.parametrize("bad", ["", "6h", "25:00", "06:00,06:00"])
def test_bad_shift_starts_say_what_to_fix(bad):
    with pytest.raises(ValueError, match="shift start"):
        parse_shift_starts(bad)


def test_station_config_refuses_an_unknown_zone(tmp_path):
    from lineguard.line.config import StationConfig
    with pytest.raises(ValueError, match="IANA"):
        StationConfig(data_dir=tmp_path, timezone="Mars/Olympus")
