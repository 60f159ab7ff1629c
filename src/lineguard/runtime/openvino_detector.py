"""An exported model run by OpenVINO: the optional second edge runtime
(``pip install 'lineguard[openvino]'``, ~180 MB; the default runtime is ONNX Runtime).

It reads the same ``.onnx`` file, checked and described by the same manifest. Two
precisions:

- ``fp32``: scores agree with ONNX Runtime and torch to ~1e-7 relative; on the 2-core
  reference machine it is about as fast as ONNX Runtime.
- ``bf16``: OpenVINO runs the graph in bfloat16 on CPUs that do it natively (AVX-512
  BF16 or AMX): ~1.5x faster there, at the cost of ~1% in scores, so a part near the
  threshold can flip. ``benchmarks/edge_bench.py`` measures both, with AUROC and
  verdict agreement; choose it only after looking at those numbers.
"""
from __future__ import annotations

import threading
from typing import Any, Optional

import numpy as np

from ..vision.errors import BundleError
from .exported import ExportedDetector

PRECISIONS = {"fp32": "f32", "bf16": "bf16"}


def _core():
    try:
        import openvino as ov
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise BundleError("the OpenVINO runtime needs openvino: pip install 'lineguard[openvino]', "
                          "or run the model on ONNX Runtime (the default)") from exc
    return ov.Core()


def cpu_has_bf16(core: Any = None) -> bool:
    caps = (core or _core()).get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return "BF16" in caps


class OpenVinoDetector(ExportedDetector):
    runtime = "openvino"

    def __init__(self, model: bytes, manifest: dict[str, Any], threads: Optional[int] = None,
                 precision: str = "fp32"):
        if precision not in PRECISIONS:
            raise ValueError(f"OpenVINO precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if manifest.get("precision", "fp32") != "fp32":
            raise BundleError(f"an {manifest.get('precision')} export runs on ONNX Runtime only; "
                              "give OpenVINO the fp32 export (it sets its own precision)")
        self._core = _core()
        if precision == "bf16" and not cpu_has_bf16(self._core):
            raise BundleError("this CPU has no native bfloat16 (AVX-512 BF16 or AMX): use precision fp32")
        self._ov_model = self._core.read_model(model)
        self._ov_precision = precision
        self._call_lock = threading.Lock()
        super().__init__(model, manifest, threads)
        self.precision = precision

    def _compile(self, threads: Optional[int], hint: str, streams: int = 1):
        cfg = {"PERFORMANCE_HINT": hint, "NUM_STREAMS": streams,
               "INFERENCE_PRECISION_HINT": PRECISIONS[self._ov_precision]}
        if threads:
            cfg["INFERENCE_NUM_THREADS"] = int(threads)
        return self._core.compile_model(self._ov_model, "CPU", cfg)

    def set_threads(self, n: Optional[int]) -> None:
        super().set_threads(n)
        # Batches run one part per stream inside OpenVINO (its async queue), not through
        # the Inspector's lane threads: two Python threads each calling ``infer`` on
        # their own request can deadlock in OpenVINO's Python input handling.
        self.streams, self.lanes = self.lanes, 1

    @property
    def parallel_parts(self) -> int:
        return self.streams

    def set_spinning(self, on: bool) -> None:
        # no such switch is exposed for OpenVINO here: kept, nothing rebuilt
        self.spinning = bool(on)

    def _build(self, threads: Optional[int]) -> None:
        self._compiled = self._compile(threads, "LATENCY")
        self._request = self._compiled.create_infer_request()
        self._queue: Any = None   # the async queue for batches, made on first use

    @staticmethod
    def _outputs(request: Any) -> tuple[np.ndarray, np.ndarray]:
        # copies: a request reuses its output buffers on its next call
        return np.array(request.get_output_tensor(0).data), np.array(request.get_output_tensor(1).data)

    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with self._call_lock:
            if len(batch) == 1 or self.streams == 1:
                self._request.infer({0: batch})
                return self._outputs(self._request)
            if self._queue is None:
                import openvino as ov
                compiled = self._compile(self.streams, "THROUGHPUT", streams=self.streams)
                self._queue = ov.AsyncInferQueue(compiled, self.streams)
            parts: list[Any] = [None] * len(batch)

            def done(request: Any, i: int) -> None:
                parts[i] = self._outputs(request)

            self._queue.set_callback(done)
            for i in range(len(batch)):
                self._queue.start_async({0: batch[i:i + 1]}, i)
            self._queue.wait_all()
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
