"""One thread knob for both runtimes.

``set_threads(n)`` sets torch's intra-op threads (directly when torch is already
imported, else through ``OMP_NUM_THREADS`` for its first import: never imports it) and the intra-op thread count that new sessions of exported models (ONNX Runtime, OpenVINO)
get. ``None`` leaves both at their defaults (ORT: one per core).
"""
from __future__ import annotations

import os
import sys
from typing import Optional

_ort_threads: Optional[int] = None


def set_threads(n: Optional[int]) -> None:
    global _ort_threads
    if n is None:
        return
    if n < 1:
        raise ValueError(f"threads must be at least 1, got {n}")
    _ort_threads = int(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(n))
    else:
        # torch reads this when it is first imported; importing it here would cost the
        # edge path ~300 MB and a second for nothing
        os.environ["OMP_NUM_THREADS"] = str(int(n))


def edge_threads() -> Optional[int]:
    """Threads for new sessions of exported models (ONNX Runtime, OpenVINO); None: default."""
    return _ort_threads


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # what this process may use (containers, taskset)
    except AttributeError:  # not on every OS
        return os.cpu_count() or 1
