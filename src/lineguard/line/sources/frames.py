"""Frames for a PLC trigger: a camera, a video file at its recorded rate, or an image folder.

A :class:`FrameGrabber` reads its source on a thread, as a camera streams whether or
not anyone looks; a trigger takes the next frame that arrives after it
(:meth:`FrameGrabber.next_frame`), never one from before: the part in front of the camera
at the trigger is the one judged.

* a **video file** is played at its recorded frame rate (decoding as fast as possible would
  show the line a minute of parts in seconds); ``loop`` starts it again at its end;
* an **image folder** is played as frames in name order at ``fps`` (default 1 per second):
  the images in it at the start (:func:`folder_frames`), each read as the file holds it
  (:func:`read_frame`). What it leaves out is said once, with why: other formats, GIF where
  OpenCV cannot read it, subfolders, and symbolic links, refused unread as the hot folder
  refuses them (a link could point anywhere on the station PC; ``/etc/passwd`` was read);
* a **stream** (RTSP/HTTP URL, USB index) that stops delivering frames is reopened with a
  backoff from 0.5 s to 5 s; while it is down the grabber says so (``lost``), a trigger
  gets ``LookupError`` (the PLC handshake answers NO_IMAGE, raises Error), and when it is
  back the fault clears itself.
"""
from __future__ import annotations

import logging
import os
import stat
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np

from ..camera_frame import CameraFrame
from ..config import without_password

log = logging.getLogger("lineguard.camera")

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}

# GIF, which the station judges too, is played where this OpenCV reads it (builds differ):
# skipped without a word before, while ``lineguard watch`` took it
GIF = ".gif"

# the names said of each kind of file a folder played as a camera leaves out
SKIPPED_NAMED = 5

# a 1x1 GIF: whether this OpenCV reads GIF
_TINY_GIF = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,"
             b"\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
_gif_read: Optional[bool] = None


def reads_gif() -> bool:
    """Whether this OpenCV reads GIF (asked once)."""
    global _gif_read
    if _gif_read is None:
        import cv2
        try:
            _gif_read = cv2.imdecode(np.frombuffer(_TINY_GIF, np.uint8), cv2.IMREAD_UNCHANGED) is not None
        except cv2.error:
            _gif_read = False
    return _gif_read


def played_suffixes() -> set[str]:
    """The suffixes a folder played as a camera plays: IMAGE_SUFFIXES, and GIF where this
    OpenCV reads it. One set for what is played and for what an empty folder's error lists
    (it listed IMAGE_SUFFIXES alone while GIFs were played)."""
    return IMAGE_SUFFIXES | ({GIF} if reads_gif() else set())


def folder_frames(folder: Union[str, os.PathLike], shown: Optional[str] = None) -> list[Path]:
    """The images a folder played as a camera gives, in name order: its regular files of a
    format OpenCV reads (IMAGE_SUFFIXES, and GIF where it reads it). Hidden and ``~`` names
    (copy tools' and editors' temporary files) are left unsaid, as the hot folder leaves
    them; what else is left out is said once, in one line, with why and what to do: a
    camera folder source skipped GIFs without a word, and read symbolic links through (one to
    /etc/passwd was read) where ``lineguard watch`` refuses them."""
    from .folder import shown_name
    folder = Path(folder)
    suffixes = played_suffixes()
    files: list[Path] = []
    skipped: dict[str, list[str]] = {}
    with os.scandir(folder) as entries:
        for e in entries:
            if e.name.startswith((".", "~")):
                continue
            suffix = os.path.splitext(e.name)[1].lower()
            try:
                mode = e.stat(follow_symlinks=False).st_mode
            except OSError:
                continue                      # gone meanwhile
            if stat.S_ISLNK(mode):
                why = ("symbolic links, not followed (a link could point anywhere on the station PC): copy the "
                       "image itself into the folder")
            elif stat.S_ISDIR(mode):
                why = "subfolders, not played (only the folder's own images are)"
            elif not stat.S_ISREG(mode):
                why = "not regular files (a named pipe, socket or device)"
            elif suffix == GIF and GIF not in suffixes:
                why = "GIF, which this OpenCV does not read: convert them to PNG, or send them with `lineguard watch`"
            elif suffix not in suffixes:
                why = (f"not of a format played ({', '.join(sorted(suffixes))}): give an image its format's "
                       "suffix to have it played")
            else:
                files.append(Path(e.path))
                continue
            skipped.setdefault(why, []).append(e.name)
    if skipped:
        said = []
        for why, names in skipped.items():
            names.sort()
            named = ", ".join(shown_name(n) for n in names[:SKIPPED_NAMED])
            more = f" and {len(names) - SKIPPED_NAMED} more" if len(names) > SKIPPED_NAMED else ""
            said.append(f"{named}{more}: {why}")
        log.warning("camera folder %s: %d file(s) not played; %s", shown or shown_name(str(folder)),
                    sum(len(n) for n in skipped.values()), "; ".join(said))
    return sorted(files, key=lambda p: p.name)


