"""From a part photo to the model's input square, and from the model's anomaly map back
to the photo's own pixels.

Plants rarely frame parts identically, and real data mixes sizes and aspect ratios, so
the policy is explicit and stored with the model:

- ``roi``: (x, y, width, height) in photo pixels; only this window is inspected. Pixels
  outside it get anomaly 0. Clipped to the photo.
- ``resize``: ``"stretch"`` scales the window to the square (aspect changes), ``"pad"``
  keeps the aspect and pads with the window's edge pixels (no fake edges for the
  detector to flag).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional

import numpy as np
from PIL import Image

RESIZE_POLICIES = ("stretch", "pad")


@dataclass(frozen=True)
class Geometry:
    """Where the model input came from in the photo, to map results back."""

    photo_hw: tuple[int, int]
    window: tuple[int, int, int, int]     # x, y, w, h of the inspected window in the photo
    content: tuple[int, int, int, int]    # x, y, w, h of the window's pixels inside the model input


@dataclass(frozen=True)
class Preprocess:
    image_size: int = 224
    resize: str = "stretch"
    roi: Optional[tuple[int, int, int, int]] = None

    def __post_init__(self) -> None:
        if self.image_size < 64 or self.image_size % 32:
            raise ValueError(f"image_size must be a multiple of 32 and at least 64, got {self.image_size}")
        if self.resize not in RESIZE_POLICIES:
            raise ValueError(f"resize must be one of {RESIZE_POLICIES}, got {self.resize!r}")
        if self.roi is not None:
            if len(self.roi) != 4 or self.roi[2] <= 0 or self.roi[3] <= 0 or min(self.roi[:2]) < 0:
                raise ValueError(f"roi must be (x, y, width, height) with positive size, got {self.roi}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["roi"] = list(self.roi) if self.roi else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Preprocess":
        roi = d.get("roi")
        return cls(image_size=int(d["image_size"]), resize=d["resize"], roi=tuple(roi) if roi else None)

    def window(self, h: int, w: int) -> tuple[int, int, int, int]:
        if self.roi is None:
            return 0, 0, w, h
        x, y, rw, rh = self.roi
        x0, y0 = min(x, w - 1), min(y, h - 1)
        return x0, y0, max(1, min(rw, w - x0)), max(1, min(rh, h - y0))

    def apply(self, photo: np.ndarray) -> tuple[np.ndarray, Geometry]:
        """uint8 (H, W, 3) photo -> uint8 (S, S, 3) model input and its geometry."""
        h, w = photo.shape[:2]
        x, y, ww, wh = self.window(h, w)
        crop = photo[y:y + wh, x:x + ww]
        s = self.image_size
        if self.resize == "stretch":
            out = _resize_rgb(crop, s, s)
            content = (0, 0, s, s)
        else:
            scale = s / max(ww, wh)
            nw, nh = max(1, round(ww * scale)), max(1, round(wh * scale))
            small = _resize_rgb(crop, nw, nh)
            ox, oy = (s - nw) // 2, (s - nh) // 2
            out = np.pad(small, ((oy, s - nh - oy), (ox, s - nw - ox), (0, 0)), mode="edge")
            content = (ox, oy, nw, nh)
        return out, Geometry((h, w), (x, y, ww, wh), content)

    def map_back(self, amap: np.ndarray, geo: Geometry) -> np.ndarray:
        """(S, S) anomaly map -> (H, W) float32 map over the photo; 0 outside the window."""
        cx, cy, cw, ch = geo.content
        part = amap[cy:cy + ch, cx:cx + cw]
        x, y, ww, wh = geo.window
        h, w = geo.photo_hw
        resized = np.asarray(Image.fromarray(part.astype(np.float32), mode="F").resize((ww, wh), Image.BILINEAR),
                             dtype=np.float32)
        if (x, y, ww, wh) == (0, 0, w, h):
            return resized
        out = np.zeros((h, w), dtype=np.float32)
        out[y:y + wh, x:x + ww] = resized
        return out


def _resize_rgb(img: np.ndarray, w: int, h: int) -> np.ndarray:
    if img.shape[1] == w and img.shape[0] == h:
        return img
    return np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR, reducing_gap=None), dtype=np.uint8)
