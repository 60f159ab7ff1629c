"""One thread knob for both runtimes.

``set_threads(n)`` sets torch's intra-op threads when torch is installed (never imports
it on the edge install) and the intra-op thread count that new ONNX Runtime sessions
get. ``None`` leaves both at their defaults (ORT: one per core).
"""
from __future__ import annotations

import importlib.util
from typing import Optional

_ort_threads: Optional[int] = None


def set_threads(n: Optional[int]) -> None:
    global _ort_threads
    if n is None:
        return
    if n < 1:
        raise ValueError(f"threads must be at least 1, got {n}")
    _ort_threads = int(n)
    if importlib.util.find_spec("torch") is not None:
        import torch
        torch.set_num_threads(int(n))


def ort_threads() -> Optional[int]:
    return _ort_threads
