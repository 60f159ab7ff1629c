"""The PLC handshake without a protocol: trigger, inspect, answer inside a window, acknowledge.

The Modbus TCP server (:mod:`.plc_modbus`) and the OPC UA server (:mod:`.plc_opcua`) are
adapters around one :class:`Handshake`: they turn bits, registers and method calls into
``trigger`` / ``ack`` / ``clear_error`` / ``select_recipe`` and show its state to the PLC.
The rules that keep a line safe live here, once:

* one part at a time: a trigger is taken only when ready (no part in inspection, no
  unacknowledged result, no error);
* a part without a verdict inside the inspection window is answered NG with
  :attr:`ResultCode.TIMEOUT` (rejected, not passed); the late verdict is stored but never
  sent, because an answer belongs to a trigger number and so can never be taken for the
  next part;
* a fault (no image, model or storage failing) answers the part NG and holds the station
  in error until the PLC clears it; the fault is in ``station.faults`` (``/health``);
* every answer is recorded in ``line_signals`` with its reason and goes out through the
  outbox (event ``line_signal``), and is on the disk before the PLC can read it (the
  journal, or the spool for a reject without a verdict): a kill loses none, and one the
  PLC had not acknowledged is recorded as not known to be delivered (``delivery_unknown``);
* a trigger number is never handed out twice, a restart included (reserved on the disk);
* the station's test-part verification this shift (:mod:`.test_parts`) is shown beside
  the answers (:class:`VerificationState`), so the PLC can interlock the line on it; the
  station itself refuses nothing for it (the test parts need triggers too).
"""
from __future__ import annotations

import enum
import hashlib
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Union

from sqlalchemy import select, text

from .camera_frame import CameraFrame
from .db import is_busy, is_refusal, is_unreachable
from .errors import ModelLoadFailed, NotFound, StationBusy, StationError, StorageUnavailable
from .orm import LineSignal, OutboxEvent, utcnow
from .outbox import record_event
from .signal_spool import FOLDER as spool_folder
from .signal_spool import AnswerJournal, SignalSpool

log = logging.getLogger("lineguard.plc")

# the next part's image and a name for it: a file's bytes, or a camera's frame as pixels
ImageSource = Callable[[], tuple[Union[bytes, CameraFrame], str]]


class VerificationState(enum.IntEnum):
    """The station's test-part verification this shift, for the recipe's product."""
    NONE = 0                # the product has no test parts
    DUE = 1                 # none of them seen this shift
    INCOMPLETE = 2          # some seen, all right so far
    PASSED = 3              # every test part got its verdict this shift
    FAILED = 4              # a test part's latest check got the wrong verdict
    UNKNOWN = 5             # not read yet, or cannot be read (database away): not verified


class ResultCode(enum.IntEnum):
    NONE = 0
    OK = 1
    NG = 2
    REVIEW = 3              # judged REVIEW: NG bit set, the part goes to a person
    TIMEOUT = 10            # no verdict inside the inspection window
    NO_IMAGE = 11           # the image source had no new image or failed (camera lost)
    MODEL_FAULT = 12        # no active model for the recipe's product, or it cannot load
    STORAGE_FAULT = 13      # the record could not be stored
    UNKNOWN_RECIPE = 14     # RecipeId is not in the station's recipe table
    BAD_IMAGE = 15          # the image was refused (corrupt, too large)
    NOT_READY = 20          # Trigger while TriggerReady was low


# The trigger count: the full count names the part (line_signals.trigger_seq, a signed
# 32-bit column; OPC UA's TriggerSeq and ResultId), the Modbus register its low 16 bits.
# Past SEQ_LIMIT - 1 it starts at 1 again (after 3.4 years at 20 parts a second).
SEQ_LIMIT = 2 ** 31
# trigger numbers reserved on the disk at a time: a restart starts past every one handed out
SEQ_BLOCK = 1000
# answers waiting this long to be recorded are a /health fault (housekeeping: the line runs on)
BACKLOG_FAULT_S = 10.0
# the start's read of the last recorded trigger waits this long for a lock (or a slow read), then
# the link starts from the numbers reserved on the disk
START_READ_S = 3.0
# at a stop the link stays open this long at most for the part in inspection to be answered and
# its answer acknowledged by the PLC (Handshake.drain), and for the PLC's acknowledgement of an
# answer already up, this long of it at most: a PLC that acknowledges does so within its scan
STOP_WAIT_S = 5.0
STOP_ACK_S = 1.0
# the line's latest outbox events searched for the one a stop's delivery_unknown corrects
FIRST_EVENT_SCAN = 500


def stop_deadline() -> float:
    """The end of a stop's wait (time.monotonic()), STOP_WAIT_S from now: one for every PLC
    link of the station, each link's begin_stop() run first, then close(deadline=...) on each
    (two links waited for one after the other took twice the bound, the second taking parts
    while the first was drained)."""
    return time.monotonic() + STOP_WAIT_S

_PHOTO_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
# photos in a camera folder past which its listing costs a part's window noticeable time
CROWDED_FOLDER = 5000
# a photo whose format says it is unfinished and that stayed unchanged this long since the
# station first saw it is cut short (the camera stopped while saving it, a full disk), not
# still being written: a network copy that stalls a moment is still waited for
WRITING_SETTLE_S = 1.0
# the newest photos at start (by file time) read to tell whether one is still being written
STARTED_WRITING_N = 4