def nothing_to_play(folder: Union[str, os.PathLike], shown: str) -> str:
    """Why a folder played as a camera gives no frame, for the command's error: what it holds
    instead is said by folder_frames' warning when there is any; an empty folder, or one of
    hidden and temporary files alone, is said so here (its error said "what it holds instead
    is said above" with nothing said above)."""
    try:
        names = os.listdir(folder)
    except OSError as exc:
        holds = f"it cannot be listed: {exc.strerror or exc}"
    else:
        if not names:
            holds = "it is empty"
        elif all(n.startswith((".", "~")) for n in names):
            holds = (f"it holds only {len(names)} hidden or temporary file(s), names starting with . or ~, "
                     "which are never played")
        else:
            holds = "what it holds instead is said above"
    return f"no images ({', '.join(sorted(played_suffixes()))}) in the folder {shown} ({holds})"


def read_frame(path: Union[str, os.PathLike]) -> Optional[np.ndarray]:
    """An image of a folder played as a camera, as the file holds it (EXIF turn applied; a
    12-bit camera's 16-bit photo stays 16-bit for the model to scale by its camera's depth;
    IMREAD_COLOR kept only the top 8 bits of each value, grey levels 0-15). None when it is
    not an image OpenCV reads, is gone, or became a symbolic link since the folder was listed
    (opened without following it: never read through)."""
    import cv2
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            return None
        data = fh.read()
    if not data:
        return None
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)


def _kind(source: Union[str, int]) -> str:
    if isinstance(source, int) or (isinstance(source, str) and source.isdigit()):
        return "device"
    if "://" in str(source):
        return "stream"
    if Path(source).is_dir():
        return "folder"
    return "file"


class FolderCapture:
    """A folder of images read as a recorded camera: the images in it when opened, in name
    order, at ``fps`` (as ``cv2.VideoCapture`` reads a file: ``read``, ``get``, ``set``).
    Images are read as the file holds them (a 16-bit photo stays 16-bit); one that cannot
    be read is said and passed over, not the end of the run, and said once however often a
    looped playback passes it (``files``: the folder's images, listed already)."""

    def __init__(self, folder: Union[str, os.PathLike], fps: float, files: Optional[list[Path]] = None):
        from .folder import shown_name
        self.folder = Path(folder)
        self.files = folder_frames(self.folder) if files is None else files
        if not self.files:
            raise RuntimeError(f"{nothing_to_play(folder, shown_name(str(folder)))}: a camera source "
                               "folder is played once, as a recorded run; for a folder that receives images as "
                               "parts come, use `lineguard watch FOLDER`")
        self.fps = fps
        self.pos = 0
        self.unreadable = 0                      # reads that failed
        self.said: set[Path] = set()             # the images that failed, each said once

    def isOpened(self) -> bool:  # noqa: N802 - cv2.VideoCapture's name
        return True

    def get(self, prop: int) -> float:
        import cv2
        if prop == cv2.CAP_PROP_FPS:
            return self.fps
        if prop == cv2.CAP_PROP_FRAME_COUNT:
            return float(len(self.files))
        return 0.0

    def set(self, prop: int, value: float) -> bool:
        import cv2
        if prop == cv2.CAP_PROP_POS_FRAMES:
            self.pos = int(value)
            return True
        return False

    def read(self) -> tuple[bool, Optional[np.ndarray]]:
        from .folder import shown_name
        while self.pos < len(self.files):
            path = self.files[self.pos]
            self.pos += 1
            frame = read_frame(path)
            if frame is not None:
                return True, frame
            self.unreadable += 1
            if path not in self.said:
                self.said.add(path)
                log.warning("camera folder %s: %s is not an image OpenCV can read (or it is gone, or became a "
                            "link); passed over", shown_name(str(self.folder)), shown_name(path.name))
        return False, None

    def release(self) -> None:
        pass


