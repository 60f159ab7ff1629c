"""`lineguard parts --since/--until` with a day alone: the plant's day in --timezone.

It was 00:00 UTC: a plant in Chicago (UTC-6 in December) writing `--since 2026-12-01` got
the parts of Nov 30 from 18:00 on, and `--since 2026-12-01 --until 2026-12-01` (that one
day, as a person writes it) was refused as a period holding nothing. A time keeps its
meaning: an offset or Z is that instant, a time without one is UTC."""
from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from click.testing import CliRunner

ZONE = "America/Chicago"
PARTS = {
    "nov30-eve": dt.datetime(2026, 11, 30, 23, 0),     # Nov 30 17:00 CST
    "nov30-late": dt.datetime(2026, 12, 1, 3, 0),      # Nov 30 21:00 CST: Dec 1 in UTC
    "dec1-early": dt.datetime(2026, 12, 1, 7, 0),      # Dec 1 01:00 CST
    "dec1-night": dt.datetime(2026, 12, 2, 3, 0),      # Dec 1 21:00 CST: Dec 2 in UTC
    "dec2-early": dt.datetime(2026, 12, 2, 7, 0),      # Dec 2 01:00 CST
}


@pytest.fixture
def station_folder(tmp_path):
    """A stopped station's folder holding PARTS."""
    from lineguard.line.config import StationConfig
    from lineguard.line.orm import Inspection
    from lineguard.line.station import Station
    data = tmp_path / "data"
    st = Station(StationConfig(data_dir=data, timezone=ZONE, min_free_gb=0, store_sweep_h=0))
    try:
        with st.db.session() as s:
            for i, (name, t) in enumerate(PARTS.items()):
                s.add(Inspection(part_id=name, line="L1", station="S1", product="cell", verdict="OK", score=0.3,
                                 threshold=0.5, pixel_threshold=0.5, model_id="m1", model_version="v",
                                 image_sha256=f"{i:064x}", image_width=8, image_height=8, created_at=t))
    finally:
        st.close()
    return data


def _parts(data, tmp_path, *period, zone=ZONE):
    from lineguard.cli import app
    out = tmp_path / f"parts-{len(list(tmp_path.glob('parts-*')))}.csv"
    r = CliRunner().invoke(app, ["parts", "--data", str(data), "--out", str(out), "--timezone", zone, *period])
    if r.exit_code:
        return r
    rows = csv.DictReader(io.StringIO(out.read_text("utf-8-sig")))
    return sorted(row["part_id"] for row in rows)


def test_a_day_alone_is_the_plants_day(station_folder, tmp_path):
    assert _parts(station_folder, tmp_path, "--since", "2026-12-01") == ["dec1-early", "dec1-night", "dec2-early"]
    assert _parts(station_folder, tmp_path, "--until", "2026-11-30") == ["nov30-eve", "nov30-late"]
    # the same day as since and until: that one day, whole
    assert _parts(station_folder, tmp_path, "--since", "2026-12-01", "--until", "2026-12-01") == [
        "dec1-early", "dec1-night"]
    # the plant's day is the --timezone given: in UTC, Dec 1 is another set of parts
    assert _parts(station_folder, tmp_path, "--since", "2026-12-01", "--until", "2026-12-01", zone="UTC") == [
        "dec1-early", "nov30-late"]


def test_a_time_keeps_its_meaning(station_folder, tmp_path):
    late_on = ["dec1-early", "dec1-night", "dec2-early", "nov30-late"]
    assert _parts(station_folder, tmp_path, "--since", "2026-12-01T03:00:00Z") == late_on
    assert _parts(station_folder, tmp_path, "--since", "2026-11-30T21:00-06:00") == late_on
    assert _parts(station_folder, tmp_path, "--since", "2026-12-01 03:00") == late_on       # no offset: UTC
    assert _parts(station_folder, tmp_path, "--until", "2026-12-01T03:00Z") == ["nov30-eve"]


@pytest.mark.parametrize("period, said", [
    (("--since", "2026-02-30"), "is neither"),
    (("--since", "2026-12-02", "--until", "2026-12-01"), "swap them"),
    (("--until", "9999-12-31"), "out of range"),
])
def test_a_day_it_cannot_use_is_refused_saying_what_to_write(station_folder, tmp_path, period, said):
    r = _parts(station_folder, tmp_path, *period)
    assert not isinstance(r, list) and r.exit_code == 2, r
    assert said in r.output and "Traceback" not in r.output, r.output
    assert not list(tmp_path.glob("parts-*"))        # nothing written


