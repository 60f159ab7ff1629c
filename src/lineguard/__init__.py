"""lineguard: learn good parts from good images, judge every part on a CPU."""
from __future__ import annotations

__version__ = "0.1.0"

from .vision.result import DefectRegion, InspectionResult, Verdict
from .runtime import loader as _exported_models  # noqa: F401  (lets Inspector.load open .onnx files)

__all__ = ["__version__", "Inspector", "InspectionResult", "DefectRegion", "Verdict"]


def __getattr__(name: str):
    # Inspector pulls in the detectors; import it lazily so `import lineguard` stays light.
    if name == "Inspector":
        from .vision.inspector import Inspector
        return Inspector
    raise AttributeError(name)
