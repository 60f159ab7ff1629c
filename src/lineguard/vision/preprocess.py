"""From a part photo to the model's input square, and from the model's anomaly map back
to the photo's own pixels.

Plants rarely frame parts identically, and real data mixes sizes and aspect ratios, so
the policy is explicit and stored with the model:

- ``roi``: (x, y, width, height) in photo pixels; only this window is inspected. Pixels
  outside it get anomaly 0. Clipped to the photo.
- ``orient``: ``"landscape"`` turns portrait windows a quarter turn so the long side
  is horizontal. For parts photographed in either orientation (tiles, strips) this
  keeps texture direction and scale consistent; maps are turned back.
- ``resize``: ``"stretch"`` scales the window to the input size (aspect changes),
  ``"pad"`` keeps the aspect and pads with the window's edge pixels (no fake edges for
  the detector to flag).
- ``image_size``: the model input, one side (square) or (height, width); each a
  multiple of 32 so the feature grids divide evenly.
- ``sensor_bits``: for 16-bit photos, the camera's bit depth, whose full scale is white
  (``imageio``); set from the good parts when the model learns (8 for 8-bit photos; None
  in models made before the setting, which read 16-bit photos by the 16-bit range).

The anomaly map comes back over the photo at the photo's own size, except for photos far
larger than the model input (line cameras of 5-12 megapixels): their map keeps
``MAP_PX_PER_INPUT_PX`` map pixels per input pixel and is proportionally smaller than the
photo (``Geometry.map_scale``); regions are still given in photo pixels (inspector).
Such a photo sent as a JPEG is decoded at 1/2-1/8 of its size (``decode_scale``, ``load``):
its geometry is still told in the photo's own pixels.
"""
from __future__ import annotations

import functools
import re
from dataclasses import asdict, dataclass
from typing import Any, Optional, Union

import numpy as np
from PIL import Image

from .imageio import JPEG_SCALES, SENSOR_BITS, ImageLike, Photo, load_photo

RESIZE_POLICIES = ("stretch", "pad")
ORIENT_POLICIES = ("none", "landscape")
# an input size given as a rule that reads the good photos' shape (inspector.auto_input_size)
SIZE_RULE = re.compile(r"(auto|area)(\d*)")
# The map holds no detail finer than one model-input pixel (it is smoothed over several),
# yet bringing it back to every pixel of a 5 megapixel photo, and finding its regions
# there, cost the fast profile 6x the model's time (benchmarks/photo_size_bench.py). Four
# map pixels per input pixel lose nothing visible and leave every photo up to 4x the input
# (all of the benchmark data) at its own size.
MAP_PX_PER_INPUT_PX = 4
# Shrinking a large photo to the input: Pillow first box-averages it by an integer factor
# when the shrink is at least twice this (Image.resize's reducing_gap), then resamples as
# before. Photos shrunk less than 6x (every benchmark photo) come out exactly as without
# it; a 5 megapixel photo within two grey levels (a fifth of one on average), in 0.55x the
# time.
REDUCING_GAP = 3.0


def side_ok(side: int) -> bool:
    """A model input side the backbones' stride-32 grids divide evenly."""
    return side >= 64 and side % 32 == 0


def size_rule(spec: str) -> tuple[str, int]:
    """``"auto"`` / ``"autoN"`` / ``"areaN"`` -> (rule, N; 224 when not given), or a
    ValueError that says what is accepted."""
    m = SIZE_RULE.fullmatch(spec.strip().lower())
    if m is None:
        raise ValueError(f"image_size must be N, (height, width), 'auto' / 'autoN' or 'areaN'; got {spec!r}")
    side = int(m.group(2) or 224)
    if not side_ok(side):
        raise ValueError(f"the side of an {m.group(1)} image_size must be a multiple of 32, at least 64; got {side}")
    return m.group(1), side


@dataclass(frozen=True)
class Geometry:
    """Where the model input came from in the photo, to map results back."""

    photo_hw: tuple[int, int]
    turned: bool                          # window was turned a quarter turn (portrait -> landscape)
    window: tuple[int, int, int, int]     # x, y, w, h of the inspected window in the photo
    content: tuple[int, int, int, int]    # x, y, w, h of the window's pixels inside the model input
    map_scale: float = 1.0                # anomaly map pixels per photo pixel (< 1 for large photos)

    @property
    def map_hw(self) -> tuple[int, int]:
        """(height, width) of the anomaly map over the photo."""
        h, w = self.photo_hw
        if self.map_scale >= 1.0:
            return h, w
        return max(1, round(h * self.map_scale)), max(1, round(w * self.map_scale))


