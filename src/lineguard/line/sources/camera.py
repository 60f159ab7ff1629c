"""Camera source through OpenCV: RTSP/HTTP streams, USB cameras (an index), video files,
image sequences (``dir/%04d.png``) and folders of images.

Two modes, as on a line:

* ``trigger``: a part is inspected when :meth:`CameraSource.trigger` is called (a
  PLC signal, a light barrier, Enter on the console) on the first frame that arrives
  after the trigger (a :class:`~.frames.FrameGrabber` reads the camera meanwhile), never
  an older one: with the camera gone a trigger is refused (:class:`NoFrame`), not judged
  on the last frame seen. A video file is played at its recorded rate.
* ``free``: frames are inspected continuously, at most ``max_fps`` per second, so a
  30 fps camera does not flood a model that manages 5 parts a second.

A live camera (stream, USB index) that stops delivering frames is reopened with a 0.5 s
to 5 s backoff, in either mode, and the run goes on (``give_up_after_s`` ends it with
:class:`CameraLost` instead, after that long without frames).

A folder of images is a recorded run: the images in it at the start, in name order, played
at ``max_fps`` (each one inspected; a folder that receives new files is what
``lineguard watch`` is for). What it leaves out is said once, with why (``frames.folder_frames``:
other formats, GIF where OpenCV cannot read it, subfolders, symbolic links, refused unread as
``lineguard watch`` refuses them), and a file name in the log is shown escaped
(``folder.shown_name``: a name holding a newline printed a forged verdict line).

Frames go through the same submit path as HTTP: to a station in this process as their
pixels (``line.camera_frame``), to a remote one as PNG (lossless; fast settings, ``line.png``).

A station that cannot take frames (down, unreachable, its disk full: anything but a refusal
of the frame itself) is an *outage*, said once when it starts (then once a minute) and once
when it ends, never a line per frame:

* a **live camera** cannot wait (its frames come whether or not the station is up): a frame
  the station cannot take is dropped and counted (``lost``); the frames after it are
  tried as they come, so the run picks up when the station is back. A frame sent late
  would be judged after its part left the camera, and keeping full frames for a long
  outage costs memory a plant PC does not have (15 MB a 5 MP frame);
* a **recorded source** (a video file, an image sequence or folder) can wait: the frame in
  hand is retried (0.5 s to 5 s apart) until the station takes it, and the playback pauses
  meanwhile and resumes at its pace; only a stop (Ctrl-C, SIGTERM) during the wait loses
  that frame.

A station that says how long to wait (Retry-After: 5 s busy, 30 s a part its model did not
judge in time; at most ``RETRY_AFTER_MAX_S``, 60 s) is not asked sooner: a recorded source
retries its frame after that wait, a live camera sends none meanwhile (each lost, counted).

What is an outage is what the hot folder takes for one (:func:`.folder.station_fault`): the
station's answer that it cannot take parts now (disk full, no model, 503) or no answer at
all (refused, reset, timed out). Anything else a frame raises (a model in this process that
fails on that image, an answer that cannot be read) is the frame's: said for that frame,
counted as not inspected, and the run goes on; retried, one such frame held a recorded
source for ever. A station that answers one frame with an error of its own (HTTP 500,
``internal_error``) may fail on that image alone: a recorded source tries it
``FRAME_TRIES`` times, then gives it up (counted, said) and goes on.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable, Optional, Union

import cv2
import numpy as np

from . import Submit, SubmitFailed, SubmitRefused, retry_after
from ..camera_frame import CameraFrame
from ..config import without_password
from .folder import failed_on_request, station_fault
from .frames import FolderCapture, FrameGrabber
from .outage import LastingFaults

log = logging.getLogger("lineguard.camera")

# the key of the station's outage among the camera's lasting faults (said as the hot folder
# says its own: when it begins, once a minute while it lasts, when it ends)
STATION_OUTAGE = ("station",)

# A recorded source tries a frame the station answers with a failure of its own (HTTP 500,
# internal_error: its mistake on that request, maybe on that image alone) this many times,
# 0.5 to 5 s apart, then gives it up (counted as not inspected) and goes on. The station's
# "cannot take parts now" answers (503: disk full, no model) and no answer at all are waited
# out without a bound: those are outages.
FRAME_TRIES = 5


class NoFrame(LookupError):
    """A trigger got no frame newer than itself (camera lost, file ended, none in time)."""


class CameraLost(RuntimeError):
    """A live camera delivered no frames for ``give_up_after_s``: the run gave up."""


def open_capture(source: Union[str, int], folder_fps: float = 2.0) -> Any:
    """The capture for ``source``: a folder of images is played at ``folder_fps``."""
    if isinstance(source, (str, os.PathLike)) and os.path.isdir(source):
        return FolderCapture(source, folder_fps)
    src: Union[str, int] = int(source) if isinstance(source, str) and source.isdigit() else source
    cap = cv2.VideoCapture(src)
    if not cap.isOpened():
        # without its password: the command's error goes to the journal
        raise RuntimeError(f"cannot open camera source {without_password(source)!r}: check the URL / device "
                           "index / file path and that the camera is reachable")
    return cap


class CameraSource:
    def __init__(self, source: Union[str, int], submit: Submit, station_name: str = "cam",
                 mode: str = "free", max_fps: float = 2.0, part_prefix: Optional[str] = None,
                 on_result: Optional[Callable[[dict[str, Any]], None]] = None, loop_file: bool = False,
                 reconnect_s: tuple[float, float] = (0.5, 5.0), give_up_after_s: Optional[float] = None,
                 opener: Optional[Callable[[], Any]] = None, retry_s: tuple[float, float] = (0.5, 5.0)):
        if mode not in ("free", "trigger"):
            raise ValueError("mode must be 'free' (continuous, rate-limited) or 'trigger' (inspect on request)")
        if max_fps <= 0:
            raise ValueError("max_fps must be positive")
        if give_up_after_s is not None and give_up_after_s <= 0:
            raise ValueError("give_up_after_s must be positive (or None: reconnect for ever)")
        self.source = source
        self.submit = submit
        self.mode = mode
        self.min_interval = 1.0 / max_fps
        self.prefix = part_prefix or station_name
        self.on_result = on_result
        self.loop_file = loop_file
        self.reconnect_s = reconnect_s
        self.give_up_after_s = give_up_after_s
        # how a capture is (re)opened (tests give a stand-in camera); None: cv2.VideoCapture
        self._opener = opener
        if opener is not None:
            self.cap = opener()
            if self.cap is None:
                raise RuntimeError(f"cannot open camera source {without_password(source)!r}: check the URL / "
                                   "device index / file path and that the camera is reachable")
        else:
            # a folder has no recorded rate: it plays at max_fps, so each image is inspected
            self.cap = open_capture(source, folder_fps=max_fps)
        self._file_fps = self._recorded_fps()   # kept: the summary is asked for after close()
        self._frames_read = 0
        self.inspected = 0
        self.refused = 0        # the station refused the frame (SubmitRefused)
        self.errors = 0         # every frame taken but not inspected: refused or failed
        self.lost = 0           # taken, not inspected: the station could not take it (an outage)
        self.given_up = 0       # recorded source: frames the station failed on FRAME_TRIES times
        self.outages = 0        # times the station stopped taking frames
        self.retry_s = retry_s  # a recorded source retries the frame in hand this often (backoff)
        # the outage going on (details: reason, lost: frames lost in it), said once, not per frame
        self._outage = LastingFaults(log)
        self._paused_s = 0.0    # a recorded source: seconds its playback waited for the station
        # a live camera: no frame is sent before this (monotonic): the station's Retry-After
        # (busy 5 s, a model timeout 30 s); its frames meanwhile are lost, as in any outage
        self._held_until = 0.0
        self.skipped = 0        # free run: read but dropped to keep to max_fps
        self.missed = 0         # free run, live camera: frames that came while one was being judged
        self.no_frame = 0       # trigger mode: triggers refused, no frame newer than the trigger came
        self._next_due: Optional[float] = None
        self._grabber: Optional[FrameGrabber] = None
        self._stop = threading.Event()
        self._counter = 0
        # part ids unique across processes and clock changes: UTC (no repeated DST hour)
        # and a token of this run (two camera processes on one station name)
        self._run_token = f"{os.getpid() & 0xFFFF:04x}{os.urandom(2).hex()}"

    def _part_id(self) -> str:
        self._counter += 1
        utc = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        return f"{self.prefix}-{utc}-{self._run_token}-{self._counter:06d}"

    @property
    def frames_read(self) -> int:
        return self._frames_read + (self._grabber.frames if self._grabber is not None else 0)

    def _read(self) -> Optional[np.ndarray]:
        ok, frame = self.cap.read()
        if not ok:
            if self.loop_file:
                self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, frame = self.cap.read()
            if not ok:
                return None
        self._frames_read += 1
        return frame

    @property
    def taken(self) -> int:
        """Frames sent for inspection: inspected, refused or failed (what max_parts bounds)."""
        return self.inspected + self.errors

    def inspect_frame(self, frame_bgr: np.ndarray, wait: bool = False) -> Optional[dict[str, Any]]:
        """Send a frame to the station; its result, or None when it was not inspected.

        A refusal (the frame itself: bad image, ...) is said per frame, and so is any other
        error that is not the station's (a model in this process failing on the frame). A
        station that cannot take it (down, unreachable, disk full) is an outage, said when it
        starts and when it ends: the frame is lost (``wait`` False: a live camera cannot wait)
        or retried until the station takes it (``wait``: a recorded source), or until
        :meth:`stop`; a frame the station answers with a failure of its own (HTTP 500)
        ``FRAME_TRIES`` times is given up. A station that asks for a wait (Retry-After: busy
        5 s, a model that did not answer in time 30 s) is tried again no sooner: a recorded
        source waits that long, a live camera sends no frame meanwhile (each one lost)."""
        if not wait and STATION_OUTAGE in self._outage and time.monotonic() < self._held_until:
            # the station asked to be left alone this long: a frame sent now joins the queue
            # that just timed out (or the pool that is full), and a live camera cannot wait
            self.errors += 1
            self.lost += 1
            self._outage[STATION_OUTAGE]["lost"] += 1
            return None
        pid = self._part_id()    # the time it was taken, even when sent after an outage
        frame = CameraFrame(frame_bgr)
        delay = self.retry_s[0]
        failed_on = 0            # the station's own failures (HTTP 500) on this frame
        while True:
            tried = time.monotonic()
            try:
                result = self.submit(frame, pid, f"{pid}.png")
                break
            except SubmitRefused as exc:
                self._outage_over()    # the station answered: it is up
                self.errors += 1
                self.refused += 1
                log.error("frame %s not inspected: %s", pid, exc)
                return None
            except Exception as exc:  # noqa: BLE001 - station down, unreachable, full: not the end of the camera
                if not station_fault(exc):
                    # the frame's, not the station's: retried, it fails again, and a recorded
                    # source waited for it for ever (a model raising on one image)
                    self.errors += 1
                    log.error("frame %s not inspected (%s: %s); the run goes on", pid, type(exc).__name__, exc)
                    return None
                self._outage_begins(pid, exc, wait)
                asked = retry_after(exc)
                if not wait:
                    self._held_until = time.monotonic() + asked
                if wait and failed_on_request(exc):
                    failed_on += 1
                    if failed_on >= FRAME_TRIES:
                        # the station answers, and fails on this frame each time: maybe on this
                        # image alone, so the run goes on (a station failing on every frame
                        # loses each after as many tries, each counted)
                        self._paused_s += time.monotonic() - tried
                        self.errors += 1
                        self.lost += 1
                        self.given_up += 1
                        self._outage[STATION_OUTAGE]["lost"] += 1
                        log.error("frame %s not inspected: the station failed on it %d times (%s); given up, the "
                                  "run goes on (see the station's log for this part)", pid, failed_on, exc)
                        return None
                if wait:
                    # the station's Retry-After, when it asked more than the backoff
                    stopped = self._stop.wait(max(delay, asked))
                    # the playback pauses while it waits (the failed tries too): it resumes at
                    # its pace after the outage, not racing through the frames it was late for
                    self._paused_s += time.monotonic() - tried
                    if not stopped:
                        delay = min(delay * 2, self.retry_s[1])
                        continue
                self.errors += 1
                self.lost += 1
                self._outage[STATION_OUTAGE]["lost"] += 1
                return None
        self._outage_over()
        self.inspected += 1
        if self.on_result:
            self.on_result(result)
        return result

    @property
    def in_outage(self) -> Optional[str]:
        """Why the station cannot take frames now (None: it takes them)."""
        outage = self._outage.get(STATION_OUTAGE)
        return outage["reason"] if outage is not None else None

    def _outage_begins(self, pid: str, exc: BaseException, wait: bool) -> None:
        # SubmitFailed says the station's answer (HTTP 503: ...); a connection error its kind
        reason = str(exc) if isinstance(exc, SubmitFailed) and str(exc) else f"{type(exc).__name__}: {exc}"
        asked = retry_after(exc)
        then = ("the recorded source waits for it (the frame retried every "
                f"{self.retry_s[0]:g} to {self.retry_s[1]:g} s"
                + (f", or after the {asked:g} s the station asks" if asked else "")
                + f"; one the station fails on {FRAME_TRIES} times, HTTP 500, is given up)" if wait else
                "a live camera cannot wait: its frames are dropped and counted until the station takes "
                "them again" + (f" (none sent for the {asked:g} s the station asks)" if asked else ""))
        outage = self._outage.happens(
            STATION_OUTAGE, logging.ERROR,
            "the station cannot take frames (%(reason)s), from frame %(pid)s on; %(then)s",
            still="the station still cannot take frames after %(lasted).0f s (%(reason)s); %(lost)d frames lost "
                  "so far",
            start={"pid": pid, "then": then, "lost": 0}, reason=reason)
        if outage.tries == 1:
            self.outages += 1

    def _outage_over(self) -> None:
        outage = self._outage.get(STATION_OUTAGE)
        if outage is None:
            return
        if outage["lost"]:
            self._outage.ends(STATION_OUTAGE, logging.WARNING,
                              "the station takes frames again after %(lasted).1f s (from its first refusal): "
                              "%(lost)d frame%(s)s lost while it could not (not inspected)",
                              s="s" if outage["lost"] != 1 else "")
        else:
            self._outage.ends(STATION_OUTAGE, logging.WARNING,
                              "the station takes frames again after %(lasted).1f s (from its first refusal): the "
                              "recorded source waited for it, no frame lost")

    def is_file(self) -> bool:
        """Whether the source is recorded (a video file, an image sequence or folder), which
        can wait, not a stream or a USB camera, which cannot."""
        src = self.source
        return isinstance(src, (str, os.PathLike)) and not str(src).isdigit() and "://" not in str(src)

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
            if self.no_frame:
                line += f", {self.no_frame} triggers without a frame newer than the trigger (not inspected)"
        else:
            line = (f"{self.frames_read} frames read, {self.inspected} inspected, {self.skipped} skipped by "
                    f"--max-fps, {self.refused} refused")
            if self.missed:
                line += f", {self.missed} came while a frame was being judged (the station was busy)"
            # a live camera's frames read before the loop took its first one (the camera's
            # start) or after the last one (the stop): 13 of 62 went unaccounted
            aside = self.frames_read - self.taken - self.skipped - self.missed
            if aside > 0:
                line += f", {aside} read but not taken (before the first frame or after the stop)"
        if self.lost:
            line += (f", {self.lost} not inspected: the station could not take {'them' if self.lost != 1 else 'it'} "
                     f"({self.outages} outage{'s' if self.outages != 1 else ''}"
                     + (f"; {self.given_up} given up after it failed on each {FRAME_TRIES} times" if self.given_up
                        else "") + ", see the log)")
        if failed - self.lost:
            line += f", {failed - self.lost} not inspected for an error (see the log)"
        if self._paused_s >= 0.05 and self.is_file():
            # the waits between tries only: the outage's length, said when it ended, runs from
            # the first refusal to the first frame taken again
            line += (f"\nthe recorded source's playback was paused {self._paused_s:.1f} s in all for the station "
                     "(the waits between tries)")
        if self.mode == "free" and self.skipped and self.is_file():
            fps = self._file_fps
            rate = f"its recorded {fps:g} fps" if fps else "its recorded rate"
            line += (f"\nnote: a video file plays at {rate} and at most {1.0 / self.min_interval:g} frames a second "
                     "are inspected (--max-fps): the frames between are skipped by design, as a live camera's "
                     "would be; give --max-fps " + (f"{fps:g}" if fps else "at the file's frame rate")
                     + " to inspect every frame")
        return line

    def _admit(self, ts: float) -> bool:
        """Whether a frame of time ``ts`` is inspected under max_fps. Inspections are due
        every min_interval from the last due time, not from when the last frame happened to
        be read: a frame arriving one interval later (a 5 fps camera at --max-fps 5) is
        taken even with a little jitter (a quarter interval early), and the average rate
        never exceeds max_fps."""
        iv = self.min_interval
        due = self._next_due
        if due is not None and ts < due - 0.25 * iv:
            return False
        base = due if due is not None and ts - due < iv else ts
        self._next_due = base + iv
        return True

    def run_free(self, max_parts: Optional[int] = None) -> None:
        """Read frames until the stream ends, :meth:`stop` or ``max_parts`` frames taken
        (inspected or not; frames skipped for max_fps do not count); inspect at most max_fps.

        A video file plays at its recorded rate, as the camera it stands for would deliver
        it: read as fast as it decodes, a minute of line would pass in a second and
        max_fps would drop nearly every part. Its frames are paced by their recorded times
        (frame n at n / fps): an inspection slower than the file (the model's first load)
        does not make the frames after it late, so --max-fps at the file's rate inspects
        every frame. A live camera is read by a :class:`FrameGrabber`, which reopens it
        when it stops delivering (the run goes on; ``give_up_after_s`` ends it).
        """
        if not self.is_file():
            self._run_free_live(max_parts)
            return
        fps = self._file_fps
        t0 = time.monotonic()
        n = 0
        while not self._stop.is_set():
            if fps is not None:
                # the time the station was waited for is a pause, not lateness: after it the
                # frames come at their pace again, not all at once
                wait = t0 + self._paused_s + n / fps - time.monotonic()
                if wait > 0 and self._stop.wait(wait):
                    break
            frame = self._read()
            if frame is None:
                break
            ts = n / fps if fps is not None else time.monotonic()
            n += 1
            if not self._admit(ts):
                self.skipped += 1
                continue   # drop frames between inspections; the camera keeps streaming
            self.inspect_frame(frame, wait=True)   # a recording can wait for the station
            # frames taken, refused ones too: counting inspected parts alone, a camera whose
            # every frame is refused ran past max_parts for ever
            if max_parts is not None and self.taken >= max_parts:
                break

    def _grab(self) -> FrameGrabber:
        """The frame grabber (started): reads the camera on a thread, reconnects a live one,
        plays a file at its recorded rate."""
        if self._grabber is None:
            first = [self.cap]

            def opener() -> Any:
                if first:
                    return first.pop()            # the capture opened in __init__
                if self._opener is not None:
                    return self._opener()
                try:
                    return open_capture(self.source, folder_fps=1.0 / self.min_interval)
                except RuntimeError:
                    return None
            self._grabber = FrameGrabber(self.source, fps=self._file_fps, loop=self.loop_file,
                                         reconnect_s=self.reconnect_s, opener=opener).start()
        return self._grabber

    def _run_free_live(self, max_parts: Optional[int]) -> None:
        g = self._grab()
        lost_since: Optional[float] = None
        last = g.frames
        while not self._stop.is_set():
            try:
                frame = g.next_frame(timeout_s=1.0)
            except LookupError as exc:
                if self._stop.is_set():
                    break
                now = time.monotonic()
                lost_since = lost_since or now
                if self.give_up_after_s is not None and now - lost_since >= self.give_up_after_s:
                    raise CameraLost(f"camera {without_password(self.source)} delivered no frames for "
                                     f"{now - lost_since:.0f} s "
                                     f"({g.reconnects} reconnects); gave up: {exc}") from exc
                continue       # the grabber says it is lost and reconnects with a backoff
            lost_since = None
            n = g.frames
            gap, last = max(0, n - last - 1), n    # frames read while the last one was judged
            now = time.monotonic()
            # a station slower than max_fps (this frame came an interval or more past its due
            # time) missed them; else max_fps would have skipped them anyway
            if self._next_due is not None and now - self._next_due >= self.min_interval:
                self.missed += gap
            else:
                self.skipped += gap
            if not self._admit(now):
                self.skipped += 1
                continue
            self.inspect_frame(frame)
            if max_parts is not None and self.taken >= max_parts:
                break

    # -- trigger mode --------------------------------------------------------------
    def start_grabbing(self) -> None:
        """Read the camera on a thread so a trigger is answered with the first frame after it."""
        self._grab()

    def trigger(self, timeout_s: float = 5.0) -> Optional[dict[str, Any]]:
        """Inspect the first frame that arrives after this call. None when the station did
        not inspect it (refused, or an error: logged); :class:`NoFrame` when no frame newer
        than the trigger came within ``timeout_s`` (the camera lost and reconnecting, a file
        played to its end): no verdict from an older frame, ever."""
        g = self._grab()
        try:
            frame = g.next_frame(timeout_s)
        except LookupError as exc:
            self.no_frame += 1     # said by the caller (the exception), counted in the summary
            raise NoFrame(f"no frame newer than the trigger: {exc}") from exc
        return self.inspect_frame(frame)

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self.stop()
        # a stop in the middle of an outage ends what was said when it began (the log read
        # as if it lasted on), with the frames it lost: the frame in hand of a recorded
        # source stopped while it waited, a live camera's dropped ones
        self._outage.ends(STATION_OUTAGE, logging.WARNING,
                          "stopped while the station could not take frames (for %(lasted).0f s; %(reason)s): "
                          "%(lost)d frame(s) lost in it, not inspected")
        if self._grabber is not None:
            self._grabber.close()
        self.cap.release()
