"""Fixtures for the scale-out tests: an exported model and a small archive of parts.

The Ray tests share one local Ray session (``ray_session``): start-up takes seconds, so
it is started once, at the first test that asks for it. They are marked ``ray`` and deselected by
default (pyproject); ``make test`` runs them in a second pass with ``-m ray``.
"""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest


def ray_or_skip():
    return pytest.importorskip("ray", reason="Ray is not installed: pip install 'lineguard[scale]'")


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray cluster with 2 CPUs for the Ray tests that come after it; yields its GCS
    address. One for the session: started and shut down per module it cost seconds each
    time (test_ray_connect, collected first, starts its own `ray start` head before it)."""
    ray = ray_or_skip()
    import logging

    from lineguard.server.ray_serve import give_serve_time_to_start
    give_serve_time_to_start()      # as serve-ray does: beside the other tests Serve's proxy took over 5 s
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def exported_model(fitted_inspector, tmp_path_factory) -> Path:
    """The session's fitted PatchCore exported to ONNX (what a plant re-scores with)."""
    pytest.importorskip("onnxruntime")
    from lineguard.runtime.onnx_export import export_onnx
    path = tmp_path_factory.mktemp("scale-model") / "cell.onnx"
    export_onnx(fitted_inspector, path)
    return path


def make_archive(root: Path, synth_category: Path, copies: int = 1) -> Path:
    """``copies`` dated folders of the synthetic test parts, plus one unreadable file."""
    for c in range(copies):
        shutil.copytree(synth_category / "test", root / f"2026-01-{c + 1:02d}")
    (root / "2026-01-01" / "good" / "zz_truncated.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return root


@pytest.fixture
def fake_models(monkeypatch):
    """Every model loaded in this process is a fake (tests/scale/fake_rescore.py), as the CLI's."""
    from lineguard.vision.inspector import Inspector

    from .fake_rescore import use_fake_models
    monkeypatch.setattr(Inspector, "load", Inspector.load)   # restored after the test
    use_fake_models()


@pytest.fixture
def disk_full_after_one_part(monkeypatch):
    """The results folder's disk fills after the first Parquet part is written (ENOSPC);
    yields the call that frees it again."""
    pytest.importorskip("pyarrow", reason="Parquet output needs pyarrow: pip install 'lineguard[scale]'")
    from lineguard.line.scale.rescore import ResultsFolder
    write, calls = ResultsFolder.write, []

    def full_after_one(self, table):
        calls.append(1)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path / ".part-x.tmp"))
        return write(self, table)
    monkeypatch.setattr(ResultsFolder, "write", full_after_one)
    yield lambda: monkeypatch.setattr(ResultsFolder, "write", write)
