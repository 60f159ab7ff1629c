"""`lineguard demo`: the pip user's demo leaves the station and its operator app running,
with a key to sign in with, and keeps parts coming until Ctrl-C."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
httpx = pytest.importorskip("httpx")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_lineguard_demo_leaves_the_app_open_with_a_key(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "lineguard", "demo", "--dir", str(tmp_path / "demo-line"),
                             "--port", str(_free_port()), "--feed-every", "0.3"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    out = []
    try:
        deadline = time.monotonic() + 600
        m = None
        while time.monotonic() < deadline and m is None:
            line = proc.stdout.readline()
            if not line:
                break
            out.append(line)
            m = re.search(r"open (http://127\.0\.0\.1:\d+)/app/ and sign in with the API key (\S+) \(admin", line)
        assert m, "".join(out)[-3000:]
        base, key = m.groups()
        with httpx.Client(base_url=base, timeout=10) as c:
            assert c.get("/app/").status_code == 200
            assert c.post("/api/v1/session", json={"api_key": key}).json()["role"] == "admin"
            first = sum(r["parts"] for r in c.get("/api/v1/lines/summary").json()["lines"])
            assert first >= 60                                # the demo line's test parts
            time.sleep(1.5)
            assert sum(r["parts"] for r in c.get("/api/v1/lines/summary").json()["lines"]) > first   # still feeding
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError("`lineguard demo` did not stop on Ctrl-C within 30 s")
    assert rc == 0, "".join(out)[-2000:]
