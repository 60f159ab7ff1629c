"""A live rescore run renews its station database record on a heartbeat, not only with each
chunk of results: one chunk can take longer than SILENT_AFTER (a big --chunk-rows, a slow
CPU, a busy Ray cluster), and ``GET /api/v1/rescores`` then called a run that was still
scoring "silent", as if killed. A killed run must still read silent; a run that ends (finished,
an error, Ctrl-C) beats no more. Fake models (tests/scale/fake_rescore.py), no Ray; the
heartbeat is shortened from a minute to a few milliseconds."""
from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("pyarrow", reason="Parquet output needs pyarrow: pip install 'lineguard[scale]'")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from fake_inspector import FakeInspector, png_bytes  # noqa: E402

from .fake_rescore import BatchFake  # noqa: E402

BEAT_S = 0.02


def _archive(root: Path, n: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (root / f"part-{i:03d}.png").write_bytes(png_bytes(60, seed=i))
    return root


def _model(path: Path) -> Path:
    path.write_bytes(FakeInspector(0.2, "rescore-v2").to_bytes())
    return path


def _url(tmp_path: Path, db_backend) -> tuple[str, str | None]:
    url, schema = db_backend
    return url or f"sqlite:///{tmp_path / 'station.db'}", schema


def _listed(url: str, schema: str | None) -> dict:
    """The run as GET /api/v1/rescores lists it."""
    from lineguard.line.db import Database
    from lineguard.line.rescores import list_runs
    db = Database(url, schema=schema)
    try:
        with db.session() as s:
            return list_runs(s)[0]
    finally:
        db.dispose()


def _read_run(url: str, schema: str | None):
    from sqlalchemy import select

    from lineguard.line.db import Database
    from lineguard.line.orm import RescoreRun
    db = Database(url, schema=schema)
    try:
        with db.session() as s:
            return s.scalars(select(RescoreRun)).first()
    finally:
        db.dispose()


def _date_back(url: str, schema: str | None, run_id: int, by: dt.timedelta) -> None:
    """As if the run's last renewal was ``by`` ago (a chunk scoring for that long)."""
    from lineguard.line.db import Database
    from lineguard.line.orm import RescoreRun, utcnow
    db = Database(url, schema=schema)
    try:
        with db.session() as s:
            s.get(RescoreRun, run_id).updated_at = utcnow() - by
    finally:
        db.dispose()


def _heartbeats_alive() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("lineguard-rescore-heartbeat")]


class _GatedFake(BatchFake):
    """A model whose first chunk does not end until the test says so: the long chunk."""
    scoring = threading.Event()
    gate = threading.Event()

    def inspect_batch(self, images, batch_size: int = 16):
        type(self).scoring.set()
        type(self).gate.wait(120)
        return super().inspect_batch(images, batch_size)


@pytest.fixture
def gated_model(monkeypatch, fake_models):
    from lineguard.vision.inspector import Inspector
    _GatedFake.scoring, _GatedFake.gate = threading.Event(), threading.Event()

    def load(model, threads=None, **_kw):
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
            f.write(model if isinstance(model, (bytes, bytearray)) else Path(model).read_bytes())
        return _GatedFake.load(f.name)
    monkeypatch.setattr(Inspector, "load", staticmethod(load))
    yield _GatedFake
    _GatedFake.gate.set()      # a failed test leaves no run blocked


def test_a_live_run_whose_chunk_outlasts_silent_after_reads_running(tmp_path, db_backend, gated_model):
    from lineguard.line.rescores import SILENT_AFTER, run_status, run_to_dict
    from lineguard.line.scale.rescore import rescore
    from lineguard.line.scale.rescore_db import StationRecorder
    url, schema = _url(tmp_path, db_backend)
    rec = StationRecorder.open(url, schema=schema)
    rec.heartbeat_every_s = BEAT_S
    ended: list[object] = []

    def run() -> None:
        try:
            ended.append(rescore(_model(tmp_path / "m.json"), _archive(tmp_path / "archive", 4), tmp_path / "r.parquet",
                                 batch_size=4, chunk_rows=1000, recorder=rec))
        except BaseException as exc:  # noqa: BLE001 - said by the assert below
            ended.append(exc)
    t = threading.Thread(target=run)
    t.start()
    try:
        assert gated_model.scoring.wait(60), ended
        run_id = rec.run_id
        # the one chunk has been scoring for 40 minutes: nothing of it is in the database yet
        _date_back(url, schema, run_id, SILENT_AFTER + dt.timedelta(minutes=10))
        deadline = time.monotonic() + 15
        while run_status(_read_run(url, schema)) != "running" and time.monotonic() < deadline:
            time.sleep(BEAT_S)
        body = run_to_dict(_read_run(url, schema))
        assert (body["status"], body["results"]) == ("running", 0), body
        # alive, and no results yet: the list says both (updated_at moves with the beats)
        assert _listed(url, schema)["last_results_at"] is None
    finally:
        gated_model.gate.set()
        t.join(60)
        rec.close()
    assert not isinstance(ended[0], BaseException), ended
    body = run_to_dict(_read_run(url, schema))
    assert (body["status"], body["results"]) == ("finished", 4)
    assert _listed(url, schema)["last_results_at"] is not None
    assert _heartbeats_alive() == []


