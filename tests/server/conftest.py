"""Fixtures for the station service: a real uvicorn process on loopback."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Optional, Sequence

import httpx
import pytest

HERE = Path(__file__).resolve().parent

# One TLS context for every client the tests make. httpx builds one per client (18 ms of CPU:
# certifi's bundle read again), and the suite makes thousands: the health polls while each
# station process starts were a tenth of the test workers' CPU (py-spy, 2026-12-06).
TLS = httpx.create_ssl_context()
sys.path.insert(0, str(HERE))
from fake_inspector import FakeInspector, png_bytes  # noqa: E402,F401
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_http_head(sock: socket.socket) -> bytes:
    """What a raw socket receives up to the end of an HTTP answer's head (or until it closes)."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        got = sock.recv(65536)
        if not got:
            break
        answer += got
    return answer


def make_keys(data_dir: Path, db_url: Optional[str] = None, schema: Optional[str] = None) -> dict[str, str]:
    from lineguard.line.auth import create_key
    from lineguard.line.config import StationConfig
    from lineguard.line.db import Database
    cfg = StationConfig(data_dir=data_dir, db_url=db_url, db_schema=schema)
    data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(cfg.database_url, schema=schema)
    db.upgrade()
    keys = {}
    with db.session() as s:
        for role in ("operator", "engineer", "admin"):
            keys[role] = create_key(s, role, name=f"test-{role}")[1]
    db.dispose()
    return keys


class ServerProc:
    """One station process; ``fake=True`` runs it with the torch-free fake model."""

    def __init__(self, data_dir: Path, fake: bool = True, extra: Optional[list[str]] = None,
                 python_args: Optional[list[str]] = None):
        self.data_dir = data_dir
        self.fake = fake
        self.extra = extra or []
        self.python_args = python_args  # run the server as `python *python_args` instead
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: Optional[subprocess.Popen] = None
        self.log = data_dir.parent / f"server-{uuid.uuid4().hex[:6]}.log"

    def start(self, timeout: float = 60.0) -> "ServerProc":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.python_args:
            cmd = [sys.executable, *self.python_args]
        elif self.fake:
            cmd = [sys.executable, str(HERE / "fake_inspector.py")]
        else:
            cmd = [sys.executable, "-m", "lineguard.server"]
        cmd += ["--data", str(self.data_dir), "--port", str(self.port)] + self.extra
        env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="2")
        self._fh = open(self.log, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self._fh, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0, verify=TLS) as poll:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
                try:
                    if poll.get(self.url + "/health").status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not come up in {timeout}s:\n{self.log.read_text()[-3000:]}")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_fh", None):
            self._fh.close()

    def client(self, key: Optional[str] = None) -> httpx.Client:
        headers = {"X-API-Key": key} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30.0, verify=TLS)


def post_part(client: httpx.Client, data: bytes, part_id: str, product: str = "cell", line: str = "L1",
              station: str = "S1", **extra: str) -> httpx.Response:
    form = {"part_id": part_id, "line": line, "station": station, "product": product, **extra}
    return client.post("/api/v1/inspections", files={"image": ("part.png", data, "image/png")}, data=form)


def fake_model_bytes(threshold: float = 0.5, version: str = "fake-1", **kw) -> bytes:
    return FakeInspector(threshold, version, **kw).to_bytes()


def pg_reachable() -> bool:
    try:
        import psycopg
        with psycopg.connect(PG_URL, connect_timeout=3):
            return True
    except Exception:  # noqa: BLE001
        return False


def start_fake_station(data: Path, extra: Sequence[str] = (),
                       python_args: Optional[list[str]] = None) -> "ServerProc":
    """A station process with fake models (threshold 0.5 on brightness), product 'cell'
    active, keys for every role in ``srv.keys``; the caller stops it. ``python_args``: run
    it as ``python *python_args`` (a start script that sets the server's module constants)."""
    keys = make_keys(data)
    srv = ServerProc(data, fake=True, extra=list(extra), python_args=python_args).start()
    try:
        with srv.client(keys["engineer"]) as c:
            r = c.post("/api/v1/models", files={"file": ("cell.lgm", fake_model_bytes())},
                       data={"product": "cell", "activate": "true"})
            assert r.status_code == 201, r.text
    except BaseException:
        # the fixture's teardown never runs for a set-up that failed: a station left running
        # held its port and a core's share for hours after the test run
        srv.stop()
        raise
    srv.keys = keys
    return srv


@pytest.fixture
def onnx_sessions_opened(monkeypatch) -> list:
    """The models ONNX Runtime opens in this process while the test runs (each one as
    given to InferenceSession), each still opened: a model refused must never be among them."""
    ort = pytest.importorskip("onnxruntime")
    opened: list = []
    real_session = ort.InferenceSession

    def watched(model, *a, **k):
        opened.append(model)
        return real_session(model, *a, **k)
    monkeypatch.setattr(ort, "InferenceSession", watched)
    return opened


@pytest.fixture(scope="module")
def fake_server(tmp_path_factory):
    """A station with fake models (threshold 0.5 on brightness), product 'cell' active."""
    srv = start_fake_station(tmp_path_factory.mktemp("station") / "data")
    yield srv
    srv.stop()


@pytest.fixture
def sqlite_like_station(tmp_path):
    """An in-process station (fake model 'cell' active) with settings of the test's choosing."""
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    made = []

    def make(**kw):
        st = Station(StationConfig(data_dir=tmp_path / "data", **kw), loader=FakeInspector.load,
                     trainer=FakeInspector.fit)
        st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
        made.append(st)
        return st

    yield make
    for st in made:
        st.close()


@pytest.fixture
def spc_station(db_backend, tmp_path):
    """An in-process station (fake model) on each backend; the caller adds records."""
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    db_url, schema = db_backend
    made = []

    def make(**kw):
        kw.setdefault("timezone", "UTC")
        st = Station(StationConfig(data_dir=tmp_path / "data", db_url=db_url, db_schema=schema, open_reads=True,
                                   **kw), loader=FakeInspector.load)
        made.append(st)
        return st

    yield make
    for st in made:
        st.close()


def downgrade(db, revision: str) -> None:
    """``db``'s schema taken back to ``revision`` by the migrations' own downgrades (a
    migration's test: the revision before it, then ``db.upgrade()`` again)."""
    from alembic import command
    from alembic.config import Config

    from lineguard.line import db as db_mod
    cfg = Config()
    cfg.set_main_option("script_location", str(db_mod._MIGRATIONS))
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)
