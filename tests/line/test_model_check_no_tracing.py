"""The model check before a model is stored never starts tracemalloc: stopped while another
thread allocates (numpy's ufunc buffers, as the photo check of every part does), CPython
3.11's tracemalloc writes through a NULL pointer, and a station judging parts died with a
segfault when a model was uploaded or a retrain registered its version."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

# a model that judges like the real ones (numpy work, the GIL held) and a thread judging
# parts' photos meanwhile (the photo check's casting ufunc, whose buffers numpy allocates
# with the GIL released); the model check run again and again for a few seconds
RACE = textwrap.dedent("""
    import sys, threading, time
    import numpy as np
    from lineguard.line.registry import check_model_judges

    class Result:
        score = 1.0

    class Model:
        preprocess = None
        def inspect(self, part):
            t = time.perf_counter()
            while time.perf_counter() - t < 0.002:
                part.sum()
            return Result()

    x = np.random.default_rng(0).integers(0, 255, (600, 600, 3), dtype=np.uint8)
    def photo_check():
        while True:
            acc = np.zeros((300, 300), np.uint32)
            for c in range(3):
                acc += x[0:600:2, 0:600:2, c]
    threading.Thread(target=photo_check, daemon=True).start()
    end, n = time.monotonic() + float(sys.argv[1]), 0
    while time.monotonic() < end:
        check_model_judges(Model())
        time.sleep(0.001)
        n += 1
    print("checked", n)
""")


def test_the_model_check_does_not_start_tracing(monkeypatch):
    import tracemalloc

    from lineguard.line.registry import check_model_judges

    def refused():
        raise AssertionError("tracemalloc started by the model check")
    monkeypatch.setattr(tracemalloc, "start", refused)

    class Result:
        score = 0.5

    class Model:
        preprocess = None

        def inspect(self, part):
            return Result()
    check_model_judges(Model())


def test_model_checks_beside_parts_being_judged_do_not_crash_the_station(tmp_path):
    script = tmp_path / "race.py"
    script.write_text(RACE)
    r = subprocess.run([sys.executable, str(script), "6"], capture_output=True, text=True, timeout=120,
                       env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, f"rc {r.returncode}: {r.stderr[-2000:]}"
    assert r.stdout.startswith("checked ")
