"""A rescore run that ends unfinished says so in the station database: when, why and how to
go on. It had only ``finished_at``, so a run stopped by a full disk, Ctrl-C or SIGTERM read
"running" in ``GET /api/v1/rescores`` for ever, like one still scoring. Fake models
(tests/scale/fake_rescore.py), no Ray."""
from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("pyarrow", reason="Parquet output needs pyarrow: pip install 'lineguard[scale]'")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from fake_inspector import FakeInspector, png_bytes  # noqa: E402


FAKE_CLI = str(Path(__file__).with_name("fake_rescore.py"))



def _archive(root: Path, n: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (root / f"part-{i:03d}.png").write_bytes(png_bytes(60, seed=i))
    return root


def _model(path: Path, delay_s: float = 0.0) -> Path:
    path.write_bytes(FakeInspector(0.2, "rescore-v2", delay_s=delay_s).to_bytes())
    return path


def _run(url: str) -> dict:
    from sqlalchemy import select
    from lineguard.line.db import Database
    from lineguard.line.orm import RescoreRun
    from lineguard.line.rescores import run_to_dict
    db = Database(url)
    try:
        with db.session() as s:
            (run,) = s.scalars(select(RescoreRun)).all()
            return run_to_dict(run)
    finally:
        db.dispose()


def test_a_run_stopped_by_a_full_disk_says_so_and_its_resume_finishes_it(tmp_path, fake_models,
                                                                         disk_full_after_one_part):
    from lineguard.line.scale.rescore import RescoreStopped, rescore
    from lineguard.line.scale.rescore_db import StationRecorder
    url = f"sqlite:///{tmp_path / 'station.db'}"
    archive, out, model = _archive(tmp_path / "archive", 6), tmp_path / "r.parquet", _model(tmp_path / "m.json")
    rec = StationRecorder.open(url)
    with pytest.raises(RescoreStopped):
        rescore(model, archive, out, chunk_rows=2, batch_size=2, recorder=rec)
    rec.close()
    run = _run(url)
    assert run["status"] == "stopped" and not run["finished"] and run["stopped_at"] is not None
    assert "No space left" in run["stop_reason"] and "run the same command again" in run["stop_reason"]
    assert run["results"] == 2

    disk_full_after_one_part()                  # room again
    again = StationRecorder.open(url)
    rescore(model, archive, out, chunk_rows=2, batch_size=2, recorder=again)
    again.close()
    run = _run(url)
    assert (run["status"], run["stopped_at"], run["stop_reason"], run["results"]) == ("finished", None, None, 6)


def test_a_run_refused_before_it_began_marks_no_run_stopped(tmp_path, fake_models):
    """Another archive on a run's folder is refused before its record is touched: the run
    it would have resumed is not marked stopped by someone else's mistake."""
    from lineguard.line.scale.rescore import rescore
    from lineguard.line.scale.rescore_db import StationRecorder
    from lineguard.vision.errors import DatasetError
    url = f"sqlite:///{tmp_path / 'station.db'}"
    out, model = tmp_path / "r.parquet", _model(tmp_path / "m.json")
    rec = StationRecorder.open(url)
    rescore(model, _archive(tmp_path / "a1", 2), out, recorder=rec)
    rec.close()
    other = StationRecorder.open(url)
    with pytest.raises(DatasetError):
        rescore(model, _archive(tmp_path / "a2", 2), out, recorder=other)
    other.close()
    assert _run(url)["status"] == "finished"


def test_sigterm_stops_the_cli_run_and_its_record_says_interrupted(tmp_path):
    archive = _archive(tmp_path / "archive", 40)
    model = _model(tmp_path / "m.json", delay_s=0.05)      # 2 s of scoring: time to stop it
    out, url = tmp_path / "r.parquet", f"sqlite:///{tmp_path / 'station.db'}"
    from lineguard.line.db import Database
    db = Database(url)
    db.upgrade()                         # rescore writes into an existing station, it makes none
    db.dispose()
    cmd = [sys.executable, FAKE_CLI, "rescore", "--model", str(model), "--images", str(archive), "--out", str(out),
           "--chunk-rows", "4", "--batch-size", "2", "--station-db", url]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(list(out.glob("part-*.parquet"))) < 2 and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.02)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "interrupted" in err and "run the same command again" in err and "Traceback" not in err
    run = _run(url)
    assert run["status"] == "stopped" and run["stop_reason"].startswith("interrupted")
    assert 0 < run["results"] < 40
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert _run(url)["status"] == "finished"


def test_a_run_nothing_renewed_for_half_an_hour_reads_silent():
    """A kill -9 or a power cut says nothing: a record no chunk renewed is "silent"."""
    from lineguard.line.orm import RescoreRun
    from lineguard.line.rescores import SILENT_AFTER, run_status
    now = dt.datetime(2026, 12, 5, 12, 0)
    run = RescoreRun(updated_at=now - SILENT_AFTER + dt.timedelta(seconds=5), finished_at=None, stopped_at=None)
    assert run_status(run, now) == "running"
    run.updated_at = now - SILENT_AFTER - dt.timedelta(seconds=5)
    assert run_status(run, now) == "silent"
    run.stopped_at = now
    assert run_status(run, now) == "stopped"
    run.finished_at = now
    assert run_status(run, now) == "finished"


def test_migration_0027_goes_back_on_a_station_with_rescore_results(tmp_path, fake_models):
    """The way back from 0027 rebuilt rescore_runs, whose old table could not be dropped under
    the rescore parts' and results' foreign keys (IntegrityError on any station that had
    used `rescore --data`)."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import inspect as sql_inspect

    from lineguard.line import db as db_mod
    from lineguard.line.scale.rescore import rescore
    from lineguard.line.scale.rescore_db import StationRecorder
    url = f"sqlite:///{tmp_path / 'station.db'}"
    rec = StationRecorder.open(url)
    rescore(_model(tmp_path / "m.json"), _archive(tmp_path / "archive", 3), tmp_path / "r.parquet", recorder=rec)
    cfg = Config()
    cfg.set_main_option("script_location", str(db_mod._MIGRATIONS))
    with rec.db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0026")
    columns = {c["name"] for c in sql_inspect(rec.db.engine).get_columns("rescore_runs")}
    assert "stop_reason" not in columns and "finished_at" in columns
    rec.db.upgrade()
    rec.close()
    assert _run(url)["status"] == "finished" and _run(url)["results"] == 3
