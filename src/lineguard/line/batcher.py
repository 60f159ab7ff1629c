"""One model's queue of parts: judged one at a time when they come one at a time, and
together when several are waiting.

Parts that arrive while the model is busy wait in the queue; when it is free, everyone
waiting goes in as one batch (up to ``max_batch``). A part that arrives alone is judged
alone at once, so batching never adds latency on a quiet line unless ``window_s`` asks
it to wait for company. Batching is only used where it can raise throughput: an
exported model judges a batch one part per core (``detector.parallel_parts``); a torch
model judges a batch slower per part than single parts on a small CPU, so it gets
``max_batch`` 1 (one part at a time, in arrival order). Measured gains are in the README
(``benchmarks/load_bench.py --onnx``, with and without ``--max-batch 1``).
"""
from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future, TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np


@dataclass
class Judged:
    result: Any            # InspectionResult
    queued_s: float        # waited for the model
    model_s: float         # wall time of the batch this part was in
    batch: int             # parts in that batch


class BatcherClosed(RuntimeError):
    """The model this queue fed was replaced or the station is stopping: send the part again."""


class ModelTimeout(RuntimeError):
    """The model did not answer in time (stuck or overloaded)."""


def batch_limit(inspector: Any, max_batch: int) -> int:
    parallel = getattr(getattr(inspector, "detector", None), "parallel_parts", 1)
    return max(1, int(max_batch)) if parallel > 1 else 1


class ModelBatcher:
    """Feeds one loaded model from a queue on its own thread."""

    def __init__(self, inspector: Any, max_batch: int = 16, window_s: float = 0.0, name: str = "model",
                 timeout_s: float = 300.0):
        self.inspector = inspector
        self.max_batch = batch_limit(inspector, max_batch)
        self.window_s = max(0.0, float(window_s))
        # How long a caller waits for its part's answer: a stuck model must not hold
        # request threads (and the parts' memory) for ever.
        self.timeout_s = timeout_s
        self._queue: "queue.Queue[Optional[tuple[np.ndarray, float, Future]]]" = queue.Queue()
        self._closed = False
        self._close_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"lg-batch-{name}", daemon=True)
        self._thread.start()

    def inspect(self, image: np.ndarray, timeout_s: Optional[float] = None) -> Judged:
        fut: Future = Future()
        with self._close_lock:
            # checked under the lock close() takes, so no part lands behind the stop mark
            if self._closed:
                raise BatcherClosed("the model queue is closed (model replaced or station stopping)")
            self._queue.put((image, time.perf_counter(), fut))
        try:
            return fut.result(timeout=self.timeout_s if timeout_s is None else timeout_s)
        except FutureTimeout:
            fut.cancel()   # still queued: the model skips it; already running: its answer is dropped
            raise ModelTimeout(f"the model did not answer within {self.timeout_s:.0f} s") from None

    def close(self) -> None:
        """Stop after the parts already queued; their callers still get answers.
        Parts sent after this fail at once with :class:`BatcherClosed`."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)

    @property
    def closed(self) -> bool:
        return self._closed

    def _take(self) -> tuple[list[tuple[np.ndarray, float, Future]], bool]:
        first = self._queue.get()
        if first is None:
            return [], True
        batch = [first]
        deadline = time.perf_counter() + self.window_s
        while len(batch) < self.max_batch:
            try:
                wait = deadline - time.perf_counter()
                item = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)  # stop after this batch
                break
            batch.append(item)
        return batch, False

    def _run(self) -> None:
        while True:
            batch, stop = self._take()
            if stop:
                return
            # a caller that timed out cancelled its future: no model time for it
            batch = [b for b in batch if b[2].set_running_or_notify_cancel()]
            if not batch:
                continue
            t0 = time.perf_counter()
            results: list[Any]
            if len(batch) == 1:
                try:
                    results = [self.inspector.inspect(batch[0][0])]
                except Exception as exc:  # noqa: BLE001 - the caller gets it
                    results = [exc]
            else:
                try:
                    results = list(self.inspector.inspect_batch([b[0] for b in batch]))
                except Exception:  # noqa: BLE001
                    # One part must not fail the others: judge them singly, so only the
                    # part that raises gets the error.
                    results = []
                    for image, _, _ in batch:
                        try:
                            results.append(self.inspector.inspect(image))
                        except Exception as exc:  # noqa: BLE001
                            results.append(exc)
            if len(results) != len(batch):
                # a model that answers fewer (or more) parts than it was given: no part
                # can be matched to its answer, so every caller gets an error, none waits
                bad = RuntimeError(f"the model returned {len(results)} results for {len(batch)} parts")
                results = [bad] * len(batch)
            t1 = time.perf_counter()
            for (_, queued_at, fut), res in zip(batch, results):
                if isinstance(res, BaseException):
                    fut.set_exception(res)
                else:
                    fut.set_result(Judged(res, t0 - queued_at, t1 - t0, len(batch)))
