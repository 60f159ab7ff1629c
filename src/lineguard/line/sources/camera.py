"""Camera source through OpenCV: RTSP/HTTP streams, USB cameras (an index), video files.

Two modes, as on a line:

* ``trigger``: a part is inspected when :meth:`CameraSource.trigger` is called (a
  PLC signal, a light barrier, Enter on the console); the newest frame is used.
* ``free``: frames are inspected continuously, at most ``max_fps`` per second, so a
  30 fps camera does not flood a model that manages 5 parts a second.

Frames go through the same submit path as HTTP: to a station in this process as their
pixels (``line.camera_frame``), to a remote one as PNG (lossless; fast settings, ``line.png``).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Optional, Union

import cv2
import numpy as np

from . import Submit, SubmitRefused
from ..camera_frame import CameraFrame

log = logging.getLogger("lineguard.camera")


def open_capture(source: Union[str, int]) -> cv2.VideoCapture:
    src: Union[str, int] = int(source) if isinstance(source, str) and source.isdigit() else source
    cap = cv2.VideoCapture(src)
    if not cap.isOpened():
        raise RuntimeError(f"cannot open camera source {source!r}: check the URL / device index / file path "
                           "and that the camera is reachable")
    return cap


class CameraSource:
    def __init__(self, source: Union[str, int], submit: Submit, station_name: str = "cam",
                 mode: str = "free", max_fps: float = 2.0, part_prefix: Optional[str] = None,
                 on_result: Optional[Callable[[dict[str, Any]], None]] = None, loop_file: bool = False):
        if mode not in ("free", "trigger"):
            raise ValueError("mode must be 'free' (continuous, rate-limited) or 'trigger' (inspect on request)")
        if max_fps <= 0:
            raise ValueError("max_fps must be positive")
        self.source = source
        self.submit = submit
        self.mode = mode
        self.min_interval = 1.0 / max_fps
        self.prefix = part_prefix or station_name
        self.on_result = on_result
        self.loop_file = loop_file
        self.cap = open_capture(source)
        self._file_fps = self._recorded_fps()   # kept: the summary is asked for after close()
        self.frames_read = 0
        self.inspected = 0
        self.refused = 0        # the station refused the frame (SubmitRefused)
        self.errors = 0         # every frame taken but not inspected: refused or failed
        self.skipped = 0        # free run: read but dropped to keep to max_fps
        self._latest: Optional[np.ndarray] = None
        self._latest_lock = threading.Lock()
        self._stop = threading.Event()
        self._counter = 0

    def _part_id(self) -> str:
        self._counter += 1
        return f"{self.prefix}-{time.strftime('%Y%m%dT%H%M%S')}-{self._counter:06d}"

    def _read(self) -> Optional[np.ndarray]:
        ok, frame = self.cap.read()
        if not ok:
            if self.loop_file:
                self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, frame = self.cap.read()
            if not ok:
                return None
        self.frames_read += 1
        return frame

    @property
    def taken(self) -> int:
        """Frames sent for inspection: inspected, refused or failed (what max_parts bounds)."""
        return self.inspected + self.errors

    def inspect_frame(self, frame_bgr: np.ndarray) -> Optional[dict[str, Any]]:
        pid = self._part_id()
        try:
            result = self.submit(CameraFrame(frame_bgr), pid, f"{pid}.png")
        except (SubmitRefused, Exception) as exc:  # noqa: BLE001 - one bad frame must not stop the camera
            self.errors += 1
            if isinstance(exc, SubmitRefused):
                self.refused += 1
            log.error("frame %s not inspected: %s", pid, exc)
            return None
        self.inspected += 1
        if self.on_result:
            self.on_result(result)
        return result

    def is_file(self) -> bool:
        """Whether the source is a video file (not a stream or a USB camera)."""
        src = self.source
        return isinstance(src, str) and not src.isdigit() and "://" not in src

    def _recorded_fps(self) -> Optional[float]:
        """A video file's frame rate (None for live sources, which deliver at their own pace)."""
        if not self.is_file():
            return None
        fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        return fps if 0 < fps <= 1000 else None

    def summary(self) -> str:
        """What became of the frames, for the end of a run: frames skipped to keep to
        max_fps are never judged, so a count that leaves them out hides parts not seen."""
        failed = self.errors - self.refused
        if self.mode == "trigger":
            line = f"{self.taken} frames taken on trigger, {self.inspected} inspected, {self.refused} refused"
        else:
            line = (f"{self.frames_read} frames read, {self.inspected} inspected, {self.skipped} skipped by "
                    f"--max-fps, {self.refused} refused")
        if failed:
            line += f", {failed} not inspected for an error (see the log)"
        if self.mode == "free" and self.skipped and self.is_file():
            fps = self._file_fps
            rate = f"its recorded {fps:g} fps" if fps else "its recorded rate"
            line += (f"\nnote: a video file plays at {rate} and at most {1.0 / self.min_interval:g} frames a second "
                     "are inspected (--max-fps): the frames between are skipped by design, as a live camera's "
                     "would be; give --max-fps " + (f"{fps:g}" if fps else "at the file's frame rate")
                     + " to inspect every frame")
        return line

    def run_free(self, max_parts: Optional[int] = None) -> None:
        """Read frames until the stream ends, :meth:`stop` or ``max_parts`` frames taken
        (inspected or not; frames skipped for max_fps do not count); inspect at most max_fps.

        A video file plays at its recorded rate, as the camera it stands for would deliver
        it: read as fast as it decodes, a minute of line would pass in a second and
        max_fps would drop nearly every part.
        """
        next_at = 0.0
        fps = self._file_fps
        t0 = time.monotonic()
        n = 0
        while not self._stop.is_set():
            if fps is not None:
                wait = t0 + n / fps - time.monotonic()
                if wait > 0 and self._stop.wait(wait):
                    break
                n += 1
            frame = self._read()
            if frame is None:
                break
            now = time.monotonic()
            if now < next_at:
                self.skipped += 1
                continue   # drop frames between inspections; the camera keeps streaming
            next_at = now + self.min_interval
            self.inspect_frame(frame)
            # frames taken, refused ones too: counting inspected parts alone, a camera whose
            # every frame is refused ran past max_parts for ever
            if max_parts is not None and self.taken >= max_parts:
                break

    # -- trigger mode --------------------------------------------------------------
    def start_grabbing(self) -> None:
        """Keep the newest frame in memory so a trigger answers with what the camera sees now."""
        def loop():
            while not self._stop.is_set():
                frame = self._read()
                if frame is None:
                    if self.is_file() and not self.loop_file:
                        break   # a video file ran out
                    time.sleep(0.01)
                    continue
                with self._latest_lock:
                    self._latest = frame
        self._grabber = threading.Thread(target=loop, name="camera-grab", daemon=True)
        self._grabber.start()

    def trigger(self, timeout_s: float = 5.0) -> Optional[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._latest_lock:
                frame = None if self._latest is None else self._latest.copy()
            if frame is not None:
                return self.inspect_frame(frame)
            time.sleep(0.01)
        raise TimeoutError("no frame from the camera yet; check the source")

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self.stop()
        g = getattr(self, "_grabber", None)
        if g is not None:
            g.join(timeout=2)
        self.cap.release()
