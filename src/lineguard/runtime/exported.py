"""What every runtime of an exported model shares: the detector contract
(``score(images uint8 (N, H, W, 3)) -> (scores (N,), maps (N, H, W))``), settings from the
manifest, and lanes.

Lanes: many parts at once go faster as one part per core, each on a one-thread
executor, than as a batch on one executor that splits every layer across the cores
(2 cores, 224 px, ONNX Runtime: 8.2 vs 10.2 ms/part end to end; benchmarks/edge_bench).
A single part keeps the all-core executor: that is its lowest latency. The Inspector
sends a batch through ``score_in_lane`` from ``lanes`` threads when ``lanes > 1``.
"""
from __future__ import annotations

import threading
from typing import Any, Optional

import numpy as np

from .threads import edge_threads, usable_cores


class ExportedDetector:
    """A fitted detector run from an exported model (inference only; no ``fit``)."""

    runtime = ""

    def __init__(self, model: bytes, manifest: dict[str, Any], threads: Optional[int] = None):
        self.manifest = manifest
        d = manifest["detector"]
        self.name = str(d["name"])
        self.params = dict(d.get("params", {}))
        self.batch_size = int(self.params.get("batch_size", 16)) or 16
        self.input_size_ = tuple(int(s) for s in manifest["input"]["hw"])
        self.precision = manifest.get("precision", "fp32")
        self.fitted_ = True
        self._model = model
        self._input = manifest["input"]["name"]
        self._lane_lock = threading.Lock()
        # ONNX Runtime's default: idle intra-op threads spin; see set_spinning
        self.spinning = True
        self.set_threads(threads)

    # -- what a runtime provides ------------------------------------------------------
    def _build(self, threads: Optional[int]) -> None:
        """Make the all-core executor with ``threads`` threads (None: the runtime's default)."""
        raise NotImplementedError

    def _build_lanes(self) -> None:
        """Make what ``_run_lane`` uses; called once, on the first lane call."""
        raise NotImplementedError

    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _run_lane(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    # -- the detector contract -----------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        return {**self.params, "runtime": self.runtime, "precision": self.precision}

    def set_threads(self, n: Optional[int]) -> None:
        """Rebuild with ``n`` threads (None: the ``set_threads`` knob, else every core)."""
        if n is not None and int(n) < 1:
            raise ValueError(f"threads must be at least 1, got {n} (None: one per core)")
        n = n if n is not None else edge_threads()
        self._threads = n
        self._build(n)
        self.lanes = max(1, int(n) if n else usable_cores())
        self._lanes_ready = False

    def set_spinning(self, on: bool) -> None:
        """Whether the runtime's idle threads spin waiting for work (rebuilds if it changes).

        Spinning saves a wake-up between the layers of one call on cores nothing else
        wants. A station shares its cores with its PLC and HTTP servers, the database and
        the map writer: a spinning thread burns the core one of them needs, and one that
        was preempted holds up the whole call. On the shared 2-core machine (load 2.2),
        two sessions of one model called in turn in one process took p50 24 ms spinning
        and 13 ms not; in the station at low rate the model's p99 fell from 27 to 17 ms
        even when the machine was quiet (benchmarks/plc_stages_bench.py), so the station
        turns it off. A runtime without the setting ignores it.
        """
        if bool(on) == self.spinning:
            return
        self.spinning = bool(on)
        self._build(self._threads)
        with self._lane_lock:
            self._lanes_ready = False    # the lanes follow it too: rebuilt on their next call

    @property
    def parallel_parts(self) -> int:
        """Parts this detector judges side by side (the station batches when above 1)."""
        return self.lanes

    def _check(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or tuple(images.shape[1:]) != (*self.input_size_, 3):
            raise ValueError(f"model input must be uint8 (N, {self.input_size_[0]}, {self.input_size_[1]}, 3), "
                             f"got {images.dtype} {images.shape}")
        return images

    def score(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        images = self._check(images)
        scores, maps = [], []
        for i in range(0, len(images), self.batch_size):
            s, m = self._run(np.ascontiguousarray(images[i:i + self.batch_size]))
            scores.append(s)
            maps.append(m)
        if not scores:
            h, w = self.input_size_
            return np.zeros(0, np.float32), np.zeros((0, h, w), np.float32)
        return np.concatenate(scores), np.concatenate(maps)

    def file_bytes(self, manifest_updates: dict[str, Any]) -> tuple[bytes, str]:
        """This model's ``.onnx`` file with ``manifest_updates`` (e.g. a new calibration)
        in its manifest -> (file bytes, content hash). The graph is copied as it is;
        ``Inspector.save`` and ``Inspector.model_id`` use this for exported models."""
        from . import onnx_file
        return onnx_file.seal(onnx_file.replace_manifest(self._model, {**self.manifest, **manifest_updates}))

    def score_in_lane(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Score one part (H, W, 3) on a one-thread executor; safe to call from ``lanes``
        threads at once."""
        if not self._lanes_ready:
            with self._lane_lock:
                if not self._lanes_ready:
                    self._build_lanes()
                    self._lanes_ready = True
        return self._run_lane(np.ascontiguousarray(self._check(image[None])))