def test_the_help_says_a_day_is_the_plants(tmp_path):
    from lineguard.cli import app
    r = CliRunner().invoke(app, ["parts", "--help"], terminal_width=200)
    assert r.exit_code == 0
    text = " ".join(r.output.split())
    assert "a day, the plant's" in text and "a day holds all of that day" in text


def test_without_timezone_the_days_are_the_station_s_not_this_pc_s(station_folder, tmp_path):
    """Walk: the station served with --timezone Europe/Berlin on a PC left on UTC; a nightly
    `lineguard parts` without --timezone cut the month at UTC midnight, where the station's
    month report counted other parts. The zone of the station's last start is used, said."""
    from lineguard.cli import app
    from lineguard.line import audit
    from lineguard.line.db import Database
    db = Database(f"sqlite:///{station_folder / 'lineguard.db'}")
    audit.record_start(db, "serve on pc1:/srv/st", {"timezone": ZONE}, "cli (test)")
    audit.record_start(db, "watch L1/S1 on pc1:/srv/st", {"timezone": "Asia/Tokyo"}, "cli (test)")   # not the station's
    assert audit.last_start_timezone(db) == ZONE
    out = tmp_path / "parts-auto.csv"
    r = CliRunner(env={"LINEGUARD_TIMEZONE": None}).invoke(
        app, ["parts", "--data", str(station_folder), "--out", str(out), "--since", "2026-12-01", "--until",
              "2026-12-01"])
    assert r.exit_code == 0, r.output
    assert f"note: days and plant_time in {ZONE}, the station's time zone at its last start" in r.output
    rows = csv.DictReader(io.StringIO(out.read_text("utf-8-sig")))
    assert sorted(row["part_id"] for row in rows) == ["dec1-early", "dec1-night"]
    # the station started since without a zone of its own: this PC's, not an older start's
    audit.record_start(db, "serve on pc1:/srv/st", {"timezone": "this PC's (UTC)"}, "cli (test)")
    assert audit.last_start_timezone(db) is None
    db.dispose()


def test_a_verdict_and_a_line_typed_as_people_type_them(station_folder, tmp_path):
    """`--verdict ok` was refused ("'ok' is not one of 'OK', 'NG', 'REVIEW'") where --line
    and --product take any case; a line no part bears wrote an empty file with only
    "wrote 0 parts", every night of a cron job, as if the line had stopped; then, with a note
    beside it, still exit 0 and the empty file: refused as the API's 404 is, nothing written."""
    from lineguard.cli import app
    assert _parts(station_folder, tmp_path, "--verdict", "ok", "--since", "2026-12-02") == ["dec2-early"]
    out = tmp_path / "none.csv"
    r = CliRunner().invoke(app, ["parts", "--data", str(station_folder), "--out", str(out), "--timezone", ZONE,
                                 "--line", "L-1"])
    assert r.exit_code == 2, r.output
    assert "wrote" not in r.output and not out.exists()
    assert "no part of line 'L-1' is stored (did you mean 'L1'?); the lines the station holds parts of: L1" in r.output
    assert "nothing written to" in r.output
    # a line that holds parts but none in the period: no such note
    r = CliRunner().invoke(app, ["parts", "--data", str(station_folder), "--out", str(out), "--timezone", ZONE,
                                 "--line", "l1", "--since", "2027-01-01"])
    assert r.exit_code == 0 and "wrote 0 parts" in r.output and "no part of" not in r.output, r.output


def test_parts_out_into_a_folder_that_does_not_exist_is_refused(station_folder, tmp_path):
    """A cron export to an unmounted share's path made the folders on the PC's own disk and
    said "wrote ... parts"."""
    from lineguard.cli import app
    out = tmp_path / "share" / "line1" / "parts.csv"
    r = CliRunner().invoke(app, ["parts", "--data", str(station_folder), "--out", str(out)])
    assert r.exit_code == 2 and "must exist and is not made" in r.output, r.output
    assert not (tmp_path / "share").exists()
