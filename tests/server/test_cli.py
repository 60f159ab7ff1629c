"""The station verbs end to end: keys create, serve (fake-free path via --help), watch --server."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest
from cli_runner import run_in_process, run_serve_refusal

from .conftest import ServerProc, fake_model_bytes, png_bytes


def _lineguard(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    if args[0] == "serve":          # only refusals here: stopped before its station opens
        return run_serve_refusal(*args[1:])
    if args[0] != "watch":
        return run_in_process(*args)
    # watch runs until stopped: refused at start it ends at once, but one that started by
    # mistake would hang the test run, so it keeps a process of its own (and its timeout)
    return subprocess.run([sys.executable, "-m", "lineguard", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_keys_create_prints_a_working_key_and_watch_feeds_the_server(tmp_path):
    data = tmp_path / "data"
    typo = _lineguard("keys", "create", "--data", str(data), "--role", "engineer")
    assert typo.returncode == 2 and "add --new" in typo.stderr and not data.exists()     # no new, empty station
    r = _lineguard("keys", "create", "--data", str(data), "--role", "engineer", "--name", "cli", "--new")
    assert r.returncode == 0, r.stderr
    eng = r.stdout.strip().splitlines()[-1]
    assert r.stdout.strip() == eng                     # stdout the key alone (KEY=$(lineguard keys create ...))
    said = " ".join(r.stderr.split())
    assert "engineer key 1 (cli): shown this once" in said and "lineguard keys revoke 1" in said, said
    op = _lineguard("keys", "create", "--data", str(data), "--role", "operator").stdout.strip().splitlines()[-1]
    assert eng.startswith("lg_") and op.startswith("lg_") and eng != op
    bad = _lineguard("keys", "create", "--data", str(data), "--role", "boss")
    assert bad.returncode != 0 and "operator" in (bad.stderr + bad.stdout)

    srv = ServerProc(data).start()
    try:
        with srv.client(eng) as e:
            assert e.post("/api/v1/models", files={"file": ("m.lgm", fake_model_bytes())},
                          data={"product": "cell", "activate": "true"}).status_code == 201
        inbox = tmp_path / "incoming"
        inbox.mkdir()
        for i in range(3):
            (inbox / f"part-{i}.png").write_bytes(png_bytes(30 + 90 * i, seed=i))
        (inbox / "junk.png").write_bytes(b"not an image at all")
        proc = subprocess.Popen([sys.executable, "-m", "lineguard", "watch", str(inbox), "--line", "L1",
                                 "--product", "cell", "--server", srv.url, "--api-key", op, "--settle", "0.1",
                                 "--poll", "0.1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                done = list((inbox / "done").glob("*.png")) if (inbox / "done").exists() else []
                failed = list((inbox / "failed").glob("*.png")) if (inbox / "failed").exists() else []
                if len(done) == 3 and len(failed) == 1:
                    break
                time.sleep(0.2)
        finally:
            proc.terminate()
            out, err = proc.communicate(timeout=20)
        assert len(done) == 3 and len(failed) == 1, err
        assert "not_an_image" in (inbox / "failed" / "junk.png.reason.txt").read_text() or \
            "415" in (inbox / "failed" / "junk.png.reason.txt").read_text()
        with srv.client(op) as c:
            items = c.get("/api/v1/inspections", params={"line": "L1"}).json()["items"]
        assert sorted(x["part_id"] for x in items) == ["part-0", "part-1", "part-2"]
        assert {x["station"] for x in items} == {"watch"}
    finally:
        srv.stop()


@pytest.mark.slow
def test_watch_with_data_publishes_like_the_server(tmp_path, fitted_model_path, synth_category):
    from line.test_outbox import Receiver
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    data = tmp_path / "data"
    st = Station(StationConfig(data_dir=data))
    st.ensure_model(fitted_model_path, "cell")
    st.close()
    inbox = tmp_path / "incoming"
    inbox.mkdir()
    good = sorted((synth_category / "test" / "good").glob("*.png"))[0]     # a part the model passes
    (inbox / "w-0.png").write_bytes(good.read_bytes())
    (inbox / "w-1.png").write_bytes(png_bytes(120, seed=1, size=128))
    bad = _lineguard("watch", str(inbox), "--line", "L1", "--product", "cell", "--server", "http://127.0.0.1:9",
                     "--api-key", "x", "--webhook", "http://127.0.0.1:9/h")
    assert bad.returncode == 2 and "lineguard serve" in bad.stderr
    # a remote station keeps images by its own settings: saying otherwise here is refused
    bad = _lineguard("watch", str(inbox), "--line", "L1", "--product", "cell", "--server", "http://127.0.0.1:9",
                     "--api-key", "x", "--min-free-gb", "5", "--max-megapixels", "12", "--alarm-photo-run", "0")
    assert bad.returncode == 2 and "--min-free-gb, --max-megapixels, --alarm-photo-run" in bad.stderr
    assert "lineguard serve" in bad.stderr
    receiver = Receiver()
    # the station in this process keeps images as told: no OK image, no audit sample
    proc = subprocess.Popen([sys.executable, "-m", "lineguard", "watch", str(inbox), "--line", "L1", "--product",
                             "cell", "--data", str(data), "--webhook", receiver.url, "--settle", "0.1", "--poll", "0.1",
                             "--ok-sample-rate", "0", "--audit-sample-rate", "0", "--min-free-gb", "0.5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while len(receiver.unique()) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
        receiver.close()
    got = receiver.unique()
    assert sorted(m["part_id"] for m in got) == ["w-0", "w-1"], err
    assert {m["line"] for m in got} == {"L1"} and all(m["source"] == "folder" for m in got)
    st = Station(StationConfig(data_dir=data, min_free_gb=0, store_sweep_h=0))
    try:
        recs = [st.get(m["id"]) for m in got]
    finally:
        st.close()
    assert any(r.verdict == "OK" for r in recs)
    assert all((r.image_key is None) == (r.verdict == "OK") and not r.audit_sample for r in recs)


def test_serve_modbus_settings_are_checked_before_start(tmp_path):
    r = _lineguard("serve", "--data", str(tmp_path / "d"), "--modbus-port", "1502", "--product", "cell")
    assert r.returncode == 2 and "--plc-images" in r.stderr
    (tmp_path / "cam").mkdir()
    r = _lineguard("serve", "--data", str(tmp_path / "d"), "--modbus-port", "1502", "--plc-images",
                   str(tmp_path / "cam"), "--line", "L1", "--recipe", "one=cell")
    assert r.returncode == 2 and "ID=PRODUCT" in r.stderr
    r = _lineguard("serve", "--data", str(tmp_path / "d"), "--recipe", "1=cell")
    assert r.returncode == 2 and "need --modbus-port" in r.stderr


def test_serve_refuses_an_ok_sample_rate_that_is_not_a_share(tmp_path):
    # "10" meant as 10% would otherwise keep every OK image (the rate was clamped to 1)
    r = _lineguard("serve", "--data", str(tmp_path / "d"), "--ok-sample-rate", "10")
    assert r.returncode == 2 and "--ok-sample-rate" in r.stderr and "0<=x<=1" in r.stderr
    r = _lineguard("serve", "--data", str(tmp_path / "d"), "--min-free-gb", "-1")
    assert r.returncode == 2 and "--min-free-gb" in r.stderr
    from lineguard.line.config import RetentionPolicy
    with pytest.raises(ValueError, match="between 0 and 1"):
        RetentionPolicy(ok_sample_rate=10.0)      # LINEGUARD_OK_SAMPLE_RATE, python -m lineguard.server
    r = subprocess.run([sys.executable, "-m", "lineguard.server", "--data", str(tmp_path / "d"), "--min-free-gb", "-1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "min_free_gb" in r.stderr


def _station_with_parts(data, parts: int, leftover: bytes = b""):
    """A stopped station (fake model) that judged ``parts`` parts: (their ids, the key of
    a file stored for no part, if ``leftover``)."""
    from fake_inspector import FakeInspector
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Part, Station
    st = Station(StationConfig(data_dir=data, min_free_gb=0, store_sweep_h=0), loader=FakeInspector.load)
    try:
        st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
        ids = [st.inspect(png_bytes(60 + 90 * i, seed=i), Part(f"p{i}", "L1", "S1", "cell")).record.id
               for i in range(parts)]
        st.maps.flush()
        return ids, st.images.put(leftover, ".png") if leftover else None
    finally:
        st.close()


def test_sweep_deletes_what_no_record_names_and_refuses_a_database_that_names_nothing(tmp_path):
    import os
    from fake_inspector import FakeInspector
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Part, Station
    data = tmp_path / "data"
    _ids, orphan = _station_with_parts(data, 3, b"an image whose part was never recorded")   # a crash's leftover
    files = [p for p in (data / "images").rglob("*") if p.is_file()]
    for p in files:
        os.utime(p, (time.time() - 7200,) * 2)
    r = _lineguard("sweep", "--data", str(data), "--dry-run")
    assert r.returncode == 0 and "1 named by no part's record" in r.stdout and orphan in r.stdout, r.stderr
    assert (data / "images" / orphan).exists()
    # a mistyped --db: refused, and no database made there
    r = _lineguard("sweep", "--data", str(data), "--db", f"sqlite:///{tmp_path / 'other.db'}")
    assert r.returncode == 2 and "no station database at" in r.stderr and not (tmp_path / "other.db").exists()
    # another station's database: it names none of these images
    other = Station(StationConfig(data_dir=tmp_path / "other", min_free_gb=0, store_sweep_h=0),
                    loader=FakeInspector.load)
    other.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    other.inspect(png_bytes(60, seed=50), Part("q", "L1", "S1", "cell"))
    other.close()
    r = _lineguard("sweep", "--data", str(data), "--db", f"sqlite:///{tmp_path / 'other' / 'lineguard.db'}")
    assert r.returncode == 2 and "Nothing was deleted" in r.stderr, r.stderr
    assert all(p.exists() for p in files)
    r = _lineguard("sweep", "--data", str(data))
    assert r.returncode == 0 and "deleted 1" in r.stdout, r.stderr
    assert not (data / "images" / orphan).exists() and sum(p.exists() for p in files) == len(files) - 1
    r = _lineguard("sweep", "--data", str(tmp_path / "nowhere"))
    assert r.returncode == 2 and "no images/ folder" in r.stderr


def test_backup_and_restore_bring_back_a_station_that_serves_and_say_what_is_damaged(tmp_path):
    from fake_inspector import FakeInspector
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    data = tmp_path / "data"
    ids, _ = _station_with_parts(data, 2)
    r = _lineguard("backup", "--data", str(data), "--to", str(tmp_path / "copy"))
    assert r.returncode == 0 and "backed up 2 parts" in r.stdout, r.stderr
    r = _lineguard("backup", "--data", str(data), "--to", str(tmp_path / "copy"))
    assert r.returncode == 0 and "0 files copied" in r.stdout
    r = _lineguard("restore", "--from", str(tmp_path / "copy"), "--check")
    assert r.returncode == 0 and "checked the backup made" in r.stdout and "2 parts" in r.stdout, r.stderr
    r = _lineguard("restore", "--from", str(tmp_path / "copy"), "--data", str(tmp_path / "restored"))
    assert r.returncode == 0 and "lineguard serve --data" in r.stdout, r.stderr
    copy = Station(StationConfig(data_dir=tmp_path / "restored", min_free_gb=0, store_sweep_h=0),
                   loader=FakeInspector.load)
    try:
        assert [copy.get(i).part_id for i in ids] == ["p0", "p1"]
        assert all(copy.images.exists(copy.get(i).image_key) for i in ids)
        copy_key = copy.get(ids[0]).image_key
    finally:
        copy.close()
    r = _lineguard("backup", "--data", str(data), "--to", str(data / "inside"))
    assert r.returncode == 2 and "another folder" in r.stderr
    # a damaged backup: the restore says what is lost and exits 1; into a used folder: refused
    key = copy_key
    (tmp_path / "copy" / "images" / key).write_bytes(b"rotten")
    r = _lineguard("restore", "--from", str(tmp_path / "copy"), "--check")
    assert r.returncode == 1 and f"damaged (its bytes changed): {key}" in r.stderr, r.stderr
    r = _lineguard("restore", "--from", str(tmp_path / "copy"), "--data", str(tmp_path / "restored"))
    assert r.returncode == 2 and "not empty" in r.stderr
    r = _lineguard("restore", "--from", str(tmp_path / "copy"), "--data", str(tmp_path / "again"))
    assert r.returncode == 1 and "1 part came back with the image recorded as not kept" in r.stderr, r.stderr
    r = _lineguard("restore", "--from", str(tmp_path / "copy"))
    assert r.returncode == 2 and "--check" in r.stderr
    r = _lineguard("backup", "--data", str(data), "--to", str(tmp_path / "copy"), "--verify")
    assert r.returncode == 0 and "read back" in r.stdout, r.stderr
    assert _lineguard("restore", "--from", str(tmp_path / "copy"), "--check").returncode == 0
    r = _lineguard("backup", "--data", str(data), "--to", str(tmp_path / "pg"), "--db", "postgresql://x@h/db")
    assert r.returncode == 2 and "pg_dump" in r.stderr


def test_a_station_in_the_watchers_own_process_takes_the_stations_options(tmp_path, monkeypatch):
    from click.testing import CliRunner

    import lineguard.cli.station as station_cli
    from lineguard.cli import app
    from lineguard.line.sources.folder import FolderWatcher
    made = []

    watchers = []

    def submitter(*args, **kw):
        # the station it would open
        made.append(station_cli._config(tmp_path / "data", None, max_upload_mb=kw["max_upload_mb"], **args[-1]))
        return (lambda *a, **k: None), None
    monkeypatch.setattr(station_cli, "_submitter", submitter)
    monkeypatch.setattr(FolderWatcher, "run", lambda self: watchers.append(self))
    (tmp_path / "in").mkdir()
    r = CliRunner().invoke(app, ["watch", str(tmp_path / "in"), "--line", "L1", "--product", "cell", "--data",
                                  str(tmp_path / "data"), "--max-megapixels", "0.5", "--ok-sample-rate", "0.25",
                                  "--ok-image-days", "3", "--max-upload-mb", "2"])
    assert r.exit_code == 0, r.output
    (cfg,) = made
    assert (cfg.max_image_pixels, cfg.retention.ok_sample_rate, cfg.ok_image_days) == (500_000, 0.25, 3.0)
    # the upload limit: the station's, and the watcher's own check before it reads a file
    assert cfg.max_upload_bytes == watchers[0].max_bytes == 2 * 1024 * 1024


def test_parts_writes_a_stopped_stations_records_to_a_spreadsheet(tmp_path):
    import csv
    import io
    import zipfile
    data = tmp_path / "data"
    _station_with_parts(data, 3)              # p0 OK, p1 and p2 NG (brighter)
    (tmp_path / "out").mkdir()            # --out's folder must exist (a share not mounted is refused)
    r = _lineguard("parts", "--data", str(data), "--out", str(tmp_path / "out" / "parts.csv"))
    assert r.returncode == 0 and "wrote 3 parts" in r.stdout, r.stderr
    text = (tmp_path / "out" / "parts.csv").read_text(encoding="utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row["part_id"] for row in rows] == ["p2", "p1", "p0"]      # newest first
    r = _lineguard("parts", "--data", str(data), "--out", str(tmp_path / "ng.xlsx"), "--verdict", "NG")
    assert r.returncode == 0 and "wrote 2 parts" in r.stdout, r.stderr
    with zipfile.ZipFile(tmp_path / "ng.xlsx") as z:
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
    assert "<t>p1</t>" in sheet and "<t>p0</t>" not in sheet
    # p1 was a test part (a red rabbit): left out, or alone
    from sqlalchemy import update

    from lineguard.line.config import StationConfig
    from lineguard.line.db import Database
    from lineguard.line.orm import Inspection
    database = Database(StationConfig(data_dir=data).database_url)
    with database.session() as s:
        s.execute(update(Inspection).where(Inspection.part_id == "p1").values(test_part="RR-1", test_expected="NG"))
    database.dispose()
    for kind, want in (("own", ["p2", "p0"]), ("test", ["p1"])):
        r = _lineguard("parts", "--data", str(data), "--out", str(tmp_path / f"{kind}.csv"), "--parts", kind)
        assert r.returncode == 0, r.stderr
        rows = list(csv.DictReader(io.StringIO((tmp_path / f"{kind}.csv").read_text(encoding="utf-8-sig"))))
        assert [row["part_id"] for row in rows] == want
    # a mistyped station: refused, nothing written, no database made
    r = _lineguard("parts", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.csv"))
    assert r.returncode == 2 and "no station database" in r.stderr
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "nowhere").exists()
    assert not list(tmp_path.glob(".*.tmp")) and not list((tmp_path / "out").glob(".*.tmp"))
    (tmp_path / "a-file").write_text("not a folder")
    r = _lineguard("parts", "--data", str(data), "--out", str(tmp_path / "a-file" / "parts.csv"))
    assert r.returncode == 2 and "a-file is a file, not a folder" in r.stderr and "Traceback" not in r.stderr
    # each wrote a file that was not what was asked: 0 rows for a period back to front, CSV
    # under a .json name, and a folder given as the file failed only at the rename
    r = _lineguard("parts", "--data", str(data), "--out", str(tmp_path / "p.csv"), "--since", "2026-12-06",
                   "--until", "2026-12-01")
    assert r.returncode == 2 and "is not before --until" in r.stderr
    r = _lineguard("parts", "--data", str(data), "--out", str(tmp_path / "p.json"))
    assert r.returncode == 2 and "parts.csv" in r.stderr
    r = _lineguard("parts", "--data", str(data), "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and "is a folder" in r.stderr
    assert not (tmp_path / "p.csv").exists() and not (tmp_path / "p.json").exists()


def test_watch_refuses_a_missing_hot_folder_and_a_misspelt_station_folder(tmp_path):
    """A misspelt --data started a new, empty station and moved every photo into failed/ (no
    model); a missing hot folder ended in a traceback."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "p1.png").write_bytes(png_bytes(60, seed=3))
    typo = _lineguard("watch", str(inbox), "--line", "L1", "--product", "cell", "--data", str(tmp_path / "statoin"))
    assert typo.returncode == 2 and "no station database" in typo.stderr, typo.stderr
    assert not (tmp_path / "statoin").exists() and (inbox / "p1.png").exists()
    gone = _lineguard("watch", str(tmp_path / "nosuch"), "--line", "L1", "--product", "cell", "--data", str(tmp_path))
    assert gone.returncode == 2 and "hot folder does not exist" in gone.stderr and "Traceback" not in gone.stderr


