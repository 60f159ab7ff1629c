"""With no --timezone the station counts by this PC's time zone, daylight saving and all:
found by name where the PC's clock takes it from (TZ, /etc/localtime, /etc/timezone), a
fixed UTC offset only where no name is found, and then said in the log."""
from __future__ import annotations

import datetime as dt
import logging
import os
import time

import pytest

from lineguard.line import shifts
from lineguard.line.shifts import pc_zone_name, plant_zone, shift_of

BERLIN_CLOCKS = ("Europe/Berlin", ":Europe/Berlin", "/usr/share/zoneinfo/Europe/Berlin",
                 ":/usr/share/zoneinfo/Europe/Berlin")


@pytest.fixture
def pc_clock(monkeypatch):
    """Set this process's clock (TZ) as a PC's would be, and put it back afterwards."""
    def set_tz(value):
        if value is None:
            monkeypatch.delenv("TZ", raising=False)
        else:
            monkeypatch.setenv("TZ", value)
        time.tzset()
    yield set_tz
    monkeypatch.undo()
    time.tzset()


def _no_files(tmp_path):
    return {"localtime": tmp_path / "no-localtime", "timezone_file": tmp_path / "no-timezone"}


@pytest.mark.parametrize("tz", BERLIN_CLOCKS)
def test_the_tz_variable_names_the_zone_in_each_form_the_c_library_reads(tz, tmp_path):
    assert pc_zone_name({"TZ": tz}, **_no_files(tmp_path)) == "Europe/Berlin"


def test_a_tz_set_empty_is_utc_and_one_naming_no_zone_finds_none(tmp_path):
    (tmp_path / "timezone").write_text("Europe/Berlin\n")
    files = {"localtime": tmp_path / "no-localtime", "timezone_file": tmp_path / "timezone"}
    assert pc_zone_name({"TZ": ""}, **files) == "UTC"
    # a POSIX rule or a typo: the clock does not follow /etc/timezone then, so neither may the station
    assert pc_zone_name({"TZ": "CET-1CEST,M3.5.0,M10.5.0/3"}, **files) is None
    assert pc_zone_name({"TZ": "Europe/Berln"}, **files) is None
    assert pc_zone_name({}, **files) == "Europe/Berlin"


def test_the_zone_etc_localtime_links_to(tmp_path):
    zoneinfo = tmp_path / "usr" / "share" / "zoneinfo" / "America"
    zoneinfo.mkdir(parents=True)
    (zoneinfo / "Chicago").write_bytes(b"TZif")
    etc = tmp_path / "etc"
    etc.mkdir()
    os.symlink("../usr/share/zoneinfo/America/Chicago", etc / "localtime")     # relative, as Debian links it
    (etc / "timezone").write_text("Europe/Berlin\n")                            # the link comes first
    assert pc_zone_name({}, localtime=etc / "localtime", timezone_file=etc / "timezone") == "America/Chicago"


def test_a_copied_localtime_falls_to_etc_timezone_and_nothing_found_is_none(tmp_path):
    (tmp_path / "localtime").write_bytes(b"TZif")          # a copy, as some images ship it: no name in it
    (tmp_path / "timezone").write_text("Europe/Lisbon\n")
    assert pc_zone_name({}, localtime=tmp_path / "localtime", timezone_file=tmp_path / "timezone") == "Europe/Lisbon"
    (tmp_path / "timezone").write_text("Not/AZone\n")
    assert pc_zone_name({}, localtime=tmp_path / "localtime", timezone_file=tmp_path / "timezone") is None
    assert pc_zone_name({}, **_no_files(tmp_path)) is None


def test_with_no_zone_set_shifts_follow_the_pcs_daylight_saving(pc_clock, tmp_path):
    from lineguard.line.config import StationConfig
    pc_clock("Europe/Berlin")
    zone = plant_zone(None)
    # the night shift 22:00-06:00 in summer (CEST) and in winter (CET): an offset fixed from
    # today gets one of them an hour wrong whatever the season the test runs in
    summer = shift_of(dt.datetime(2026, 10, 24, 21, 0), (), zone)
    winter = shift_of(dt.datetime(2026, 12, 4, 21, 30), (), zone)
    assert (summer.start_utc, summer.end_utc) == (dt.datetime(2026, 10, 24, 20, 0), dt.datetime(2026, 10, 25, 5, 0))
    assert (winter.start_utc, winter.end_utc) == (dt.datetime(2026, 12, 4, 21, 0), dt.datetime(2026, 12, 5, 5, 0))
    # the station's own lookup (shift report, line view) is the same as naming the zone
    cfg = StationConfig(data_dir=tmp_path / "data")
    assert cfg.shift_at(dt.datetime(2026, 10, 24, 21, 59, 59)) == shift_of(
        dt.datetime(2026, 10, 24, 21, 59, 59), (), plant_zone("Europe/Berlin"))
    # asked for its offset with no time (the session answer), it answers the offset now
    assert zone.utcoffset(None) == dt.datetime.now(plant_zone("Europe/Berlin")).utcoffset()


def test_no_zone_found_is_the_offset_now_said_once_with_the_way_out(pc_clock, monkeypatch, caplog):
    monkeypatch.setattr(shifts, "_warned_fixed_offset", False)
    pc_clock("XYZ-3")            # a POSIX rule: UTC+03:00 all year, no IANA name
    with caplog.at_level(logging.WARNING):
        zone = plant_zone(None)
        again = plant_zone(None)
    assert zone.utcoffset(None) == again.utcoffset(None) == dt.timedelta(hours=3)
    said = [r.getMessage() for r in caplog.records if "--timezone" in r.getMessage()]
    assert len(said) == 1 and "+03:00" in said[0], caplog.text


def _berlin_clock(t: float) -> int:
    """The C library's UTC offset on a PC whose clock runs on Berlin time."""
    from zoneinfo import ZoneInfo
    return int(dt.datetime.fromtimestamp(t, ZoneInfo("Europe/Berlin")).utcoffset().total_seconds())


def test_a_zone_name_the_clock_does_not_follow_is_not_taken(tmp_path):
    """Docker with the host's /etc/localtime mounted as a file (Berlin) and the image's
    /etc/timezone left at Etc/UTC: the station counted by Etc/UTC, every shift an hour or
    two off all year, with no word; now no name is found (the offset fallback, said)."""
    import shutil
    localtime, timezone_file = tmp_path / "localtime", tmp_path / "timezone"
    shutil.copyfile("/usr/share/zoneinfo/Europe/Berlin", localtime)
    timezone_file.write_text("Etc/UTC\n")
    assert pc_zone_name({}, localtime=localtime, timezone_file=timezone_file, offset_at=_berlin_clock) is None
    timezone_file.write_text("Europe/Berlin\n")
    assert pc_zone_name({}, localtime=localtime, timezone_file=timezone_file,
                        offset_at=_berlin_clock) == "Europe/Berlin"


@pytest.mark.parametrize("tz", ["posix/Europe/Berlin", ":/usr/share/zoneinfo/posix/Europe/Berlin",
                                "right/Europe/Berlin"])
def test_the_zone_files_posix_and_right_folders_give_the_zones_own_name(tz, tmp_path):
    """A browser refuses "posix/Europe/Berlin" (the pages fell back to the browser's zone),
    and "right/" counts leap seconds (clock changes 27 s late)."""
    assert pc_zone_name({"TZ": tz}, **_no_files(tmp_path)) == "Europe/Berlin"
