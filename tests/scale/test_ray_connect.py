"""``--ray local`` is a private cluster even on a machine with a ``ray start`` head (the
node setup docs/scale.md describes): it joined that head instead, refused with --num-cpus
and run on the shared cluster without it. A real head (1 CPU) and a real run (1 CPU)."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from .conftest import ray_or_skip

ray_or_skip()
pytest.importorskip("pyarrow.parquet")
psutil = pytest.importorskip("psutil")

pytestmark = pytest.mark.ray


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_start_head():
    """``ray start --head`` of this test's own (its own temp folder and port), stopped by
    its own processes' ids after: ``ray stop`` would stop every Ray on the machine."""
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="lgray", dir="/tmp")     # short: Ray's socket paths have a length limit
    ray_cli = str(Path(sys.executable).with_name("ray"))
    head = subprocess.Popen([ray_cli, "start", "--head", "--port", str(port), "--num-cpus", "1",
                             "--include-dashboard", "false", "--temp-dir", temp, "--block"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 180      # beside the suite on 2 cores Serve's start took 130 s
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert head.poll() is None, "ray start --head ended"
                time.sleep(0.2)
        else:
            pytest.fail("ray start --head did not open its port in 180 s")
        yield f"127.0.0.1:{port}"
    finally:
        procs = psutil.Process(head.pid).children(recursive=True) if head.poll() is None else []
        with_pgid = [p for p in psutil.process_iter() if _pgid(p.pid) == head.pid]
        for p in {*procs, *with_pgid}:
            try:
                p.send_signal(signal.SIGKILL)
            except psutil.Error:
                pass
        head.kill()
        head.wait(timeout=30)
        shutil.rmtree(temp, ignore_errors=True)


def _pgid(pid: int) -> int:
    try:
        return os.getpgid(pid)
    except OSError:
        return -1


def test_ray_local_is_private_beside_a_ray_start_head(ray_start_head, exported_model, synth_category, tmp_path):
    env = dict(os.environ, RAY_ADDRESS=ray_start_head)      # as a node set up for the cluster has it
    out = tmp_path / "r.parquet"
    r = subprocess.run([sys.executable, "-m", "lineguard", "rescore", "--model", str(exported_model),
                        "--images", str(synth_category / "test" / "good"), "--out", str(out),
                        "--ray", "local", "--num-cpus", "1", "--concurrency", "1"],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    n = sum(1 for _ in (synth_category / "test" / "good").glob("*.png"))
    assert f"scored {n} images" in r.stdout and "ray local x1" in r.stdout
