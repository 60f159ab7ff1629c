"""The torch-free detector: an exported model run by ONNX Runtime.

``OnnxDetector`` keeps the detector contract (``score(images uint8 (N, H, W, 3)) ->
(scores (N,), maps (N, H, W))``), so the ordinary :class:`~lineguard.vision.inspector.Inspector`
wraps it: ``Inspector.load("cell.onnx")`` returns an inspector whose ``inspect`` and
``inspect_batch`` need only numpy, Pillow, scipy and onnxruntime (``lineguard[edge]``).
"""
from __future__ import annotations

import json
import os
import threading
from typing import Any, Optional, Union

import numpy as np

from ..vision.errors import BundleError
from . import onnx_file
from .threads import ort_threads


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # what this process may use (containers, taskset)
    except AttributeError:  # not on every OS
        return os.cpu_count() or 1


def make_session(model: bytes, threads: Optional[int] = None):
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise BundleError("running an exported .onnx model needs onnxruntime: pip install 'lineguard[edge]'") from exc
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.inter_op_num_threads = 1
    n = threads if threads is not None else ort_threads()
    if n:
        opts.intra_op_num_threads = int(n)
    opts.log_severity_level = 3
    return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])


class OnnxDetector:
    """A fitted detector behind an ONNX Runtime session (inference only; no ``fit``)."""

    runtime = "onnxruntime"

    def __init__(self, model: bytes, manifest: dict[str, Any], threads: Optional[int] = None, session: Any = None):
        self.manifest = manifest
        d = manifest["detector"]
        self.name = str(d["name"])
        self.params = dict(d.get("params", {}))
        self.batch_size = int(self.params.get("batch_size", 16)) or 16
        self.input_size_ = tuple(int(s) for s in manifest["input"]["hw"])
        self.precision = manifest.get("precision", "fp32")
        self.fitted_ = True
        self._model = model
        self._session = session if session is not None else make_session(model, threads)
        self._input = manifest["input"]["name"]
        self._set_lanes(threads)

    def _set_lanes(self, threads: Optional[int]) -> None:
        # Many parts at once go faster as one part per core, each on a one-thread
        # session, than as a batch on one session that splits every layer across the
        # cores (2 cores, 224 px: 8.2 vs 10.2 ms/part end to end; benchmarks/edge_bench).
        # A single part keeps the all-core session: that is its lowest latency.
        n = threads if threads is not None else ort_threads()
        self.lanes = max(1, int(n) if n else _usable_cores())
        self._lane_session = None
        self._lane_lock = threading.Lock()

    def get_params(self) -> dict[str, Any]:
        return {**self.params, "runtime": self.runtime, "precision": self.precision}

    def set_threads(self, n: Optional[int]) -> None:
        """Rebuild the session with ``n`` intra-op threads."""
        self._session = make_session(self._model, n)
        self._set_lanes(n)

    def score(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or tuple(images.shape[1:]) != (*self.input_size_, 3):
            raise ValueError(f"model input must be uint8 (N, {self.input_size_[0]}, {self.input_size_[1]}, 3), "
                             f"got {images.dtype} {images.shape}")
        scores, maps = [], []
        for i in range(0, len(images), self.batch_size):
            s, m = self._session.run(None, {self._input: np.ascontiguousarray(images[i:i + self.batch_size])})
            scores.append(s)
            maps.append(m)
        if not scores:
            h, w = self.input_size_
            return np.zeros(0, np.float32), np.zeros((0, h, w), np.float32)
        return np.concatenate(scores), np.concatenate(maps)

    def score_in_lane(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Score one part on the shared one-thread session; safe to call from ``lanes``
        threads at once (ONNX Runtime runs concurrent ``run`` calls side by side)."""
        if self._lane_session is None:
            with self._lane_lock:
                if self._lane_session is None:
                    self._lane_session = make_session(self._model, 1)
        s, m = self._lane_session.run(None, {self._input: np.ascontiguousarray(image[None])})
        return s, m


def read_export(path: Union[str, os.PathLike, bytes], threads: Optional[int] = None
                ) -> tuple[bytes, dict[str, Any], str, Any]:
    """Verify an exported model -> (model bytes, manifest, content hash, ORT session)."""
    if isinstance(path, (bytes, bytearray)):
        data, name = bytes(path), "<bytes>"
        digest = onnx_file.verify(data, name)
    else:
        name = str(path)
        data, digest = onnx_file.read(path)
    sess = make_session(data, threads)
    meta = sess.get_modelmeta().custom_metadata_map
    if onnx_file.MANIFEST_KEY not in meta:
        raise BundleError(f"{name}: an ONNX model without a lineguard manifest; re-export it with "
                          "`lineguard export MODEL.lgm --format onnx`")
    try:
        manifest = json.loads(meta[onnx_file.MANIFEST_KEY])
    except json.JSONDecodeError as exc:
        raise BundleError(f"{name}: manifest is damaged ({exc}); export the model again") from exc
    if manifest.get("format") != onnx_file.FORMAT:
        raise BundleError(f"{name}: not an exported lineguard model (format {manifest.get('format')!r})")
    fv = manifest.get("format_version")
    if not isinstance(fv, int) or fv > onnx_file.FORMAT_VERSION:
        raise BundleError(f"{name}: export format {fv} is newer than this lineguard understands "
                          f"({onnx_file.FORMAT_VERSION}); upgrade lineguard")
    return data, manifest, digest, sess


def load_inspector(cls: type, path: Union[str, os.PathLike, bytes], threads: Optional[int] = None):
    """Build an ``Inspector`` (``cls``) around an exported model; used by ``Inspector.load``."""
    from ..vision.preprocess import Preprocess

    data, manifest, digest, sess = read_export(path, threads)
    name = "<bytes>" if isinstance(path, (bytes, bytearray)) else str(path)
    try:
        det = OnnxDetector(data, manifest, threads, session=sess)
        pre = Preprocess.from_dict(manifest["preprocess"])
        info = dict(manifest.get("info", {}))
        info.update({"runtime": "onnxruntime", "precision": det.precision,
                     "source_model_id": manifest.get("source_model_id"),
                     "lineguard_version": manifest.get("lineguard_version")})
        insp = cls(det, pre, manifest["calibration"], info, min_region_area=int(manifest.get("min_region_area", 4)))
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{name}: exported model settings are incomplete ({type(exc).__name__}: {exc}); "
                          "export it again with this lineguard version") from exc
    insp._model_id = digest[:16]
    return insp