def test_silent_after_is_many_heartbeats_and_the_api_says_both():
    """A beat refused now and then (a busy SQLite file, a PostgreSQL restart) must not make a
    live run read silent; a client reading the list is told both numbers."""
    from lineguard.line.orm import RescoreRun
    from lineguard.line.rescores import HEARTBEAT_EVERY, SILENT_AFTER, run_to_dict
    assert SILENT_AFTER >= 10 * HEARTBEAT_EVERY
    now = dt.datetime(2026, 12, 5, 12, 0)
    body = run_to_dict(RescoreRun(id=1, counts={}, started_at=now, updated_at=now), now)
    assert (body["heartbeat_s"], body["silent_after_s"]) == (60.0, 1800.0)


_KILLED_RUN = """
import sys
sys.path.insert(0, {tests!r})
from fake_rescore import BatchFake, use_fake_models
from lineguard.line.scale.rescore import rescore
from lineguard.line.scale.rescore_db import StationRecorder

def stuck(self, images, batch_size=16):
    print("scoring", flush=True)
    import threading
    threading.Event().wait()          # the chunk that never ends: killed in it

BatchFake.inspect_batch = stuck
use_fake_models()
rec = StationRecorder.open({url!r}, schema={schema!r})
rec.heartbeat_every_s = {beat!r}
rescore({model!r}, {archive!r}, {out!r}, batch_size=4, recorder=rec)
"""


def test_a_killed_run_still_reads_silent_after_silent_after(tmp_path, db_backend):
    """kill -9 in the middle of a chunk: the heartbeat dies with the process, the record is
    never renewed again, and the run reads silent SILENT_AFTER after its last beat."""
    from lineguard.line.rescores import SILENT_AFTER, run_status
    url, schema = _url(tmp_path, db_backend)
    script = tmp_path / "killed_run.py"
    script.write_text(_KILLED_RUN.format(tests=str(Path(__file__).parent), url=url, schema=schema, beat=BEAT_S,
                                         model=str(_model(tmp_path / "m.json")),
                                         archive=str(_archive(tmp_path / "archive", 4)),
                                         out=str(tmp_path / "r.parquet")))
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "scoring", p.stderr.read() if p.poll() is not None else ""
        # alive: its record is renewed with no chunk written
        first = _read_run(url, schema).updated_at
        deadline = time.monotonic() + 15
        while _read_run(url, schema).updated_at == first and time.monotonic() < deadline:
            time.sleep(BEAT_S)
        assert _read_run(url, schema).updated_at != first
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.communicate(timeout=30)
    last = _read_run(url, schema)
    time.sleep(20 * BEAT_S)            # many beats' time: nothing renews a killed run's record
    run = _read_run(url, schema)
    assert run.updated_at == last.updated_at and run.stopped_at is None and run.finished_at is None
    assert run_status(run, now=run.updated_at + SILENT_AFTER - dt.timedelta(seconds=1)) == "running"
    assert run_status(run, now=run.updated_at + SILENT_AFTER + dt.timedelta(seconds=1)) == "silent"


def test_a_run_that_ends_beats_no_more_and_its_beats_never_stall_a_chunk(tmp_path, fake_models):
    """A beat every millisecond beside 30 one-image chunks on the station's SQLite file: every
    chunk is copied (a beat gives way to a chunk's write, never fails it), and once the run has
    finished no beat dates its record after its end."""
    from lineguard.line.rescores import run_to_dict
    from lineguard.line.scale.rescore import rescore
    from lineguard.line.scale.rescore_db import StationRecorder
    url = f"sqlite:///{tmp_path / 'station.db'}"
    rec = StationRecorder.open(url)
    rec.heartbeat_every_s = 0.001
    rescore(_model(tmp_path / "m.json"), _archive(tmp_path / "archive", 30), tmp_path / "r.parquet", batch_size=1,
            chunk_rows=1, recorder=rec)
    assert _heartbeats_alive() == []
    time.sleep(0.1)                    # a hundred beats' time, had one been left running
    run = _read_run(url, None)
    body = run_to_dict(run)
    assert (body["status"], body["results"]) == ("finished", 30)
    assert run.updated_at == run.finished_at
    rec.close()


def test_a_run_interrupted_in_a_chunk_is_stopped_and_beats_no_more(tmp_path, fake_models, monkeypatch):
    """Ctrl-C (and SIGTERM, which the CLI makes one) in the middle of a chunk: the run's
    record says stopped, and the heartbeat ends with it, on the way out, not at exit."""
    from lineguard.line.scale.rescore import rescore
    from lineguard.line.scale.rescore_db import StationRecorder

    def interrupted(self, images, batch_size: int = 16):
        time.sleep(10 * BEAT_S)        # beats come meanwhile
        raise KeyboardInterrupt
    monkeypatch.setattr(BatchFake, "inspect_batch", interrupted)
    url = f"sqlite:///{tmp_path / 'station.db'}"
    rec = StationRecorder.open(url)
    rec.heartbeat_every_s = BEAT_S
    with pytest.raises(KeyboardInterrupt):
        rescore(_model(tmp_path / "m.json"), _archive(tmp_path / "archive", 4), tmp_path / "r.parquet",
                batch_size=4, recorder=rec)
    assert _heartbeats_alive() == []
    stopped = _read_run(url, None)
    time.sleep(10 * BEAT_S)
    run = _read_run(url, None)
    assert run.stop_reason.startswith("interrupted") and run.updated_at == stopped.updated_at
    rec.close()
