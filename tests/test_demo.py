"""`make demo`, the README's first command, end to end: synthetic line -> train -> eval
report -> export -> a real station fed the test parts. About 25 s."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_demo_line_runs_end_to_end(tmp_path):
    root = tmp_path / "demo-line"
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
    for made in ("cell.lgm", "cell.onnx", "report/index.html", "station/lineguard.db"):
        assert (root / made).exists(), made