@dataclass(frozen=True)
class Preprocess:
    image_size: Union[int, tuple[int, int]] = 224
    resize: str = "stretch"
    roi: Optional[tuple[int, int, int, int]] = None
    orient: str = "none"
    sensor_bits: Optional[int] = None

    def __post_init__(self) -> None:
        if self.sensor_bits is not None and self.sensor_bits not in SENSOR_BITS:
            raise ValueError(f"sensor_bits must be one of {SENSOR_BITS} or None, got {self.sensor_bits!r}")
        for side in self.input_hw:
            if not side_ok(side):
                raise ValueError(f"image_size sides must be multiples of 32 and at least 64, got {self.image_size}")
        if self.orient not in ORIENT_POLICIES:
            raise ValueError(f"orient must be one of {ORIENT_POLICIES}, got {self.orient!r}")
        if self.resize not in RESIZE_POLICIES:
            raise ValueError(f"resize must be one of {RESIZE_POLICIES}, got {self.resize!r}")
        if self.roi is not None:
            if len(self.roi) != 4 or self.roi[2] <= 0 or self.roi[3] <= 0 or min(self.roi[:2]) < 0:
                raise ValueError(f"roi must be (x, y, width, height) with positive size, got {self.roi}")

    @property
    def input_hw(self) -> tuple[int, int]:
        if isinstance(self.image_size, (tuple, list)):
            return int(self.image_size[0]), int(self.image_size[1])
        return int(self.image_size), int(self.image_size)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["roi"] = list(self.roi) if self.roi else None
        d["image_size"] = list(self.image_size) if isinstance(self.image_size, (tuple, list)) else self.image_size
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Preprocess":
        roi = d.get("roi")
        size = d["image_size"]
        size = (int(size[0]), int(size[1])) if isinstance(size, list) else int(size)
        return cls(image_size=size, resize=d["resize"], roi=tuple(roi) if roi else None,
                   orient=d.get("orient", "none"), sensor_bits=d.get("sensor_bits"))

    def window(self, h: int, w: int) -> tuple[int, int, int, int]:
        if self.roi is None:
            return 0, 0, w, h
        x, y, rw, rh = self.roi
        if x >= w or y >= h:
            raise ValueError(f"region of interest {self.roi} (x, y, width, height) lies outside the "
                             f"{w}x{h} photo; check the camera or set the ROI again")
        x0, y0 = x, y
        return x0, y0, max(1, min(rw, w - x0)), max(1, min(rh, h - y0))

    def decode_scale(self, h: int, w: int) -> int:
        """The JPEG decoder's reduction (8, 4, 2 or 1) for an h x w photo: the largest that
        keeps the inspected window at least ``REDUCING_GAP`` times the input along each
        axis, where a photo decoded whole would be box-averaged by Pillow first (the
        resize's reducing_gap). Photos shrunk less than 6x are decoded whole."""
        try:
            _, _, ww, wh = self.window(h, w)
        except ValueError:   # an ROI outside the photo: apply() says so
            return 1
        if self.orient == "landscape" and wh > ww:
            ww, wh = wh, ww
        ih, iw = self.input_hw
        room = min(ww / (REDUCING_GAP * iw), wh / (REDUCING_GAP * ih))
        return next(s for s in JPEG_SCALES if room >= s or s == 1)

    def load(self, src: ImageLike) -> tuple[np.ndarray, Geometry]:
        """A part's photo (file, bytes, array or :class:`Photo`) -> model input and geometry,
        a large JPEG decoded at the reduction the input allows (``decode_scale``); 16-bit
        pixels (a Photo the station kept deep) scaled by the model's camera depth."""
        return self.apply(load_photo(src, sensor_bits=self.sensor_bits, decode_scale=self.decode_scale))

    def apply(self, photo: Union[np.ndarray, Photo]) -> tuple[np.ndarray, Geometry]:
        """uint8 (H, W, 3) photo -> uint8 (S, S, 3) model input and its geometry (in the
        photo's own pixels, also for a :class:`Photo` decoded at reduced scale)."""
        if isinstance(photo, np.ndarray):
            photo = Photo.whole(photo)
        h, w = photo.size_hw
        x, y, ww, wh = self.window(h, w)
        crop = _crop(photo, (x, y, ww, wh))
        turned = self.orient == "landscape" and wh > ww
        if turned:
            crop = np.ascontiguousarray(np.rot90(crop))
        ch_, cw_ = crop.shape[:2]
        sh, sw = self.input_hw
        if self.resize == "stretch":
            out = _resize_rgb(crop, sw, sh)
            content = (0, 0, sw, sh)
        else:
            scale = min(sw / cw_, sh / ch_)
            nw, nh = max(1, round(cw_ * scale)), max(1, round(ch_ * scale))
            small = _resize_rgb(crop, nw, nh)
            ox, oy = (sw - nw) // 2, (sh - nh) // 2
            out = np.pad(small, ((oy, sh - nh - oy), (ox, sw - nw - ox), (0, 0)), mode="edge")
            content = (ox, oy, nw, nh)
        # input pixels per window pixel along the window's own axes (the content may be turned)
        per_x, per_y = (content[3] / ww, content[2] / wh) if turned else (content[2] / ww, content[3] / wh)
        map_scale = min(1.0, MAP_PX_PER_INPUT_PX * max(per_x, per_y))
        return out, Geometry((h, w), turned, (x, y, ww, wh), content, map_scale)

    def map_back(self, amap: np.ndarray, geo: Geometry) -> np.ndarray:
        """(S, S) anomaly map -> float32 map over the photo (``geo.map_hw``: the photo's
        size but for photos far larger than the input); 0 outside the window."""
        cx, cy, cw, ch = geo.content
        part = amap[cy:cy + ch, cx:cx + cw]
        h, w = geo.map_hw
        x, y, ww, wh = geo.window
        if geo.map_scale < 1.0:   # the window in map pixels, inside the map
            f = geo.map_scale
            x, y = min(round(x * f), w - 1), min(round(y * f), h - 1)
            ww, wh = max(1, min(round(ww * f), w - x)), max(1, min(round(wh * f), h - y))
        if geo.turned:  # undo the quarter turn: resize in the turned frame, then turn back
            part = np.ascontiguousarray(np.rot90(resize_map(part, wh, ww), k=-1))
        resized = resize_map(part, ww, wh)
        if (x, y, ww, wh) == (0, 0, w, h):
            return resized
        out = np.zeros((h, w), dtype=np.float32)
        out[y:y + wh, x:x + ww] = resized
        return out


