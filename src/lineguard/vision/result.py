"""What one inspection of one part produces, and how it travels as JSON."""
from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

import numpy as np


class Verdict(str, Enum):
    """OK: ship it. NG: reject it. REVIEW: the model is unsure; a person looks at the part.

    REVIEW only occurs with a review band (see :mod:`lineguard.vision.calibration`):
    a score above the review threshold and at or below the reject threshold.
    """

    OK = "OK"
    NG = "NG"
    REVIEW = "REVIEW"


@dataclass(frozen=True)
class DefectRegion:
    """One connected area of the anomaly map above the pixel threshold (or, where no
    pixel of an NG or REVIEW part is above it, the area around the map's peak).

    Coordinates are in pixels of the image as it was given (after EXIF rotation).
    """

    x: int
    y: int
    width: int
    height: int
    area_px: int
    peak_score: float
    mean_score: float

    def to_dict(self) -> dict[str, Any]:
        return {"box": [self.x, self.y, self.width, self.height], "area_px": self.area_px,
                "peak_score": round(float(self.peak_score), 6), "mean_score": round(float(self.mean_score), 6)}

    @staticmethod
    def box_of(d: Any) -> "Optional[tuple[float, float, float, float]]":
        """(x, y, width, height) of a stored region (its ``to_dict``), or None when the
        entry is not one with a finite box (records edited by hand, or damaged)."""
        try:
            x, y, w, h = (float(v) for v in d["box"])
        except (KeyError, TypeError, ValueError):
            return None
        return (x, y, w, h) if all(math.isfinite(v) for v in (x, y, w, h)) else None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DefectRegion":
        x, y, w, h = d["box"]
        return cls(int(x), int(y), int(w), int(h), int(d["area_px"]), float(d["peak_score"]), float(d["mean_score"]))


@dataclass
class InspectionResult:
    """Verdict, score and where: everything the line and the operator need for one part."""

    verdict: Verdict
    score: float
    threshold: float
    pixel_threshold: float
    # float32 (H, W) over the input image, at its size; for images more than 4x the model
    # input on both sides, proportionally smaller (preprocess.MAP_PX_PER_INPUT_PX)
    anomaly_map: Optional[np.ndarray]
    regions: list[DefectRegion] = field(default_factory=list)
    model_id: str = ""
    model_version: str = ""
    image_size: tuple[int, int] = (0, 0)      # (width, height) of the input image
    timings_ms: dict[str, float] = field(default_factory=dict)
    source: str = ""                          # file name or part id, when known
    # At or below it a part is OK; between it and ``threshold`` it goes to REVIEW. None
    # (results from before review bands) means no band: the same as ``threshold``.
    review_threshold: Optional[float] = None
    # what is off about the photo against the model's good photos (vision.photo_check):
    # when not empty, the part is REVIEW whatever its score
    photo_issues: list[str] = field(default_factory=list)

    @property
    def is_ng(self) -> bool:
        return self.verdict is Verdict.NG

    @property
    def needs_review(self) -> bool:
        return self.verdict is Verdict.REVIEW

    @property
    def ok_threshold(self) -> float:
        """The score at or below which a part is OK (the review threshold, if any)."""
        return float(self.threshold if self.review_threshold is None else self.review_threshold)

    @property
    def margin(self) -> float:
        """score / threshold: above 1 is NG; how far a part is from the decision."""
        return float(self.score / self.threshold) if self.threshold > 0 else float("inf")

    def to_dict(self, include_map: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "verdict": self.verdict.value,
            "score": round(float(self.score), 6),
            "threshold": round(float(self.threshold), 6),
            # null where the model has no review band, as the station's record and API say it
            # (a copy of the threshold here read as a band of width 0 beside the API's null)
            "review_threshold": round(self.ok_threshold, 6) if self.ok_threshold < self.threshold else None,
            "pixel_threshold": round(float(self.pixel_threshold), 6),
            "margin": round(self.margin, 6) if np.isfinite(self.margin) else None,
            "regions": [r.to_dict() for r in self.regions],
            "model_id": self.model_id,
            "model_version": self.model_version,
            "image_size": list(self.image_size),
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
        }
        if self.source:
            d["source"] = self.source
        if self.photo_issues:
            d["photo_issues"] = list(self.photo_issues)
        if include_map and self.anomaly_map is not None:
            buf = io.BytesIO()
            np.save(buf, self.anomaly_map.astype(np.float16), allow_pickle=False)
            d["anomaly_map_npy_b64"] = base64.b64encode(buf.getvalue()).decode("ascii")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "InspectionResult":
        amap = None
        if "anomaly_map_npy_b64" in d:
            amap = np.load(io.BytesIO(base64.b64decode(d["anomaly_map_npy_b64"])), allow_pickle=False)
            amap = amap.astype(np.float32)
        return cls(
            verdict=Verdict(d["verdict"]), score=float(d["score"]), threshold=float(d["threshold"]),
            pixel_threshold=float(d["pixel_threshold"]), anomaly_map=amap,
            regions=[DefectRegion.from_dict(r) for r in d.get("regions", [])],
            model_id=d.get("model_id", ""), model_version=d.get("model_version", ""),
            image_size=tuple(d.get("image_size", (0, 0))),  # type: ignore[arg-type]
            timings_ms=dict(d.get("timings_ms", {})), source=d.get("source", ""),
            review_threshold=float(d["review_threshold"]) if d.get("review_threshold") is not None else None,
            photo_issues=list(d.get("photo_issues") or []),
        )