class FrameGrabber:
    """Reads frames continuously; :meth:`next_frame` gives the first frame after the call."""

    def __init__(self, source: Union[str, int], fps: Optional[float] = None, loop: bool = False,
                 on_fault: Optional[Callable[[Optional[str]], None]] = None,
                 reconnect_s: tuple[float, float] = (0.5, 5.0), opener: Optional[Callable[[], Any]] = None):
        self.source = source
        # as said in the log, /health and errors: a camera URL's password is not (line.config)
        self.shown = without_password(source)
        # how a capture is (re)opened: cv2.VideoCapture; tests give a stand-in camera
        self._opener = opener
        self.kind = _kind(source)
        self.loop = loop
        self.on_fault = on_fault
        self.reconnect_s = reconnect_s
        self.frames = 0                 # frames read so far
        self.reconnects = 0
        self.lost: Optional[str] = None  # why no frames come, while they do not
        self.ended = False               # a file or folder played to its end (without loop)
        # how long a PLC trigger waits for its frame (image_source): set inside the
        # inspection window by the station, else the part is a timeout, not "no image"
        self.trigger_wait_s = 2.0
        self._frame: Optional[np.ndarray] = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._cap: Any = None
        self._files: list[Path] = []
        if self.kind == "folder":
            self._files = folder_frames(source, self.shown)
            if not self._files:
                raise RuntimeError(nothing_to_play(source, self.shown))
            self.fps = float(fps or 1.0)
            # read as `lineguard camera` reads a folder: one image that cannot be read is said
            # and passed over (taken as the end, it stopped the playback, and every later
            # trigger was answered without a frame)
            self._cap = FolderCapture(source, self.fps, files=self._files)
        else:
            self._cap = self._open()
            if self._cap is None:
                raise RuntimeError(f"cannot open camera source {self.shown!r}: check the URL / device index / file "
                                   "path and that the camera is reachable")
            import cv2
            recorded = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
            # a file plays at its recorded rate; a live source delivers at its own pace
            self.fps = float(fps or (recorded if 0 < recorded <= 1000 else 25.0))
        if self.fps <= 0:
            raise ValueError("fps must be positive")
        self._thread = threading.Thread(target=self._run, name="frame-grabber", daemon=True)

    def start(self) -> "FrameGrabber":
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(5)
        if self._cap is not None:
            self._cap.release()

    # -- reading -------------------------------------------------------------------------
    def _open(self) -> Any:
        if self._opener is not None:
            return self._opener()
        import cv2
        src: Union[str, int] = int(self.source) if self.kind == "device" else str(self.source)
        cap = cv2.VideoCapture(src)
        if not cap.isOpened():
            cap.release()
            return None
        return cap

    def _read_one(self, i: int) -> Optional[np.ndarray]:
        ok, frame = self._cap.read()
        if not ok and self.kind in ("file", "folder") and self.loop:
            import cv2
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._cap.read()     # a folder none of whose images can be read: still none
        return frame if ok else None

    def _run(self) -> None:
        paced = self.kind in ("file", "folder")
        t0 = time.perf_counter()
        i = 0
        backoff = self.reconnect_s[0]
        while not self._stop.is_set():
            if paced:
                # frame i is due at t0 + i / fps: the recorded rate, not the decoder's
                wait = t0 + i / self.fps - time.perf_counter()
                if wait > 0 and self._stop.wait(wait):
                    break
            frame = self._read_one(i)
            if frame is None:
                if paced:
                    self.ended = True       # told to a waiting trigger by _set_lost
                    if self.kind == "folder" and (self.loop or len(self._cap.said) == len(self._files)):
                        # not an end to start again after: no image in it can be read
                        self._set_lost(f"none of the {len(self._files)} images in the folder {self.shown} can be "
                                       "read (damaged, cut short or gone): check the files")
                    else:
                        self._set_lost(f"the {self.kind} {self.shown} played to its end (a recorded camera plays "
                                       "once: start again to play it again; a camera's URL or USB index never "
                                       "ends)")
                    return
                self._set_lost(f"camera {self.shown} delivers no frames (lost stream); reconnecting")
                if self._stop.wait(backoff):
                    break
                backoff = min(backoff * 2, self.reconnect_s[1])
                if self._cap is not None:
                    self._cap.release()
                self._cap = self._open()
                self.reconnects += 1
                if self._cap is None:
                    self._cap = _Closed()   # the next read fails, and we retry
                continue
            backoff = self.reconnect_s[0]
            i += 1
            with self._cond:
                self._frame = frame
                self.frames += 1
                self._cond.notify_all()
            if self.lost is not None:
                # said as loudly as the loss: at INFO, `camera --server` (which shows WARNING and
                # up) said the stream lost and never that it came back
                log.warning("camera %s delivers frames again", self.shown)
                self._set_lost(None)

    def _set_lost(self, why: Optional[str]) -> None:
        if why is not None and self.lost is None:
            log.error("%s", why)
        with self._cond:
            self.lost = why
            # a trigger waiting for a frame hears it now: it slept out its whole wait before,
            # and the PLC's part was a timeout (ResultCode 10), never "no image" (11)
            self._cond.notify_all()
        if self.on_fault is not None:
            try:
                self.on_fault(why)
            except Exception:  # noqa: BLE001 - reporting a fault must not stop the grabber
                log.exception("camera fault report failed")

    # -- taking frames -------------------------------------------------------------------
    def next_frame(self, timeout_s: float = 2.0, lost_fails: bool = False) -> np.ndarray:
        """The first frame read after this call; LookupError if none comes in ``timeout_s``,
        or at once when the source played to its end. ``lost_fails``: at once too while the
        camera is lost (reconnecting): a PLC's part is answered "no image" inside its window
        rather than waited on (a free-running reader waits out the reconnect instead)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            seen = self.frames
            while self.frames == seen:
                left = deadline - time.monotonic()
                if left <= 0 or self._stop.is_set() or self.ended or (lost_fails and self.lost is not None):
                    why = self.lost or f"no frame from camera {self.shown} in {timeout_s:g} s"
                    raise LookupError(why)
                self._cond.wait(left)
            return self._frame.copy()

    def image_source(self, timeout_s: Optional[float] = None) -> Callable[[], tuple[CameraFrame, str]]:
        """An image source for the PLC handshake: each call is the next frame, handed to the
        station as its pixels (``line.camera_frame``), waited for ``timeout_s`` (default
        ``trigger_wait_s``, which must end inside the inspection window); a lost or ended
        camera is LookupError at once."""
        def take() -> tuple[CameraFrame, str]:
            frame = self.next_frame(timeout_s if timeout_s is not None else self.trigger_wait_s, lost_fails=True)
            return CameraFrame(frame), f"frame-{self.frames:07d}.png"
        return take

    def status(self) -> dict[str, Any]:
        return {"source": self.shown, "kind": self.kind, "fps": self.fps, "frames": self.frames,
                "reconnects": self.reconnects, "lost": self.lost, "ended": self.ended}


class _Closed:
    """A capture that could not be opened: every read fails, so the grabber retries."""

    def read(self) -> tuple[bool, None]:
        return False, None

    def release(self) -> None:
        pass
