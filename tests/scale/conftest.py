"""Fixtures for the scale-out tests: an exported model and a small archive of parts.

The Ray tests start one local Ray session per module (``ray_session``): start-up takes
seconds, so every test in a module shares it. They are marked ``ray`` and deselected by
default (pyproject); ``make test`` runs them in a second pass with ``-m ray``.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest


def ray_or_skip():
    return pytest.importorskip("ray", reason="Ray is not installed: pip install 'lineguard[scale]'")


@pytest.fixture(scope="module")
def ray_session():
    """A local Ray cluster with 2 CPUs for this module; yields its GCS address."""
    ray = ray_or_skip()
    import logging
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