class CameraFolder:
    """The folder a camera saves into, as a PLC link's image source: the photo of the part
    just triggered, or ``LookupError`` (answered NG, NO_IMAGE), never another part's photo.

    The camera photographs every part the PLC triggers, in order, sometimes a little after
    the trigger. So photos are counted, not timed (a share's clock may differ from the
    station's): a trigger that took no photo (refused, none came in time, or its window
    closed before the station got to it) is owed one, and the next photos to arrive (oldest
    first, by the camera's times; none taken where the order the station saw them in says
    otherwise) are theirs and set aside, also for a refused repeat of the part in
    inspection: a camera wired to fire at every call photographs it again, and that photo,
    owed to no trigger, was taken as the next part's, and the one after it as the part
    after's, for ever (every defect passed, every good part rejected, no fault);
    counted, a camera that fires once per part costs the next part NO_IMAGE and an Error,
    which a person sees. A trigger takes the newest complete photo left once those owed are
    paid, waiting up to
    ``wait_s`` for one (a camera that saves after the trigger); photos there
    when the link started, or passed over by a take, are no part's. A photo is complete when
    its format says so (a PNG's end chunk, a JPEG's end marker), else (TIFF) once it stayed
    unchanged between two looks; one still being written is never taken. Told apart by name,
    time and size: a camera that rewrites one file makes a new photo each time.

    What a take sets aside is what was owed when its trigger came, once: every trigger has
    its place in the PLC's order (:meth:`trigger_taken`, :meth:`trigger_refused`, told under
    the handshake's lock), and a photo owed is kept at its trigger's place. A trigger refused
    while the part is in inspection (a repeat, or a PLC that went on to the next part) was
    photographed after it, so its photo comes after this part's. Where another part was
    refused meanwhile, a take waits until the photos of this part and of the refused parts
    have all come and takes this part's, before theirs: with one photo fewer, the camera
    missed one of them, and the one that came cannot be told apart (the camera missed the
    part in inspection and photographed the next part, which was taken as this part's);
    the trigger is answered NO_IMAGE. A refused repeat of the part in inspection (same
    PartTag) shows the same part, so its photo is not waited for. A take whose wait ends
    with no photo owes its part's photo at its own place, before the parts triggered since
    (a take that outlived its window: numbered after the next part, its late photo was
    taken as the next part's). So is a part triggered since whose take has not begun (a
    take that outlived its window): its photo comes after this part's and is left to its
    take; with one photo fewer the part in inspection is NO_IMAGE (the one that came was
    taken as its own, and it was the next part's where the camera missed this part).

    Where only the photos owed have come when the wait ends, the trigger is answered NO_IMAGE
    and what was owed before it starts again from nothing: either the camera missed a part
    (those photos were this part's and later ones) or this part's photo is later than the
    wait. The two cannot be told apart by the photos or their times (the missed part's
    next photo comes in the next part's wait as a late photo does); starting again ends the
    first kind at once (owing this part's photo as well kept a camera that missed one part
    on NO_IMAGE for ever, each part's photo paying the one before). The second kind, a
    camera always later than ``wait_s``, judges each later part on the photo before its
    own: set ``wait_s`` above the camera's delay (the NO_IMAGE that starts it says so).
    A ClearError keeps what may still come (:meth:`restart`). A photo cut short (the camera
    stopped while saving it, a full disk) is never complete: it is owed as being written
    once at most, and counted as come once it stayed unchanged ``writing_settle_s`` (owed at
    every ClearError, it kept the line on NO_IMAGE for ever, each part's photo paying it).
    What is owed is kept in runs of consecutive triggers: a PLC retrying a refused call every
    cycle for hours costs a few entries, not one each.

    Before (newest_image_source): the newest file not taken, whatever its time. A photo
    saved 40 ms after its trigger was NO_IMAGE and then judged as the next part (a cracked
    part told OK, the good one after it NG, and so on); the photo of a refused trigger, or a
    half-written one once written, was judged as the next part; two links on one folder
    judged one photo each.
    """

    def __init__(self, folder: Path | str, wait_s: float = 0.25, poll_s: float = 0.005):
        self.folder = Path(folder)
        self.wait_s = wait_s
        self.poll_s = poll_s
        self._lock = threading.Lock()            # one take at a time: a photo goes to one trigger
        self._state = threading.Lock()           # what is owed and accounted for (the PLC's thread too)
        # the photos of triggers that took none, in the PLC's order, as runs of consecutive
        # places: (the first trigger's place, how many, when the newest was counted
        # (time.monotonic()), refused repeats of the part then in inspection); places only
        # grow, so a take tells those owed before its trigger from those after it, and a
        # ClearError how old each is. Only runs counted wait_s ago or longer are joined (their
        # times no longer matter): 200,000 refusals without a take held 25 MB, and a
        # ClearError sorting them under the handshake's lock took seconds
        self._owed: list[tuple[int, int, float, bool]] = []
        self._joined = (0, time.monotonic())     # how many runs the last join left, and when
        self._counted = 0                        # the next trigger's place (taken or refused)
        # taken triggers whose take has not begun: their places, by the handshake's trigger
        # number (or in the order told); one slot was overwritten by the next trigger when a
        # take began just after its window closed, and that take counted from the next part
        # (its place, when it was told (time.monotonic()))
        self._marks: dict[Any, tuple[int, float]] = {}
        # places of taken parts whose photo came while an earlier part's take waited and was set
        # aside there, as too few photos came to tell the parts' apart: their own takes find no
        # photo of theirs to come. Waited for again, such a part took the next part's photo (set
        # aside as its own), that part owed its photo once more and the part after it, its own
        # photo there, paid it: two parts too many NO_IMAGE, the last told to raise the wait
        self._came: set[int] = set()
        self._taking = threading.local()         # the trigger a worker is about to take (take_begins)
        self._said_crowded = False
        # photos accounted for (taken, set aside, passed over, there at the start), of
        # those still in the folder (what left it is forgotten)
        self._seen: dict[tuple[str, int, int], None] = {}
        # the previous look's photos, each with when it was first seen so (time.monotonic())
        self._last: dict[tuple[str, int, int], float] = {}
        # unfinished photos a ClearError counted as still being written (owed once, never again)
        self._held: dict[tuple[str, int, int], None] = {}
        self._unfinished: list[str] = []                   # the last look's photos cut short or empty, said
        # names of photos a ClearError counted as come while cut short: the same name found whole
        # later is that photo finished (a copy that stalled over a second), no part's
        self._cut_short: dict[str, None] = {}
        # when the station first saw each photo not accounted for, by name (time.monotonic()),
        # kept across the file's growth and dropped once the photo is accounted for (a camera
        # rewriting one name makes a new photo). Photos are ordered by the camera's file times;
        # where that order and the order the station saw them in pick different photos for a
        # part, the part takes none (see _sight_order): neither order is right for every
        # camera. By file time, a copy written in place that stalled for seconds and finished
        # after the next part's photo was the later one (the next part was judged on it); by
        # first sight, a copier that renames and keeps the camera's time (rsync -a, WinSCP,
        # syncthing) delivering the later part's photo first gave each part the other's; by
        # the file time when first seen, a copy written in place whose time is then set to the
        # camera's (scp -p, robocopy) compared the share's clock with the camera's (reviews of
        # c760549 and cc311f6, 10-15 wrong photos in 180 parts each way).
        self._first_seen: dict[str, float] = {}
        self.writing_settle_s = WRITING_SETTLE_S
        try:
            listing = self._listing()
        except LookupError:
            listing = {}              # a folder not there yet: its first photo is the first part's
        self._account(listing)
        # A photo still being written at start is there before any part: finished, it is the
        # same photo, no part's (review of c760549: counted as new, the first part took it and
        # every part after the photo before its own, with no fault). Only the newest few by
        # file time are read to tell: a crowded folder is not read whole at start, and the
        # share's clock need not agree with the station's.
        from .sources.folder import file_looks_complete
        for sig, path in sorted(listing.items(), key=lambda item: item[0][1])[-STARTED_WRITING_N:]:
            if file_looks_complete(path, sig[2]) is False:
                self._cut_short[sig[0]] = None

    def _listing(self) -> dict[tuple[str, int, int], str]:
        """Every photo in the folder by (name, mtime, size), one stat each (os.scandir: a
        folder of 30,000 files cost 349 ms a trigger with Path.iterdir and three stats a file)."""
        found: dict[tuple[str, int, int], str] = {}
        try:
            with os.scandir(self.folder) as entries:
                for e in entries:
                    if os.path.splitext(e.name)[1].lower() not in _PHOTO_SUFFIXES:
                        continue
                    try:
                        if not e.is_file():
                            continue
                        st = e.stat()
                    except OSError:          # removed meanwhile by the camera's own clean-up
                        continue
                    found[(e.name, st.st_mtime_ns, st.st_size)] = e.path
        except OSError as exc:
            raise LookupError(f"image folder {self.folder} cannot be read ({exc.strerror or exc})") from exc
        if len(found) > CROWDED_FOLDER and not self._said_crowded:
            # every trigger looks at every file: 30,000 took a third of a second of the window
            self._said_crowded = True
            log.warning("camera folder %s holds %d photos: each PLC trigger reads them all, inside its "
                        "inspection window; have the camera (or a scheduled job) delete or move old photos",
                        self.folder, len(found))
        return found

    def _account(self, sigs: Iterable[tuple[str, int, int]]) -> None:
        with self._state:
            self._seen_now(sigs)

    def _seen_now(self, sigs: Iterable[tuple[str, int, int]]) -> None:
        """Photos accounted for (under ``_state``): their names' first sight is forgotten, so
        a new photo under the same name is ordered by when it is seen."""
        for sig in sigs:
            self._seen[sig] = None
            self._first_seen.pop(sig[0], None)

    def _complete(self, listing: dict[tuple[str, int, int], str]) -> list[tuple[str, int, int]]:
        """The photos not accounted for that are complete, oldest first by the camera's file
        times (see ``_first_seen`` and :meth:`_sight_order` for when that order is not trusted)."""
        from .sources.folder import file_looks_complete, shown_name
        with self._state:
            # what left the folder needs no remembering (memory stays the folder's size)
            self._seen = {sig: None for sig in self._seen if sig in listing}
            seen = set(self._seen)
        done, unfinished, finished = [], [], []
        for sig, path in listing.items():
            if sig in seen:
                continue
            whole = file_looks_complete(path, sig[2])
            if whole and sig[0] in self._cut_short:
                # counted as come when a ClearError found it cut short: it was only stalled,
                # and finished it is the same photo, no later part's (found by review: the
                # next part was judged on it)
                finished.append(sig)
            elif whole or (whole is None and sig in self._last):     # a TIFF: unchanged since the last look
                done.append(sig)
            elif whole is False:
                # an empty file too: a camera that creates it first and writes the photo later
                unfinished.append(f"{shown_name(sig[0])} there is empty (0 bytes)" if not sig[2] else
                                  f"{shown_name(sig[0])} there ends short of what its format says")
        if finished:
            with self._state:
                self._seen_now(finished)
                for sig in finished:
                    self._cut_short.pop(sig[0], None)
        self._looked(listing)
        self._unfinished = sorted(unfinished)
        return sorted(done, key=lambda sig: (sig[1], sig[0]))

    def _looked(self, listing: dict[tuple[str, int, int], str]) -> None:
        """This look's photos become the last look's, each keeping when it was first seen; a
        photo not accounted for keeps when its name was first seen (see ``_first_seen``)."""
        now, last = time.monotonic(), self._last
        self._last = {sig: last.get(sig, now) for sig in listing}
        with self._state:
            first = self._first_seen
            self._first_seen = {sig[0]: first.get(sig[0], now) for sig in listing if sig not in self._seen}

    def _place(self) -> int:
        """The next trigger's place in the PLC's order (under ``_state``)."""
        self._counted += 1
        return self._counted - 1

    def _owe(self, place: Optional[int] = None, same_part: bool = False) -> None:
        """One more photo owed, at its trigger's place (a new one: last) (under ``_state``)."""
        if place is None:
            place = self._place()
        now = time.monotonic()
        owed = self._owed
        i = len(owed)
        while i and owed[i - 1][0] > place:
            i -= 1
        owed.insert(i, (place, 1, now, same_part))
        # joined once they doubled or wait_s after the last join: a PLC refused at every cycle
        # costs one pass over them per wait_s, and they are as many as it sends in wait_s
        if len(owed) > 64 and (len(owed) >= 2 * self._joined[0] or now - self._joined[1] >= self.wait_s):
            self._join(now)

    def _join(self, now: float) -> None:
        """Consecutive runs counted wait_s ago or longer are one (their times no longer
        matter: a ClearError keeps only those younger, a take waits for none of them)
        (under ``_state``)."""
        joined: list[tuple[int, int, float, bool]] = []
        for run in self._owed:
            if joined:
                p1, n1, at1, s1 = joined[-1]
                p2, n2, at2, s2 = run
                if s1 == s2 and p1 + n1 == p2 and now - max(at1, at2) >= self.wait_s:
                    joined[-1] = (p1, n1 + n2, max(at1, at2), s1)
                    continue
            joined.append(run)
        self._owed = joined
        self._joined = (len(joined), now)

    @staticmethod
    def _owed_count(runs: Iterable[tuple[int, int, float, bool]]) -> int:
        return sum(run[1] for run in runs)

    @staticmethod
    def _without_first(runs: list[tuple[int, int, float, bool]], k: int) -> list[tuple[int, int, float, bool]]:
        """``runs`` less their first ``k`` photos owed (paid, oldest first)."""
        left = []
        for place, n, at, same in runs:
            if k >= n:
                k -= n
                continue
            if k:
                place, n, k = place + k, n - k, 0
            left.append((place, n, at, same))
        return left

    def _paid(self, mark: int, later: int) -> None:
        """A take's photos set aside (under ``_state``): what was owed before its trigger
        (placed below ``mark``), and ``later`` of those owed after it (their photos came
        after the one taken)."""
        self._owed = self._without_first([e for e in self._owed if e[0] >= mark], later)

    def trigger_refused(self, same_part: bool = False) -> None:
        """A trigger the link did not inspect: the photo it came with is no later part's.
        ``same_part``: a repeat of the part in inspection (its PartTag), whose photo shows
        that part too."""
        with self._state:
            self._owe(same_part=same_part)

    def trigger_taken(self, key: Any = None) -> None:
        """A trigger taken, told in the PLC's order (the handshake's lock): the photos owed
        now come before its part's, any counted from now on after it, however late its take
        begins (a worker still busy with an earlier part). ``key`` (the trigger's number)
        names it to :meth:`take_begins` and :meth:`trigger_dropped`; without one, takes
        come in the order told. Without any, a take counts from when it begins."""
        with self._state:
            place = self._place()
            self._marks[("told", place) if key is None else key] = (place, time.monotonic())

    def take_begins(self, key: Any) -> None:
        """The calling thread's next take is for the trigger ``key`` (told to
        :meth:`trigger_taken`), whatever was triggered since."""
        self._taking.key = key

    def trigger_dropped(self, key: Any = None) -> None:
        """A trigger taken (``key``, else the one taken last) will take no photo (its window
        closed before the station got to it): its photo, whenever it comes, is no later
        part's, and no take is to come."""
        with self._state:
            if key is None and self._marks:
                key = next(reversed(self._marks))
            told = self._marks.pop(key, None)
            if told is not None and told[0] in self._came:
                self._came.discard(told[0])     # its photo came and was set aside: owed by none
                return
            self._owe(told[0] if told is not None else None)

    def restart(self) -> None:
        """The PLC cleared an error (ClearError, Reset): counted afresh from what the folder
        holds now, keeping what may still come.

        The photos in the folder now are no part's: they pay what is owed, oldest first.
        Of what is owed still, a photo being written now is kept, and so is the photo of a
        trigger counted less than ``wait_s`` ago (a refusal, or a part whose wait ended
        with none): a camera set up right (``wait_s`` above its delay) may still save it.
        The rest is dropped: its camera did not fire, and owed for ever it made every
        later part NO_IMAGE once more. Clearing all of it, a ClearError sent faster than
        the camera's delay (a PLC that clears and triggers at once) lost the refused part's
        photo: it was judged as the next part's, and every part after it on the photo
        before its own. A kept photo that never comes costs the next part NO_IMAGE (its own
        photo pays it, and the count starts again there), never another part's photo.

        A file whose format cannot say it is whole (a TIFF, or a file of zeros: a copy that
        set its size first) is being written unless it is unchanged since the last look, as
        a take has it: counted as come, a zero-filled photo of the refused part paid its
        debt, and once filled (a new time) it was a new photo, taken as the next part's.
        A file whose format says it is unfinished (a PNG without its end chunk) is being
        written while the station has seen it unchanged for less than ``writing_settle_s``,
        and is owed so once at most: cut short (the camera stopped while saving it, a full
        disk) it never ends, and owed again at every ClearError it kept the line on
        NO_IMAGE for ever. Unchanged longer, it came (cut short): it pays what is owed,
        unless it was owed once already.

        While a part is between its trigger and the end of its take, it is left to the
        take: it settles what was owed before the trigger, and what was counted since is
        newer than the wait. Counted here, that part's own photo, there already, paid a
        refusal counted after it, and the refused part's photo was taken as its own."""
        from .sources.folder import file_looks_complete
        if not self._lock.acquire(blocking=False):
            return
        try:
            with self._state:
                if self._marks:
                    return
            try:
                listing = self._listing()
            except LookupError:
                listing = {}
            with self._state:
                seen = set(self._seen)
            new = [sig for sig in listing if sig not in seen]
            now = time.monotonic()
            # a file its format says is unfinished is a photo still being written: once whole it
            # is a new photo (name, time, size), so it is not accounted now but stays owed
            writing = []
            unfinished = []     # of those, the ones whose format says so (a PNG without its end)
            owed_once = []      # cut short and owed once already: no part's, paying nothing
            for sig in new:
                whole = file_looks_complete(listing[sig], sig[2])
                if whole is None and sig not in self._last:
                    writing.append(sig)
                elif whole is False:
                    if sig not in self._last or now - self._last[sig] < self.writing_settle_s:
                        writing.append(sig)
                        unfinished.append(sig)
                    elif sig in self._held:
                        owed_once.append(sig)
            self._looked(listing)
            came = len(new) - len(writing) - len(owed_once)
            with self._state:
                owed = self._without_first(self._owed, came)
                kept, keep = [], len(writing)
                for place, n, at, same in owed:
                    if now - at < self.wait_s:
                        kept.append((place, n, at, same))
                    elif keep:
                        kept.append((place, min(n, keep), at, same))
                    keep = max(0, keep - n)
                self._owed = kept
                # one written that no trigger is owed: no part's either; owed once at most (a
                # photo cut short is seen unfinished at every ClearError until it settles)
                owed_before = sum(1 for sig in unfinished if sig in self._held)
                for _ in range(min(len(writing) - self._owed_count(kept), len(writing) - owed_before)):
                    self._owe()
                self._held = dict.fromkeys(unfinished)
                self._seen_now(sig for sig in new if sig not in writing)
                # cut short and counted as come (settled, or owed once already): remembered by
                # name, so the photo finished later is not taken for a new one
                for sig in new:
                    if sig not in writing and file_looks_complete(listing[sig], sig[2]) is False:
                        self._cut_short[sig[0]] = None
                # names of files gone from the folder need no remembering
                names = {sig[0] for sig in listing}
                self._cut_short = {n: None for n in self._cut_short if n in names}
        finally:
            self._lock.release()

    def __call__(self) -> tuple[bytes, str]:
        from .sources.folder import shown_name      # a photo's name as a message can hold it
        deadline = time.monotonic() + self.wait_s
        key, self._taking.key = getattr(self._taking, "key", None), None
        mark: Optional[int] = None
        with self._state:
            if not self._marks:
                mark = self._place()         # no trigger told: counted from when the take begins
        with self._lock:
            with self._state:
                if mark is None:
                    # its trigger's place (kept until the take holds the lock: a ClearError
                    # meanwhile leaves the part to its take)
                    if key not in self._marks:
                        key = next(iter(self._marks), None)
                    mark = self._marks.pop(key)[0] if key is not None else self._place()
                    if mark in self._came:
                        # its photo came in an earlier part's wait and was set aside there: any
                        # photo now is a later part's (see _came)
                        self._came.discard(mark)
                        raise LookupError("this part's photo came while an earlier part's take waited and was "
                                          "set aside there: too few photos to tell the parts' apart (the camera "
                                          "missed one, or saved later than the wait), or photos out of the camera's "
                                          "order; the part was not judged on a photo it may not show")
                # owed when this part's trigger came: taken once, as a refusal counted while
                # the camera is still saving is a later part's, its photo after this one's;
                # an earlier part whose take has not begun (its worker behind this one) too
                before = self._owed_count(e for e in self._owed if e[0] < mark) + \
                    sum(1 for p, _ in self._marks.values() if p < mark and p not in self._came)
            while True:
                t0 = time.monotonic()
                listing = self._listing()
                ready = self._complete(listing)
                with self._state:
                    after = [e for e in self._owed if e[0] > mark]     # refused since this trigger
                    # parts triggered since whose take has not begun (this take outlived its
                    # window): their photos come after this part's, each left to its own take
                    taken_since = sorted(m for m in self._marks.values() if m[0] > mark and m[0] not in self._came)
                later = self._owed_count(after) + len(taken_since)
                # another part refused or triggered since: its photo is waited for (see the class)
                others = [at for _, _, at, same in after if not same] + [at for _, at in taken_since]
                if len(ready) > before and (not others or len(ready) >= before + 1 + later):
                    # the owed photos set aside, those of the triggers since (after this part's)
                    # left to them, the newest of the rest taken, any between passed over
                    i = max(before, len(ready) - 1 - later)

                    def pick(order: list) -> tuple:
                        # with a part taken since, every later trigger's photo came (others): the
                        # photos after this one are theirs in the PLC's order, a taken part's its own
                        return order[i], {order[i + 1 + self._owed_count(e for e in after if e[0] < p)
                                                + sum(1 for q, _ in taken_since if q < p)] for p, _ in taken_since}
                    sig, theirs = pick(ready)
                    if (sig, theirs) != pick(self._sight_order(ready)):
                        with self._state:
                            self._paid(mark, later=len(ready) - 1 - i - len(theirs))
                            # the parts taken since: which of these photos is theirs is as unsure
                            self._came.update(p for p, _ in taken_since)
                        self._account(ready)
                        raise LookupError(
                            f"{len(ready)} photos came out of the camera's order "
                            f"({', '.join(shown_name(s[0]) for s in ready)}: "
                            "their file times and the order the station saw them in name different photos for "
                            "this part: a copy that stalled, or a copier delivering them out of order), so "
                            "none is taken as this part's; check the camera's link to this folder")
                    try:
                        data = Path(listing[sig]).read_bytes()
                    except OSError as exc:
                        self._account([sig])
                        raise LookupError(f"photo {shown_name(sig[0])} could not be read "
                                          f"({exc.strerror or exc})") from exc
                    with self._state:
                        self._paid(mark, later=len(ready) - 1 - i - len(theirs))
                    self._account(s for s in ready if s not in theirs)
                    return data, sig[0]
                # a later part's photo comes within wait_s of its own trigger (a camera set up
                # right), which may be after this part's wait
                end = max([deadline] + [at + self.wait_s for at in others]) if len(ready) > before else deadline
                if time.monotonic() >= end:
                    self._account(ready)
                    with self._state:
                        if not ready:
                            self._owe(mark)     # this part's photo, whenever it comes, is no later part's
                        elif len(ready) <= before:
                            # only the photos owed came: the camera missed a part, or this
                            # part's photo is later than the wait (see the class): no part's
                            self._paid(mark, later=0)
                        else:
                            # fewer than this part's and the later parts' photos: the first
                            # past those owed counted as this part's, the next ones as the later
                            # triggers', in order; every refused part's photo that may still
                            # come is owed (one that never comes costs the next part NO_IMAGE,
                            # never a photo of the wrong part); a part taken since whose photo
                            # was counted so takes none (_came), one whose was not waits for its own
                            owed, came = self._owed_first(after, taken_since, len(ready) - before - 1)
                            self._paid(mark, later=owed)
                            self._came.update(p for p in came if any(m[0] == p for m in self._marks.values()))
                    if len(ready) > before:
                        raise LookupError(
                            f"{len(ready) - before} photo(s) came for this part and {later} other part(s) "
                            f"triggered or refused while it was in inspection, too few to tell its photo from "
                            f"theirs (the camera missed one)")
                    cut = [sig[0] for sig in self._held if sig in listing]
                    if ready and cut:
                        raise LookupError(
                            f"{len(ready)} photo(s) came for {before} earlier trigger(s) without one, none more "
                            f"within {self.wait_s * 1000:.0f} ms of this trigger: "
                            f"{', '.join(shown_name(n) for n in sorted(cut))}, still "
                            f"being written at the last ClearError, never ended (cut short: the camera stopped "
                            f"while saving it, or its disk is full), so this part's photo was counted as that "
                            f"trigger's; check the camera and its disk")
                    if ready:
                        raise LookupError(f"{len(ready)} photo(s) came for {before} earlier trigger(s) without one, "
                                          f"none more within {self.wait_s * 1000:.0f} ms of this trigger (a camera "
                                          f"that saves later than that: raise the wait above its delay)")
                    unfinished = (f"; {', '.join(self._unfinished[:3])} (still being written, or the camera "
                                  f"stopped while saving it, or its disk is full)" if self._unfinished else "")
                    raise LookupError(f"no new photo in {self.folder} within {self.wait_s * 1000:.0f} ms of the "
                                      f"trigger{unfinished}")
                # a crowded folder is looked at no faster than it can be listed
                time.sleep(max(self.poll_s, min(time.monotonic() - t0, end - time.monotonic())))

    def _sight_order(self, ready: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
        """``ready`` in the order the station first saw the photos (those first seen in one
        look by their file times). A take whose photo this order and the file times' disagree
        on takes none (:meth:`__call__`): a part is answered NO_IMAGE rather than judged on a
        photo that may be another part's."""
        first = self._first_seen
        return sorted(ready, key=lambda sig: (first.get(sig[0], 0.0), sig[1], sig[0]))

    def _owed_first(self, after: list[tuple[int, int, float, bool]], taken_since: list[tuple[int, float]],
                    k: int) -> tuple[int, list[int]]:
        """Of the first ``k`` triggers after a take's own, in the PLC's order (``after``
        owed, ``taken_since`` parts taken), how many are owed ones, and the places of the
        parts taken."""
        order = sorted([(place, n) for place, n, _, _ in after] + [(place, 0) for place, _ in taken_since])
        owed, taken = 0, []
        for place, n in order:
            if k <= 0:
                break
            if n == 0:          # a part taken since
                taken.append(place)
                k -= 1
                continue
            owed += min(n, k)
            k -= min(n, k)
        return owed, taken

def _database_refusal(exc: BaseException) -> Optional[BaseException]:
    """The database refusal (line.db.is_refusal: unreachable, locked, read-only) in this
    exception or what caused it, else None."""
    seen = 0
    while exc is not None and seen < 10:
        if is_refusal(exc):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


# the reason of an answer replayed from the journal that the PLC never acknowledged
DELIVERY_UNKNOWN = ("delivery_unknown: the station stopped before the PLC acknowledged this answer, which may never "
                    "have reached it (the PLC then handled the part as unanswered)")


def _delivery_unknown(row: dict[str, Any], event: dict[str, Any]) -> None:
    """An answer replayed from the journal without the PLC's acknowledgement, or one the
    link closed on (Handshake.link_closed): its row's reason and its outbox event say its
    delivery is not known (signal and result stay what the station put up; answered_at, a
    column that cannot be empty, when it did). Once: a journaled answer marked so already
    is not marked again when replayed."""
    if (row.get("reason") or "").startswith(DELIVERY_UNKNOWN):
        event["reason"] = row["reason"]
        event["delivery"] = "unknown"
        return
    reason = DELIVERY_UNKNOWN + (f"; {row['reason']}" if row.get("reason") else "")
    row["reason"] = event["reason"] = reason
    event["delivery"] = "unknown"


def newest_image_source(folder: Path | str, wait_s: float = 0.25) -> ImageSource:
    """The photo source of a camera saving into ``folder`` (see :class:`CameraFolder`)."""
    return CameraFolder(folder, wait_s=wait_s)


@dataclass
class Trigger:
    """One PLC trigger: the part it is about and when it came."""
    seq: int                 # the station's trigger count (the Modbus register shows its low 16 bits);
                             # 0: a refused trigger that took no number
    tag: int                 # the PLC's part number, echoed in the answer
    recipe: int
    t0: float                # perf_counter at the trigger: the inspection window runs from here
    at: Any                  # wall clock (naive UTC) for the record
    timer: Optional[threading.Timer] = None
    # its inspection began taking its photo (under the handshake's lock): a window that
    # closes before that leaves the photo to no part, and the inspection is not run at all
    taking: bool = False
    signal_id: Optional[int] = None
    spooled: Optional[str] = None     # its answer's key in the spool while the database refused it
    journaled: Optional[str] = None   # its answer's key in the journal until recorded
    # answered after the link closed, or put up and not acknowledged before it closed: its
    # row and event say its delivery is not known (DELIVERY_UNKNOWN)
    unheard: bool = False
    recorded_unknown: bool = False    # its row was written with that mark

    @property
    def key(self) -> str:
        """Its answer's key in the spool and the journal: the link's trigger number and time."""
        return f"{self.seq}@{self.at.isoformat() if self.at else ''}"


@dataclass
class Answer:
    """What the PLC is told for one trigger."""
    trigger: Trigger
    code: ResultCode
    inspection_id: int       # 0: no inspection record (timeout, fault)
    score: Optional[float]
    model_version: str
    processing_ms: float
    reason: Optional[str]
    ok: bool = field(init=False)
    # when the PLC was told: recorded as that, however late the record is written
    answered_at: Any = field(init=False, default_factory=utcnow)

    def __post_init__(self) -> None:
        self.ok = self.code == ResultCode.OK

    @property
    def signal(self) -> str:
        return "OK" if self.ok else "NG"


class Handshake:
    """The trigger / answer state of one station's PLC link, whatever the protocol.

    ``show`` is called (under the handshake's lock) whenever what the PLC should see
    changed: after a trigger is taken, an answer is ready, an ack, a fault, a recipe.
    ``answered`` is called with each :class:`Answer` before ``show``, so an adapter writes
    the result values first and raises ResultsValid after them.
    """

    def __init__(self, station: Any, image_source: ImageSource, recipes: dict[int, str], line: str,
                 station_name: str, window_ms: float, protocol: str,
                 initial_recipe: Optional[int] = None, recipe_max: int = 65535, verify_every_s: float = 10.0):
        if not recipes:
            raise ValueError("give at least one recipe: RecipeId -> product, e.g. {1: 'cell'}")
        for rid in recipes:
            if not 0 <= int(rid) <= recipe_max:
                raise ValueError(f"recipe id {rid} does not fit the PLC's recipe register (0..{recipe_max})")
        if window_ms <= 0:
            raise ValueError(f"the inspection window must be positive, got {window_ms} ms")
        self.station = station
        self.image_source = image_source
        self.recipes = {int(k): v for k, v in recipes.items()}
        # as the station stores them (" L1 " or "l1" for L1): the parts, the verification,
        # the alarms and the line signals all go by the stored names
        as_stored = getattr(station, "names_as_stored", None)
        if as_stored is not None:
            line, station_name = as_stored(line, station_name)
        self.line = line
        self.station_name = station_name
        self.protocol = protocol
        self.window_s = window_ms / 1000.0
        self.lock = threading.RLock()
        self.seq = 0
        self.pending: Optional[Trigger] = None     # the trigger awaiting its answer
        # held not ready while the rest of the station starts (serve: the other link, the
        # web server): the first parts after a restart took 400-800 ms, one past its window
        self.starting = False
        self.result_valid = False
        self.error_code = 0
        self.error: Optional[str] = None
        # a trigger refused while an earlier result was unread, until ClearError: OK and NG
        # stay down whatever error is latched (with another error latched before it, Error
        # 20 was never set and the earlier part's OK passed the refused part)
        self.refused_unanswered = False
        # what became of the last refused trigger's photo, for the adapter's refusal (LastRefusal)
        self.refusal_photo = ""
        # the part whose answer the PLC reads now (or read last) and when it was put up
        # (time.monotonic()): the line view's "waiting for the PLC to acknowledge part X"
        self.answered_part: Optional[int] = None
        # the PartTag of the last part taken, and whether two parts taken one after the other
        # had different ones: only a PLC seen numbering its parts tells a repeat of the part
        # in inspection by its PartTag (one that writes a carrier's number, the same for
        # every part, made the next part a "repeat": its photo not waited for, the camera
        # missing the part in inspection judged it on the next part's photo)
        self._last_tag: Optional[int] = None
        self.numbers_parts = False
        self.answered_at: Optional[float] = None
        self._shown: Optional[Trigger] = None     # the trigger whose answer ResultsValid shows
        self.recipe = initial_recipe if initial_recipe is not None else min(self.recipes)
        if self.recipe not in self.recipes:
            raise ValueError(f"initial recipe {self.recipe} is not one of {sorted(self.recipes)}")
        self.counts = {"triggers": 0, "ok": 0, "ng": 0, "timeouts": 0, "faults": 0, "not_inspected": 0}
        # the key of this link's fault in station.faults (/health); two links side by side
        # (Modbus and OPC UA) each get their own, so clearing one does not hide the other
        self.fault_key = "plc"
        self.show: Callable[[], None] = lambda: None
        self.answered: Callable[[Answer], None] = lambda a: None
        # what clears the error held now, as the protocol says it (under the lock; None: a
        # plain ClearError). Error 14 over Modbus is cleared only after a known RecipeId: a
        # trigger meanwhile was told "raise ClearError first", which the station then refused
        self.clear_advice: Callable[[], Optional[str]] = lambda: None
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"plc-{protocol}-inspect")
        self._recorder = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"plc-{protocol}-record")
        # read every verify_every_s and at each shift start, at once after a test part's
        # answer, a recipe change or a test part registered; UNKNOWN (never Verified)
        # until read: it fails closed
        self.verification = VerificationState.UNKNOWN
        self._verify_every_s = verify_every_s
        self._verify_now = threading.Event()
        # set at a stop's first step (begin_stop: TriggerReady drops, the link still open) and
        # kept through link_closed and close
        self._closing = threading.Event()
        # the protocol's server has stopped (link_closed): an answer now reaches no PLC
        self._link_closed = False
        self._shut = False      # close() has begun: workers, recorder, journal and spool go
        self._unheard_shown: Optional[Trigger] = None   # the answer up, unacknowledged, as it closed
        self._verifier: Optional[threading.Thread] = None
        # the station's line alarms (line.alarms) at this station, as AlarmCode: bit 0 a run
        # of rejected parts, bit 1 a high NG rate, bit 2 doubted photos, bit 3 rejects
        # without a verdict, bit 4 a test part judged wrong, bit 5 part scores drifting
        # (line.alarms.KINDS). Set by an alarm raised here before the
        # answer of the part that raised it; read again with the verification (an alarm
        # another process raised or acknowledged); the generation keeps a read that began
        # before an alarm event from undoing it
        self.alarm_code = 0
        self._alarm_gen = 0
        # answers the database refused, kept in the data folder until written (line.signal_spool)
        data_dir = getattr(getattr(station, "config", None), "data_dir", None)
        link = hashlib.sha256(f"{line}\0{station_name}".encode()).hexdigest()[:12]
        self._spool = SignalSpool(Path(data_dir) / spool_folder if data_dir is not None else None,
                                  f"{protocol}-{link}")
        # every judged part's answer on the disk before the PLC may read it, until recorded
        # (a kill -9 while the recorder lagged lost them); synced too on a power-safe station
        power_safe = getattr(getattr(station, "config", None), "sqlite_synchronous", None) == "FULL"
        self._journal = AnswerJournal(Path(data_dir) / spool_folder if data_dir is not None else None,
                                      f"{protocol}-{link}", sync=power_safe, reserve=self._spool)
        # the trigger numbers reserved on the disk: handed out up to this one
        self._seq_mark = Path(data_dir) / spool_folder / f"{protocol}-{link}.seq" if data_dir is not None else None
        self._seq_reserved = 0
        self._said_seq_mark = False
        self.backlog_fault_s = BACKLOG_FAULT_S
        self._spooled: dict[str, Trigger] = {}     # this run's triggers whose answer waits there
        self._spool_write_queued = threading.Event()    # one try queued at a time (a locked database waits 30 s)
        self._record_lock = threading.Lock()
        self._counts_queued = 0      # answers whose alarm count waits on the recorder's thread

    # -- what the PLC sees -------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return (self.pending is None and not self.result_valid and self.error_code == 0 and not self.starting
                and not self._closing.is_set())

    @property
    def busy(self) -> bool:
        return self.pending is not None

    @property
    def signals_fault_key(self) -> str:
        return f"{self.fault_key}_signals"

    def open_spool(self) -> None:
        """Take this link's spool of unrecorded answers (the adapter calls this before it
        listens: a second link for the same line, station and protocol on one data folder
        is refused, line.signal_spool.SpoolBusy)."""
        self._spool.open()
        left = self._journal.open()
        if left:
            # answered before the last stop, perhaps recorded, perhaps not: into the spool,
            # whose writer skips those already recorded (no row or event twice). One the PLC
            # had not acknowledged may never have reached it (a kill between the part's record
            # and ResultsValid): recorded so, not as told (an MES counted such a part as passed
            # while the PLC handled it as unanswered); the part's inspection record stays
            unsure = [key for key, _row, _event, delivered in left if not delivered]
            for key, row, event, delivered in left:
                if not delivered:
                    _delivery_unknown(row, event)
            new = [(key, row, event) for key, row, event, _d in left if not self._spool.holds(key)]
            self._spool.add_answers(new)
            if unsure:
                log.warning("line %s station %s: %d answers to the PLC (%s) were not acknowledged before the last "
                            "stop and may never have reached it (triggers %s): recorded with reason "
                            "'delivery_unknown', not as answers the PLC had", self.line, self.station_name,
                            len(unsure), self.protocol, ", ".join(k.split("@")[0] for k in unsure[:20]))
            log.warning("line %s station %s: %d answers to the PLC (%s) journaled before the last stop are checked "
                        "against the record and written where missing", self.line, self.station_name, len(left),
                        self.protocol)
            if self._spool.on_disk:
                self._journal.clear()

    def backlog(self) -> dict[str, Any]:
        """The answers the PLC has that are not recorded yet: waiting for the recorder
        (journaled) and kept in the spool (the database refused them); the oldest's age."""
        waiting, oldest_s = self._journal.backlog()
        return {"unrecorded_answers": waiting, "unrecorded_oldest_s": round(oldest_s, 1),
                "spooled_answers": self._spool.answers()}

    @property
    def backlog_fault_key(self) -> str:
        # ends in "_signals": a housekeeping fault (line.station.stops_parts), the line runs on
        return f"{self.fault_key}_backlog_signals"

    @property
    def disk_fault_key(self) -> str:
        # a housekeeping fault too: the PLC's answers are kept (in the spool's reserve)
        return f"{self.fault_key}_disk_signals"

    def _show_reserve(self, refill: bool = False) -> None:
        """/health while the spool's reserve gives room on a full disk (``refill``: made whole
        again first where the disk has room; not on the answer's path)."""
        spool = self._spool
        if not spool.reserve_used or (refill and spool.keep_reserve()):
            self.station.faults.pop(self.disk_fault_key, None)
            return
        left = spool.reserve_answers_left()
        if left and spool.on_disk:
            kept = f"PLC answers are kept in the reserve, {left} left ({spool.reserve_path})"
        else:
            kept = ("the reserve for PLC answers is used up: judged parts are answered with a storage fault "
                    "(Error 13), and those the database refuses are kept in memory only, and a restart now loses them")
        self.station.faults[self.disk_fault_key] = (
            f"the data disk is full: {kept}; free space on the disk (old photos, logs, files not the station's)")

    def _check_backlog(self) -> None:
        self._show_reserve(refill=True)
        waiting, oldest_s = self._journal.backlog()
        if waiting and oldest_s >= self.backlog_fault_s:
            self.station.faults[self.backlog_fault_key] = (
                f"{waiting} answers to the PLC ({self.protocol}) wait to be recorded, the oldest for {oldest_s:.0f} s: "
                "the database is slow or locked (an index being built, a long report); they are journaled in "
                f"{self._journal.path or 'memory'} and recorded once it takes them (the line runs on)")
        else:
            self.station.faults.pop(self.backlog_fault_key, None)

    def _watch_backlog(self) -> None:
        while not self._closing.wait(min(1.0, max(0.05, self.backlog_fault_s / 4))):
            try:
                self._check_backlog()
            except Exception:  # noqa: BLE001 - never silent, never stopping the watch
                log.exception("the PLC's recording backlog could not be checked")

    def _next_seq(self) -> int:
        """The next trigger number, reserved on the disk first in blocks (under the lock):
        a restart starts past every number handed out, recorded or not. Before, it went
        on from the last recorded trigger, and numbers the PLC had got for parts whose
        record a kill lost were handed out again to other parts."""
        n = self.seq + 1
        if n >= SEQ_LIMIT:
            n, self._seq_reserved = 1, 0
        if n > self._seq_reserved:
            self._seq_reserved = n + SEQ_BLOCK - 1
            if self._seq_mark is not None:
                try:
                    # on a full disk with the spool's reserve (one per link): refused, a restart
                    # handed out again the numbers of parts the PLC had
                    self._spool.write_mark(self._seq_mark, f"{self._seq_reserved}\n".encode())
                except OSError as exc:
                    if not self._said_seq_mark:
                        self._said_seq_mark = True
                        log.error("the PLC's trigger numbers cannot be reserved in %s (%s): a restart may hand out "
                                  "numbers again", self._seq_mark, exc)
        self.seq = n
        return n

    def _read_seq_mark(self) -> int:
        if self._seq_mark is None:
            return 0
        try:
            text = self._seq_mark.read_text().strip()
        except FileNotFoundError:
            return 0
        except OSError as exc:
            log.error("the PLC's reserved trigger numbers cannot be read from %s (%s)", self._seq_mark, exc)
            return 0
        if not text.isdigit():
            log.error("%s holds %r, not a trigger number: the count goes on from the last recorded one",
                      self._seq_mark, text[:40])
            return 0
        return int(text) % SEQ_LIMIT

    def prepare(self) -> None:
        """Before the adapter listens: each recipe's model judges once (its first part paid
        for the runtime's set-up: the first one or two triggers after every start missed
        the window, NG by timeout), and the trigger count goes on from this link's last
        recorded trigger (from 1 again, part ids such as S1-tag2030-1 came back after each
        restart for other parts)."""
        warm = getattr(self.station, "warm_up", None)
        if warm is not None:
            for product in sorted(set(self.recipes.values())):
                warm(product, self.line)
        # the latest trigger by its time: rows are written out of trigger order (a reject
        # without a verdict at once, the others by the recorder), so among the newest rows,
        # and those the spool still holds (written after this, at the link's start)
        # (a refused trigger's row has TriggerSeq 0: it took no number)
        triggers = [(row["triggered_at"], row["trigger_seq"]) for _key, row, _event in self._spool.taken()
                    if row.get("triggered_at") is not None and row.get("trigger_seq")]
        mark = self._read_seq_mark()
        db = self.station.db
        try:
            # Waited for START_READ_S at most: the numbers reserved on the disk (mark) already
            # start the count past every one handed out, so this read only refines it. Without
            # a limit, a table locked at start (a long CREATE INDEX, a LOCK TABLE) kept the link
            # from listening for as long as the lock lasted, and nothing said why.
            ms = int(START_READ_S * 1000)
            with (db.quick_session(ms) if hasattr(db, "quick_session") else db.session()) as s:
                if not getattr(db, "is_sqlite", True):
                    s.execute(text(f"SET LOCAL statement_timeout = '{ms}ms'"))     # a slow read, too
                triggers += [(at, seq) for at, seq in s.execute(
                    select(LineSignal.triggered_at, LineSignal.trigger_seq).where(
                        LineSignal.protocol == self.protocol, LineSignal.line == self.line,
                        LineSignal.station == self.station_name).order_by(LineSignal.id.desc()).limit(50))
                    if at is not None and seq]
        except Exception as exc:  # noqa: BLE001 - the database away or locked: the mark's, the spool's; the line runs
            why = (f"line_signals stayed locked past {START_READ_S:.0f} s (a long CREATE INDEX, a LOCK TABLE, "
                   "a backup)" if is_busy(exc) else "the database refused the read")
            start = (f"goes on past the numbers reserved in {self._seq_mark} ({mark})" if mark else
                     "has no numbers reserved on the disk to go on from (numbers may be handed out again)")
            log.warning("line %s station %s: the last recorded trigger could not be read: %s (%s: %s); the trigger "
                        "count %s and the PLC is served", self.line, self.station_name, why, type(exc).__name__,
                        str(exc).splitlines()[0] if str(exc) else "", start)
        with self.lock:
            if triggers:
                self.seq = int(max(triggers)[1]) % SEQ_LIMIT
            # past every number reserved (and so handed out) before the stop; the first
            # trigger reserves the next block
            self.seq = max(self.seq, mark)
            self._seq_reserved = self.seq

    def release_spool(self) -> None:
        """Give the spool back (a start that failed to listen: the link may be started again)."""
        self._spool.close()

    def start_verification(self) -> None:
        """Read the verification now, then keep it read (the adapter calls this once it listens)."""
        if self._verifier is not None:
            return
        self._spool.open()
        if self._spool.answers():        # left by the last run: written as soon as the database takes them
            self._show_unrecorded()
            self._try_spooled()
        self._refresh_or_unknown()
        self._verifier = threading.Thread(target=self._watch_verification, daemon=True,
                                          name=f"plc-{self.protocol}-verification")
        self._verifier.start()
        threading.Thread(target=self._watch_backlog, daemon=True, name=f"plc-{self.protocol}-backlog").start()
        book = getattr(self.station, "test_parts", None)
        if book is not None:      # a test part registered or retired: read again at once
            book.listeners.append(self._verify_now.set)
        alarms = getattr(self.station, "alarms", None)
        if alarms is not None:
            alarms.listeners.append(self._alarm_event)

    @property
    def draining(self) -> bool:
        """Stopping, the link still open (begin_stop or drain, before link_closed and close):
        a trigger now is answered as not ready, with its record, as at any other time."""
        return self._closing.is_set() and not self._link_closed and not self._shut

    def begin_stop(self) -> None:
        """A stop's first step: TriggerReady drops (OPC UA: not Operational) and no part is
        taken from now on; the link stays open, and a trigger now is answered through the
        not-ready path (Modbus: Error 20, or NOT_READY, with its line_signals row; OPC UA: a
        refused call). With two links the caller runs this on every link before closing any,
        so neither takes parts while the other is drained. Again: nothing more."""
        with self.lock:
            if self._closing.is_set():
                return
            self._closing.set()
            self.show()
        log.info("line %s station %s: the station is stopping: TriggerReady dropped on the PLC link (%s), which "
                 "stays open until the part in inspection is answered", self.line, self.station_name, self.protocol)

    def drain(self, connected: Callable[[], Optional[bool]] = lambda: None, bound_s: Optional[float] = None,
              deadline: Optional[float] = None) -> bool:
        """A stop: no trigger is taken from now on (:meth:`begin_stop`, if the caller has not
        run it), and the link is held open until the part in inspection is answered (its
        window closes at the latest) and the PLC acknowledged the answer up, ``bound_s`` at
        most (STOP_WAIT_S), or until ``deadline`` (time.monotonic(); one shared by every link
        of a stop, see :func:`stop_deadline`), and STOP_ACK_S at most for the
        acknowledgement. Not waited for while ``connected()`` says no PLC is connected (None:
        not known). The adapter stops its server after this, then calls :meth:`link_closed`.
        True when no answer is left unacknowledged.

        Before, the server stopped first: the part in inspection was judged and put up after
        the link closed, and recorded and sent to the MES as an answer the PLC had, while the
        PLC, cut off, handled it as unanswered."""
        self.begin_stop()
        if deadline is None:
            deadline = time.monotonic() + (STOP_WAIT_S if bound_s is None else bound_s)
        ack_by: Optional[float] = None
        while True:
            with self.lock:
                pending, waiting = self.pending is not None, self.result_valid
            if not pending and not waiting:
                return True
            now = time.monotonic()
            if not pending and ack_by is None:
                ack_by = min(deadline, now + STOP_ACK_S)
            if now >= deadline or (ack_by is not None and now >= ack_by) or connected() is False:
                return False
            time.sleep(0.005)

    def link_closed(self) -> None:
        """The protocol's server has stopped: an answer put up from now on reaches no PLC, and
        one up and not acknowledged may not have reached it. Their rows and outbox events say
        their delivery is not known (DELIVERY_UNKNOWN), as a kill's unacknowledged answers do
        when replayed."""
        with self.lock:
            self._closing.set()
            self._link_closed = True
            shown = self._shown
            if self.result_valid and shown is not None and shown.seq:
                shown.unheard = True
                self._unheard_shown = shown
                log.warning("line %s station %s: the PLC link (%s) closed before the PLC acknowledged the answer to "
                            "part tag %s (trigger %s): recorded with reason 'delivery_unknown'", self.line,
                            self.station_name, self.protocol, shown.tag, shown.seq)

    def _first_event(self, s: Any, row: LineSignal) -> Optional[OutboxEvent]:
        """The line_signal outbox event written with ``row`` (None: not found, pruned): the
        newest of this link's events for its trigger number and part tag, among the line's
        latest (written moments ago, at this stop)."""
        recent = s.scalars(select(OutboxEvent).where(OutboxEvent.event == "line_signal", OutboxEvent.line == self.line)
                           .order_by(OutboxEvent.id.desc()).limit(FIRST_EVENT_SCAN))
        for ev in recent:
            p = ev.payload or {}
            if (p.get("station") == row.station and p.get("protocol") == row.protocol
                    and p.get("trigger_seq") == row.trigger_seq and p.get("part_tag") == row.part_tag
                    and "corrects_outbox_id" not in p):
                return ev
        return None

    def _mark_recorded_unheard(self) -> None:
        """The answer up as the link closed, if its row was written as told before it was
        known to be unacknowledged (the recorder is quick): the row's reason is corrected and
        a line_signal event with ``"delivery": "unknown"`` goes out after the first one,
        naming it (``corrects_outbox_id``, ``corrects_message_id``; ``"change":
        "delivery_unknown"``). Before, the second event had a message id of its own and
        nothing tying it to the first: a consumer that drops a message id seen before took
        it for another answer to the part."""
        trig = self._unheard_shown
        if trig is None or trig.recorded_unknown:
            return
        if trig.signal_id is None:
            if trig.spooled is not None:
                # the database refused it: written from the spool at the next start, as told
                log.warning("line %s station %s: the answer to part tag %s (trigger %s), not acknowledged by the "
                            "PLC before the link closed, waits in %s and is recorded as told", self.line,
                            self.station_name, trig.tag, trig.seq, self._spool.path or "memory")
            return      # else still in the journal, unacknowledged: replayed as delivery_unknown
        try:
            with self.station.db.session() as s:
                row = s.get(LineSignal, trig.signal_id)
                if row is None:
                    return
                fields = {"reason": row.reason}
                event = {"line": self.line, "station": self.station_name, "protocol": self.protocol,
                         "trigger_seq": row.trigger_seq, "part_tag": row.part_tag, "recipe_id": row.recipe_id,
                         "product": row.product, "inspection_id": row.inspection_id, "signal": row.signal,
                         "result_code": row.result_code, "result": ResultCode(row.result_code).name,
                         "reason": fields["reason"]}
                _delivery_unknown(fields, event)
                first = self._first_event(s, row)
                if first is None:
                    log.warning("line %s station %s: the first line_signal event of part tag %s (trigger %s) is no "
                                "longer in the outbox: its correction to delivery_unknown goes out without naming it",
                                self.line, self.station_name, trig.tag, trig.seq)
                event.update(change="delivery_unknown", corrects_outbox_id=first.id if first is not None else None,
                             corrects_message_id=first.key if first is not None else None)
                row.reason = fields["reason"]
                record_event(s, "line_signal", self.line, event)
            trig.recorded_unknown = True
            self.station.sinks.wake()
        except Exception as exc:  # noqa: BLE001 - stopping anyway: said, not hidden
            log.error("line %s station %s: the answer to part tag %s (trigger %s), not acknowledged by the PLC "
                      "before the link closed, stays recorded as told: its correction was not stored (%s)",
                      self.line, self.station_name, trig.tag, trig.seq, exc)

    def close(self) -> None:
        with self.lock:
            self._closing.set()
            self._shut = True
        self._verify_now.set()
        if self._verifier is not None:
            book = getattr(self.station, "test_parts", None)
            if book is not None and self._verify_now.set in book.listeners:
                book.listeners.remove(self._verify_now.set)
            alarms = getattr(self.station, "alarms", None)
            if alarms is not None and self._alarm_event in alarms.listeners:
                alarms.listeners.remove(self._alarm_event)
            self._verifier.join(timeout=5)
        with self.lock:
            if self.pending is not None and self.pending.timer is not None:
                self.pending.timer.cancel()
        self._pool.shutdown(wait=True, cancel_futures=False)
        self._recorder.shutdown(wait=True)
        self._mark_recorded_unheard()
        with self.lock:
            if self._seq_mark is not None and self._seq_reserved > self.seq:
                # a clean stop: the next start goes on from the last number handed out (only
                # a kill leaves the rest of the block unused)
                try:
                    self._spool.write_mark(self._seq_mark, f"{self.seq}\n".encode())
                    self._seq_reserved = self.seq
                except OSError as exc:
                    log.warning("the PLC's last trigger number not kept in %s (%s): the next start skips the rest "
                                "of its block", self._seq_mark, exc)
        self._journal.close()    # what is not recorded stays in it for the next start
        self._spool.close()      # what still waits stays in its file for the next start

    # -- PLC requests ------------------------------------------------------------------
    def select_recipe(self, rid: int) -> bool:
        """Take recipe ``rid`` now; False (nothing changed) when it is not a recipe here."""
        with self.lock:
            if int(rid) not in self.recipes:
                return False
            changed = self.recipe != int(rid)
            self.recipe = int(rid)
            if changed and self._verifier is not None:
                # the old product's state must not be read beside the new recipe
                self.verification = VerificationState.UNKNOWN
            self.show()
        self._verify_now.set()
        return True

    def hold(self) -> None:
        """Not ready (TriggerReady low, OPC UA Preoperational) until :meth:`release`."""
        with self.lock:
            self.starting = True
            self.show()

    def release(self) -> None:
        """The station is started: triggers are taken."""
        with self.lock:
            if self.starting:
                self.starting = False
                log.info("PLC link %s of line %s station %s ready for triggers", self.protocol, self.line,
                         self.station_name)
            self.show()

    def not_ready_reason(self) -> Optional[str]:
        if self._closing.is_set() and not self.draining:
            return ("the PLC link is closed (the station is stopping or stopped): no trigger is taken until it "
                    "starts again")
        if self._closing.is_set():
            # the link still open: this trigger is answered (Modbus) or refused (OPC UA) and recorded
            return ("the station is stopping (the PLC link closes once the part in inspection is answered): no "
                    "trigger is taken until it starts again")
        if self.starting:
            return "the station is still starting (wait for TriggerReady)"
        if self.pending is not None:
            return "a part is still being inspected"
        if self.result_valid:
            return "the last result was not acknowledged (raise ResultsAck first)"
        if self.error_code:
            return f"the station is in error {self.error_code} ({self.clear_advice() or 'raise ClearError first'})"
        return None

    def trigger(self, tag: int, fault_if_not_ready: bool = True, recipe: Optional[int] = None) -> Optional[Trigger]:
        """Take a trigger for part ``tag``; None when it was not taken (see :meth:`not_ready_reason`).

        Modbus cannot refuse a bit, so a trigger while not ready is a NOT_READY fault there
        (``fault_if_not_ready``); a method call (OPC UA) refuses it with a status instead.
        ``recipe``: the RecipeId the PLC named for this part (None: the recipe in effect),
        recorded for a part answered without inspection; one judged is judged, and
        recorded, with the recipe in effect (the PLC's, selected before the trigger). A
        RecipeId naming no recipe was recorded as the recipe in effect, which the PLC had
        not asked for.
        """
        with self.lock:
            named = self.recipe if recipe is None else int(recipe)
            why = self.not_ready_reason()
            if why is not None:
                self.refusal_photo = self.refused_photo(int(tag))
            if self._closing.is_set() and not self.draining:
                # After link_closed() or close() (a request the protocol's server let through as
                # it stopped; while the stop drains, the link still open, a trigger goes the
                # not-ready way below: Error 20 or NOT_READY, with its row and count, as
                # before the stop waited for the part in inspection). After close(): its
                # workers and recorder are shut down, so taken, the trigger's mark stayed held in
                # the camera folder for ever (CameraFolder.trigger_taken, never taken nor dropped),
                # the part stayed pending (busy) and the call raised RuntimeError. Refused here
                # before a trigger number, mark, timer or record: nothing is left to release, and
                # no fault or answer is written into a journal and spool that are closed. Its
                # photo is set aside above, as any refused trigger's.
                log.warning("line %s station %s: trigger for part tag %s refused: %s%s", self.line,
                            self.station_name, tag, why, f"; {self.refusal_photo}" if self.refusal_photo else "")
                return None
            if why is not None and not fault_if_not_ready:
                return None
            if why is not None and (self.result_valid or self.pending is not None):
                self._refused_unanswered(int(tag), why, named)
                return None
            trig = Trigger(self._next_seq(), int(tag), self.recipe if why is None else named, time.perf_counter(),
                           utcnow())
            self.counts["triggers"] += 1
            if why is not None:
                if self.error_code == 0:
                    self.fault(ResultCode.NOT_READY, f"Trigger while TriggerReady was low: {why}")
                if self.refusal_photo:
                    log.warning("line %s station %s: trigger for part tag %s answered NG without inspection (%s); %s",
                                self.line, self.station_name, tag, why, self.refusal_photo)
                # the station in error, nothing to read: this part is answered NG
                self._answer(trig, ResultCode(self.error_code), None, reason=why)
                return None
            self.pending = trig
            # judged again at every part taken, and only between real tags (0 is "no tag"): a
            # carrier number that changed once (0 at power-up, then 5) set it for good, and a
            # refused trigger with the carrier's tag was again taken for a repeat (found by review)
            self.numbers_parts = bool(trig.tag) and bool(self._last_tag) and trig.tag != self._last_tag
            self._last_tag = trig.tag
            taken = getattr(self.image_source, "trigger_taken", None)
            if taken is not None:
                # where this part stands among the photos owed (CameraFolder), in the PLC's
                # order: a refusal from now on is after it, however late its worker starts
                taken(trig.seq)
            self.show()
            self._pool.submit(self._inspect, trig)
            trig.timer = threading.Timer(self.window_s, self._window_closed, args=(trig.seq,))
            trig.timer.daemon = True
            trig.timer.start()
            return trig

    def _refused_unanswered(self, tag: int, why: str, recipe: int) -> None:
        """A Modbus trigger while the last result is unread or a part is in inspection: the
        registers hold (or will hold) the earlier part's answer, so this part gets none.
        Error 20 is its answer: the adapter drops OK and NG while it is latched (a PLC that
        does not check PartTag passed this part on the earlier part's OK). It takes no
        trigger number (TriggerSeq 0 in its record): the numbers stay those of answers. Its
        line_signals row (code 20, NG) counts it in the shift report, written as a reject
        without a verdict is, before the PLC may read the error."""
        trig = Trigger(0, tag, recipe, time.perf_counter(), utcnow())
        self.counts["triggers"] += 1
        self.counts["not_inspected"] += 1
        self.refused_unanswered = True
        if self.error_code == 0:
            self.fault(ResultCode.NOT_READY, f"Trigger while TriggerReady was low: {why}; the part with tag {tag} "
                       "was not inspected: take it off the line, then ResultsAck and ClearError")
        log.error("line %s station %s: trigger for part tag %s not inspected and not answered: %s (the PLC sees "
                  "Error %d)%s", self.line, self.station_name, tag, why, self.error_code,
                  f"; {self.refusal_photo}" if self.refusal_photo else "")
        ans = Answer(trig, ResultCode.NOT_READY, inspection_id=0, score=None, model_version="", processing_ms=0.0,
                     reason=f"trigger not inspected: {why}")
        self._record(ans, quick=True)
        self.show()

    def photo_not_taken(self, same_part: bool = False) -> None:
        """A trigger that took no photo: the camera may have photographed its part, and that
        photo, whenever it comes, is no later part's (CameraFolder counts it). ``same_part``:
        a repeat of the part in inspection, whose photo shows that part too."""
        refused = getattr(self.image_source, "trigger_refused", None)
        if refused is not None:
            if same_part:
                refused(same_part=True)
            else:
                refused()

    def refused_photo(self, tag: int) -> str:
        """A trigger for part ``tag`` refused (under the lock): the photo the camera may have
        taken for it is set aside (:meth:`photo_not_taken`), whatever the part; what the
        refusal says of it ("" for a source that counts no photos: a camera's frames are
        taken after each trigger).

        Also for a repeat of the part in inspection or just answered (a PLC retrying a call
        it thinks lost): whether the camera photographed it again is not known here, and
        the two wrong guesses differ. Counted and not taken, the next part finds no photo
        (NO_IMAGE, Error: the line stops, a person looks); not counted and taken, each later
        part was judged on the photo before its own, for ever, with no fault."""
        if getattr(self.image_source, "trigger_refused", None) is None:
            return ""
        # a repeat of the part in inspection: the take need not wait for its photo, which
        # shows the same part (another part's is waited for: CameraFolder); told by its
        # PartTag only where the PLC was seen giving parts different ones
        self.photo_not_taken(same_part=bool(tag) and self.numbers_parts and self.pending is not None
                             and self.pending.tag == tag)
        return (f"part {tag}'s photo, if the camera took one, is set aside (no later part's)" if tag else
                "its photo, if the camera took one, is set aside (no later part's)")

    def ack(self) -> None:
        with self.lock:
            if self.result_valid and self._shown is not None and self._shown.journaled is not None:
                # the PLC has this answer: a replay of the journal records it as told
                self._journal.delivered(self._shown.journaled)
            self.result_valid = False
            self.show()

    def clear_error(self) -> None:
        with self.lock:
            restart = getattr(self.image_source, "restart", None)
            if restart is not None and self.error_code:
                restart()           # the camera folder counts afresh from here (CameraFolder)
            if self.error_code:
                log.info("PLC cleared error %s", self.error_code)
            self.error_code = 0
            self.error = None
            self.refused_unanswered = False
            self.station.faults.pop(self.fault_key, None)
            self.show()

    def fault(self, code: ResultCode, message: str) -> None:
        with self.lock:
            self.error_code = int(code)
            self.error = message
            self.counts["faults"] += 1
            self.station.faults[self.fault_key] = f"PLC error {int(code)} ({code.name}): {message}"
            log.error("PLC fault %s: %s", code.name, message)
            self.show()

    # -- the inspection ----------------------------------------------------------------
    def _inspect(self, trig: Trigger) -> None:
        from .station import Part
        with self.lock:
            if self.pending is not trig:
                # Its window closed (answered NG, timeout) before a worker got to it: the
                # station was held up by earlier parts (a database locked for seconds). Its
                # photo is not taken: the source's newest photo is a later part's by now,
                # which was stored as this part's verdict, and the part then pending found
                # its own photo gone (NO_IMAGE, Error). Its timeout row is its one record.
                log.warning("line %s station %s: trigger %s (part tag %s) not inspected: its inspection window "
                            "closed %.0f ms before the station got to it (held up by earlier parts); it was answered "
                            "NG (timeout), no photo taken", self.line, self.station_name, trig.seq, trig.tag,
                            (time.perf_counter() - trig.t0 - self.window_s) * 1000)
                return
            trig.taking = True
            begins = getattr(self.image_source, "take_begins", None)
            if begins is not None:
                # this worker's take is this trigger's, whatever was triggered since (a
                # window that closed as the take began lets the PLC trigger the next part)
                begins(trig.seq)
        product = self.recipes[trig.recipe]
        try:
            data, name = self.image_source()
        except Exception as exc:  # noqa: BLE001 - camera lost, empty folder: a fault the PLC sees
            self._done(trig, ResultCode.NO_IMAGE, None, f"no image for the trigger: {exc}", fault=True)
            return
        # part tag 0 is no part number, over OPC UA too: a PLC program with no part counter
        # sends StartSingleJob(0) for every part, and a serial "0" made the line one part (every
        # earlier part counted as its re-inspection); the Modbus registers hold 0 from power-up
        numbered = bool(trig.tag)
        part_id = f"{self.station_name}-{trig.at.strftime('%Y%m%dT%H%M%S%f')}-{trig.seq}"
        if numbered:
            part_id = f"{self.station_name}-tag{trig.tag}-{trig.seq}"
        try:
            # the PLC's part number is the part's serial: traceable, and a test part
            # (line.test_parts) is known by the PartTag reserved for it
            out = self.station.inspect(data, Part(part_id, self.line, self.station_name, product,
                                                  serial=str(trig.tag) if numbered else None), source="plc")
        except (ModelLoadFailed, NotFound) as exc:
            self._done(trig, ResultCode.MODEL_FAULT, None, f"{exc.message}", fault=True)
            return
        except (StorageUnavailable, StationBusy) as exc:
            # busy: every database connection in use (other clients, exports): the station's
            # fault the line must see, not a bad image (no fault bit, the camera blamed)
            self._done(trig, ResultCode.STORAGE_FAULT, None, exc.message, fault=True)
            return
        except StationError as exc:
            from .sources.folder import shown_name      # the camera's file name, as a log line can hold it
            self._done(trig, ResultCode.BAD_IMAGE, None, f"image {shown_name(name)} refused: {exc.message}")
            return
        except Exception as exc:  # noqa: BLE001 - anything else is a station fault, the part is rejected
            refused = _database_refusal(exc)
            if refused is not None:
                # the database away or refusing (the active model is read from it before the
                # part is judged): a storage fault, not a model fault, which sent the line's
                # maintenance to the model while the database server was down
                self._done(trig, ResultCode.STORAGE_FAULT, None,
                           f"the database {'cannot be reached' if is_unreachable(refused) else 'refused the part'}: "
                           f"{type(refused).__name__}: {str(refused).splitlines()[0] if str(refused) else ''}; "
                           "check the database server, then ClearError", fault=True)
                return
            log.exception("PLC trigger %s failed", trig.seq)
            self._done(trig, ResultCode.MODEL_FAULT, None, f"{type(exc).__name__}: {exc}", fault=True)
            return
        rec = out.record
        code = {"OK": ResultCode.OK, "NG": ResultCode.NG}.get(rec.verdict, ResultCode.REVIEW)
        self._done(trig, code, rec, None)

    def _done(self, trig: Trigger, code: ResultCode, rec: Any, reason: Optional[str], fault: bool = False) -> None:
        with self.lock:
            if self.pending is None or self.pending.seq != trig.seq:
                # The window closed first: this part was already answered NG (timeout). The
                # verdict is stored, never sent: it would be read as the next part's.
                log.warning("trigger %s judged after its window (%s); the PLC was told NG", trig.seq, code.name)
                if rec is not None:
                    self._recorder.submit(self._record_late, trig, rec.id)
                return
            if trig.timer is not None:
                trig.timer.cancel()
            if fault:
                self.error_code = int(code)
                self.error = reason or code.name
                self.counts["faults"] += 1
                self.station.faults[self.fault_key] = f"PLC error {int(code)} ({code.name}): {self.error}"
                log.error("PLC fault %s: %s", code.name, self.error)
            self._answer(trig, code, rec, reason=reason)

    def _window_closed(self, seq: int) -> None:
        with self.lock:
            if self.pending is None or self.pending.seq != seq:
                return
            trig = self.pending
            self.counts["timeouts"] += 1
            reason = f"no verdict within the inspection window of {self.window_s * 1000:.0f} ms"
            if not trig.taking:
                # the station was still busy with earlier parts: this one will not be
                # inspected (_inspect), and its part's photo is no later part's
                dropped = getattr(self.image_source, "trigger_dropped", None)
                if dropped is not None:
                    dropped(trig.seq)   # CameraFolder: owed at its place, no take is to come for it
                else:
                    self.photo_not_taken()
                reason += ": the station was held up by earlier parts and never took its photo"
            self._answer(trig, ResultCode.TIMEOUT, None, reason=reason)

    def _answer(self, trig: Trigger, code: ResultCode, rec: Any, reason: Optional[str]) -> None:
        ans = Answer(trig, code, inspection_id=rec.id if rec is not None else 0,
                     score=float(rec.score) if rec is not None else None,
                     model_version=str(rec.model_version or "") if rec is not None else "",
                     processing_ms=(time.perf_counter() - trig.t0) * 1000, reason=reason)
        if self._link_closed:
            # put up after the link closed (a part judged past the stop's wait): no PLC reads it
            trig.unheard = True
            log.warning("line %s station %s: part tag %s (trigger %s) answered %s after the PLC link (%s) closed: "
                        "recorded with reason 'delivery_unknown'", self.line, self.station_name, trig.tag, trig.seq,
                        ans.code.name, self.protocol)
        if rec is not None:
            # on the disk before the PLC may read it: a kill before the recorder wrote it
            # loses nothing (replayed at the next start)
            row, event = self._row_event(ans)
            try:
                self._journal.add(trig.key, row, event)
            except OSError as exc:      # the disk full, the spool's reserve used up too
                self._answer_unkept(trig, ans, exc)
                return
            trig.journaled = trig.key
        self._shown = trig
        self.answered_part, self.answered_at = trig.tag, time.monotonic()
        self.counts["ok" if ans.ok else "ng"] += 1
        if rec is None:
            # A reject without a verdict (window missed, no image, model or storage fault)
            # has no inspection record: this row is the only trace of that part and why it
            # was rejected, so it is committed before the PLC may read the answer. Rare, so
            # the commit costs the line nothing in normal running. Not waited for past a
            # moment: a locked database (30 s) held every PLC request behind this lock, and
            # the spool on the disk keeps the row until the database takes it.
            self._record(ans, quick=True)
        if rec is not None and getattr(rec, "test_part", None):
            if rec.verdict != rec.test_expected and self._verifier is not None:
                # a red rabbit passed: Verified drops with this answer, not after a query
                self.verification = VerificationState.FAILED
            self._verify_now.set()   # a test part's check: read the whole state again
        # A run of rejects without a verdict raises its alarm (line.alarms, no_verdict) with
        # this answer, as a run of NG parts does with theirs (an answer with a verdict only
        # ends the run, in memory). Raising it writes to the database: with this answer's
        # row refused (spooled) the database is away or locked, so it is counted later, in
        # answer order, on the recorder's thread, never holding the PLC's requests.
        # Once one waits there, the answers after it wait their turn too (in order: a verdict
        # counted first would end a run before the reject it follows was counted).
        if (rec is None and trig.signal_id is None) or self._counts_queued:
            self._counts_queued += 1
            self._recorder.submit(self._count_answer, ans, rec is not None, True)
        else:
            self._count_answer(ans, rec is not None)
        # Done, and ResultsValid, only now: the alarm the count may raise shows the state,
        # and with ResultsValid high already that went out ahead of the result (the PLC read
        # the part before's PartId beside it); now the alarm goes out with the part still in
        # inspection, then the result's values, then ResultsValid
        self.pending = None
        self.result_valid = True
        self.answered(ans)
        self.show()
        if rec is not None:
            # the verdict's record is already committed; what the PLC was told is stored off
            # the handshake path (and off the protocol's thread): in trigger order, one writer
            self._recorder.submit(self._record, ans)

    def _answer_unkept(self, trig: Trigger, ans: Answer, exc: OSError) -> None:
        """A judged part whose answer the disk refused to journal (full, the link's reserve
        used up too): answered as a storage fault is, NG with Error 13 held until ClearError,
        its row committed (or spooled) before the PLC may read it, and its verdict stored and
        linked as a late one, never sent. Not its verdict kept in memory only: the PLC would
        have an answer a kill loses, and the line would run on with every part so; a full
        disk's other parts are storage faults already (their photos refused)."""
        code = ResultCode.STORAGE_FAULT
        why = (f"the part's answer ({ans.code.name}) could not be kept on the disk before the PLC read it "
               f"({self._journal.path}: {exc.strerror or exc}): its verdict is stored (inspection "
               f"{ans.inspection_id}), not sent; free space on the data disk, then ClearError")
        self.error_code = int(code)
        self.error = why
        self.counts["faults"] += 1
        self.station.faults[self.fault_key] = f"PLC error {int(code)} ({code.name}): {why}"
        log.error("PLC fault %s: %s", code.name, why)
        self._answer(trig, code, None, reason=why)
        self._recorder.submit(self._record_late, trig, ans.inspection_id)

    def _count_answer(self, ans: Answer, verdict: bool, queued: bool = False) -> None:
        alarms = getattr(self.station, "alarms", None)
        trig = ans.trigger
        try:
            if alarms is not None:
                # a RecipeId naming no recipe (Error 14): the alarm names the product in effect
                product = self.recipes.get(trig.recipe) or self.recipes.get(self.recipe, "")
                alarms.after_answer(self.line, self.station_name, product,
                                    None if verdict else trig.signal_id, verdict=verdict, reason=ans.reason)
        except Exception:  # noqa: BLE001 - the PLC has its answer whatever the alarm's count does
            log.exception("line %s station %s: the no-verdict alarm's count failed", self.line, self.station_name)
        finally:
            if queued:      # counted: an answer after the last one queued is counted at once again
                with self.lock:
                    self._counts_queued -= 1

    # -- the test-part verification, shown to the PLC --------------------------------------
    def refresh_verification(self) -> VerificationState:
        """Read this station's verification for the active recipe's product and show it."""
        from .test_parts import station_state
        now = utcnow()
        shift = self.station.config.shift_at(now)
        self._next_shift_at = shift.end_utc
        with self.lock:
            recipe = self.recipe
        state = VerificationState[station_state(self.station.db, shift, self.line, self.station_name,
                                                self.recipes[recipe], now).upper()]
        with self.lock:
            if self.recipe != recipe:      # changed while this was read: read again
                self._verify_now.set()
                return self.verification
            self._show_verification(state)
        return state

    def _show_verification(self, state: VerificationState) -> None:
        if state != self.verification:
            if state in (VerificationState.FAILED, VerificationState.UNKNOWN):
                log.warning("line %s station %s: test-part verification %s; the PLC sees VerificationState %d",
                            self.line, self.station_name, state.name.lower(), int(state))
            self.verification = state
            self.show()

    def _refresh_or_unknown(self) -> None:
        try:
            self.refresh_verification()
        except Exception:  # noqa: BLE001 - the database away: shown as not verified, read again
            log.warning("test-part verification of line %s station %s not read", self.line, self.station_name,
                        exc_info=True)
            with self.lock:
                self._show_verification(VerificationState.UNKNOWN)
        try:
            self.refresh_alarms()
        except Exception:  # noqa: BLE001 - the database away: the alarms last read stand
            log.warning("line alarms of line %s station %s not read", self.line, self.station_name, exc_info=True)

    # -- line alarms, shown to the PLC -------------------------------------------------------
    def refresh_alarms(self) -> int:
        """Read this station's active alarms and show their AlarmCode."""
        alarms = getattr(self.station, "alarms", None)
        if alarms is None:
            return 0
        from .alarms import alarm_code
        with self.lock:
            gen = self._alarm_gen
        code = alarm_code(alarms.active(line=self.line, station=self.station_name))
        with self.lock:
            if gen == self._alarm_gen:     # no alarm event since the read began
                self._show_alarm(code)
            return self.alarm_code

    def _alarm_event(self, alarm: dict[str, Any]) -> None:
        """An alarm raised or acknowledged in this process: shown at once if it is this station's."""
        if alarm.get("line") != self.line or alarm.get("station") != self.station_name:
            return
        if alarm.get("change") != "raised":
            # acknowledged: read the station's alarms again (another may have been raised
            # meanwhile), never a bit cleared by guess
            self._verify_now.set()
            return
        from .alarms import alarm_code
        with self.lock:
            self._alarm_gen += 1
            self._show_alarm(self.alarm_code | alarm_code([alarm]))

    def _show_alarm(self, code: int) -> None:
        if code != self.alarm_code:
            self.alarm_code = code
            self.show()

    def ack_alarms(self, cause_code: int = 0, kinds_code: int = 0) -> None:
        """The PLC's AlarmAck: this station's active alarms acknowledged (off the protocol's
        thread): every one, or with ``kinds_code`` (AlarmCode's bits) those of the kinds
        it names; with what they turned out to be when ``cause_code`` names one
        (line.alarm_causes.codes: the built-in 1-6 and the plant's own; 0 none, an unknown
        one acknowledges without a cause)."""
        from .alarms import KINDS, kinds_of_code
        kinds = kinds_of_code(int(kinds_code)) if kinds_code else None
        if kinds_code and int(kinds_code) >> len(KINDS):
            log.warning("PLC AlarmAck at line %s station %s with kinds %s: bits past %s name no alarm kind (only "
                        "%s acknowledged)", self.line, self.station_name, kinds_code, len(KINDS) - 1,
                        ", ".join(kinds or []) or "none")
        try:
            self._pool.submit(self._ack_alarms, int(cause_code), kinds)
        except RuntimeError:    # the link is closing
            log.warning("the PLC's alarm acknowledgement came while the link closed; not taken")

    def _ack_alarms(self, cause_code: int = 0, kinds: Optional[list[str]] = None) -> None:
        alarms = getattr(self.station, "alarms", None)
        if alarms is None:
            return
        try:
            cause = None
            if cause_code:
                # read here, off the protocol's thread: the plant's own causes are in the database
                from .alarm_causes import codes
                known = codes(alarms.db)
                cause = known.get(cause_code)
                if cause is None:
                    log.warning("PLC AlarmAck at line %s station %s with cause %s, which is no cause code (%s): "
                                "acknowledged without a cause", self.line, self.station_name, cause_code,
                                ", ".join(f"{k} {v}" for k, v in known.items()))
            done = alarms.acknowledge_station(self.line, self.station_name, by=f"plc ({self.protocol})",
                                              cause=cause, kinds=kinds)
        except Exception:  # noqa: BLE001 - the database away: the alarm stays; the PLC may ack again
            log.warning("the PLC's alarm acknowledgement at line %s station %s not stored", self.line,
                        self.station_name, exc_info=True)
            return
        if not done:
            log.info("PLC AlarmAck at line %s station %s: no active alarm%s; nothing acknowledged", self.line,
                     self.station_name, "" if kinds is None else f" of kinds {', '.join(kinds) or '(none named)'}")

    def _watch_verification(self) -> None:
        while not self._closing.is_set():
            wait = self._verify_every_s
            next_shift = getattr(self, "_next_shift_at", None)
            if next_shift is not None:     # a new shift starts due: read it then, not up to 10 s later
                wait = min(wait, max(0.05, (next_shift - utcnow()).total_seconds() + 0.05))
            self._verify_now.wait(wait)
            self._verify_now.clear()
            if not self._closing.is_set():
                self._refresh_or_unknown()
                if self._spool.answers():
                    self._try_spooled()

    # -- what the PLC was told, kept ----------------------------------------------------
    def _record(self, ans: Answer, quick: bool = False) -> None:
        """Store what the PLC was told, or spool it while the database refuses (``quick``:
        refused after a moment's wait for a lock, not 30 s)."""
        try:
            self._record_now(ans, quick)
        finally:
            if ans.trigger.journaled is not None:     # recorded, or in the spool: no longer the journal's
                self._journal.done(ans.trigger.journaled)

    def _row_event(self, ans: Answer) -> tuple[dict[str, Any], dict[str, Any]]:
        """The line_signals row and the outbox event of an answer."""
        trig = ans.trigger
        inspection_id = ans.inspection_id or None
        row = dict(protocol=self.protocol, line=self.line, station=self.station_name, trigger_seq=trig.seq,
                   part_tag=trig.tag, recipe_id=trig.recipe, product=self.recipes.get(trig.recipe),
                   inspection_id=inspection_id, signal=ans.signal, result_code=int(ans.code),
                   reason=ans.reason, triggered_at=trig.at, answered_at=ans.answered_at)
        event = {"line": self.line, "station": self.station_name, "protocol": self.protocol,
                 "trigger_seq": trig.seq, "part_tag": trig.tag, "recipe_id": trig.recipe,
                 "product": row["product"], "inspection_id": inspection_id, "signal": ans.signal,
                 "result_code": int(ans.code), "result": ans.code.name, "reason": ans.reason}
        if trig.unheard:
            _delivery_unknown(row, event)
        return row, event

    def _record_now(self, ans: Answer, quick: bool) -> None:
        trig = ans.trigger
        row, event = self._row_event(ans)
        # one at a time (the handshake's thread records rejects without a verdict, the
        # recorder the others): none is written past an older one waiting in the spool.
        # ``quick``: the recorder may be writing an older row into a locked database (30 s):
        # this one is spooled after a moment's wait, behind that one, not written past it.
        free = self._record_lock.acquire(timeout=0.25) if quick else self._record_lock.acquire()
        try:
            if free and not self._spool.answers():
                try:
                    (trig.signal_id,) = self._write_signals([(row, event)], quick=quick)
                    trig.recorded_unknown = event.get("delivery") == "unknown"
                    self.station.sinks.wake()
                    return
                except Exception as exc:  # noqa: BLE001 - the PLC has its answer; the spool keeps what it was
                    log.error("line signal of trigger %s (%s, %s) not recorded now, kept until the database takes "
                              "it: %s", trig.seq, ans.signal, ans.code.name, exc)
            key = trig.key
            trig.spooled = key
            self._spooled[key] = trig
            self._spool.add_answer(key, row, event)
        finally:
            if free:
                self._record_lock.release()
        self._show_unrecorded()
        self._try_spooled()

    def _try_spooled(self) -> None:
        if self._spool_write_queued.is_set():
            return
        self._spool_write_queued.set()
        try:
            self._recorder.submit(self._write_spooled)
        except RuntimeError:     # the link is closing: the next start writes them
            self._spool_write_queued.clear()

    def _write_signals(self, rows: list[tuple[dict[str, Any], dict[str, Any]]], again: bool = False,
                       quick: bool = False) -> list[int]:
        """Insert these line signals and their outbox events in one transaction; their ids.
        ``again``: rows from the spool, which a crash after their commit may have left
        there: one already recorded (same link, trigger and time) is not written twice.
        ``quick``: a moment's wait for another writer's lock, then refused."""
        ids = []
        db = self.station.db
        with (db.quick_session() if quick and hasattr(db, "quick_session") else db.session()) as s:
            for row, event in rows:
                if again:
                    there = s.scalars(select(LineSignal).where(
                        LineSignal.protocol == row["protocol"], LineSignal.line == row["line"],
                        LineSignal.station == row["station"], LineSignal.trigger_seq == row["trigger_seq"],
                        LineSignal.triggered_at == row["triggered_at"])).first()
                    if there is not None:
                        if row.get("late_inspection_id") and there.late_inspection_id is None:
                            there.late_inspection_id = row["late_inspection_id"]
                        ids.append(there.id)
                        continue
                signal = LineSignal(**row)
                s.add(signal)
                s.flush()
                ids.append(signal.id)
                record_event(s, "line_signal", self.line, event)
        # only once committed: a rolled-back row's id is handed out again (SQLite)
        return ids

    def _write_spooled(self) -> None:
        """Write the answers the database refused, oldest first, in one transaction (on
        the recorder's thread, as the late verdicts: none is linked while this runs). One
        the database refuses for a reason of its own (not a refusal to write at all) is
        set aside, not left to hold every later one back."""
        self._spool_write_queued.clear()
        try:
            answers = self._spool.taken()
            if not answers:
                return
            try:
                self._spooled_written(answers, self._write_signals([(r, e) for _k, r, e in answers], again=True))
            except Exception as exc:  # noqa: BLE001
                if is_refusal(exc):
                    log.debug("the PLC's unrecorded answers are still not written: %s", exc)
                    return
                for one in answers:      # which one: each on its own
                    try:
                        self._spooled_written([one], self._write_signals([one[1:]], again=True))
                    except Exception as each:  # noqa: BLE001
                        if is_refusal(each):
                            return
                        log.error("the answer to the PLC for trigger %s (tag %s) cannot be recorded (%s): set aside "
                                  "in %s", one[1]["trigger_seq"], one[1]["part_tag"], each,
                                  self._spool.path.with_suffix(".refused.jsonl") if self._spool.path else "the log")
                        self._spool.remove({one[0]}, set_aside=True)
        except Exception:  # noqa: BLE001 - never silent on the recorder's thread
            log.exception("the PLC's unrecorded answers could not be written")
        finally:
            self._show_unrecorded()

    def _spooled_written(self, answers: list[tuple[str, dict[str, Any], dict[str, Any]]], ids: list[int]) -> None:
        self._spool.remove({key for key, _row, _event in answers})
        for (key, _row, _event), signal_id in zip(answers, ids):
            trig = self._spooled.pop(key, None)
            if trig is not None:
                trig.signal_id = signal_id
                trig.spooled = None
                trig.recorded_unknown = (_row.get("reason") or "").startswith(DELIVERY_UNKNOWN)
        log.info("%d answers to the PLC the database had refused are recorded now", len(ids))
        self.station.sinks.wake()

    def _show_unrecorded(self) -> None:
        self._show_reserve()
        waiting = self._spool.answers()
        if not waiting:
            self.station.faults.pop(self.signals_fault_key, None)
            return
        kept = (f"kept in {self._spool.path}" if self._spool.on_disk else
                "kept in memory only, as the data folder cannot be written either: a restart now loses them")
        self.station.faults[self.signals_fault_key] = (
            f"{waiting} answers to the PLC ({self.protocol}) are not recorded yet: the database refused them; {kept}, "
            "and written once it takes them (the line runs on)")

    def _record_late(self, trig: Trigger, inspection_id: int) -> None:
        if trig.signal_id is None:
            if trig.spooled is not None and self._spool.holds(trig.spooled):
                self._spool.add_late(trig.spooled, inspection_id)     # linked when its answer is written
            return
        try:
            with self.station.db.session() as s:
                row = s.get(LineSignal, trig.signal_id)
                if row is not None:
                    row.late_inspection_id = inspection_id
        except Exception as exc:  # noqa: BLE001
            log.error("late verdict of trigger %s not linked: %s", trig.seq, exc)
