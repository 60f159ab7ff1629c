"""lineguard rescore on local Ray (2 CPUs): same results as one process, bad images
recorded not fatal, and a killed run resumes without duplicates."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import make_archive, ray_or_skip

ray_or_skip()
pq = pytest.importorskip("pyarrow.parquet")

pytestmark = pytest.mark.ray


def _table(out: Path):
    return pq.read_table(out).to_pandas()


def test_ray_actors_score_like_one_process(ray_session, exported_model, synth_category, tmp_path):
    from lineguard.line.scale.rescore import rescore
    archive = make_archive(tmp_path / "archive", synth_category)
    n_files = sum(1 for p in archive.rglob("*.png"))
    single = rescore(exported_model, archive, tmp_path / "single.parquet", batch_size=4, chunk_rows=10, threads=1)
    onray = rescore(exported_model, str(archive / "**" / "*.png"), tmp_path / "ray.parquet",
                    ray_address=ray_session, concurrency=2, batch_size=4, chunk_rows=10)
    assert single.scored == onray.scored == n_files
    assert single.errors == onray.errors == 1
    a = _table(tmp_path / "single.parquet").set_index("path").sort_index()
    b = _table(tmp_path / "ray.parquet").set_index("path").sort_index()
    assert list(a.index) == list(b.index) and a.index.is_unique
    assert (a["verdict"].fillna("") == b["verdict"].fillna("")).all()
    assert ((a["score"] - b["score"]).abs().fillna(0) < 1e-5).all()
    bad = b.loc[str((archive / "2026-01-01" / "good" / "zz_truncated.png").resolve())]
    assert bad["error"] and bad["score"] != bad["score"]   # NaN: no score for an unreadable part
    ok = b.drop(index=bad.name)
    assert ok["error"].isna().all() and ok["sha256"].str.len().eq(64).all()
    assert set(ok["verdict"]) <= {"OK", "NG", "REVIEW"} and (ok["verdict"] == "NG").any()
    ng = ok[ok["verdict"] == "NG"]
    assert (ng["n_regions"] >= 1).all() and (ng["largest_region_area"] > 0).all()


def test_killed_run_resumes_without_duplicates(ray_session, exported_model, synth_category, tmp_path):
    from lineguard.line.scale.rescore import list_archive, rescore
    archive = make_archive(tmp_path / "archive", synth_category, copies=6)
    listed = {a.path for a in list_archive(archive)}
    out = tmp_path / "results.parquet"
    cmd = [sys.executable, "-m", "lineguard", "rescore", "--model", str(exported_model), "--images", str(archive),
           "--out", str(out), "--ray", ray_session, "--concurrency", "1", "--batch-size", "2", "--chunk-rows", "4"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None and len(list(out.glob("part-*.parquet"))) < 3:
            time.sleep(0.05)
        assert proc.poll() is None, f"the run ended before it could be killed:\n{proc.stdout.read().decode()}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    first = _table(out)
    assert 0 < len(first) < len(listed), "killed mid-run: some, not all, images scored"
    summary = rescore(exported_model, archive, out, ray_address=ray_session, concurrency=2, batch_size=8)
    assert summary.skipped == len(first)
    assert summary.scored == len(listed) - len(first)
    final = _table(out)
    assert final["path"].is_unique, "an image was scored twice"
    assert set(final["path"]) == listed
    assert not list(out.glob(".*.tmp")), "a half-written part was left behind"