def test_watch_and_camera_refuse_a_product_the_station_has_no_model_for(tmp_path, monkeypatch):
    """`--product CELL` (the station has `cell`): every good part went to failed/, and a
    camera printed a refusal per frame for ever; both now stop at start and say the name."""
    import cv2
    import numpy as np
    from click.testing import CliRunner

    from lineguard.cli import app
    from lineguard.line.sources.folder import FolderWatcher
    run = FolderWatcher.run
    monkeypatch.setattr(FolderWatcher, "run", lambda self: run(self, stop_after=0.5))   # a watcher that starts ends
    data = tmp_path / "station"
    _station_with_parts(data, 0)
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "p1.png").write_bytes(png_bytes(60, seed=3))
    r = CliRunner().invoke(app, ["watch", str(inbox), "--line", "L1", "--product", "CELL", "--data", str(data)])
    assert r.exit_code == 2, r.output
    assert "no model for product 'CELL'" in r.stderr and "Did you mean --product cell?" in r.stderr
    assert (inbox / "p1.png").exists() and not (inbox / "failed").exists()
    r = CliRunner().invoke(app, ["watch", str(inbox), "--line", "L1", "--product", "nosuch", "--data", str(data)])
    assert r.exit_code == 2 and "Products with an active model there for line 'L1': cell." in r.stderr, r.output
    assert "Did you mean" not in r.stderr and "Traceback" not in r.output
    video = tmp_path / "line.avi"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 6.0, (96, 80))
    for _ in range(6):
        vw.write(np.full((80, 96, 3), 30, np.uint8))
    vw.release()
    r = CliRunner().invoke(app, ["camera", "--source", str(video), "--line", "L1", "--product", "CELL", "--data",
                                 str(data), "--max-parts", "1"])
    assert r.exit_code == 2 and "Did you mean --product cell?" in r.stderr, r.output


