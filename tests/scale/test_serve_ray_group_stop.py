"""`lineguard serve-ray` stopped by a SIGTERM to its whole process group (`kill -TERM -- -PGID`,
`timeout`) stops as a SIGTERM to it alone does: every replica closes its station, its run
recorded as stopped. Ray's processes shared the command's group and died with it at once:
the stop waited 30 s on a dead Serve controller and every replica's run stayed open (read
as an outage by the shift report)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from .conftest import ray_or_skip

ray_or_skip()
pytest.importorskip("ray.serve")

from server.conftest import free_port  # noqa: E402  (tests/server, on the path as in its own tests)

pytestmark = pytest.mark.ray


def test_a_sigterm_to_the_whole_group_closes_every_replicas_station(tmp_path):
    from sqlalchemy import select

    from lineguard.line.config import StationConfig
    from lineguard.line.db import Database
    from lineguard.line.orm import StationRun
    data = tmp_path / "data"
    cmd = [sys.executable, "-m", "lineguard", "serve-ray", "--data", str(data), "--port", str(free_port())]
    # a session of its own: the group signal must not reach pytest
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    said: list[str] = []
    reader = threading.Thread(target=lambda: said.extend(p.stdout), daemon=True)
    reader.start()
    try:
        # beside other tests on 2 cores Serve took minutes to come up (test_serve_walk)
        up_by = time.monotonic() + 300
        while not any("station on Ray Serve" in line for line in said) and p.poll() is None \
                and time.monotonic() < up_by:
            time.sleep(0.2)
        assert any("station on Ray Serve" in line for line in said), "".join(said)
        os.killpg(p.pid, signal.SIGTERM)        # what `kill -TERM -- -PGID` and `timeout` send
        p.wait(timeout=180)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    reader.join(10)
    out = "".join(said)
    assert p.returncode == 0, out
    assert out.rstrip().splitlines()[-1] == "stopped", out
    db = Database(StationConfig(data_dir=data).database_url)
    try:
        with db.session() as s:
            runs = list(s.scalars(select(StationRun)))
    finally:
        db.dispose()
    assert runs and all(r.process.startswith("serve-ray replica") for r in runs), [r.process for r in runs]
    assert all(r.stopped_at is not None for r in runs), [(r.process, r.stopped_at) for r in runs]
