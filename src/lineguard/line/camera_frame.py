"""A camera's frame handed to the station in memory, not as an image file.

A source in the station's process (``serve --plc-camera``, ``lineguard camera`` without
``--server``) used to encode every frame as a PNG for the station to decode again: at
2-5 megapixels that round trip cost 4-25x the fast model (``frame_encode_bench``), and a
PLC waited for it on every trigger. Handed over as pixels, the frame is judged as it is,
and its PNG is written only for a part whose image the station keeps (NG and REVIEW
parts, the sampled OK ones, the audit sample). A kept frame's PNG is exactly the one a
camera source would have sent (``png.encode_frame``), so its stored file and its record
(``image_sha256``, the SHA-256 of the file) are the same either way; a frame that is not
kept is named by the SHA-256 of its pixels (:meth:`CameraFrame.sha256`), there being no
file to name.
"""
from __future__ import annotations

import hashlib
from typing import Optional

import numpy as np

from ..vision.errors import ImageError, ImageTooLarge
from ..vision.imageio import Photo, load_photo
from .png import encode_png, frame_pixels

_NAME = "the camera frame"


class CameraFrame:
    """One frame as OpenCV delivers it: (H, W, 3) BGR or (H, W, 4) BGRA, or (H, W) /
    (H, W, 1) grey; 8 or 16 bits. The array is not copied: the source hands it over and
    does not write to it again (``FrameGrabber`` and ``CameraSource`` give each part its
    own copy)."""

    def __init__(self, pixels: np.ndarray):
        self.pixels = pixels
        self._stored: Optional[np.ndarray] = None

    def __repr__(self) -> str:
        return f"CameraFrame({self.width}x{self.height}, {getattr(self.pixels, 'dtype', '?')})"

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    def check(self, max_pixels: int) -> None:
        """Refuse what a PNG of the frame could not carry, or the station would not decode
        from one (:class:`ImageError`, :class:`ImageTooLarge`), before any work is done."""
        a = self.pixels
        if not isinstance(a, np.ndarray):
            raise ImageError(_NAME, f"is a {type(a).__name__}, not a pixel array", "hand over the camera's array")
        if a.dtype not in (np.uint8, np.uint16):
            raise ImageError(_NAME, f"has {a.dtype} pixels", "set the camera to 8 or 16 bits a pixel")
        if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (1, 3, 4))):
            raise ImageError(_NAME, f"has the layout {a.shape}",
                             "hand over (height, width) grey or (height, width, 3) BGR pixels")
        if a.shape[0] < 8 or a.shape[1] < 8:
            raise ImageError(_NAME, f"{a.shape[1]}x{a.shape[0]} is too small to inspect",
                             "use frames of at least 8x8 pixels")
        if self.width * self.height > max_pixels:
            raise ImageTooLarge(_NAME, f"{self.width}x{self.height} = {self.width * self.height / 1e6:.3g} "
                                f"megapixels is over the limit of {max_pixels / 1e6:.3g}",
                                "crop it in the camera, or raise the pixel limit")

    def stored(self) -> np.ndarray:
        """The pixels its PNG holds: a mono camera's three equal channels as one grey one."""
        if self._stored is None:
            self._stored = np.ascontiguousarray(frame_pixels(self.pixels))
        return self._stored

    def photo(self) -> Photo:
        """The frame as the station's decode of its PNG gives it to a model: RGB, grey as
        three equal channels (16-bit grey kept as it is, for the model to scale by its
        camera's depth), transparency composited on black, a 16-bit alpha dropped."""
        import cv2   # a frame comes from OpenCV; its colour conversions are ~40x numpy's here
        a = self.stored()
        if a.ndim == 2:
            return Photo.whole(a if a.dtype == np.uint16 else cv2.cvtColor(a, cv2.COLOR_GRAY2RGB))
        if a.shape[2] == 4 and a.dtype == np.uint8:
            return load_photo(cv2.cvtColor(a, cv2.COLOR_BGRA2RGBA))   # composited as a PNG's alpha is
        return Photo.whole(cv2.cvtColor(a, cv2.COLOR_BGRA2RGB if a.shape[2] == 4 else cv2.COLOR_BGR2RGB))

    def png(self) -> bytes:
        """The PNG a camera source sends of this frame (``png.encode_frame``)."""
        return encode_png(self.stored())

    def sha256(self) -> str:
        """The SHA-256 of the frame's pixels and their layout (what the PNG holds, before
        compression): the same frame gets the same name, so a part sent twice is answered
        with its record, and the OK-image sample is drawn from it as from a file's hash."""
        a = self.stored()
        h = hashlib.sha256(f"lineguard camera frame {a.shape} {a.dtype.str}\n".encode())
        h.update(memoryview(a).cast("B"))
        return h.hexdigest()
