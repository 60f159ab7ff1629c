"""Anomaly detectors behind one estimator interface, by name."""
from __future__ import annotations

from typing import Any

from .base import Detector
from .padim import PaDiM
from .patchcore import PatchCore

DETECTORS: dict[str, type[Detector]] = {"patchcore": PatchCore, "padim": PaDiM}


def create_detector(name: str, **params: Any) -> Detector:
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")
    return DETECTORS[name](**params)


__all__ = ["DETECTORS", "Detector", "PatchCore", "PaDiM", "create_detector"]
