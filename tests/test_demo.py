"""`make demo`, the README's first command, end to end: synthetic line -> train -> eval
report -> export -> a real station fed the test parts, run twice (the second reuses the
model). Then `lineguard demo` (the demo with --serve), which reuses that
model and leaves the station and its app running. Its pieces: tests/test_demo_pieces.py."""
from __future__ import annotations

import datetime as dt
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    """One demo folder for this file: `lineguard demo` below reuses the model made above."""
    return tmp_path_factory.mktemp("demo") / "demo-line"


@pytest.mark.slow
def test_demo_line_runs_end_to_end(demo_root):
    root = demo_root
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    r = subprocess.run([sys.executable, "-m", "lineguard.demo", "--dir", str(root), "--port", str(_free_port())],
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    m = re.search(r"(\d+) parts through station S1 on line L1: (\d+) OK, (\d+) NG; (\d+) false reject\(s\), "
                  r"(\d+) escape\(s\)", r.stdout)
    assert m, r.stdout[-2000:]
    n, ok, ng, false_rejects, escapes = map(int, m.groups())
    assert n == ok + ng and n > 0
    auroc = float(re.search(r"image_auroc: ([0-9.]+)", r.stdout).group(1))
    assert auroc >= 0.9                                    # measured 1.0 on this synthetic line
    assert escapes <= 0.1 * ng and false_rejects <= 0.2 * ok
    # the start-of-shift check: a defect it rejected and a good part it passed, put through again
    checked = re.search(r"test parts this shift on line L1: (\w+): (.*)", r.stdout)
    assert checked and checked.group(1) == "passed", r.stdout[-2000:]
    assert {"RR-01 NG (must be NG)", "GOOD-01 OK (must be OK)"} == set(checked.group(2).split(", "))
    for made in ("cell.lgm", "cell.onnx", "report/index.html", "station/lineguard.db"):
        assert (root / made).exists(), made
    assert "the product's kinds: crack, dent, missing_coating, particle, scratch, stain" in r.stdout
    # the station stopped with the demo: it says how to see the operator app, and no address
    # of the station that is gone
    assert re.search(rf"run `\S*lineguard demo --dir {re.escape(str(root))}`", r.stdout), r.stdout[-2000:]
    assert "API docs: http" not in r.stdout
    # a second run on the same folder: the model is used again (seconds, not minutes), and
    # its parts are its own, counted from what the station answered this run
    again = subprocess.run([sys.executable, "-m", "lineguard.demo", "--dir", str(root), "--port", str(_free_port())],
                           capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "the demo line's product and model are already made" in again.stdout
    assert "image_auroc" not in again.stdout                           # no training, no eval again
    assert f"{n} parts through station S1 on line L1: {ok} OK, {ng} NG;" in again.stdout
    assert "had stored before" not in again.stdout                     # nothing replayed
    assert "the previous run's 2 demo key(s) revoked" in again.stdout


@pytest.mark.slow
def test_lineguard_demo_leaves_the_app_open_with_a_key(demo_root):
    """`lineguard demo` (a pip user has no Makefile): the station and its operator app stay up,
    with a key to sign in with, and parts keep coming until Ctrl-C."""
    import httpx
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "lineguard", "demo", "--dir", str(demo_root),
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
            day = {"since": (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)).isoformat()}

            def parts() -> int:
                return sum(r["parts"] for r in c.get("/api/v1/lines/summary", params=day).json()["lines"])

            first = parts()
            assert first >= 60                                # the demo line's test parts
            time.sleep(1.5)
            assert parts() > first                            # and more keep coming
    finally:
        # as a service manager stops it (SIGTERM; Ctrl-C's SIGINT takes the same way): the
        # demo died on it and left its station running on the port
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError("`lineguard demo` did not stop on SIGTERM within 30 s")
    assert rc == 0, "".join(out)[-2000:]
    with pytest.raises(httpx.TransportError):
        httpx.get(base + "/health", timeout=5)           # its station stopped with it