def test_camera_ends_with_what_became_of_the_frames(tmp_path, monkeypatch):
    """A video at the default --max-fps 2 inspected 2 of 6 frames and said nothing of the 4;
    --max-parts did not count refused frames."""
    import cv2
    import numpy as np
    from click.testing import CliRunner

    import lineguard.cli.station as station_cli
    from lineguard.cli import app
    from lineguard.line.sources import SubmitRefused
    video = tmp_path / "line.avi"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 6.0, (96, 80))   # 1 s of line
    for _ in range(6):
        vw.write(np.full((80, 96, 3), 30, np.uint8))
    vw.release()
    answer = {"refuse": False}

    def submit(image, part_id, name):
        if answer["refuse"]:
            raise SubmitRefused("no_active_model: unknown product 'CELL'")
        return {"part_id": part_id, "verdict": "OK", "score": 0.1, "id": 1}
    monkeypatch.setattr(station_cli, "_submitter", lambda *a, **k: (submit, None))
    r = CliRunner().invoke(app, ["camera", "--source", str(video), "--line", "L1", "--product", "cell",
                                 "--data", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert r.stdout.count("\tOK\t") == 2
    assert "6 frames read, 2 inspected, 4 skipped by --max-fps, 0 refused" in r.stderr
    assert "skipped by design" in r.stderr and "--max-fps 6 to inspect every frame" in r.stderr
    answer["refuse"] = True
    r = CliRunner().invoke(app, ["camera", "--source", str(video), "--line", "L1", "--product", "cell",
                                 "--data", str(tmp_path), "--max-parts", "1", "--max-fps", "100"])
    assert r.exit_code == 0 and "1 frames read, 0 inspected, 0 skipped by --max-fps, 1 refused" in r.stderr, r.output