@functools.lru_cache(maxsize=None)
def _cv2() -> Any:
    try:
        import cv2   # the station's install has OpenCV; the edge install may not
    except ImportError:
        return None
    return cv2


def resize_map(m: np.ndarray, w: int, h: int) -> np.ndarray:
    """A float32 map resized to (h, w), bilinear (Pillow's filter, antialiased when
    shrinking). Enlarging, Pillow's bilinear and OpenCV's give the same values (to float32
    rounding) and OpenCV's is ~13x faster, so it is used where installed."""
    m = np.ascontiguousarray(m, dtype=np.float32)
    if m.shape == (h, w):
        return m
    cv2 = _cv2() if w >= m.shape[1] and h >= m.shape[0] else None
    if cv2 is not None:
        return cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.asarray(Image.fromarray(m, mode="F").resize((w, h), Image.BILINEAR), dtype=np.float32)


def _crop(photo: Photo, window: tuple[int, int, int, int]) -> np.ndarray:
    """The window (photo pixels) of a photo's pixels; of a reduced decode, the decoded
    pixels that cover it (edges rounded to the nearest decoded pixel)."""
    x, y, ww, wh = window
    if not photo.reduced:
        return photo.pixels[y:y + wh, x:x + ww]
    ph, pw = photo.pixels.shape[:2]
    fy, fx = ph / photo.size_hw[0], pw / photo.size_hw[1]
    x0, y0 = min(round(x * fx), pw - 1), min(round(y * fy), ph - 1)
    x1, y1 = max(x0 + 1, min(pw, round((x + ww) * fx))), max(y0 + 1, min(ph, round((y + wh) * fy)))
    return photo.pixels[y0:y1, x0:x1]


def _resize_rgb(img: np.ndarray, w: int, h: int) -> np.ndarray:
    if img.shape[1] == w and img.shape[0] == h:
        return img
    return np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR, reducing_gap=REDUCING_GAP),
                      dtype=np.uint8)
