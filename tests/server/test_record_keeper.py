"""Old parts' records deleted where the plant set how long it keeps them (--keep-records-days),
on SQLite and PostgreSQL: with their files and shadow results, never a reviewed part, the
audit sample or a test-part check, never a file another record names; the PLC's answers too;
SPC and the shift report say what is no longer there instead of charting what is left."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update

from lineguard.line.config import StationConfig
from lineguard.line.orm import Inspection, LineSignal, Review, ShadowResult, utcnow
from lineguard.line.station import Part

from .conftest import png_bytes
from .fake_inspector import FakeInspector
from .test_spc_api import client


def test_keeping_records_fewer_than_30_days_is_refused(tmp_path):
    with pytest.raises(ValueError, match="at least 30"):
        StationConfig(data_dir=tmp_path, keep_records_days=7)
    assert StationConfig(data_dir=tmp_path).keep_records_days is None       # the default: every record kept


def test_old_records_go_with_their_files_and_what_the_station_learns_from_stays(spc_station):
    st = spc_station(keep_records_days=30, shift_starts=("06:00", "14:00", "22:00"))
    assert st.records is not None and st.records.keep_days == 30
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    st.test_parts.add("cell", "RR-01", "NG")
    names = ["old", "old-reviewed", "old-audit", "RR-01", "old-same-image", "old-ng", "young"]   # young: the newest
    recs = {}
    for i, name in enumerate(names):
        image = png_bytes(60, seed=5) if name in ("young", "old-same-image") else png_bytes(
            200 if name in ("RR-01", "old-ng") else 60, seed=100 + i)
        recs[name] = st.inspect(image, Part(part_id=f"{name}-{i}", line="L1", station="S1", product="cell",
                                            serial=name if name == "RR-01" else None)).record
    st.maps.flush()
    st.review(recs["old-reviewed"].id, "good", "maria (user)", None)
    long_ago = utcnow() - dt.timedelta(days=40)
    old = [recs[n].id for n in names if n != "young"]
    with st.db.session() as s:
        s.execute(update(Inspection).where(Inspection.id.in_(old)).values(created_at=long_ago))
        s.execute(update(Inspection).where(Inspection.id == recs["old-audit"].id).values(audit_sample=True))
        version = st.models.list()[0].id
        s.add(ShadowResult(inspection_id=recs["old"].id, model_version_id=version, verdict="OK", score=0.1))
        for at, code in ((long_ago, 10), (utcnow(), 1)):
            s.add(LineSignal(protocol="modbus", line="L1", station="S1", trigger_seq=1, part_tag=0, recipe_id=1,
                             product="cell", inspection_id=None if code == 10 else recs["young"].id,
                             signal="NG" if code == 10 else "OK", result_code=code, triggered_at=at,
                             answered_at=at))
    files = {n: [r.image_key, r.heatmap_key] for n, r in recs.items()}
    assert all(k for n in ("old", "old-ng", "young") for k in files[n]), files      # images and maps stored
    with client(st) as c:     # before any is deleted, every record is there: the chart reads them all
        before = c.get("/api/v1/spc/p-chart", params={"line": "L1", "by": "day",
                                                    "since": (utcnow() - dt.timedelta(days=60)).isoformat() + "Z"})
        assert before.status_code == 200, before.text
        assert sum(p["n"] for p in before.json()["points"]) == 6           # test parts apart

    st.images.recent_s = 0          # these parts' files were stored a moment ago
    done = st.records.run_once()
    assert (done["parts"], done["signals"]) == (3, 1)                # old, old-same-image, old-ng
    with st.db.session() as s:
        left = {r.part_id.rsplit("-", 1)[0] for r in s.scalars(select(Inspection))}
        assert left == {"old-reviewed", "old-audit", "RR-01", "young"}
        assert s.scalars(select(ShadowResult)).all() == []
        assert [r.inspection_id for r in s.scalars(select(Review))] == [recs["old-reviewed"].id]
        assert [sig.result_code for sig in s.scalars(select(LineSignal))] == [1]
    for name in ("old", "old-ng"):
        assert not any(st.images.path(k).exists() for k in files[name]), name
    # the same image as a part still kept: its file stays (the map is the young part's too)
    assert files["old-same-image"][0] == files["young"][0] and st.images.path(files["young"][0]).exists()
    for name in ("old-reviewed", "old-audit", "RR-01", "young"):
        assert st.images.path(files[name][0]).exists(), name
    assert done["files"] == 4
    assert st.records.run_once()["parts"] == 0                         # nothing more to do

    # another process on the database, without the setting (a hot folder's watcher, a
    # second server), reads the cutoff from the database: its charts are clamped alike
    other = spc_station(shift_starts=("06:00", "14:00", "22:00"))
    assert other.records is None
    with client(other) as c:
        r = c.get("/api/v1/spc/p-chart", params={"line": "L1", "by": "day",
                                                "since": (utcnow() - dt.timedelta(days=60)).isoformat() + "Z"})
        assert sum(p["n"] for p in r.json()["points"]) == 1
        from lineguard.line.record_keeper import kept_since
        from lineguard.line.station import _iso
        assert r.json()["since"] == _iso(kept_since(st.db))           # the start it read from: the cutoff
        old_shift = c.get("/api/v1/reports/shift", params={"at": long_ago.isoformat() + "Z"}).json()
        assert "no longer kept" in old_shift["records_incomplete"]
        # charts of reviewed parts read before the cutoff: every reviewed part is kept
        rates = c.get("/api/v1/spc/review-rates", params={"line": "L1",
                                                          "since": (utcnow() - dt.timedelta(days=60)).isoformat() + "Z"})
        assert rates.status_code == 200
        assert rates.json()["escape"]["n"] == 1           # the old OK part reviewed good, 40 days back
    with client(st) as c:
        health = c.get("/health").json()
        assert health["records"]["keep_days"] == 30
        assert health["records"]["deleted_since_start"] == {"parts": 3, "signals": 1, "files": 4}
        # the chart reads from the cutoff on: the old reviewed and audit parts are no sample of the line
        r = c.get("/api/v1/spc/p-chart", params={"line": "L1", "by": "day",
                                                "since": (utcnow() - dt.timedelta(days=60)).isoformat() + "Z"})
        assert r.status_code == 200, r.text
        assert sum(p["n"] for p in r.json()["points"]) == 1                # the young part alone
        old_shift = c.get("/api/v1/reports/shift", params={"at": long_ago.isoformat() + "Z"}).json()
        assert "no longer kept" in old_shift["records_incomplete"]
        now_shift = c.get("/api/v1/reports/shift", params={"at": utcnow().isoformat() + "Z"}).json()
        assert now_shift["records_incomplete"] is None


@pytest.mark.one_database
def test_without_the_setting_every_record_stays(spc_station):
    st = spc_station()
    assert st.records is None
    with client(st) as c:
        assert c.get("/health").json()["records"] is None
        rep = c.get("/api/v1/reports/shift").json()
        assert rep["records_incomplete"] is None


def test_the_newest_records_stay_after_a_station_stood_idle(spc_station):
    """A station idle longer than the setting: its newest part and PLC answer stay, so SQLite
    never hands their ids out again (alarms mark what they have done with by ids)."""
    st = spc_station(keep_records_days=30)
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    ids = [st.inspect(png_bytes(60, seed=300 + i), Part(part_id=f"idle-{i}", line="L1", station="S1",
                                                      product="cell")).record.id for i in range(3)]
    st.maps.flush()
    long_ago = utcnow() - dt.timedelta(days=90)
    with st.db.session() as s:
        s.execute(update(Inspection).values(created_at=long_ago))
        for _ in range(2):
            s.add(LineSignal(protocol="modbus", line="L1", station="S1", trigger_seq=1, part_tag=0, recipe_id=1,
                             product="cell", inspection_id=None, signal="NG", result_code=10, triggered_at=long_ago,
                             answered_at=long_ago))
    st.images.recent_s = 0
    done = st.records.run_once()
    assert (done["parts"], done["signals"]) == (2, 1)
    with st.db.session() as s:
        assert [r.id for r in s.scalars(select(Inspection))] == [ids[-1]]
    with pytest.raises(Exception, match="no inspection"):
        st.review(ids[0], "good", "maria (user)", None)           # deleted: not found, nothing written


@pytest.mark.one_database
def test_records_are_archived_before_they_are_deleted_and_kept_when_the_archive_cannot_be_written(spc_station,
                                                                                                   tmp_path):
    import csv
    archive = tmp_path / "archive"
    with pytest.raises(ValueError, match="needs keep_records_days"):
        StationConfig(data_dir=tmp_path / "x", archive_records_to=archive)
    archive.write_text("a file where the folder should be")        # the share is not mounted as it should be
    st = spc_station(keep_records_days=30, archive_records_to=archive)
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    ids = [st.inspect(png_bytes(200 if i == 1 else 60, seed=400 + i),
                      Part(part_id=f"arch-{i}", line="L1", station="S1", product="cell", serial=f"SN-{i}")).record.id
           for i in range(4)]
    st.maps.flush()
    long_ago = utcnow() - dt.timedelta(days=45)
    with st.db.session() as s:
        s.execute(update(Inspection).where(Inspection.id.in_(ids[:3])).values(created_at=long_ago))
        for at, reason in ((long_ago, "no image for the trigger: camera lost"), (utcnow(), None)):
            s.add(LineSignal(protocol="modbus", line="L1", station="S1", trigger_seq=1, part_tag=77, recipe_id=1,
                             product="cell", inspection_id=None if reason else ids[3], signal="NG" if reason else "OK",
                             result_code=11 if reason else 1, reason=reason, triggered_at=at, answered_at=at))
    st.images.recent_s = 0
    with pytest.raises(OSError):
        st.records.run_once()
    assert len(st.query(limit=10)) == 4                                 # not written, not deleted
    assert "could not be archived" in st.faults["records"]
    with client(st) as c:              # the line goes on: degraded, not a 503 that takes the station out
        h = c.get("/health")
        assert (h.status_code, h.json()["status"]) == (200, "degraded") and "records" in h.json()["faults"]
        assert 'lineguard_station_fault{fault="records"} 1.0' in c.get("/metrics").text    # for a plant monitor
        st.faults["camera"] = "camera lost"                               # parts cannot be judged: a fault
        h = c.get("/health")
        assert (h.status_code, h.json()["status"]) == (503, "fault")
        st.faults.pop("camera")
    archive.unlink()
    with pytest.raises(OSError):
        st.records.run_once()              # the folder is not made here (a share not mounted)
    assert "does not exist" in st.faults["records"] and len(st.query(limit=10)) == 4
    archive.mkdir()
    done = st.records.run_once()
    assert done["parts"] == 3 and "records" not in st.faults
    (f,) = archive.glob("records-*.csv")
    assert f.name.endswith(f"utc-{ids[0]}-{ids[2]}.csv")
    rows = list(csv.DictReader(f.read_text(encoding="utf-8-sig").splitlines()))
    assert [(int(r["id"]), r["part_id"], r["serial"], r["verdict"]) for r in rows] == [
        (ids[0], "arch-0", "SN-0", "OK"), (ids[1], "arch-1", "SN-1", "NG"), (ids[2], "arch-2", "SN-2", "OK")]
    assert all(len(r["image_sha256"]) == 64 for r in rows) and rows[1]["regions_json"].startswith("[")
    # the rejected part's image went with its record (the evidence), the passed parts' did not
    assert [r["image_file"] for r in rows][::2] == ["", ""] and rows[1]["image_file"].startswith("images/")
    assert (archive / rows[1]["image_file"]).read_bytes() == png_bytes(200, seed=401)
    assert [p.name for p in (archive / "images").rglob("*") if p.is_file()] == [rows[1]["image_file"].split("/")[-1]]
    # another station's batch of the same name and other contents never replaces a file
    from lineguard.line.record_keeper import write_new
    assert write_new(f, b"other") == f.with_name(f.stem + "-2.csv") and f.read_bytes() != b"other"
    assert write_new(f, f.read_bytes()) == f
    (g,) = archive.glob("signals-*.csv")                   # what the PLC was told, archived as well
    (answer,) = list(csv.DictReader(g.read_text(encoding="utf-8-sig").splitlines()))
    assert (answer["result_code"], answer["part_tag"], answer["reason"]) == ("11", "77", "no image for the trigger: "
                                                                             "camera lost")
    assert done["signals"] == 1
    assert [r.id for r in st.query(limit=10)] == [ids[3]]
    with client(st) as c:
        assert 'lineguard_station_fault{fault="records"} 0.0' in c.get("/metrics").text    # cleared: resolves
        health = c.get("/health").json()["records"]
        assert (health["archive"], health["archive_images"]) == (str(archive), "ng")


@pytest.mark.parametrize("which", ["ng", "all", "none"])
@pytest.mark.one_database
def test_archived_images_follow_the_setting_and_an_image_already_gone_is_no_fault(spc_station, tmp_path, which):
    import csv
    archive = tmp_path / "archive"
    archive.mkdir()
    with pytest.raises(ValueError, match="archive_images is one of none, ng, all"):
        StationConfig(data_dir=tmp_path / "x", keep_records_days=30, archive_records_to=archive, archive_images="NG")
    st = spc_station(keep_records_days=30, archive_records_to=archive, archive_images=which)
    st.add_model(FakeInspector(0.5, review_threshold=0.4).to_bytes(), "cell", activate=True)
    recs = [st.inspect(png_bytes(v, seed=500 + i), Part(part_id=f"img-{i}", line="L1", station="S1",
                                                         product="cell")).record
            for i, v in enumerate((60, 200, 115, 200))]           # OK, NG, REVIEW, NG
    assert [r.verdict for r in recs] == ["OK", "NG", "REVIEW", "NG"]
    st.inspect(png_bytes(60, seed=599), Part(part_id="newest", line="L1", station="S1", product="cell"))
    st.maps.flush()
    st.images.path(recs[3].image_key).unlink()          # deleted for room before the records' time came
    with st.db.session() as s:
        s.execute(update(Inspection).where(Inspection.id.in_([r.id for r in recs]))
                  .values(created_at=utcnow() - dt.timedelta(days=45)))
    st.images.recent_s = 0
    done = st.records.run_once()
    assert (done["parts"], done["images_unreadable"]) == (4, 0) and "records" not in st.faults
    (f,) = archive.glob("records-*.csv")
    files = [r["image_file"] for r in csv.DictReader(f.read_text(encoding="utf-8-sig").splitlines())]
    want = {"ng": ["", 1, 2, ""], "all": [0, 1, 2, ""], "none": ["", "", "", ""]}[which]
    assert files == [w if w == "" else f"images/{recs[w].image_key}" for w in want]
    for w in want:
        if w != "":
            assert (archive / "images" / recs[w].image_key).read_bytes() == png_bytes((60, 200, 115)[w],
                                                                                      seed=500 + w)
    assert (archive / "images").exists() is (which != "none")


@pytest.mark.one_database
def test_records_are_not_archived_to_a_share_s_mount_point_without_the_share(spc_station, tmp_path):
    # the archive folder is the share's mount point: when the share is not mounted the
    # folder is still there, empty, on the station's own disk; records written there would
    # hide under the share once it is mounted again, deleted from the station as archived
    from lineguard.line.orm import RecordsKept
    share = tmp_path / "share"
    share.mkdir()
    st = spc_station(keep_records_days=30, archive_records_to=share)
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    ids = [st.inspect(png_bytes(60, seed=700 + i), Part(part_id=f"m-{i}", line="L1", station="S1",
                                                         product="cell")).record.id for i in range(4)]
    st.maps.flush()
    st.images.recent_s = 0

    def age(which, days):
        with st.db.session() as s:
            s.execute(update(Inspection).where(Inspection.id.in_(which))
                      .values(created_at=utcnow() - dt.timedelta(days=days)))
    age(ids[:1], 45)
    assert st.records.run_once()["parts"] == 1 and (share / ".lineguard-archive").exists()   # marked at first use
    with st.db.session() as s:
        kept_since = s.get(RecordsKept, 1).kept_since
    share.rename(tmp_path / "share-away")          # not mounted after a restart
    share.mkdir()
    age(ids[1:3], 40)
    with pytest.raises(OSError, match="has no .lineguard-archive file"):
        st.records.run_once()
    assert "has no .lineguard-archive file" in st.faults["records"]
    assert list(share.iterdir()) == [] and len(st.query(limit=10)) == 3      # nothing written, nothing deleted
    with st.db.session() as s:
        assert s.get(RecordsKept, 1).kept_since == kept_since                # the charts' cutoff stayed
    share.rmdir()
    (tmp_path / "share-away").rename(share)        # mounted again
    assert st.records.run_once()["parts"] == 2 and "records" not in st.faults
    assert len(list(share.glob("records-*.csv"))) == 2


@pytest.mark.one_database
def test_an_image_the_station_cannot_read_keeps_its_record_and_the_rest_go(spc_station, tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    st = spc_station(keep_records_days=30, archive_records_to=archive)
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    recs = [st.inspect(png_bytes(200, seed=700 + i), Part(part_id=f"bad-{i}", line="L1", station="S1",
                                                           product="cell")).record for i in range(3)]
    st.inspect(png_bytes(60, seed=799), Part(part_id="newest", line="L1", station="S1", product="cell"))
    st.maps.flush()
    broken = st.images.path(recs[1].image_key)
    broken.unlink()
    broken.mkdir()                      # a file the disk cannot read (read() fails, not "no such file")
    with st.db.session() as s:
        s.execute(update(Inspection).where(Inspection.id.in_([r.id for r in recs]))
                  .values(created_at=utcnow() - dt.timedelta(days=45)))
    st.images.recent_s = 0
    done = st.records.run_once()
    assert (done["parts"], done["images_unreadable"]) == (2, 1)
    assert "could not be read for the archive" in st.faults["records_image"] and "records" not in st.faults
    assert [r.part_id for r in st.query(limit=10)] == ["newest", "bad-1"]        # kept with its image
    assert sorted(p.name for p in (archive / "images").rglob("*.png")) == sorted(
        st.images.path(r.image_key).name for r in (recs[0], recs[2]))
    broken.rmdir()
    broken.write_bytes(png_bytes(200, seed=701))         # the disk repaired: it goes at the next run
    done = st.records.run_once()
    assert (done["parts"], done["images_unreadable"]) == (1, 0) and "records_image" not in st.faults


def test_old_records_shows_what_would_go_and_deletes_only_when_told(spc_station, tmp_path):
    """Before a plant sets --keep-records-days: what would go, what stays; --delete deletes
    now (archived first), in the change log."""
    from click.testing import CliRunner

    from lineguard.cli import app
    from lineguard.line import audit
    st = spc_station()
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    recs = [st.inspect(png_bytes(v, seed=900 + i), Part(part_id=f"old-{i}", line="L1", station="S1",
                                                         product="cell")).record for i, v in enumerate((60, 200, 60))]
    st.inspect(png_bytes(60, seed=999), Part(part_id="new", line="L1", station="S1", product="cell"))
    st.maps.flush()
    st.review(recs[2].id, "good", "ana", None)           # reviewed: stays however old
    import os
    with st.db.session() as s:
        named = sum(k is not None for r in (recs[0], recs[1]) for k in (s.get(Inspection, r.id).image_key,
                    s.get(Inspection, r.id).heatmap_key, s.get(Inspection, r.id).overlay_key))
    hundred_days_ago = (utcnow() - dt.timedelta(days=100)).timestamp()
    for f in (st.config.data_dir / "images").rglob("*"):    # written then: the command's store deletes them
        os.utime(f, (hundred_days_ago, hundred_days_ago))
    with st.db.session() as s:
        s.execute(update(Inspection).where(Inspection.id.in_([r.id for r in recs]))
                  .values(created_at=utcnow() - dt.timedelta(days=100)))
    where = ["--data", str(st.config.data_dir)]
    if st.config.db_url:
        where += ["--db", st.config.db_url, "--db-schema", st.config.db_schema]

    look = CliRunner().invoke(app, ["old-records", "--keep-days", "90", *where])
    assert look.exit_code == 0, look.output
    assert "would go: 2 parts' records (" in look.output and "1 OK, 1 NG, 0 REVIEW; 2 with an image" in look.output
    assert "stay however old: 1 reviewed, 0 in the audit sample" in look.output and "nothing deleted" in look.output
    assert len(st.query(limit=10)) == 4
    assert CliRunner().invoke(app, ["old-records", "--keep-days", "120", *where]).output.count("would go: 0 parts") == 1
    assert CliRunner().invoke(app, ["old-records", "--keep-days", "29", *where]).exit_code == 2
    assert CliRunner().invoke(app, ["old-records", "--keep-days", "90", "--archive-to", str(tmp_path),
                                    *where]).exit_code == 2       # archiving is for --delete

    # a folder that is not the station's: refused, nothing made there (every image would look deleted)
    elsewhere = CliRunner().invoke(app, ["old-records", "--keep-days", "90", "--data", str(tmp_path / "typo"),
                                         *where[2:]])
    assert elsewhere.exit_code == 2 and "no images/ folder" in elsewhere.output and not (tmp_path / "typo").exists()
    # an archive folder not there: nothing deleted, and the charts' cutoff does not move
    gone = CliRunner().invoke(app, ["old-records", "--keep-days", "90", "--delete", "--archive-to",
                                    str(tmp_path / "arch"), *where])
    assert gone.exit_code == 1 and "does not exist" in gone.output and "deleted 0 parts' records" in gone.output
    from lineguard.line.record_keeper import kept_since
    assert kept_since(st.db) is None and len(st.query(limit=10)) == 4
    assert audit.entries(st.db, action="records.deleted") == []
    (tmp_path / "arch").mkdir()
    done = CliRunner().invoke(app, ["old-records", "--keep-days", "90", "--delete", "--archive-to",
                                    str(tmp_path / "arch"), *where])
    assert done.exit_code == 0, done.output
    assert "deleted 2 parts' records" in done.output
    assert sorted(r.part_id for r in st.query(limit=10)) == ["new", "old-2"]
    assert len(list((tmp_path / "arch").glob("records-*.csv"))) == 1
    assert len(list((tmp_path / "arch" / "images").rglob("*.png"))) == 1           # the NG part's image
    (entry,) = audit.entries(st.db, action="records.deleted")
    assert entry.actor.startswith("cli") and (entry.details["parts"], entry.details["keep_days"]) == (2, 90)
    assert entry.details["files"] == named and "stopped_by" not in entry.details     # images, maps, overlays


def test_old_records_stopped_half_way_says_and_logs_what_went(spc_station, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from lineguard.cli import app
    from lineguard.line import audit, record_keeper
    st = spc_station()
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    recs = [st.inspect(png_bytes(60, seed=950 + i), Part(part_id=f"half-{i}", line="L1", station="S1",
                                                          product="cell")).record for i in range(3)]
    st.inspect(png_bytes(60, seed=959), Part(part_id="new", line="L1", station="S1", product="cell"))
    with st.db.session() as s:
        s.execute(update(Inspection).where(Inspection.id.in_([r.id for r in recs]))
                  .values(created_at=utcnow() - dt.timedelta(days=100)))
    (tmp_path / "arch").mkdir()
    monkeypatch.setattr(record_keeper, "BATCH", 1)        # a batch a part: the second one's archive fails
    written = []
    real = record_keeper.write_new

    def share_fills(path, data):
        if written:
            raise OSError(28, "No space left on device")
        written.append(path)
        return real(path, data)
    monkeypatch.setattr(record_keeper, "write_new", share_fills)
    where = ["--data", str(st.config.data_dir)]
    if st.config.db_url:
        where += ["--db", st.config.db_url, "--db-schema", st.config.db_schema]
    r = CliRunner().invoke(app, ["old-records", "--keep-days", "90", "--delete", "--archive-to",
                                 str(tmp_path / "arch"), *where])
    assert r.exit_code == 1 and "deleted 1 parts' records" in r.output and "stopped before the end" in r.output
    assert "No space left on device" in r.output
    assert sorted(x.part_id for x in st.query(limit=10)) == ["half-1", "half-2", "new"]
    (entry,) = audit.entries(st.db, action="records.deleted")
    assert entry.details["parts"] == 1 and "No space left" in entry.details["stopped_by"]
