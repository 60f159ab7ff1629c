"""An exported model run by ONNX Runtime: the default edge runtime (``lineguard[edge]``).

``Inspector.load("cell.onnx")`` wraps an ``OnnxDetector`` in the ordinary Inspector, so
``inspect`` and ``inspect_batch`` need only numpy, Pillow and onnxruntime.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..vision.errors import BundleError
from .exported import ExportedDetector


def make_session(model: bytes, threads: Optional[int] = None, spinning: bool = True):
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise BundleError("running an exported .onnx model needs onnxruntime: pip install 'lineguard[edge]'") from exc
    # ONNX Runtime reads a tensor's "external data" from any file the model names (relative
    # to the working directory when given bytes: the station's database was read so);
    # onnx_file.load refuses such a model, and this says it again for any other caller
    from .onnx_file import refuse_external_data
    refuse_external_data(model, "the ONNX model")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.inter_op_num_threads = 1
    if threads:
        opts.intra_op_num_threads = int(threads)
    if not spinning:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])


class OnnxDetector(ExportedDetector):
    runtime = "onnxruntime"

    def __init__(self, model: bytes, manifest: dict[str, Any], threads: Optional[int] = None):
        self._lane_session: Any = None
        super().__init__(model, manifest, threads)

    def _build(self, threads: Optional[int]) -> None:
        self._session = make_session(self._model, threads, spinning=self.spinning)
        # the graph's own input size, which the loader checks against the manifest's
        shape = self._session.get_inputs()[0].shape
        hw = tuple(shape[1:3]) if len(shape) == 4 else ()
        self.graph_hw = hw if len(hw) == 2 and all(isinstance(v, int) for v in hw) else None

    def _build_lanes(self) -> None:
        # One one-thread session shared by every lane: ONNX Runtime runs concurrent
        # ``run`` calls on one session side by side.
        # ... and spinning as set (set_spinning): the station turns it off, and lanes that
        # spun kept the cores its PLC and HTTP servers need busy
        self._lane_session = make_session(self._model, 1, spinning=self.spinning)

    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s, m = self._session.run(None, {self._input: batch})
        return s, m

    def _run_lane(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s, m = self._lane_session.run(None, {self._input: batch})
        return s, m
