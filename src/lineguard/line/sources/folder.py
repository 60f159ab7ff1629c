"""Hot folder: every new image file dropped into a folder is inspected exactly once.

Polling (portable: local disks, SMB/NFS shares, any OS). A file is taken only once
its size and modification time have stayed the same for ``settle_s`` (a camera or a
copy still writing it is left alone) *and* the image looks whole (a PNG ends with its
IEND chunk, a JPEG with an end marker after its main image's scan, not an EXIF
thumbnail's; a TIFF's directories and strips lie within the file; a BMP, TIFF or WebP
does not end in 4 KB of zeros, as a copy that set the file's size first leaves it): a
writer that pauses longer than the settle time (a network copy stalling) would otherwise
be cut short. A file the station finds corrupt before ``incomplete_after_s`` is waited
for too (sent again when it changes). A file that stays incomplete for
``incomplete_after_s`` is sent anyway and refused with its reason; an empty file is
waited for as long (a camera may create the file first and fill it later). While a file
looks incomplete only its ends (and a JPEG's or TIFF's headers) are read, not the whole
file. Subfolders are not watched: each is said once, and so is anything else that is not a
regular file (a named pipe, a socket, a device).
After inspection a file moves to ``done/``; a file the station refuses moves to
``failed/`` with a ``<name>.reason.txt`` beside it (where the file's own name leaves no room,
the name cut short, ``~`` and a short hash: :func:`reason_name`; its log line says where). A
file over the station's upload limit is refused from its size, never read. Symbolic links are
refused, never followed: a link could point anywhere on the station PC. So are a ``done/`` or
``failed/`` that is a link or a file: no file is taken while it is (each waits, and counts
toward "behind"), said once and in the status (``moves_refused``); moves and reason files go
through the opened folder, so a link swapped in after the look is not followed either. Every
file name the watcher says is shown escaped (:func:`shown_name`: a newline, a tab, an RLO). A
file whose name is not valid UTF-8 (a camera or share writing names in another code page) is
refused with the name's bytes: the part id is its name. Files of a format the station does not take (by suffix) stay where they are and are logged once each.
A file under a name it has while being written (``T1.png.tmp``, ``~P1.png``, a hidden name) is
waited for unsaid and said once only if it stays past ``incomplete_after_s``; one whose first
bytes are all zero (its size set first) is waited for as an empty file is. One watcher per folder:
a second is refused at its start, naming the first (:mod:`.folder_lock`).
An unexpected error on one file is logged and the file retried later; it never stops the
watcher.
A journal (``.lineguard-watch.jsonl`` in the folder) records every file handled, so a
restart never inspects a file twice; the station's idempotency (part id + image
hash) covers a crash between inspection and journal write. It is kept bounded: at start
(read line by line) and as it grows it is compacted to the entries of files still in the
folder and the latest ``JOURNAL_KEEP``. A fault that lasts (folder gone, file unreadable,
done/ not writable) is logged when it starts, then once a minute. A file judged that cannot
leave the folder (done/ or failed/ not writable, the folder mounted read-only, its journal
with it) is kept as handled in memory: its verdict line given, counted as done, never sent
again while the watcher runs nor counted as waiting, moved once the folder takes it; said
once (what came of it, why it stays), then once a minute with how many are left.
A file written again under the same name while it is being inspected (a camera that always
writes ``image.bmp``) is not moved: the part inspected is recorded, the new file is left in
the folder and inspected as the new part it is (before, it went to done/ unjudged). A file
found under a name, size and time already handled is taken for the file handled (its move
finished, never inspected again) only when it is that file: the same inode as the one read
(where the file system has inode numbers), else the same SHA-256 as the journal's entry.
Every BMP of one resolution is the same size, and FAT, exFAT and SMB keep times to 1-2 s (a
copy tool may keep them exactly): name, size and time alone sent a new photo to done/
unjudged.
A station that cannot take parts (--server down or unreachable, its disk full, no model) is
said once when it starts and once when it ends (once a minute while it lasts), not for
each file; meanwhile one file is tried again at a time, the tries 0.5 s growing to 5 s apart
(no sooner than the station's Retry-After: 5 s busy, 30 s a model timeout; at most 60 s),
and the others wait in the folder. A try is with the first file waiting, so the parts that
waited are recorded in the folder's order once the station takes parts again (a try with the
file after the one tried last recorded K-0019..K-0025 after K-0099). A file the station
answers with a failure of its own (HTTP 500) is set aside and the next file is tried at once;
one that fails again once the station took other parts is the file's own and is tried on its
own, up to ``ASIDE_MAX_S`` apart, never holding the files behind it (two such files first in
the folder let one part through per try when they were tried again in each pass); two files
in a row failing so, none taken, mean the station fails on every part: an outage, as above,
said once its try fails too (new parts first in the folder between such photos said an outage
and its end for every two of them). That try is with the first file waiting that is not set
aside: the first of the two failing again is no news (a camera's every 10th and 11th photo
failing said 12 outages and 12 ends a minute); with no other file waiting the set-aside ones are
tried, taken when the station takes parts again, their failing again unsaid. A request that
gets no answer in the submit's time (a read
timeout) is told the same way: one file always timing out held the whole line (0 of 29 parts
behind it in 451 s). Such a file goes to ``failed/`` with its reason after ``timeouts_max``
tries timed out with parts taken around them (each held the line a minute, one every two for
ever), said once and in the status (``given_up``); it is not journalled, so the file put back
in the folder is a new try. A new file under a set-aside one's name is a new part, taken in its
turn. The set-aside files are kept in ``ASIDE_FILE`` beside the journal: after a restart they
stay out of the way, their next tries and timeouts counted on (each was tried first again, and
one timing out held the line once more at every start). Set-aside files are not the
line's backlog (they kept the watcher "behind" for ever): the status gives them apart
(``set_aside``), and the log names them together once a minute. The files set aside during an
outage go first, in the folder's order, once the station takes parts again.
A watcher that falls behind the line (a file ready to be
taken has waited ``BACKLOG_AFTER_S``) says so, with the files waiting and the oldest's
wait, when it starts and when it clears (once a minute while it lasts). Its state (files
waiting, the oldest's wait, behind or not, the station taking parts or not) is rewritten
atomically every few seconds to a small JSON status file (``STATUS_FILE`` in the folder, or
``status_path``) for the station's /health or a plant's monitoring; a watcher posting to a
station on another PC also sends it there (``heartbeat``, :class:`StationHeartbeat`), whose
/health and /metrics show it as a local watcher's. A stop (Ctrl-C, SIGTERM)
finishes the file in hand and ends, also in the middle of a folder of thousands of files.
A file whose name would give a part id with spaces around it (`` a.png``) is refused: the
station drops those spaces, and it would become part ``a``, the part of ``a.png``.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import shutil
import stat
import threading
import time
import weakref
from collections import deque
from pathlib import Path
from typing import Any, Callable, Optional

from ...vision.imageio import IMAGE_SUFFIXES
from ..config import StationConfig
from ..watchers import FORGET_AFTER_S
from . import Submit, SubmitFailed, SubmitRefused, retry_after
from .folder_lock import FolderInUse, FolderLock  # noqa: F401 - FolderInUse: the CLI's to catch
from .outage import LastingFaults

log = logging.getLogger("lineguard.watch")

JOURNAL = ".lineguard-watch.jsonl"

# What the station takes (line.station: PNG, JPEG, BMP, TIFF, WebP and GIF, known by their
# bytes): IMAGE_SUFFIXES plus GIF. IMAGE_SUFFIXES itself is what training reads from a
# folder of good parts, and stays as it is.
WATCH_SUFFIXES = frozenset(IMAGE_SUFFIXES) | {".gif"}

# The station's upload limit when none is given (its --max-upload-mb default)
DEFAULT_MAX_BYTES: int = StationConfig.max_upload_bytes

# The journal keeps the entries of the files still in the folder and the latest
# JOURNAL_KEEP others; it is compacted to that at start and whenever it grew by as many
# (2,000,000 lines made a 494 MB journal read whole at each start: 13 s, 1.1 GB).
JOURNAL_KEEP = 50_000

# Refusals a file not yet filled gets (a copy that set the final size first): waited for
# up to --incomplete-after before the file goes to failed/
_MAYBE_UNFINISHED = frozenset({"corrupt_image"})

# The keys of the watcher's lasting faults (line.sources.outage: each said when it starts,
# then at most once a minute, not at every poll, and when it ends) other than one file's
# (("file", name), ("submit", name)): the station not taking parts, the watcher behind the
# line, the folder not scanned, the status file not written, the heartbeat failing
STATION_DOWN = ("station",)
BEHIND = ("behind",)
SCAN = ("scan",)
STATUS = ("status",)
HEARTBEAT = ("heartbeat",)
# every file left in the folder is set aside and the station failed on them again, none taken
# for ONLY_ASIDE_AFTER_S: a station failing on every part looked like an idle watcher (nothing
# said, /health "ok" or "behind: the PC does not keep up") until a new part came and failed too
ONLY_ASIDE = ("only-aside",)
# files judged (or refused) that cannot leave the folder: done/ or failed/ not writable, or the
# whole folder read-only (a share mounted so). Said once when it starts, then once a minute with
# how many are left, not as each file's "not handled; will retry" (a read-only folder said that
# for every part and sent each to the station again at every retry, "done: 0" at the stop)
NOT_MOVED = ("not-moved",)
# the journal cannot be written while the files still leave the folder: a stop in between a
# part's judging and its move sends it again at the next start (the station answers its record)
JOURNAL_FAULT = ("journal",)

# The watcher is behind the line when a file ready to be taken has waited this long: said
# when it starts and when it clears (the oldest waits under half of it), once a minute
# while it lasts. A line feeding faster than the station judges had the newest photo wait
# 213 s by minute 4 (8,700 files by the end) without a word in the log or on /health.
BACKLOG_AFTER_S = 30.0

# The rates the "falling behind" line gives its cause from (parts arriving and answered per
# minute, the station's time a part) are over this much of the latest time
RATE_WINDOW_S = 60.0

# Only set-aside files in the folder, failing again, with no part taken for this long: said
# (ONLY_ASIDE). A line between two parts leaves only them in the folder for a moment, said never
ONLY_ASIDE_AFTER_S = BACKLOG_AFTER_S

# While a folder is worked through (thousands of files after a stop or an outage) the
# backlog is looked at, and the status file rewritten, this often, not only between polls
STATUS_EVERY_S = 5.0

# The status file, in the hot folder unless the watcher is given another path: hidden (a
# dot name), so it is never taken for a part
STATUS_FILE = ".lineguard-watch-status.json"

# A station that cannot take parts is tried again with one file, first after the poll time,
# then twice as long each time, up to this: not every file of the folder at every poll
RETRY_MAX_S = 5.0

# A file the station fails on (HTTP 500) while it takes other parts (a model failing on that
# image) is tried again on its own, first after the poll time, then twice as long each time,
# up to this: out of the way of the files behind it. A file whose request timed out (no answer
# in the submit's 60 s) waits this long at once: each of its tries holds the line that long
ASIDE_MAX_S = 60.0

# A file whose request timed out this many times, the station taking other parts around those
# tries (the first try, and each after parts were taken since the one before), leaves the folder
# for failed/ with its reason: each try held the line for the submit's whole timeout (a minute),
# one every two minutes for as long as the file stayed (a station hung on every part takes none
# in between: its files are never given up)
TIMEOUTS_MAX = 3

# The set-aside files (their size, time and inode, whether the station fails on them alone, their
# timeouts and next try), kept in the folder beside the journal: a restart tried each of them
# again first, in the folder's order, and one timing out held the line a minute at each start.
# Hidden (a dot name): never taken for a part
ASIDE_FILE = ".lineguard-watch-aside.json"

# Set-aside files named in the status file and in the line said for them once a minute: the
# first few (100 set aside said 100 lines a minute, one for each)
ASIDE_NAMED = 10

# A station not taking parts that fails on its try's file (HTTP 500) is tried at once with as
# many other files as it failed on so far (none taken since), up to this many: a batch of
# photos it fails on, first in the folder, is passed in a few tries (one other a try took 18
# tries growing to 5 s apart for 20 such photos), and a station failing on every part is asked
# no more than this often each try
OTHERS_MAX = 8

# Where a --server watcher sends its status (server.routers.watchers), and how long it waits
# before trying again after a station answered 404 (an older one, without heartbeats)
HEARTBEAT_PATH = "/api/v1/watchers/heartbeat"
OLD_STATION_RETRY_S = 600.0
# A clean stop's heartbeat ("running": false) that did not get through (the station
# restarting, a switch blinking) is tried again for this long, a try every STOP_RETRY_EVERY_S:
# sent once, a stop in such a moment left the station showing the watcher "stopped or hung"
# for FORGET_AFTER_S (line.watchers). Under the 5 s a stop waits for the heartbeat's thread
# (StationHeartbeat.close), itself under the 10 s a service manager (docker stop) gives.
STOP_RETRY_S = 4.0
STOP_RETRY_EVERY_S = 0.5

# done/ or failed/ is a symbolic link or not a folder: no file is taken (each would be judged
# and then moved through the link, out of the hot folder, or not moved at all), said when it
# starts, once a minute while it lasts, and when it ends; in the status (``moves_refused``)
OUT_FOLDERS = ("out-folders",)

# Names a camera or copy gives a file while it writes it, renamed to the image's name when done
# (T1.png.tmp -> T1.png, part.png.crdownload, rsync's .P1.png.x7Ab, an editor's ~P1.png or P1.png~):
# waited for unsaid, said once only when one stays past --incomplete-after. Each was a WARNING
# "ignored: its suffix '.tmp' is not an image" for every part, thousands an hour
TEMP_SUFFIXES = frozenset({".tmp", ".temp", ".part", ".partial", ".crdownload", ".download", ".filepart",
                           ".opdownload", ".!ut", ".!qb", ".swp", ".inprogress", ".uploading", ".writing"})


def being_written_name(name: str) -> bool:
    """Whether ``name`` is a name a file has while it is written (hidden, ``~``, a temporary suffix)."""
    return name.startswith((".", "~")) or name.endswith("~") or Path(name).suffix.lower() in TEMP_SUFFIXES


def _part_photo_name(name: str) -> bool:
    """Whether a name being written holds an image's suffix (a part on its way: T1.png.tmp, ~P1.png)."""
    return any(s.lower() in WATCH_SUFFIXES for s in Path(name.strip("~")).suffixes)


# The longest file name (bytes) the file systems a hot folder lives on take: a reason file
# or a renamed file is kept within it
NAME_MAX = 255
REASON_SUFFIX = ".reason.txt"

# Moves and reason files go into done/ and failed/ through their open folder (where the OS
# allows: not Windows), so a link swapped in for either after its check is not followed
_DIR_FDS = os.rename in os.supports_dir_fd and os.open in os.supports_dir_fd and hasattr(os, "O_DIRECTORY")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


# what a refusal's log line adds when the file cannot be moved to failed/ (said apart: NOT_MOVED)
_LEFT = "; it stays in the folder: it cannot be moved to failed/ (said apart)"
# what a log line adds for a file taken from the folder before its move (nothing left to move)
_GONE = "; it was gone from the folder before it could be moved to {folder}/"


class OutFolderRefused(OSError):
    """done/ or failed/ cannot take a file safely (a symbolic link, or not a folder): the file
    stays where it is; the message says what to do."""


class AsideFile:
    """One file set aside: the station answered it with a failure of its own (HTTP 500) or no
    answer in the submit's time. What tells it (``sig``: size, time and inode: a new photo under
    its name is another part), whether the failure is its own (``own``: the station took other
    parts since and failed on it again), ``taken``: the parts taken when it last failed, its
    next try (``retry_at``, monotonic) and the wait after it (``delay``, up to ``most``), its
    failures (``tries``) and timeouts, the last error, whether it is given up (moved to
    failed/), and when it first and last failed (wall clock: what a restart and the status
    read back). Kept in ASIDE_FILE as :meth:`to_json` writes it (the format of the watcher's
    dicts before this class: an aside file written by an older watcher loads as it did)."""

    __slots__ = ("sig", "own", "taken", "delay", "most", "retry_at", "tries", "timeouts", "error", "given_up",
                 "since_wall", "last_wall")

    def __init__(self, sig: tuple[int, int, Optional[int]], delay: float, most: float, taken: int = 0,
                 own: bool = False, retry_at: float = float("-inf"), tries: int = 0, timeouts: int = 0,
                 error: str = "?", given_up: bool = False, since_wall: Optional[float] = None,
                 last_wall: Optional[float] = None):
        self.sig = sig
        self.own = own
        self.taken = taken
        self.delay = delay
        self.most = most
        self.retry_at = retry_at
        self.tries = tries
        self.timeouts = timeouts
        self.error = error
        self.given_up = given_up
        self.since_wall = since_wall if since_wall is not None else time.time()
        self.last_wall = last_wall if last_wall is not None else self.since_wall

    def failed(self, sig: tuple[int, int, Optional[int]], error: str, taken: int, timed_out: bool, now: float,
               first_time: bool) -> None:
        """The station failed on the file again (``first_time``: the failure that set it aside)
        with ``taken`` parts taken all along: its own once parts were taken since the last
        one; a timeout counts when it is the first or parts were taken around it (a station
        hung on every part takes none: its files are not counted out); the next try waits
        twice as long (a timed-out own file the longest wait at once: each try holds the
        line for the submit's whole timeout)."""
        self.sig = sig
        self.error = error
        self.tries += 1
        self.last_wall = time.time()
        took_others = taken > self.taken
        self.own = self.own or took_others
        self.taken = taken
        if timed_out and (first_time or took_others):
            self.timeouts += 1
        if self.own and timed_out:
            self.delay = self.most
        self.retry_at = now + self.delay
        self.delay = min(self.most, self.delay * 2)

    def to_json(self, now: float, wall: float) -> dict[str, Any]:
        """As ASIDE_FILE keeps it: the next try by the wall clock (the monotonic one starts anew
        after a restart). ``tries`` and ``last_wall`` are new keys; an older watcher ignores them."""
        return {"size": self.sig[0], "mtime_ns": self.sig[1], "ino": self.sig[2], "own": self.own,
                "timeouts": self.timeouts, "delay": self.delay, "retry_wall": wall + max(0.0, self.retry_at - now),
                "since_wall": self.since_wall, "error": self.error, "given_up": self.given_up,
                "tries": self.tries, "last_wall": self.last_wall}

    @classmethod
    def from_json(cls, e: dict[str, Any], now: float, wall: float, first: float, most: float) -> "AsideFile":
        """An entry of ASIDE_FILE (this watcher's, or an older one's without ``tries`` and
        ``last_wall``); its next try when it was due (its wait not begun again), ``taken``
        counted from this start (a failure after a part taken since is the file's own).
        AttributeError, KeyError, TypeError or ValueError for an entry not written by a watcher."""
        ino = e.get("ino")
        sig = (int(e["size"]), int(e["mtime_ns"]), int(ino) if ino is not None else None)
        # the wait left at the stop, by the wall clock
        wait = min(max(float(e.get("retry_wall") or 0.0) - wall, 0.0), most)
        since = float(e.get("since_wall") or wall)
        return cls(sig, delay=min(max(float(e["delay"]), first), most), most=most, own=bool(e["own"]),
                   retry_at=now + wait, tries=max(1, int(e.get("tries") or 1)), timeouts=int(e.get("timeouts", 0)),
                   error=str(e.get("error") or "?"), given_up=bool(e.get("given_up")), since_wall=since,
                   last_wall=float(e.get("last_wall") or since))


class FolderWatcher:
    def __init__(self, folder: os.PathLike | str, submit: Submit, settle_s: float = 0.5,
                 poll_s: float = 0.5, done_dir: Optional[os.PathLike | str] = None,
                 failed_dir: Optional[os.PathLike | str] = None,
                 on_result: Optional[Callable[[Path, dict[str, Any]], None]] = None,
                 part_id_from: Callable[[Path], str] = lambda p: p.stem,
                 incomplete_after_s: float = 60.0, max_bytes: int = DEFAULT_MAX_BYTES,
                 status_path: Optional[os.PathLike | str] = None, status_info: Optional[dict[str, Any]] = None,
                 heartbeat: Optional[Callable[[dict[str, Any]], None]] = None,
                 timeouts_max: int = TIMEOUTS_MAX):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"{self.folder}: the hot folder does not exist; create it or fix the path")
        self.submit = submit
        self.settle_s = settle_s
        self.poll_s = poll_s
        self.done_dir = Path(done_dir) if done_dir else self.folder / "done"
        self.failed_dir = Path(failed_dir) if failed_dir else self.folder / "failed"
        self.on_result = on_result
        self.part_id_from = part_id_from
        self.incomplete_after_s = incomplete_after_s
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive (the station's upload limit)")
        self.max_bytes = max_bytes
        if timeouts_max < 1:
            raise ValueError("timeouts_max must be 1 or more (the timed-out tries before a file goes to failed/)")
        self.timeouts_max = timeouts_max
        self._journal_path = self.folder / JOURNAL
        # the files handled (journalled), by name|size|mtime: their status, reason and SHA-256
        # (None: refused from their name, size or link alone, never read), and, once this
        # process has read or checked the file, its inode (None: not known, or a file system
        # without inode numbers)
        self._handled: dict[str, dict[str, Any]] = {}
        self._seen: dict[str, tuple[int, int, float]] = {}   # name -> (size, mtime_ns, first seen same)
        # name -> ((size, mtime_ns), first seen so): what a file's wait counts from. Kept when a
        # file is seen afresh for a retry (its move or its submit failed: _seen dropped, to settle
        # again), dropped when the file changes or leaves: a file stuck behind a done/ that
        # could not be used waited 0.5 s at every look, and the watcher never said it was behind
        self._since: dict[str, tuple[tuple[int, int], float]] = {}
        self._ignored: set[str] = set()   # files of other formats present, already logged once
        # files present under a name being written (being_written_name): when first seen; those said
        # once for staying past incomplete_after_s
        self._temp_first: dict[str, float] = {}
        self._temp_said: set[str] = set()
        self._subfolders: set[str] = set()   # subfolders present, already said to be not watched
        self._not_regular: set[str] = set()   # pipes, sockets, devices present, already said once
        self._corrupt: dict[str, tuple[int, int]] = {}   # name -> sig refused as corrupt while waiting
        # lasting faults, said once a minute: the station not taking parts (details: error,
        # retry_at, delay, last file tried), behind the line (handled: parts handled by then),
        # the scan, the status file, the heartbeat, one file's
        self._faults = LastingFaults(log)
        self._stop = threading.Event()
        self.counts = {"done": 0, "failed": 0, "skipped": 0, "ignored": 0}
        self._writing: set[str] = set()    # files waited for as their writer's (incomplete, empty, corrupt)
        self.waiting = 0                 # files ready to be taken: at the last look, less those taken since
        self._counted: set[str] = set()  # the files counted in waiting
        # files judged or refused that could not be moved out of the folder (NOT_MOVED): name ->
        # what came of them ("judged and stored (id 12, OK)"); not waiting, never sent again
        self.not_moved: dict[str, str] = {}
        self.oldest_wait_s = 0.0         # how long the oldest of them has waited
        # of those waiting, the files still being written (empty, cut short, under a temporary name)
        self.writing: list[str] = []
        self._temp_present: set[str] = set()
        self._looked_at = float("-inf")
        self.status_path = Path(status_path) if status_path else self.folder / STATUS_FILE
        self._status_info = dict(status_info or {})
        # given each status as it is written (a StationHeartbeat: to a station on another PC)
        self.heartbeat = heartbeat
        self._status_at = float("-inf")
        self._running = False
        # files the station answered with a failure of its own (HTTP 500) or no answer in time,
        # by name (AsideFile). Tried when their try is due, never holding the files behind them.
        self._aside: dict[str, AsideFile] = {}
        self._taken = 0         # parts the station answered (took or refused), all along
        self._taken_at = time.monotonic()    # when it last answered one (or the start)
        self._aside_failed = 0  # set-aside files' failures since it last answered a part
        # for the "falling behind" line's cause: (when, new files first seen) of each listing of the
        # folder, and (when, the seconds the station took) of each part it answered, over the last
        # RATE_WINDOW_S (a listing's new files came any time since the one before: a pass through
        # a long backlog lists the folder once, minutes apart)
        self._started = time.monotonic()
        self._arrived: deque[list[float]] = deque()
        self._answered: deque[tuple[float, float]] = deque()
        self._row = 0           # files answered HTTP 500 in a row in this pass (none set aside as their own)
        self._others = 0        # other files still tried at once in this try, its file answered HTTP 500
        self._try_due = False   # the station not taking parts: its next try was due when this pass began
        # an outage only suspected (two 500s in a row): the first file set aside that its try passed
        # over in this pass (tried at the pass's end when no file not set aside was), and the one
        # being tried so
        self._passed_over: Optional[str] = None
        self._aside_try: Optional[str] = None
        self._again = False     # a part taken made files set aside earlier in this pass due: tried next
        self._aside_said = float("-inf")   # when the files set aside as their own were last said together
        self.set_aside: list[str] = []     # the files set aside as their own (not waiting: see status)
        self.given_up: list[str] = []      # the latest files moved to failed/ after timing out on every try
        self._given_up_n = 0               # how many, since the start
        self._given_up_wall: Optional[float] = None   # when the latest was (the station's /health shows it)
        # the latest files refused (moved to failed/ at once, or left in place under a new file):
        # names, when the latest was and why, for the station's /health fault (line.watchers)
        self.refused: list[str] = []
        self._refused_wall: Optional[float] = None
        self._refused_reason: Optional[str] = None
        self._aside_path = self.folder / ASIDE_FILE
        self._read_stat: Optional[os.stat_result] = None
        self._journal_lines = 0
        # one watcher per folder (FolderInUse names the other), taken at its first look (run,
        # poll_once): made here, the lock file kept a folder that went away before the start
        # from going. Given back when this watcher is closed or dropped, or its process ends
        self._lock = FolderLock(self.folder, {k: self._status_info.get(k) for k in ("line", "station", "product")
                                              if self._status_info.get(k)})
        self._locked = False
        self._lock_finalizer = weakref.finalize(self, self._lock.release)
        self._load_journal()
        self._load_aside()

    # -- journal -------------------------------------------------------------------
    def _entry_key(self, name: str, size: int, mtime_ns: int) -> str:
        return f"{name}|{size}|{mtime_ns}"

    def _load_journal(self) -> None:
        """Read the journal line by line (never whole) and compact it: the entries of files
        still in the folder (handled, not yet moved: a crash) and the latest JOURNAL_KEEP."""
        if not self._journal_path.exists():
            return
        from collections import deque
        try:
            present = {e.name for e in os.scandir(self.folder)}
        except OSError:
            present = set()
        recent: deque = deque(maxlen=JOURNAL_KEEP)
        kept_present: list[str] = []
        lines = 0
        with open(self._journal_path, "r", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                lines += 1
                # the name without parsing the line (json.dumps writes it first, escaped):
                # 2,000,000 lines parsed whole took 30 s; only the lines kept are parsed
                name = None
                if line.startswith('{"name": "'):
                    end = line.find('", "', 10)
                    if end > 0 and "\\" not in line[10:end]:
                        name = line[10:end]
                if name is None:
                    try:
                        name = json.loads(line)["name"]
                    except (ValueError, KeyError, TypeError):
                        continue   # a line cut short by a crash
                if name in present:
                    kept_present.append(line)
                else:
                    recent.append(line)
        kept: dict[str, str] = {}
        handled: dict[str, dict[str, Any]] = {}
        for line in list(recent) + kept_present:
            try:
                e = json.loads(line)
                key = self._entry_key(e["name"], e["size"], e["mtime_ns"])
            except (ValueError, KeyError, TypeError):
                continue   # a line cut short by a crash
            # the latest entry of a key is the one that counts (a new file handled under a
            # name, size and time handled before)
            kept.pop(key, None)
            kept[key] = line if line.endswith("\n") else line + "\n"
            handled[key] = _done_entry(e.get("status"), e.get("reason"), e.get("sha256"), None)
        self._handled = handled
        self._journal_lines = len(kept)
        if lines > len(kept):
            tmp = self._journal_path.with_name(self._journal_path.name + ".tmp")
            try:
                with open(tmp, "w", encoding="utf-8") as out:
                    out.writelines(kept.values())
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, self._journal_path)
            except OSError as exc:
                # a folder mounted read-only: the journal is read all the same, and the watcher
                # starts (it ended here, before its first part)
                log.warning("journal %s could not be compacted (%s); it is read whole at each start until it can "
                            "be", self._journal_path.name, exc)
                return
            log.info("journal %s compacted: %d of %d entries kept (files still here, the latest %d)",
                     self._journal_path.name, len(kept), lines, JOURNAL_KEEP)

    def _journal_kept(self, entry: dict[str, Any]) -> Optional[OSError]:
        """Journal ``entry``; the error when the journal cannot be written (a folder mounted
        read-only): the file handled is then kept in memory only, never sent again while the
        watcher runs, and what that means is said with the file's move (:meth:`_moved_out`)."""
        try:
            self._journal(entry)
        except OSError as exc:
            return exc
        self._faults.ends(JOURNAL_FAULT, logging.INFO, "the journal %(path)s is written again",
                          path=self._journal_path)
        return None

    def _journal(self, entry: dict[str, Any]) -> None:
        with open(self._journal_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self._journal_lines += 1
        if self._journal_lines >= 2 * JOURNAL_KEEP + 1000:
            try:
                self._load_journal()   # compacts it (and the handled set in memory with it)
            except OSError as exc:
                log.error("journal %s could not be compacted (%s); it keeps growing", self._journal_path, exc)

    # -- the set-aside files, across a restart ------------------------------------------
    def _load_aside(self) -> None:
        """Take back the files set aside before this start (ASIDE_FILE): one the station fails
        on alone stays out of the way of the others, its next try when it was due (its wait not
        begun again), its timeouts counted on. A file changed or gone since is dropped at the
        first look (poll_once), as it is while the watcher runs."""
        try:
            raw = json.loads(self._aside_path.read_text(encoding="utf-8"))
            files = raw["files"]
            if not isinstance(files, dict):
                raise TypeError("'files' is not an object")
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s cannot be read (%s: %s): the files set aside before this start are tried again in "
                        "the folder's order (one the station fails on is set aside again; one timing out holds the "
                        "line once more); it is written anew at the next file set aside", self._aside_path,
                        type(exc).__name__, exc)
            return
        now, wall = time.monotonic(), time.time()
        first = max(self.poll_s, 0.01)
        most = max(ASIDE_MAX_S, first)
        for name, e in files.items():
            try:
                self._aside[name] = AsideFile.from_json(e, now, wall, first, most)
            except (AttributeError, KeyError, TypeError, ValueError):
                continue   # an entry not written by this watcher: tried in the folder's order

    def _save_aside(self) -> None:
        """Rewrite ASIDE_FILE (a new file renamed over it: never half of one) with the files set
        aside now; removed when none is."""
        now, wall = time.monotonic(), time.time()
        files = {name: a.to_json(now, wall) for name, a in self._aside.items()}
        try:
            if not files:
                self._aside_path.unlink(missing_ok=True)
            else:
                tmp = self._aside_path.with_name(f"{self._aside_path.name}.{os.getpid()}.tmp")
                with open(tmp, "w", encoding="utf-8") as fh:
                    # ensure_ascii: a name with undecodable bytes (lone surrogates) is written as \udcNN
                    fh.write(json.dumps({"files": files}) + "\n")
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self._aside_path)
        except OSError as exc:
            self._faults.happens(("aside-file",), logging.WARNING,
                                 "the set-aside files cannot be kept in %(path)s (%(error)s): after a restart they "
                                 "are tried again in the folder's order", path=self._aside_path, error=exc)
        else:
            self._faults.ends(("aside-file",), logging.INFO, "the set-aside files are kept in %(path)s again",
                              path=self._aside_path)

    # -- scanning ------------------------------------------------------------------
    def _candidates(self) -> list[Path]:
        out, others, subfolders, not_regular = self._listing()
        self._note_temp(time.monotonic())
        self._note_ignored(others)
        self._note_subfolders(subfolders)
        self._note_not_regular(not_regular)
        return out

    def _listing(self) -> tuple[list[Path], set[str], set[str], set[str]]:
        """The folder as it is now, nothing said: the image files in name order, and the names
        of the files of other formats, of the subfolders and of what is not a regular file."""
        out = []
        others = set()
        subfolders = set()
        not_regular = set()
        temp = set()
        with os.scandir(self.folder) as it:
            for e in it:
                if e.name.lstrip(".").startswith("lineguard-watch"):
                    continue      # the watcher's own: journal, status, set-aside files, lock, their temp files
                if Path(e.path) in (self.done_dir, self.failed_dir):
                    continue      # the watcher's own (a link or a file there: _out_folders_usable)
                if e.is_dir(follow_symlinks=False):
                    if not e.name.startswith((".", "~")):     # a share's .snapshot, a disk's .Trash: unsaid
                        subfolders.add(e.name)
                    continue
                if being_written_name(e.name):
                    # a copy's or camera's name while it writes: waited for unsaid (_note_temp)
                    temp.add(e.name)
                    continue
                # follow_symlinks=False: a link is listed as a link (and refused), never
                # read through to whatever it points at
                if not (e.is_symlink() or e.is_file(follow_symlinks=False)):
                    not_regular.add(e.name)
                    continue
                if Path(e.name).suffix.lower() not in WATCH_SUFFIXES:
                    others.add(e.name)
                    continue
                out.append(Path(e.path))
        self._temp_present = temp
        return sorted(out, key=lambda p: p.name), others, subfolders, not_regular

    def _note_temp(self, now: float) -> None:
        """Files under a name being written (T1.png.tmp, ~P1.png, .P1.png.x7Ab): waited for unsaid,
        they are renamed when written; one still there after incomplete_after_s is said once (the
        README's "logged once"), with what to do, and counted as ignored."""
        present = self._temp_present
        for name in [n for n in self._temp_first if n not in present]:
            del self._temp_first[name]
            self._temp_said.discard(name)    # a name gone and back later is a new file
        for name in sorted(present):
            first = self._temp_first.setdefault(name, now)
            if name in self._temp_said or now - first < self.incomplete_after_s:
                continue
            self._temp_said.add(name)
            self.counts["ignored"] += 1
            if name.startswith((".", "~")) and Path(name).suffix.lower() not in TEMP_SUFFIXES:
                why = (f"a name beginning with '{name[0]}' is a hidden or temporary file's (a copy tool's, an "
                       "editor's) and is not inspected")
                fix = (f"if it is a part's photo, rename it without the leading '{name[0]}' to have it inspected; "
                       "else move it out of the folder")
            else:
                why = ("it has a temporary name (a camera or copy writing a photo renames it to the image's name "
                       "when done), and is not inspected under it")
                fix = ("if its writer stopped, re-capture the part or rename the file to its image name; else move "
                       "it out of the folder")
            log.warning("%s has stayed in %s for %.0f s: %s; %s", shown_name(name), self.folder, now - first, why,
                        fix)

    def _count_waiting(self, names: list[str]) -> list[str]:
        """Count the files waiting among ``names`` (those ready, and those still being written);
        the ready ones returned."""
        ready = self._ready(names)
        self.writing = sorted(self._unfinished(names))
        self._counted = set(ready) | set(self.writing)
        self.waiting = len(self._counted)
        return ready

    def _unfinished(self, names: list[str]) -> set[str]:
        """Of ``names`` (image files present), those waited for as still being written (empty,
        cut short, not decoding yet), and the part photos present under a name being written:
        they wait too (the status said waiting: 0 while two files sat unfinished)."""
        out = {n for n in names if (n in self._writing or n in self._corrupt) and n not in self.not_moved
               and not (n in self._aside and self._aside[n].own)}
        return out | {n for n in self._temp_present if _part_photo_name(n)}

    def _note_not_regular(self, names: set[str]) -> None:
        """Say once per entry that a named pipe, socket or device is left alone: it is no
        image (reading a pipe would block the watcher until something writes to it), and a
        line that never hears of it waits for a part that never comes."""
        for name in sorted(names - self._not_regular):
            log.warning("%s ignored: it is not a regular file (a named pipe, socket or device); the watcher takes "
                        "only image files, have the camera write files, or remove it from the folder",
                        shown_name(name))
            self.counts["ignored"] += 1
        self._not_regular = names   # gone and back later: said again

    def _note_subfolders(self, names: set[str]) -> None:
        """Say once per subfolder that it is not watched: a camera that writes into date
        folders (``2026-12-05/part.png``) otherwise looks like a line with no parts."""
        for name in sorted(names - self._subfolders):
            log.warning("%s/ is a subfolder: it is not watched (only images in %s itself are taken); have the "
                        "camera write into the folder itself, or watch the subfolder", shown_name(name), self.folder)
        self._subfolders = names

    def _note_ignored(self, names: set[str]) -> None:
        """Say once per file that a file of another format is left in the folder.

        Left, not moved to failed/: writers often write under a temporary name
        (``part.png.part``, ``part.tmp``) and rename when done, and a camera may drop a
        sidecar (``part.xml``) for another tool; moving those would lose the part or break
        that tool. A line that never hears of them, though, waits for parts that never
        come: hence the log line.
        """
        for name in sorted(names - self._ignored):
            suffix = Path(name).suffix
            what = f"its suffix '{shown_name(suffix)}' is not" if suffix else "it has no suffix, so it is not known as"
            log.warning("%s ignored: %s an image the station takes (%s); rename it with its format's suffix "
                        "to have it inspected, or move it out of the folder", shown_name(name), what,
                        ", ".join(sorted(WATCH_SUFFIXES)))
            self.counts["ignored"] += 1
        self._ignored = names    # a name gone and back later is a new file, and said again

    def _guard(self) -> None:
        """Take the folder's lock if this watcher does not hold it yet: FolderInUse when another
        watcher holds it (at the start: the watcher refused; later, the folder back after it went
        away: said as the scan's fault, no file taken). A folder not there is tried again at the
        next look; one that cannot be marked (read-only) is said once and watched unguarded."""
        if self._locked:
            return
        try:
            self._lock.acquire()
        except FileNotFoundError:
            return        # the folder gone: its scan says so; tried again at the next look
        self._locked = True

    def poll_once(self) -> int:
        """Handle every settled file once (until :meth:`stop`); returns how many were handled."""
        self._guard()
        now = time.monotonic()
        handled = 0
        candidates = self._candidates()
        present = {p.name for p in candidates}
        # done/ or failed/ a link or a file: the files are looked at (their waits count) but
        # none is taken; each would be judged and then moved out of the hot folder, or not at all
        moves_refused = not self._out_folders_usable()
        self._arrived.append([now, 0])
        self._forget_old_rates(now)
        # always in the folder's order, also the station's try after an outage: the parts that
        # waited are recorded in the order they came (a line's alarms count parts in id order).
        # A file the station fails on is set aside (_failed_on), not passed by a turn. The try is
        # due for the pass, not from the file it had come to: a try falling due in the middle of
        # the pass was with whatever file the pass was at (K-0015 recorded first). An outage
        # only suspected is tried with the first file not set aside (_held), the files that
        # raised the suspicion only when no other waits (_aside_fallback).
        down = self._faults.get(STATION_DOWN)
        self._try_due = down is not None and now >= down["retry_at"]
        self._row = self._others = 0
        self._again = False
        self._passed_over = self._aside_try = None
        self._look_behind([p.name for p in candidates], now)
        by_name = {p.name: p for p in candidates}
        i = 0
        while True:
            if self._stop.is_set():
                # Ctrl-C or SIGTERM with thousands of files waiting: the file in hand was
                # finished, the rest wait for the next start (40 s later it was still judging)
                break
            if self._again:
                # a part taken made the files set aside earlier in this pass (failures not yet
                # told as theirs: an outage's) due: tried next, in the folder's order, before
                # the files behind (after a 500 spell K-0016..K-0039 were recorded before K-0001)
                self._again = False
                ahead = {p.name for p in candidates[i:]}
                back = {p.name: p for p in candidates[:i] if p.name not in ahead and p.name in self._aside
                        and not self._aside[p.name].own}
                candidates[i:i] = [back[n] for n in sorted(back)]
            if i >= len(candidates):
                fallback = self._aside_fallback()
                if fallback is None or fallback not in by_name:
                    break
                # a suspected outage's try found no file waiting but those set aside: the first of
                # them is tried, so that a station failing for a moment takes them when it takes
                # parts again (failing again, no new sign of an outage: _not_taking says nothing)
                self._aside_try = fallback
                candidates.append(by_name[fallback])
            path = candidates[i]
            i += 1
            if time.monotonic() - self._looked_at >= STATUS_EVERY_S:
                self._look_behind([p.name for p in candidates[i - 1:]], time.monotonic())
            now = time.monotonic()
            try:
                st = path.lstat()
            except FileNotFoundError:
                continue
            sig = (st.st_size, st.st_mtime_ns)
            aside = self._aside.get(path.name)
            if aside is not None and aside.sig != (*sig, self._ino(st)):
                # a new photo under a set-aside file's name (or the file written again): a new
                # part, not the one the station failed on; it waited that one's turn (59.75 s)
                self._put_back(path.name)
            prev = self._seen.get(path.name)
            if prev is None or prev[:2] != sig:
                since = self._since.get(path.name)
                if since is None or since[0] != sig:
                    if since is None and self._arrived:
                        self._arrived[-1][1] += 1    # a new file (not one seen afresh for a retry)
                    self._since[path.name] = (sig, now)
                self._seen[path.name] = (*sig, now)
                self._writing.discard(path.name)
                continue
            if now - prev[2] < self.settle_s or moves_refused:
                continue
            self._writing.discard(path.name)
            try:
                if self._take(path, sig, stable_s=now - prev[2], ino=self._ino(st)):
                    handled += 1
            except Exception as exc:  # noqa: BLE001 - one odd file must never stop the line's watcher
                self._faults.happens(("file", path.name), logging.ERROR,
                                     "%(name)s: not handled (%(error)s); will retry",
                                     name=shown_name(path.name), error=f"{type(exc).__name__}: {exc}")
                self._seen.pop(path.name, None)
            self._count_down(path)
        self._writing &= present
        for name in list(self._seen):
            if name not in present:
                del self._seen[name]
        for name in list(self._since):
            if name not in present:
                del self._since[name]
        for name in list(self._corrupt):
            if name not in present:
                del self._corrupt[name]
        for name in [n for n in self.not_moved if n not in present]:
            del self.not_moved[name]        # moved or removed by hand: out of the folder at last
        if not self.not_moved:
            self._faults.ends(NOT_MOVED, logging.WARNING, "no file judged is left in %(folder)s any more (after "
                              "%(lasted).0f s, %(tries)d moves failed meanwhile)")
        gone = [n for n in self._aside if n not in present]
        for name in gone:
            del self._aside[name]
        if gone:
            self._save_aside()
        for key in self._faults.keys():
            if key[0] in ("file", "submit", "aside") and key[1] not in present:
                self._faults.ends(key)       # the file is gone: its fault with it, unsaid
        self._look_only_aside(present, time.monotonic())
        self._say_aside(time.monotonic())
        return handled

    # -- falling behind, and the status file -------------------------------------------
    def _look_behind(self, names: list[str], now: float) -> None:
        """Count the files ready to be taken (not those waited for as their writer's) and
        the oldest's wait (since the watcher saw it last change: its own clock, not the
        file's time, which a copy may keep from elsewhere); say when the watcher falls
        behind and when it catches up; rewrite the status file."""
        self._looked_at = now
        # a file set aside as its own (the station fails on it alone) is not the line's backlog:
        # counted as waiting and oldest, the watcher said "behind" for as long as it stayed, and
        # /health "the PC does not keep up" with every other part on time. Said apart (set_aside)
        self.set_aside = sorted(n for n, a in self._aside.items() if a.own)
        ready = self._count_waiting(names)
        self.oldest_wait_s = max((now - t for t in map(self._waits_since, ready) if t is not None), default=0.0)
        handled = self.counts["done"] + self.counts["failed"]
        behind = self._faults.get(BEHIND)
        # behind once the oldest waited BACKLOG_AFTER_S; caught up once it waits under half
        changed = False
        if self.oldest_wait_s >= (BACKLOG_AFTER_S if behind is None else BACKLOG_AFTER_S / 2):
            changed = behind is None
            meanwhile = handled - behind["handled"] if behind is not None else 0
            self._faults.happens(
                BEHIND, logging.WARNING,
                # the cause as the watcher sees it (the station down or failing, the station's time a
                # part against the parts coming, this PC), with its numbers and what to do; it named
                # none ("see the watcher's other lines") and gave every cause the same way out
                "falling behind: %(waiting)d files wait in %(folder)s, the oldest for %(oldest).0f s; parts are "
                "judged late: %(cause)s",
                still="still behind: %(waiting)d files wait in %(folder)s, the oldest for %(oldest).0f s (behind "
                      "for %(lasted).0f s, %(meanwhile)d files handled meanwhile)",
                start={"handled": handled}, waiting=self.waiting, folder=self.folder, oldest=self.oldest_wait_s,
                meanwhile=meanwhile, cause=self._behind_cause(now) if behind is None else behind.get("cause"))
        elif behind is not None:
            changed = True
            self._faults.ends(BEHIND, logging.WARNING,
                              "caught up: %(waiting)d files wait in %(folder)s, the oldest for %(oldest).0f s; the "
                              "backlog lasted %(lasted).0f s, %(meanwhile)d files handled meanwhile",
                              waiting=self.waiting, folder=self.folder, oldest=self.oldest_wait_s,
                              meanwhile=handled - behind["handled"])
        self._write_status(now, force=changed)

    def _ready(self, names: list[str]) -> list[str]:
        """Of ``names``, the files ready to be taken: not those waited for as their writer's,
        nor those set aside as their own, nor those judged that could not leave the folder."""
        return [n for n in names if n not in self._writing and n not in self._corrupt and n not in self.not_moved
                and not (n in self._aside and self._aside[n].own)]

    def _count_down(self, path: Path) -> None:
        """A file counted as waiting that is taken (gone from the folder, or judged and left in
        it) waits no more: ``waiting`` is counted down at once, not at the next look. It was the
        count of the pass's start until then: a stop 7 files into a pass of 100 said 100 wait
        for the next start, where 93 did."""
        if path.name not in self._counted:
            return
        if path.name not in self.not_moved and os.path.lexists(path):
            return        # still there: not taken (waited for, held), or a new photo under its name
        self._counted.discard(path.name)
        self.waiting = len(self._counted)

    def _count_left(self) -> None:
        """Count the files left waiting from the folder as it is now, nothing said (a stop's
        summary): those that came since the pass began wait for the next start too."""
        try:
            names = [p.name for p in self._listing()[0]]
        except OSError:
            return        # the folder gone: the count from the last look, less those taken since
        self._count_waiting(names)

    def _waits_since(self, name: str) -> Optional[float]:
        """When the file ``name`` was first seen as it is now (size and time), also when it was
        seen afresh since for a retry (``_since``); None when it is not seen."""
        seen, since = self._seen.get(name), self._since.get(name)
        if since is not None and (seen is None or since[0] == seen[:2]):
            return since[1] if seen is None else min(seen[2], since[1])
        return seen[2] if seen is not None else None

    def _forget_old_rates(self, now: float) -> None:
        """Drop what is older than RATE_WINDOW_S from the rates' records: done at every listing,
        not only when behind (a watcher never behind kept a record of every part and listing:
        170,000 listings a day at poll_s 0.5)."""
        while self._answered and self._answered[0][0] < now - RATE_WINDOW_S:
            self._answered.popleft()
        # the arrivals from the last listing before the window on: each listing's new files came
        # since the one before it
        while len(self._arrived) > 1 and self._arrived[1][0] <= now - RATE_WINDOW_S:
            self._arrived.popleft()

    def _rates(self, now: float) -> tuple[float, float, Optional[float], float]:
        """(parts arriving a minute, parts the station answered a minute, its mean time a part in
        ms or None when it answered none, the span they are over in s): the last RATE_WINDOW_S,
        or the time since the start when shorter."""
        self._forget_old_rates(now)
        since = self._arrived[0][0] if self._arrived and self._arrived[0][0] <= now - RATE_WINDOW_S else self._started
        arrived = sum(n for t, n in self._arrived if t > since)
        span = max(1.0, now - since)
        took = [s for _t, s in self._answered]
        ms = 1000.0 * sum(took) / len(took) if took else None
        took_span = max(1.0, min(RATE_WINDOW_S, now - self._started))
        return 60.0 * arrived / span, 60.0 * len(took) / took_span, ms, max(span, took_span)

    def _behind_cause(self, now: float) -> str:
        """Why the files wait, as far as the watcher can see, with its numbers, and the way out:
        said with "falling behind"."""
        out = self._faults.get(OUT_FOLDERS)
        if out is not None:
            return (f"no file is taken since {_clock(out.wall)}: {out['problem']} (the line at {_clock(out.wall)}); "
                    "the files are taken once it is fixed")
        down = self._station_down()
        if down is not None:
            # (worded without "take parts": the outage's own lines are told by those words)
            return (f"the station is down since {_clock(down.wall)} ({down['error']}) and the files wait for it "
                    f"(the outage's line at {_clock(down.wall)}); bring the station back (its log, /health): the "
                    "files are sent in the folder's order once it is back")
        if self._aside_failed >= 2 and now - self._taken_at >= BACKLOG_AFTER_S / 2:
            failing = self._faults.get(STATION_DOWN)
            error = failing["error"] if failing is not None else next(
                (a.error for a in sorted(self._aside.values(), key=lambda a: -a.last_wall)), "?")
            return (f"the station failed on the last {self._aside_failed} tries ({error}) and has answered no part "
                    f"for {now - self._taken_at:.0f} s: it may fail on every part, not be slow; see the station's "
                    "log and /health (a new part failing too is said as an outage)")
        arriving, answered, ms, span = self._rates(now)
        rates = f"{arriving:.0f} parts/min arrived, {answered:.0f}/min were inspected (the last {span:.0f} s)"
        if ms is None:
            return (f"the station answered no part in the last {span:.0f} s ({arriving:.0f} parts/min arrived): "
                    "it is not answering; see the station's log and /health")
        # how much of the time the station was at work: the bottleneck when nearly all of it (the
        # arrivals are counted at each listing of the folder, late in a long pass: not the test)
        busy = sum(s for _t, s in self._answered) / max(1.0, min(RATE_WINDOW_S, now - self._started))
        most = 60000.0 / ms if ms > 0 else float("inf")
        if busy >= 0.8:
            return (f"the station is slower than the line: it takes {ms:.0f} ms a part ({most:.0f} parts/min at "
                    f"most, one at a time) and was busy {min(busy, 1.0):.0%} of the time; {rates}. Give the station "
                    "a faster model profile, an exported model or a GPU, or split the line over two watchers and "
                    "stations (a burst, files left from a stop, clears on its own)")
        return (f"the station answers in {ms:.0f} ms a part ({most:.0f}/min at most) but was busy only "
                f"{busy:.0%} of the time; {rates}: this PC or the folder's disk or share is slow at handing the files "
                "over; look at this PC's load and the folder's disk, or give the folder to a faster PC")

    def _look_only_aside(self, present: set[str], now: float) -> None:
        """Say when every file left in the folder is set aside, the station failed on them again
        and answered no part for ONLY_ASIDE_AFTER_S (ONLY_ASIDE; in the status as
        ``only_set_aside``): either no part comes or the station fails on every part, and no
        other part is there to tell. Nothing said it until a new part failed too, and /health
        said "ok" (own files) or "behind: the PC does not keep up" (an outage only suspected).
        Ends when the station answers a part (_taking_again), unsaid when no file set aside is
        left or an outage is said (its own lines take over)."""
        fault = self._faults.get(ONLY_ASIDE)
        aside = sorted(n for n in present if n in self._aside)
        if fault is not None:
            if not aside or self._station_down() is not None:
                self._faults.ends(ONLY_ASIDE)
                self._write_status(now, force=True)
            elif self._aside_failed > fault["failed"]:
                self._faults.happens(ONLY_ASIDE, logging.WARNING, "", still=(
                    "still only set-aside files in %(folder)s (%(files)d: %(named)s), the station failing on them "
                    "(%(error)s), no part answered for %(quiet).0f s"), **self._only_aside_details(aside, now))
            return
        if (aside and len(aside) == len(present) and self._aside_failed and self._station_down() is None
                and now - self._taken_at >= ONLY_ASIDE_AFTER_S):
            self._faults.happens(
                ONLY_ASIDE, logging.WARNING,
                "every file left in %(folder)s is set aside (%(files)d: %(named)s) and the station failed on each at "
                "its last try (%(error)s), no part answered for %(quiet).0f s: either no part comes (the line "
                "stopped) or the station fails on every part, and no other part is here to tell. The watcher is "
                "not idle: it tries them again up to %(most)g s apart. See the station's log and /health; a new "
                "part failing too is said as an outage; move the files out of the folder to stop the tries",
                **self._only_aside_details(aside, now))
            self._write_status(now, force=True)

    def _only_aside_details(self, aside: list[str], now: float) -> dict[str, Any]:
        latest = max((self._aside[n] for n in aside), key=lambda a: a.last_wall)
        return {"folder": self.folder, "files": len(aside), "failed": self._aside_failed,
                "named": ", ".join(shown_name(n) for n in aside[:5]) + (f" and {len(aside) - 5} more"
                                                                       if len(aside) > 5 else ""),
                "error": latest.error, "quiet": now - self._taken_at,
                # own files wait up to ASIDE_MAX_S; an outage's (suspected) are its tries, up to RETRY_MAX_S
                "most": ASIDE_MAX_S if any(self._aside[n].own for n in aside) else max(RETRY_MAX_S, self.poll_s)}

    def status(self) -> dict[str, Any]:
        """The watcher's state as the status file holds it."""
        now = time.monotonic()
        d, b, only = self._station_down(), self._faults.get(BEHIND), self._faults.get(ONLY_ASIDE)
        out = self._faults.get(OUT_FOLDERS)
        return {**self._status_info,
                "folder": str(self.folder), "pid": os.getpid(), "running": self._running,
                # the folder as the station tells two watchers of it apart from two of one
                # line and station (line.watchers: a newer one ends an old dead one's fault)
                "host": _host_name(), "folder_path": os.path.abspath(self.folder),
                "updated": time.time(), "every_s": STATUS_EVERY_S,
                "waiting": self.waiting, "oldest_wait_s": round(self.oldest_wait_s, 1),
                # of those waiting, the files still being written (not yet whole, or a temporary name)
                "writing": len(self.writing), "writing_files": [shown_name(n) for n in self.writing[:ASIDE_NAMED]],
                # files the station fails on alone, tried on their own: not in waiting
                "set_aside": len(self.set_aside),
                "set_aside_files": [shown_name(n) for n in self.set_aside[:ASIDE_NAMED]],
                # files moved to failed/ after timing out on every try (this run; reasons in failed/)
                "given_up": self._given_up_n,
                "given_up_files": [shown_name(n) for n in self.given_up[-ASIDE_NAMED:]],
                "given_up_last": self._given_up_wall,
                "refused_files": [shown_name(n) for n in self.refused[-ASIDE_NAMED:]],
                "refused_last": self._refused_wall,
                "refused_last_reason": self._refused_reason,
                # every file left is set aside and failing again, no part answered for a while: the
                # station may fail on every part (ONLY_ASIDE)
                "only_set_aside": only is not None, "only_set_aside_since": only.wall if only else None,
                "set_aside_error": only["error"] if only else None,
                # done/ or failed/ a link or a file: no file taken, all wait (what is wrong, since when)
                "moves_refused": out["problem"] if out else None, "moves_refused_since": out.wall if out else None,
                "behind": b is not None, "behind_after_s": BACKLOG_AFTER_S,
                "behind_since": b.wall if b else None,
                "station_taking_parts": d is None, "station_down_since": d.wall if d else None,
                "station_error": d["error"] if d else None,
                "counts": dict(self.counts), "last_retry_in_s": round(max(0.0, d["retry_at"] - now), 1) if d else None}

    def _write_status(self, now: float, force: bool = False) -> None:
        """Rewrite the status file (a new file renamed over it: a reader never sees half of
        it) at most every STATUS_EVERY_S, and at once when the state changes."""
        if not force and now - self._status_at < STATUS_EVERY_S:
            return
        self._status_at = now
        status = self.status()
        if self.heartbeat is not None:
            try:
                self.heartbeat(status)     # handed over, never waited for (a station down takes seconds)
            except Exception as exc:  # noqa: BLE001 - the line's parts come first
                self._faults.happens(HEARTBEAT, logging.WARNING, "the watcher's heartbeat failed (%(error)s)",
                                     error=f"{type(exc).__name__}: {exc}")
            else:
                # a heartbeat that failed and works again is said to, and a new failure later
                # is said when it starts (never ended, it was counted as "still" for a minute)
                self._faults.ends(HEARTBEAT, logging.INFO, "the watcher's heartbeat works again")
        tmp = self.status_path.with_name(f".{self.status_path.name}.{os.getpid()}.tmp")
        try:
            self.status_path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(status) + "\n", encoding="utf-8")
            os.replace(tmp, self.status_path)
        except OSError as exc:
            # with a heartbeat (--server) the station hears of the backlog all the same: only
            # what reads the file on this PC (a plant's monitoring) does not
            sees = ("the station still hears of this watcher's backlog through its heartbeat; only what reads "
                    "this file does not" if self.heartbeat is not None else
                    "the station's /health does not see this watcher's backlog")
            self._faults.happens(STATUS, logging.WARNING, "the watcher's status file %(path)s cannot be written "
                                 "(%(error)s); %(sees)s", path=self.status_path, error=exc, sees=sees)
        else:
            self._faults.ends(STATUS, logging.INFO, "the watcher's status file %(path)s is written again",
                              path=self.status_path)

    # -- the station not taking parts -----------------------------------------------------
    def _held(self, name: str) -> bool:
        """Whether ``name`` waits: the station is not taking parts and its next try is not due,
        or the file is set aside (the station failed on it) and its own try is not due."""
        now = time.monotonic()
        down = self._faults.get(STATION_DOWN)
        aside = self._aside.get(name)
        if aside is not None and aside.own:
            # the station fails on this file alone: tried on its own, and not while it takes no parts
            return down is not None or now < aside.retry_at
        if down is None:
            return aside is not None and now < aside.retry_at
        if self._others:
            # the try's file was answered HTTP 500: other files, not set aside, are tried at once
            return aside is not None
        if not self._try_due:
            return True
        if aside is not None and not down["told"] and name != self._aside_try:
            # an outage only suspected (two 500s in a row, maybe two photos the station fails on
            # alone): its try is with a file not set aside, whose failure is news. The first of
            # those that raised the suspicion failed again, no news, and the outage was said
            # after all (12 starts and ends a minute, a camera's every 10th and 11th photo failing)
            if self._passed_over is None:
                self._passed_over = name
            return True
        # the station's try, when due at the pass's start: the first file waiting in the folder's
        # order (once the outage is said, one set aside in it too: a station failing on every part
        # takes it first once it takes parts again)
        return False

    def _aside_fallback(self) -> Optional[str]:
        """The file set aside to try at the end of a pass, when an outage is only suspected, its
        try was due and no file but those set aside waited (none came since): the first of those
        its try passed over, in the folder's order. None when there is none, or a try was made."""
        name, self._passed_over = self._passed_over, None
        down = self._faults.get(STATION_DOWN)
        if name is None or self._aside_try is not None or not self._try_due or down is None or down["told"]:
            return None
        return name

    def _station_down(self) -> Optional[Any]:
        """The station's outage as said: None also while one is only suspected (see _not_taking)."""
        down = self._faults.get(STATION_DOWN)
        return down if down is not None and down["told"] else None

    def _not_taking(self, name: str, exc: BaseException, suspected: bool = False) -> None:
        """The station could not take ``name`` (down, unreachable, disk full, no model):
        said once for the outage, not once per file; the next try waits, one file at a time.

        ``suspected``: two files in a row answered HTTP 500, none taken, which may as well be two
        photos the station fails on alone; or, once suspected, a file set aside failing again (no
        news). The line waits as for an outage, but it is said only when a file not set aside
        fails too (its try: _held); a file taken ends it unsaid. New parts coming first in the
        folder between photos it failed on said an outage and its end for every two such photos
        (50 of each in the first minute with 100 of them in the folder), and so did one counter's
        photos when the try was the first of the two that raised the suspicion."""
        now = time.monotonic()
        error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, SubmitFailed) else str(exc)
        first = max(self.poll_s, 0.01)
        # the station's Retry-After (busy 5 s, a model timeout 30 s): its next try no sooner
        asked = retry_after(exc)
        begins = ("the station cannot take parts (%(error)s): %(file)s and the other files wait in %(folder)s; one "
                  "file is tried again every %(delay)g to %(most)g s"
                  + (f", or after the {asked:g} s the station asks" if asked else "")
                  + " (said again when the station takes parts)")
        before = self._faults.get(STATION_DOWN)
        told = False
        if before is not None and not before["told"]:
            # only suspected so far: counted here, not by LastingFaults.happens, which said "still
            # cannot take parts ... after 61 s" before the outage's first line when the try that
            # told it timed out (or the files set aside kept failing) a minute past the suspicion
            down = before
            down.tries += 1
            down.details.update(error=error, waiting=self.waiting)
            if suspected:
                down.unsaid += 1
            else:
                # a file not set aside failed too: the outage said now, as at its start
                told = True
                down["told"] = True
                down["file"] = shown_name(name)
                self._faults.log.log(logging.ERROR, begins, {**down.fields(now), "delay": first})
                down.said, down.unsaid = now, 0
        else:
            down = self._faults.happens(
                STATION_DOWN, logging.DEBUG if before is None and suspected else logging.ERROR, begins,
                still="the station still cannot take parts (%(error)s) after %(lasted).0f s; %(waiting)d files wait "
                      "in %(folder)s (%(tries)d tries)",
                start={"file": shown_name(name), "delay": first, "most": max(RETRY_MAX_S, first),
                       "told": not suspected},
                error=error, folder=self.folder, waiting=self.waiting)
        self._row = self._others = 0
        self._try_due = False
        down["retry_at"] = now + max(down["delay"], asked)
        down["delay"] = min(max(RETRY_MAX_S, self.poll_s), down["delay"] * 2)
        self._write_status(now, force=told or (down.tries == 1 and down["told"]))

    def _failed_on(self, name: str, exc: BaseException, sig: tuple[int, int, Optional[int]]) -> bool:
        """The station answered ``name`` with a failure of its own (HTTP 500), or gave no answer
        in the submit's time (a read timeout): the file's (a model that fails or hangs on that
        image) or the station's (failing on every part, hung) is told by the files around it. Set
        aside on its own try, the next file is tried at once: when the station takes parts, a
        file that fails again is its own and waits out of the way of the others; when the next
        file fails too, the station fails on every part: an outage, one try at a time, with other
        files at once when the try's file fails so (``OTHERS_MAX``; one after a timeout: a hung
        station is not asked nine parts of a minute each). Two 500s make it only suspected, said
        once a file not set aside fails too (_not_taking). ``sig``: the file's size, time and
        inode, a new file under the name is not this one. True when the file timed out on
        ``timeouts_max`` tries with other parts taken around them: given up (``_give_up``)."""
        now = time.monotonic()
        down = self._faults.get(STATION_DOWN)
        timed_out = timed_out_on_request(exc)
        error = f"{type(exc).__name__}: {exc}" if timed_out else str(exc)
        aside = self._aside.get(name)
        new = aside is None
        if aside is None:
            first = max(self.poll_s, 0.01)
            aside = self._aside[name] = AsideFile(sig, delay=first, most=max(ASIDE_MAX_S, first), taken=self._taken)
        # its own once the station took other parts since its last failure and fails on it again
        aside.failed(sig, error, self._taken, timed_out, now, first_time=new)
        self._aside_failed += 1
        if not aside.own:
            self._row += 1
            if down is None and self._row >= 2:
                # two files in a row, none taken: the station fails on every part, an outage said as one
                # (two 500s said once the try fails too: maybe two photos it fails on alone)
                self._not_taking(name, exc, suspected=not timed_out)
                return False
            if down is not None:
                if self._others:
                    self._others -= 1    # one of the try's others failed too: the try's wait stands
                elif not down["told"] and not new:
                    # an outage only suspected, tried with a file set aside (no other waited): its
                    # failing again is no news, nothing said; taken, the station takes parts
                    self._not_taking(name, exc, suspected=True)
                else:
                    # a station not taking parts that fails on its try's file: its next try waits,
                    # and as many others as it failed on, not set aside, are tried at once
                    self._not_taking(name, exc)
                    self._others = min(1 if timed_out else OTHERS_MAX,
                                       sum(not a.own for a in self._aside.values()))
                return False
        if timed_out and aside.timeouts >= self.timeouts_max:
            aside.given_up = True           # moved to failed/ by the caller (_give_up), said there
            return True
        fault = self._faults.get(("aside", name))
        if fault is not None:
            # said again with the others set aside, once a minute (_say_aside), not each on its own
            fault.tries += 1
            fault["error"] = error
            return False
        self._faults.happens(
            ("aside", name), logging.ERROR,
            "%(name)s: the station fails on this file (%(error)s): set aside and tried again every %(delay)g to "
            "%(most)g s, the files behind it go on (see the station's log for this part; move the file out of "
            "the folder to stop the tries)",
            start={"delay": max(self.poll_s, 0.01), "most": aside.most}, name=shown_name(name), error=error)
        self._aside_said = now
        return False

    def _say_aside(self, now: float) -> None:
        """The files set aside as their own, said together once a minute while any is (each is
        said once when set aside, and when taken or gone): 100 of them said 100 lines a minute."""
        own = sorted(n for n, a in self._aside.items() if a.own)
        if not own or now - self._aside_said < self._faults.repeat_s:
            return
        self._aside_said = now
        named = ", ".join(shown_name(n) for n in own[:5]) + (f" and {len(own) - 5} more" if len(own) > 5 else "")
        first = self._faults.get(("aside", own[0]))
        error = first["error"] if first is not None else self._aside[own[0]].error
        log.error("%d file(s) still set aside in %s, the station fails on them (%s: %s): %s; each is tried again "
                  "on its own up to %g s apart, the files behind them go on (see the station's log for these "
                  "parts; move the files out of the folder to stop the tries)", len(own), self.folder,
                  shown_name(own[0]), error, named, ASIDE_MAX_S)

    def _put_back(self, name: str) -> None:
        """A new file under the name of one set aside (or that file written again): the new
        part is no longer held by the old one's wait, nor said as it."""
        self._aside.pop(name, None)
        self._faults.ends(("aside", name), logging.INFO,
                          "%(name)s: written again; the file the station failed on (%(tries)d failures over "
                          "%(lasted).0f s) is gone, the new one is taken as any part")
        self._save_aside()

    def _taking_again(self) -> None:
        # the station answered (took or refused a part): the files set aside by failures not yet
        # told as theirs are tried again at once, in the folder's order; failing again now, with
        # a part taken since, they are their own
        self._taken += 1
        self._taken_at = time.monotonic()
        self._aside_failed = 0
        self._row = self._others = 0
        if self._faults.ends(ONLY_ASIDE, logging.WARNING,
                             "the station answered a part again after %(lasted).0f s with only set-aside files in "
                             "%(folder)s") is not None:
            self._write_status(time.monotonic(), force=True)
        for aside in self._aside.values():
            if not aside.own:
                aside.retry_at = float("-inf")
        down = self._faults.get(STATION_DOWN)
        if down is not None and not down["told"]:
            ended = self._faults.ends(STATION_DOWN)      # suspected, never said: ends unsaid
        else:
            ended = self._faults.ends(STATION_DOWN, logging.WARNING,
                                      "the station takes parts again after %(lasted).0f s (%(tries)d tries failed; "
                                      "%(error)s); %(waiting)d files waited", waiting=self.waiting)
        if ended is not None:
            # those set aside in the outage and passed in this pass are tried next (poll_once), in
            # the folder's order; others wait for the next pass, behind the parts the line goes on
            # with (a file timing out holds the line a minute at each try)
            self._again = any(not a.own for a in self._aside.values())
            self._write_status(time.monotonic(), force=True)

    @staticmethod
    def _station_fault(exc: BaseException) -> bool:
        return station_fault(exc)

    # -- one file ---------------------------------------------------------------------
    @staticmethod
    def _ino(st: os.stat_result) -> Optional[int]:
        """A file's inode number; None where the file system gives none (0: some SMB shares,
        FAT on Windows), so that every file there is not taken for the same one."""
        return st.st_ino or None

    def _still(self, path: Path, sig: tuple[int, int], ino: Optional[int], sha256: Optional[str] = None) -> bool:
        """Whether the file at ``path`` is still the one looked at (same size, time and
        inode): not removed, nor written again under the same name meanwhile. Without an
        inode number (a share that gives none) a file renamed over it with the same size
        and time is told by its SHA-256 (``sha256``: the bytes inspected), read again."""
        try:
            st = path.lstat()
        except FileNotFoundError:
            return False
        if (st.st_size, st.st_mtime_ns) != sig:
            return False
        if ino is not None:
            return self._ino(st) == ino
        if sha256 is not None:
            # gone or a link meanwhile (None): not the file inspected, never moved as it
            return self._sha256(path) == sha256
        return True

    def _sha256(self, path: Path) -> Optional[str]:
        """The SHA-256 of the file at ``path`` (read in blocks, not held whole); None when
        it is gone or became a link."""
        fd = self._open(path)
        if fd is None:
            return None
        h = hashlib.sha256()
        with os.fdopen(fd, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()

    def _same_as_handled(self, path: Path, done: dict[str, Any], ino: Optional[int]) -> bool:
        """Whether the file at ``path`` (name, size and time of a file handled) is the file
        handled: a restart after a crash between the journal and the move, or a move that
        failed (done/ not writable), where only the move is left to do. Not when a camera
        wrote a new photo under the name with the same size and time (a fixed-size BMP, a
        share keeping times to 2 s): that is a new part."""
        if done["ino"] is not None and ino is not None:
            return done["ino"] == ino      # read by this process: the inode tells, no read needed
        if done["sha256"] is None:
            # refused from its name, size or link alone (never read): any file there with
            # that name, size and time is refused for the same reason
            return True
        if self._sha256(path) != done["sha256"]:
            # another photo, or gone or a link meanwhile (None): taken as any file is (a
            # link refused as one, a file gone passed over)
            return False
        done["ino"] = ino                  # the same file: not read again while its move fails
        return True

    def _finish(self, path: Path, done: dict[str, Any]) -> bool:
        """Finish the move of a file handled before (to failed/ with its reason when it was
        refused, to done/ otherwise); whether it moved (else said with NOT_MOVED)."""
        what = self.not_moved.get(path.name) or "handled before"
        if done["status"] == "failed":
            where = self._moved_out(path, self.failed_dir, what, None,
                                    reason=done["reason"] or "refused (see the watcher's log)", journal_tried=False)
            if where and where != _GONE.format(folder=self.failed_dir.name):
                log.warning("%s moved to %s/ (refused before)%s", shown_name(path.name), self.failed_dir.name, where)
        else:
            where = self._moved_out(path, self.done_dir, what, None, journal_tried=False)
        return where is not None

    def _moved_out(self, path: Path, folder: Path, what: str, unjournalled: Optional[OSError],
                   reason: Optional[str] = None, journal_tried: bool = True) -> Optional[str]:
        """Move a file handled (``what`` came of it: "judged and stored (id 12, OK)") to
        ``folder``, done/ or failed/ (there with ``reason`` beside it: :meth:`_to_failed`); what
        the log line adds about where it went, or None when it could not be moved. Such a file
        stays in the folder, kept as handled: never sent again while the watcher runs, not
        counted as waiting, moved when the folder takes it again; said once, then once a minute
        (NOT_MOVED), not as a file "not handled" at every retry. ``unjournalled``: the error
        the journal gave for it (the folder read-only: it cannot say a restart has it)."""
        try:
            if reason is not None:
                where = self._to_failed(path, reason)
            else:
                self._move(path, folder)
                where = ""
        except OSError as exc:
            if exc.errno == errno.ENOENT and not os.path.lexists(path):
                # gone between the look (_still) and the move: taken from the folder meanwhile (a
                # person, the camera's own clean-up). Nothing is left to move and nothing is wrong
                # with done/ or failed/: before, it was said at ERROR as a folder that "does not
                # take it", with advice to check its permissions and free space
                self.not_moved.pop(path.name, None)
                log.debug("%s (%s) was gone from the folder before it could be moved to %s/", shown_name(path.name),
                          what, folder.name)
                return _GONE.format(folder=folder.name)
            self._not_moved(path, folder, what, exc, unjournalled, journal_tried)
            return None
        self.not_moved.pop(path.name, None)
        if unjournalled is not None:
            self._faults.happens(
                JOURNAL_FAULT, logging.WARNING,
                "the journal %(path)s cannot be written (%(error)s): the files still go to done/ and failed/, but "
                "one judged and not yet moved when the watcher stops is sent again at its next start (the station "
                "answers the record it has); check the folder's permissions and free space",
                path=self._journal_path, error=f"{type(unjournalled).__name__}: {unjournalled}")
        return where

    def _not_moved(self, path: Path, folder: Path, what: str, exc: OSError,
                   unjournalled: Optional[OSError], journal_tried: bool = True) -> None:
        """Say that ``path`` (``what`` came of it) cannot leave the folder for ``folder``.
        ``journal_tried``: the journal was written for it just now (``unjournalled`` its error)."""
        self.not_moved[path.name] = what
        self._seen.pop(path.name, None)     # its move tried again once it settles again, not at every poll
        # which folder is read-only, and whether the journal has the file, as it is: a done/ mounted
        # read-only was said as "the hot folder is read-only ... nor recorded in the journal" while the
        # folder took the journal's entry. The journal's own answer tells the hot folder's state;
        # where it was not written here (a move finished later), the mount's flag does
        folder_ro = getattr(unjournalled, "errno", None) == errno.EROFS or (
            not journal_tried and exc.errno == errno.EROFS and _mounted_read_only(self.folder))
        if folder_ro:
            why = f"{self.folder} is read-only"
            stays = (f"it can be neither moved to {folder.name}/ nor recorded in the watcher's journal, so it stays "
                     "in the folder" if unjournalled is not None else
                     f"it cannot be moved to {folder.name}/, so it stays in the folder")
            fix = "make the folder writable (mount it read-write): the files are moved then"
        elif exc.errno == errno.EROFS:
            why = f"{folder} is read-only"
            stays = (f"it cannot be moved into it, so it stays in {self.folder}"
                     + (" (it is recorded in the watcher's journal: a restart does not send it again)"
                        if journal_tried and unjournalled is None else
                        f", and the watcher's journal cannot be written either ({unjournalled})"
                        if unjournalled is not None else ""))
            fix = (f"make {folder} writable (mount it read-write), or give the watcher a writable {folder.name}/: "
                   "the files are moved then")
        else:
            why = f"{folder.name}/ does not take it ({type(exc).__name__}: {exc})"
            stays = "it stays in the folder" + (f", and the watcher's journal cannot be written either "
                                                f"({unjournalled})" if unjournalled is not None else "")
            fix = f"check {folder.name}/'s permissions and free space: the files are moved then"
        restart = ("; after a restart it is sent again and the station answers the record it has, no second part"
                   if unjournalled is not None else "")
        left = sorted(self.not_moved)
        named = ", ".join(shown_name(n) for n in left[:5]) + (f" and {len(left) - 5} more" if len(left) > 5 else "")
        self._faults.happens(
            NOT_MOVED, logging.ERROR,
            "%(name)s: %(what)s, but %(why)s: %(stays)s. It is not sent again while this watcher runs%(restart)s; "
            "%(fix)s",
            still="still %(files)d files judged but left in the folder (%(named)s): %(why)s; %(fix)s",
            name=shown_name(path.name), what=what, why=why, stays=stays, restart=restart, fix=fix,
            files=len(left), named=named, folder=self.folder)

    def _left_in_place(self, path: Path, what: str) -> None:
        """A file handled (recorded, journalled) but no longer the one at its name: left."""
        if path.exists() or path.is_symlink():
            log.warning("%s was written again while it was being inspected: the file inspected was %s and is not "
                        "in %s/ (it was overwritten), the new file stays in the folder and is inspected as a new "
                        "part; have the camera write a new name for each part", shown_name(path.name), what,
                        self.done_dir.name)
        else:
            log.warning("%s was removed from the folder while it was being inspected: the file inspected was %s",
                        shown_name(path.name), what)

    def _take(self, path: Path, sig: tuple[int, int], stable_s: float, ino: Optional[int] = None) -> bool:
        key = self._entry_key(path.name, *sig)
        done = self._handled.get(key)
        if done is not None:
            if self._same_as_handled(path, done, ino):
                # handled (before a restart, or a move that failed) but not moved: finish
                # the move only; never inspected twice
                if self._finish(path, done):
                    self.counts["skipped"] += 1
                return False
            log.info("%s is a new file with the name, size and time of one handled before (another photo): "
                     "inspected as a new part", shown_name(path.name))
        undecodable = bad_name_bytes(path.name)
        if undecodable is not None:
            # the part id is the file's name: sent on as it is it could be neither encoded for
            # the station nor stored ("will retry" for ever, the file left in the folder); a
            # guessed id (bytes replaced) would record a part id the line's own systems never
            # use, and two names could become one id. Refused, the image waits in failed/ to
            # be renamed and dropped in again.
            self._refuse(path, sig, None, f"the file name is not valid UTF-8 text (bytes {undecodable} in "
                                          f"{os.fsencode(path.name)!r}), so it cannot be a part id; rename the "
                                          "file and drop it in again, and have the camera or the share write "
                                          "file names as UTF-8", ino)
            return True
        spaced = self._spaced_part_id(path)
        if spaced is not None:
            self._refuse(path, sig, None, spaced, ino)
            return True
        if path.is_symlink():
            self._refuse(path, sig, None, "the file is a symbolic link; the watcher does not "
                                          "follow links, copy the image itself into the folder", ino)
            return True
        if sig[0] > self.max_bytes:
            # from the size alone: reading it whole (again at every poll while it looked
            # incomplete) took the watcher's memory, and the station refuses it anyway
            # in MiB, as --max-upload-mb counts: the limit reads back as it was given
            mib = 1024 * 1024
            self._refuse(path, sig, None, f"the file is {sig[0] / mib:.1f} MiB, over the station's upload limit "
                                          f"of {self.max_bytes / mib:g} MiB; send a smaller image, or raise "
                                          "--max-upload-mb (and the station's own, with --server)", ino)
            return True
        waiting = stable_s < self.incomplete_after_s
        if sig[0] == 0:
            # a camera or copy step may create the file first and fill it later: waited
            # for like any incomplete file, never moved away under the writer
            if waiting:
                self._writing.add(path.name)
                return False
            self._refuse(path, sig, None, f"the file is empty (0 bytes) and stayed empty for {stable_s:.0f} s; "
                                          "the camera or copy step may have failed, re-capture the part", ino)
            return True
        # a BMP, TIFF or WebP ending in 4 KB of zeros may be a copy that set its size first, or
        # simply a dark photo (a black conveyor at a BMP's top rows, a TIFF's bottom ones): a
        # copy being filled keeps changing, so one unchanged for ZERO_TAIL_SETTLE_S is taken
        # (dark photos waited the whole --incomplete-after, 60 s, each)
        zero_tail = stable_s < ZERO_TAIL_SETTLE_S
        if waiting:
            if self._corrupt.get(path.name) == sig:
                return False   # refused as corrupt unchanged: looked at again once it changes or at the end
        aside = self._aside.get(path.name)
        if aside is not None and aside.given_up:
            # given up, its move not done (failed/ not writable, a restart in between): not sent again
            self._give_up(path, sig, ino)
            return True
        if self._held(path.name):
            return False   # the station cannot take parts (one file at the next try, not each), or set aside
        if waiting:
            whole = self._peek(path, sig[0], zero_tail=zero_tail)
            if whole is None:
                self._seen.pop(path.name, None)   # gone or changed: wait for it to settle again
                return False
            if not whole:
                self._writing.add(path.name)
                return False   # a paused writer: look again next poll (size and time still checked)
        self._read_stat = None
        data = self._read(path)
        st = self._read_stat
        if data is None or st is None:
            self._seen.pop(path.name, None)   # gone: listed again if it comes back
            return False
        if len(data) != sig[0] or (st.st_size, st.st_mtime_ns) != sig or \
                (ino is not None and self._ino(st) != ino):
            # changed under us (written again, or replaced by a new file of that name,
            # between the look and the end of the read): wait for it to settle again
            self._seen.pop(path.name, None)
            return False
        if not looks_complete(data, zero_tail=zero_tail) and waiting:
            self._writing.add(path.name)
            return False   # rewritten between the look and the read: look again next poll
        if zero_head(data[:_HEAD]):
            # made at its full size and never filled (waited for as an empty file is): the
            # station would call it "not an image", which reads as a wrong format, not as a
            # copy or camera that stopped
            self._refuse(path, sig, data, f"the file is {sig[0]} bytes but its start is still zero bytes, and it "
                                          f"stayed so for {stable_s:.0f} s (a copy or camera that set its size "
                                          "first never filled it): the camera or copy step may have failed, "
                                          "re-capture the part", ino)
            return True
        return self._handle(path, sig, data, waiting=waiting, ino=self._ino(st))

    def _give_up(self, path: Path, sig: tuple[int, int], ino: Optional[int]) -> None:
        """Move a file whose request timed out on ``timeouts_max`` tries (the station taking other
        parts around them) to failed/ with its reason: each try held the line for the submit's
        whole timeout, a minute every two for as long as it stayed. Said once, and in the status
        (``given_up``). Not journalled: the station never answered, so the file copied into the
        folder again is a new try (the station's idempotency covers a part it did record)."""
        aside = self._aside.get(path.name)
        if not self._still(path, sig, ino):
            # a new photo under its name since (or gone): that one is a new part, taken in its turn
            self._put_back(path.name)
            return
        tries = aside.timeouts if aside is not None else self.timeouts_max
        since = aside.since_wall if aside is not None else None
        lasted = max(0.0, time.time() - since) if since is not None else None
        over = "" if lasted is None else f" over {lasted:.0f} s" if lasted < 120 else f" over {lasted / 60:.0f} min"
        reason = (f"the station gave no answer on this file in the submit's time on {tries} tries{over}, while it "
                  f"took other parts ({aside.error if aside is not None else 'ReadTimeout'}): moved here so that it no longer holds "
                  "the line (each try held it for the whole timeout). See the station's log for this part (a model "
                  "hanging on this image), then put the file back into the folder to have it inspected")
        where = self._to_failed(path, reason)
        self._aside.pop(path.name, None)
        self._save_aside()
        self._faults.ends(("aside", path.name))     # said below, with where it went
        self.counts["failed"] += 1
        self._given_up_n += 1
        self._given_up_wall = time.time()
        self.given_up.append(path.name)
        del self.given_up[:-ASIDE_NAMED]
        log.error("%s given up and moved to %s/: %s%s", shown_name(path.name), self.failed_dir.name, reason, where)
        self._write_status(time.monotonic(), force=True)

    def _spaced_part_id(self, path: Path) -> Optional[str]:
        """Why the part id of ``path`` cannot be used as it is, when it begins or ends with a
        space (or is only spaces); None when it can. The station drops a part id's
        surrounding spaces (a PLC's padding), so " a.png" was recorded as part "a", the part
        of "a.png": two photos under one id and no word of it, the later verdict taken for
        the part's. Refused, the image waits in failed/ to be renamed."""
        part_id = self.part_id_from(path)
        if part_id == part_id.strip():
            return None
        if not part_id.strip():
            return (f"the file name {shown_name(path.name)!r} holds no part id (only spaces before its suffix); "
                    "rename the file with the part's id and drop it in again")
        return (f"the part id from the file name, {shown_name(part_id)!r}, begins or ends with a space; the "
                f"station drops such spaces, so it would be recorded as part {shown_name(part_id.strip())!r}, "
                f"the same part as a file named {shown_name(part_id.strip() + path.suffix)!r}. Rename the file "
                "without the spaces and drop it in again (a camera numbering its photos: pad the numbers with "
                "zeros, not spaces)")

    @staticmethod
    def _open(path: Path) -> Optional[int]:
        # O_NOFOLLOW: a file swapped for a link between the listing and the read is
        # refused by the kernel, not read through
        try:
            return os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return None   # became a link: listed again next poll and refused as one
            raise

    def _read(self, path: Path) -> Optional[bytes]:
        """The file's bytes (None when it is gone); its state once read, from the open file
        (the one read, not whatever has the name by then), in ``_read_stat``."""
        fd = self._open(path)
        if fd is None:
            return None
        with os.fdopen(fd, "rb") as fh:
            data = fh.read()
            self._read_stat = os.fstat(fh.fileno())
            return data

    @classmethod
    def _peek(cls, path: Path, size: int, zero_tail: bool = True) -> Optional[bool]:
        """Whether the file looks whole (:func:`looks_complete`) from its ends and, for a
        JPEG or TIFF, its structure (a few small reads, never the whole file); None when it
        is gone or no longer ``size`` bytes long."""
        fd = cls._open(path)
        if fd is None:
            return None
        with os.fdopen(fd, "rb") as fh:
            head = fh.read(_HEAD)
            return _whole(fh, head, size, zero_tail=zero_tail)

    def _was_refused(self, name: str, reason: str) -> None:
        """Keep what the status says of a refused file: its name among the latest, when and why
        (the station's /health fault named none of them: only the count reached it)."""
        self.refused.append(name)
        del self.refused[:-ASIDE_NAMED]
        self._refused_wall = time.time()
        self._refused_reason = reason[:500]

    def _refuse(self, path: Path, sig: tuple[int, int], data: Optional[bytes], reason: str,
                ino: Optional[int] = None) -> None:
        entry = {"name": path.name, "size": sig[0], "mtime_ns": sig[1], "part_id": None,
                 "sha256": hashlib.sha256(data).hexdigest() if data is not None else None, "at": time.time(),
                 "status": "failed", "reason": reason}
        unjournalled = self._journal_kept(entry)
        self._handled[self._entry_key(path.name, *sig)] = _done_entry("failed", reason, entry["sha256"], ino)
        self.counts["failed"] += 1
        self._was_refused(path.name, reason)
        if not self._still(path, sig, ino, entry["sha256"]):
            # a new file under the name since it was looked at: never moved to failed/ with
            # the reason of the file before it
            self._left_in_place(path, f"refused ({reason})")
            return
        where = self._moved_out(path, self.failed_dir, "refused", unjournalled, reason=reason)
        log.warning("%s refused: %s%s", shown_name(path.name), reason, _LEFT if where is None else where)

    def _handle(self, path: Path, sig: tuple[int, int], data: bytes, waiting: bool = False,
                ino: Optional[int] = None) -> bool:
        part_id = self.part_id_from(path)
        entry = {"name": path.name, "size": sig[0], "mtime_ns": sig[1], "part_id": part_id,
                 "sha256": hashlib.sha256(data).hexdigest(), "at": time.time()}
        asked = time.monotonic()
        try:
            result = self.submit(data, part_id, path.name)
        except SubmitRefused as exc:
            self._answered.append((time.monotonic(), time.monotonic() - asked))
            self._taking_again()   # the station answered: it takes parts
            if waiting and exc.code in _MAYBE_UNFINISHED:
                # a file that looked whole but does not decode may be one a copy has not
                # filled yet (its size set first): waited for like any incomplete file, sent
                # again when it changes and refused only after --incomplete-after
                self._corrupt[path.name] = sig
                self._writing.add(path.name)
                log.info("%s does not decode yet (%s); waiting for its writer up to %g s", shown_name(path.name), exc,
                         self.incomplete_after_s)
                return False
            entry.update(status="failed", reason=str(exc))
            unjournalled = self._journal_kept(entry)
            self._handled[self._entry_key(path.name, *sig)] = _done_entry("failed", str(exc), entry["sha256"], ino)
            self.counts["failed"] += 1
            self._was_refused(path.name, str(exc))
            self._corrupt.pop(path.name, None)
            # the submit takes seconds (a first part's model load, a slow --server): a camera
            # writing the same name meanwhile left a new part there, not this file
            if not self._still(path, sig, ino, entry["sha256"]):
                self._left_in_place(path, f"refused ({exc})")
                return True
            where = self._moved_out(path, self.failed_dir, "refused by the station", unjournalled, reason=str(exc))
            log.warning("%s refused: %s%s", shown_name(path.name), exc, _LEFT if where is None else where)
            return True
        except Exception as exc:  # noqa: BLE001 - station down, disk full, no model yet: retry next poll
            if failed_on_request(exc) or timed_out_on_request(exc):
                # the file's or the station's: told by the files around it
                given_up = self._failed_on(path.name, exc, (*sig, ino))
                self._save_aside()
                if given_up:
                    self._give_up(path, sig, ino)
                    return True
                return False
            if self._station_fault(exc):
                self._not_taking(path.name, exc)   # said once for the outage, not for each file
                return False
            self._faults.happens(("submit", path.name), logging.ERROR,
                                 "%(name)s not inspected yet (%(error)s); will retry",
                                 name=shown_name(path.name), error=f"{type(exc).__name__}: {exc}")
            self._seen.pop(path.name, None)
            return False
        self._answered.append((time.monotonic(), time.monotonic() - asked))
        self._taking_again()
        self._faults.ends(("submit", path.name))     # inspected: its fault is over, unsaid as before
        if self._aside.pop(path.name, None) is not None:
            self._faults.ends(("aside", path.name), logging.INFO,
                              "%(name)s: the station takes this file again (%(tries)d failures over %(lasted).0f s)")
            self._save_aside()
        self._corrupt.pop(path.name, None)
        entry.update(status="done", id=result.get("id"), verdict=result.get("verdict"))
        # kept as handled also when the journal cannot be written (a folder mounted read-only):
        # an exception here left the part unknown, sent again at every retry and never counted
        unjournalled = self._journal_kept(entry)
        self._handled[self._entry_key(path.name, *sig)] = _done_entry("done", None, entry["sha256"], ino)
        self.counts["done"] += 1
        # written again under the same name while it was inspected (a camera that always
        # writes image.bmp): the new file is a new part, never moved to done/ unjudged
        if not self._still(path, sig, ino, entry["sha256"]):
            self._left_in_place(path, f"recorded ({result.get('verdict')}, id {result.get('id')})")
        else:
            self._moved_out(path, self.done_dir, f"judged and stored (id {result.get('id')}, "
                                                 f"{result.get('verdict')})", unjournalled)
        if result.get("created") is False:
            # the station answered the record it has (the same part id and image: its idempotency),
            # and its verdict line gave that record's id with no word that nothing new was counted
            log.warning("%s: same photo as part id %s, already recorded (record id %s, %s): not counted again; "
                        "a camera that repeats a photo under one name: give each part its own photo and name",
                        shown_name(path.name), result.get("part_id", part_id), result.get("id"),
                        result.get("verdict"))
        # the verdict line also for a part that could not leave the folder: it was judged
        if self.on_result:
            self.on_result(path, result)
        return True

    # -- done/ and failed/ ------------------------------------------------------------------
    def _out_folder_problem(self, folder: Path) -> Optional[str]:
        """What keeps ``folder`` (done/ or failed/) from taking files, and what to do; None when
        it is a folder, or not there (made at the first move)."""
        try:
            st = os.lstat(folder)
        except FileNotFoundError:
            return None
        except OSError as exc:
            return f"{shown_name(str(folder))} cannot be looked at ({exc}); check its permissions"
        if stat.S_ISDIR(st.st_mode):
            return None
        if stat.S_ISLNK(st.st_mode):
            try:
                to = f" (to {shown_name(os.readlink(folder))})"
            except OSError:
                to = ""
            return (f"{shown_name(str(folder))} is a symbolic link{to}: the watcher moves no file through a link "
                    "(it could lead anywhere on the station PC); remove the link and make it a real folder "
                    f"(mkdir {shown_name(str(folder))}), or move the folder it points to there")
        return (f"{shown_name(str(folder))} is a file, not a folder: the watcher cannot move files into it; move "
                "that file out of the way (the watcher then makes the folder)")

    def _out_folders_usable(self) -> bool:
        """Whether done/ and failed/ can take files (each a folder, or not there yet): said when
        they cannot (OUT_FOLDERS: once, then once a minute, and in the status) and when they can
        again. Checked at each look at the folder, and again at each move (_out_folder_fd)."""
        problems = [p for p in (self._out_folder_problem(f) for f in (self.done_dir, self.failed_dir)) if p]
        if problems:
            fault = self._faults.happens(
                OUT_FOLDERS, logging.ERROR,
                "%(problem)s. No file is taken meanwhile: the files wait in %(folder)s, and are taken once it is "
                "fixed (nothing else to do)",
                still="still no file taken: %(problem)s; %(waiting)d files wait in %(folder)s (for %(lasted).0f s)",
                problem="; ".join(problems), folder=self.folder, waiting=self.waiting)
            if fault.tries == 1:
                self._write_status(time.monotonic(), force=True)
            return False
        if self._faults.ends(OUT_FOLDERS, logging.WARNING,
                             "done/ and failed/ take files again after %(lasted).0f s: the %(waiting)d files waiting "
                             "in %(folder)s are taken", waiting=self.waiting) is not None:
            self._write_status(time.monotonic(), force=True)
        return True

    def _out_folder_fd(self, folder: Path) -> Optional[int]:
        """``folder`` (done/ or failed/), made when missing, opened for a move or a reason file to
        go into it, never through a symbolic link: a link put there after the look at the
        folder is refused by the kernel, not followed (a done/ swapped for a link sent every
        part out of the hot folder). OutFolderRefused when it is a link or not a folder. None
        where the OS opens no folders (Windows): the folder is checked just before."""
        for _ in range(3):
            problem = self._out_folder_problem(folder)
            if problem is not None:
                raise OutFolderRefused(errno.ENOTDIR, problem)
            if not _DIR_FDS:
                folder.mkdir(parents=True, exist_ok=True)
                return None
            try:
                return os.open(folder, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW)
            except FileNotFoundError:
                folder.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.mkdir(folder)
                except FileExistsError:
                    pass          # made meanwhile (or a link put there): looked at again above
            except NotADirectoryError:
                pass              # a link or a file put there since the look: said above
        raise OutFolderRefused(errno.ENOTDIR, self._out_folder_problem(folder) or
                               f"{shown_name(str(folder))} keeps changing; the watcher tries again")

    def _move(self, path: Path, folder: Path) -> Path:
        """Move the file at ``path`` into ``folder`` (done/ or failed/) under its own name, or
        with the time added when that is taken (a camera counter that reset: both kept); where
        it went. The file itself, a link as a link: a rename, never a read."""
        fd = self._out_folder_fd(folder)
        if fd is None:
            target = folder / _free_name(path.name, lambda n: os.path.lexists(folder / n))
            shutil.move(str(path), str(target))
            return target
        try:
            name = _free_name(path.name, lambda n: _lexists(n, fd))
            src = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                try:
                    os.rename(path.name, name, src_dir_fd=src, dst_dir_fd=fd)
                except OSError as exc:
                    if exc.errno != errno.EXDEV:
                        raise
                    _copy_across(path.name, src, name, fd)    # done/ given on another disk
            finally:
                os.close(src)
        finally:
            os.close(fd)
        return folder / name

    def _write_reason(self, target: Path, reason: str) -> Path:
        """Write why ``target`` (a file in failed/) was refused beside it: ``<name>.reason.txt``, or
        the name cut short where that passes NAME_MAX (:func:`reason_name`). Written as a new
        file renamed into place, through the open folder: a link planted under the reason's
        name is replaced, never written through. Where it is."""
        name = reason_name(target.name)
        text = f"{shown_name(target.name)}: {reason}\n".encode("utf-8")
        fd = self._out_folder_fd(target.parent)
        if fd is None:
            (target.parent / name).write_bytes(text)
            return target.parent / name
        tmp = f".reason-{os.getpid()}-{threading.get_ident()}.tmp"
        try:
            try:
                os.unlink(tmp, dir_fd=fd)     # left by a crash
            except FileNotFoundError:
                pass
            out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644, dir_fd=fd)
            with os.fdopen(out, "wb") as fh:
                fh.write(text)
            os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
        finally:
            os.close(fd)
        return target.parent / name

    def _to_failed(self, path: Path, reason: str) -> str:
        """Move a refused file to failed/ with its reason beside it; what the log line adds to
        the reason: where the file and its reason are when not under the file's own name (a
        long name: its reason was in a file named by a hash, and the log said nothing of it),
        or that the reason could not be written (then the log line is all there is of it)."""
        target = self._move(path, self.failed_dir)
        where = f"{self.failed_dir.name}/"
        notes = []
        if target.name != path.name:
            notes.append(f"moved as {where}{shown_name(target.name)}")
        try:
            written = self._write_reason(target, reason)
        except OSError as exc:
            notes.append(f"its reason could not be written beside it ({exc}): it is only in this log line")
        else:
            if written.name != target.name + REASON_SUFFIX:
                notes.append(f"the reason is in {where}{shown_name(written.name)} (the name leaves no room for "
                             f"{REASON_SUFFIX})")
        return "".join(f"; {n}" for n in notes)

    def run(self, stop_after: Optional[float] = None) -> None:
        """Poll until :meth:`stop` (or ``stop_after`` seconds)."""
        t_end = None if stop_after is None else time.monotonic() + stop_after
        # a second watcher on the folder is refused here, before it takes a file (FolderInUse)
        self._guard()
        self._running = True
        try:
            while not self._stop.is_set():
                try:
                    self.poll_once()
                except Exception as exc:  # noqa: BLE001 - e.g. the share went away for a moment
                    self._faults.happens(SCAN, logging.ERROR, "scanning %(folder)s failed (%(error)s); trying again",
                                         folder=self.folder, error=f"{type(exc).__name__}: {exc}")
                else:
                    self._faults.ends(SCAN, logging.INFO, "scanning %(folder)s works again", folder=self.folder)
                if t_end is not None and time.monotonic() >= t_end:
                    break
                self._stop.wait(self.poll_s)
        finally:
            # also after Ctrl-C (KeyboardInterrupt out of the loop): "running": false, not a
            # watcher that hangs (the station's /health said "stopped or hung" a minute later)
            self._running = False
            self._count_left()
            self._write_status(time.monotonic(), force=True)
            self._say_faults_at_stop()

    def _say_faults_at_stop(self) -> None:
        """A stop in the middle of a station outage or a backlog ends what was said when it
        began: a run stopped (Ctrl-C, SIGTERM) while the station was down said its start and
        then nothing, and the log read as if the outage lasted on, with no count of its tries
        nor of the files left waiting."""
        down = self._faults.get(STATION_DOWN)
        if down is not None and not down["told"]:
            self._faults.ends(STATION_DOWN)              # suspected, never said
        self._faults.ends(STATION_DOWN, logging.WARNING,
                          "stopped while the station could not take parts (for %(lasted).0f s, %(tries)d tries "
                          "failed; %(error)s): %(waiting)d files wait in %(folder)s for the next start",
                          waiting=self.waiting)
        self._faults.ends(BEHIND, logging.WARNING,
                          "stopped while behind the line (for %(lasted).0f s): %(waiting)d files wait in "
                          "%(folder)s for the next start", waiting=self.waiting, folder=self.folder)

    def stop(self) -> None:
        """End :meth:`run` (Ctrl-C, SIGTERM): the file in hand is finished, no other taken."""
        self._stop.set()

    def close(self) -> None:
        """Give the folder back to another watcher (its lock: folder_lock); also when this
        watcher is dropped, or its process ends."""
        self._lock_finalizer()
        self._locked = False


class StationHeartbeat:
    """Sends a --server watcher's status to the station it posts parts to
    (``POST /api/v1/watchers/heartbeat``, with the watcher's key), so the station's /health
    and /metrics see a watcher on another PC (no shared data folder) behind the line or
    gone, as they see a local one's status file.

    Called by :class:`FolderWatcher` with each status it writes (every STATUS_EVERY_S, and
    at once when its state changes); the status is sent from a thread of its own, the newest
    only, so a station down or slow never holds the folder's files. A hung watcher writes no
    status and so sends none: the station finds it silent. A station that answers 404 (an
    older one, without heartbeats) is said once and asked again every OLD_STATION_RETRY_S;
    other failures (station down, key refused) are said when they start, then once a minute.
    :meth:`close` sends the last status (``running`` false: the station forgets the watcher)."""

    def __init__(self, url: str, api_key: Optional[str] = None, client: Any = None, timeout_s: float = 3.0):
        if client is None:
            import httpx
            client = httpx.Client(base_url=url.rstrip("/"), headers={"X-API-Key": api_key or ""},
                                  timeout=timeout_s)
        from ..config import without_password
        self.url = without_password(url)     # as the log names the station: never its password
        self._client = client
        self._host = _host_name()
        self._cond = threading.Condition()
        self._pending: Optional[dict[str, Any]] = None
        self._closed = False
        self._thread: Optional[threading.Thread] = None
        self._old_station_at: Optional[float] = None      # a 404 answered then (monotonic)
        self._said_old = False
        self._failing = LastingFaults(log)                 # sends failing: said once a minute
        self.sent = 0                                      # heartbeats the station took
        self._stop: Optional[dict[str, Any]] = None        # the clean stop's status, once handed over
        self.stop_told = False                             # whether the station took it
        self._last_error: Optional[str] = None             # why the last send failed
        self._worth_again = False                          # whether that failure may pass (not a refusal)

    def __call__(self, status: dict[str, Any]) -> None:
        with self._cond:
            if self._closed:
                return
            self._pending = dict(status)                   # only the newest is worth sending
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="lineguard-heartbeat", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                status, self._pending = self._pending, None
                if status is None:
                    return                                 # closed, nothing left to send
                # the clean stop's status is the one close() says of when it did not get through
                stopping = status.get("running") is False
                self._stop, self.stop_told = (status if stopping else None), False
            if stopping:
                self._send_stop(status)
            else:
                self.send(status)

    def _send_stop(self, status: dict[str, Any]) -> None:
        """Send a clean stop's status, tried again for STOP_RETRY_S while the station cannot be
        reached or answers 5xx (not when it refuses the key: a retry does not cure that), and
        not once a newer status was handed over (the watcher runs again). Only where the
        station took a heartbeat of this run: one it never reached (down all along) has
        nothing of it to forget, and the stop is not held for it."""
        give_up_at = time.monotonic() + STOP_RETRY_S
        while True:
            if self.send(status):
                self.stop_told = True
                return
            if not (self._worth_again and self.sent) or time.monotonic() + STOP_RETRY_EVERY_S > give_up_at:
                return
            with self._cond:
                if self._pending is not None:
                    return
                self._cond.wait(STOP_RETRY_EVERY_S)
                if self._pending is not None:
                    return

    def close(self, timeout_s: float = 5.0) -> None:
        """Send the last status handed over (a clean stop's), then stop."""
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
        stop = self._stop
        if stop is not None and not self.stop_told and self.sent:
            # the station saw this watcher running and was not told it stopped: said here,
            # with what the station shows meanwhile and how that ends, not left to be found
            log.warning("the station at %s was not told that this watcher stopped (%s): its /health shows "
                        "'watcher %s/%s' as stopped or hung from a minute on, until a watcher of %s sends it "
                        "heartbeats again, for %.0f h at most (or delete that watcher's heartbeat-*.json file in "
                        "the station's watchers/ folder)", self.url, self._last_error or "no answer in time",
                        stop.get("line", "?"), stop.get("station", "?"),
                        os.path.abspath(str(stop.get("folder", "?"))), FORGET_AFTER_S / 3600)

    def send(self, status: dict[str, Any]) -> bool:
        """Send one status now; whether the station took it."""
        now = time.monotonic()
        self._worth_again = False
        if self._old_station_at is not None and now - self._old_station_at < OLD_STATION_RETRY_S:
            return False     # an older station: asked again only every OLD_STATION_RETRY_S
        body = {**status, "host": self._host, "folder": os.path.abspath(str(status.get("folder", ""))),
                "sent": time.time()}
        try:
            r = self._client.post(HEARTBEAT_PATH, json=body)
        except Exception as exc:  # noqa: BLE001 - down, unreachable, timed out: the next status is tried
            self._worth_again = True
            self._failed(f"{type(exc).__name__}: {exc}")
            return False
        if r.status_code == 404:
            self._old_station_at = now
            if not self._said_old:
                self._said_old = True
                log.warning("the station at %s does not take watcher heartbeats (HTTP 404: a lineguard older than "
                            "this watcher, or a URL that is not the station's): its /health cannot tell when this "
                            "watcher is behind or stopped; parts are sent as before. Update the station; asked "
                            "again every %.0f min", self.url, OLD_STATION_RETRY_S / 60)
            return False
        if r.status_code >= 300:
            self._worth_again = r.status_code >= 500 or r.status_code in (408, 429)
            self._failed(f"HTTP {r.status_code}: {_error_message(r)}")
            return False
        failed = self._failing.ends(HEARTBEAT)          # said below, with the 404's end
        if failed is not None or self._old_station_at is not None:
            log.info("the station at %s takes this watcher's heartbeats again", self.url)
        self._old_station_at = None
        self.sent += 1
        return True

    def _failed(self, what: str) -> None:
        self._last_error = what
        # when it starts, then once a minute, in the same words with what failed last
        said = ("the watcher's heartbeat to %(url)s failed (%(what)s): meanwhile the station's /health cannot see "
                "this watcher (one it saw is a fault after a minute); tried again with each status")
        self._failing.happens(HEARTBEAT, logging.WARNING, said, still=said, url=self.url, what=what)


def _clock(wall: Optional[float]) -> str:
    """A wall time as a log line gives it (the day's time: the line says its own date)."""
    from time import localtime, strftime     # not through the module's time (tests set a clock there)
    try:
        return strftime("%H:%M:%S", localtime(float(wall)))   # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError, OSError):
        return "?"


def _mounted_read_only(path: Path) -> bool:
    """Whether ``path`` is on a file system mounted read-only (False where the OS cannot say)."""
    try:
        return bool(os.statvfs(path).f_flag & getattr(os, "ST_RDONLY", 0))
    except (OSError, AttributeError):
        return False


def _host_name() -> str:
    import socket
    return socket.gethostname() or "?"


def _error_message(r: Any) -> str:
    try:
        err = r.json().get("error") or {}
        return str(err.get("message") or r.text)[:300]
    except (ValueError, AttributeError):
        return r.text[:300]


def station_fault(exc: BaseException) -> bool:
    """A fault of the station, not of the file or frame: what it answers when it cannot take
    any part now (SubmitFailed: disk full, no model, 5xx), or no answer at all (refused,
    reset, timed out). The hot folder and the camera both wait these out."""
    if isinstance(exc, (SubmitFailed, ConnectionError, TimeoutError)):
        return True
    try:
        import httpx
    except ImportError:   # pragma: no cover - httpx is a dependency
        return False
    return isinstance(exc, httpx.TransportError)


def failed_on_request(exc: BaseException) -> bool:
    """Whether the station answered with a failure of its own on this request (HTTP 500,
    internal_error): maybe the file's (the frame's) alone, a model failing on that image, maybe
    every part's; not an outage by itself (no answer, 502/503/504, disk full, no model are).
    The hot folder and the camera both tell it so."""
    if not isinstance(exc, SubmitFailed):
        return False
    # any HTTP 500, whatever code its body gives (a station's own error, a proxy's page)
    return exc.code == "internal_error" or str(exc).startswith("HTTP 500")


def timed_out_on_request(exc: BaseException) -> bool:
    """Whether the station gave no answer on this request in the submit's time, once it had it
    (a read timeout: a model hanging on that image, or a station hung): told like HTTP 500 by
    the files around it. A file that always timed out held the whole line (0 of 29 parts
    behind it in 451 s); a connection refused or a connect timeout stays the station's."""
    try:
        import httpx
    except ImportError:   # pragma: no cover - httpx is a dependency
        return False
    return isinstance(exc, httpx.ReadTimeout)


def _done_entry(status: Optional[str], reason: Optional[str], sha256: Optional[str],
                ino: Optional[int]) -> dict[str, Any]:
    """What the watcher keeps of a file handled: where it goes, why, and what tells it."""
    return {"status": status or "done", "reason": reason, "sha256": sha256, "ino": ino}


def bad_name_bytes(name: str) -> Optional[str]:
    """The bytes of a file name that are not UTF-8 (e.g. ``\\xff\\xfe``), or None when it is
    UTF-8 text. A POSIX name's undecodable bytes come out of the listing as lone surrogates
    U+DC80-U+DCFF (one per byte), which no text encoding takes."""
    bad = [ord(c) for c in name if 0xD800 <= ord(c) <= 0xDFFF]
    if not bad:
        return None
    return "".join(f"\\x{c - 0xDC00:02x}" if 0xDC80 <= c <= 0xDCFF else f"\\u{c:04x}" for c in bad)


def shown_name(name: str) -> str:
    """A file name as a log line, a message, the status file or a reason file can hold it:
    on one line, and read as the folder holds it. Undecodable bytes are shown as ``\\xNN``;
    control, invisible and bidirectional characters (whatever ``str.isprintable`` refuses: a
    newline, a tab, ESC, a zero-width space, U+202E RLO) as ``\\n``, ``\\t``, ``\\x1b``,
    ``\\u200b``, ``\\u202e``. A name holding a newline and tabs printed a forged verdict line
    (``B-999.png<TAB>OK<TAB>score=1.0``) into the watcher's log, and an RLO turned the rest of
    its line around; every source that names a file says it through this one function."""
    if name.isprintable():
        return name
    out = []
    for c in name:
        if c.isprintable():
            out.append(c)
            continue
        code = ord(c)
        if c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")     # a byte that is not UTF-8 (surrogateescape)
        elif code < 0x100:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return "".join(out)


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def file_looks_complete(path: os.PathLike | str, size: int) -> Optional[bool]:
    """Whether a file of ``size`` bytes ends where its format says it ends, from its first
    and last bytes (and, for a JPEG or TIFF, its structure: a few small reads, never the
    whole file). None when it cannot say: a format that does not tell (a TIFF that looks
    whole; a caller takes it once it stopped changing), or the file gone or no longer
    ``size`` bytes long. An empty file is never whole (False): a camera that creates its file
    and writes the photo into it 60 ms later left one with no format to tell, and it was
    taken as a settled TIFF would be and refused ("the image is empty")."""
    if size == 0:
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEAD)
            whole = _whole(fh, head, size, zero_tail=False)
    except OSError:
        return None
    if whole is None:
        return None
    tells = head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8", b"GIF87a", b"GIF89a", b"BM")) or \
        (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
    if not tells and whole:
        return None
    return whole


def looks_complete(data: bytes, zero_tail: bool = True) -> bool:
    """Whether image bytes end where their format says they end (cheap: no decoding).

    PNG ends with an IEND chunk, GIF with its trailer and JPEG with an EOI marker after
    the start of its main image's scan (the end marker of an embedded EXIF thumbnail does
    not count; some cameras pad after it); a TIFF's directories and strips lie within the
    file; BMP and WebP state their length in the header. A BMP, TIFF or WebP whose last
    4 KB are all zero bytes looks like a copy that set the file's size first and has not
    filled it yet (Windows, SMB); ``zero_tail=False`` takes it as whole (it stayed unchanged
    long enough to be a dark photo). Other formats are taken as whole once settled: the
    station still refuses a truncated one.
    """
    import io
    return bool(_whole(io.BytesIO(data), data[:_HEAD], len(data), zero_tail=zero_tail))


_HEAD, _TAIL = 16, 4096   # the bytes looks_complete needs from a file's start and end
# a BMP, TIFF or WebP ending in zeros and unchanged this long is a dark photo, not a copy
# that set its size first: copies fill such a file in steps well under this apart
ZERO_TAIL_SETTLE_S = 5.0


def _read_at(fh: Any, offset: int, n: int) -> bytes:
    fh.seek(offset)
    return fh.read(n)


def _whole(fh: Any, head: bytes, size: int, zero_tail: bool = True) -> Optional[bool]:
    """Whether the open file ``fh`` of ``size`` bytes (starting with ``head``) looks whole;
    None when it is no longer ``size`` bytes long (a writer is at it)."""
    tail = _read_at(fh, max(0, size - _TAIL), _TAIL + 1)
    if len(tail) != min(size, _TAIL):
        return None
    if zero_head(head):
        # no format the station takes begins with zero bytes: a file made at its full size
        # first (Windows CopyFile, an SMB copy) and not filled yet. It matched no format's
        # signature and was taken as "whole", sent unfilled and moved to failed/ as "not an
        # image" while the writer went on writing into failed/
        return False
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return tail.endswith(b"IEND\xaeB`\x82")
    if head.startswith((b"GIF87a", b"GIF89a")):
        return tail.endswith(b";")   # the GIF trailer
    if head.startswith(b"\xff\xd8"):
        return _jpeg_whole(fh, tail, size)
    # formats without an end marker: a copy that set the final size first (Windows
    # CopyFile, SMB) has zeros where the rest will go, and the header already says "whole"
    if zero_tail and size > _TAIL and not tail.strip(b"\x00") and _unmarked(head):
        return False
    if head.startswith(b"BM") and len(head) >= 6:
        return int.from_bytes(head[2:6], "little") <= size
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return int.from_bytes(head[4:8], "little") + 8 <= size
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return _tiff_whole(fh, head, size)
    return True


def zero_head(head: bytes) -> bool:
    """Whether a file's first bytes (``head``, some) are all zero: its size set first, not filled."""
    return bool(head) and not head.strip(b"\x00")


def _unmarked(head: bytes) -> bool:
    return head.startswith(b"BM") or head[:4] in (b"II*\x00", b"MM\x00*") or \
        (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def _jpeg_whole(fh: Any, tail: bytes, size: int) -> bool:
    """A JPEG is whole when an end marker (EOI) follows the start of its main image's scan
    (SOS). The segments before the scan are walked by their lengths: an EXIF thumbnail (a
    JPEG inside APP1, with an EOI of its own) is skipped, so a copy paused just after the
    thumbnail is not taken for a whole file. In the scan's data 0xFF is always stuffed, so
    the first EOI after the SOS is the image's own."""
    pos = 2
    sos = None
    for _ in range(4096):
        hdr = _read_at(fh, pos, 4)
        if len(hdr) < 2:
            return False                     # the segments run past what is written
        if hdr[0] != 0xFF:
            # zeros where a marker belongs: a file whose size was set first, not yet filled;
            # anything else is for the station to judge
            return not (hdr == b"\x00" * len(hdr))
        marker = hdr[1]
        if marker == 0xFF:                   # fill byte
            pos += 1
            continue
        if marker == 0xDA:
            sos = pos
            break
        if marker == 0xD9:                   # EOI before any scan: not an image we can judge here
            return True
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if len(hdr) < 4:
            return False
        pos += 2 + int.from_bytes(hdr[2:4], "big")
        if pos >= size:
            return False
    if sos is None:
        return True                          # an odd file: the station judges it
    at = tail.rfind(b"\xff\xd9")
    return at >= 0 and max(0, size - _TAIL) + at > sos


_TIFF_TYPES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}


def _tiff_whole(fh: Any, head: bytes, size: int) -> bool:
    """A TIFF is whole when each directory (IFD) and every strip or tile it points at lie
    within the file; a TIFF still being written has its strips (or, as libtiff writes it,
    its directory) past the end.

    Directories and tables are read as whole arrays, never an entry at a time, and no
    more than MAX_TIFF_ENTRIES entries over the file: 4 MB whose dozen pages each listed
    a million strips, all at one block, took the watcher 2m43s entry by entry while no
    part was judged. Past that many the file is taken as whole: the station refuses it
    and says why (``imageio.check_tiff``)."""
    import numpy as np
    from ...vision.imageio import MAX_TIFF_ENTRIES, MAX_TIFF_PAGES, TIFF_TABLE_TAGS

    order = "<" if head[:2] == b"II" else ">"
    entry = np.dtype([("tag", order + "u2"), ("type", order + "u2"), ("count", order + "u4"), ("value", "V4")])

    def num(b: bytes) -> int:
        return int.from_bytes(b, "little" if order == "<" else "big")

    ifd = num(head[4:8])
    seen = set()
    read = 0                                      # table entries read in this file
    for _ in range(MAX_TIFF_PAGES):               # pages
        if ifd == 0:
            return True
        if ifd + 2 > size:
            return False
        if ifd in seen:
            return True                           # a loop of directories: the station judges it
        seen.add(ifd)
        n = num(_read_at(fh, ifd, 2))
        if n == 0 or ifd + 2 + 12 * n + 4 > size:
            return False                          # zeros, or the directory is cut short
        raw_dir = _read_at(fh, ifd + 2, 12 * n + 4)
        if len(raw_dir) != 12 * n + 4:
            return False
        entries = np.frombuffer(raw_dir, entry, count=n)
        arrays: dict[int, Any] = {}
        for tag in TIFF_TABLE_TAGS:
            # each table once a page (a directory repeating a tag 60,000 times is a loop too)
            at = np.flatnonzero(entries["tag"] == tag)
            if not at.size:
                continue
            e = entries[at[0]]
            typ, count = int(e["type"]), int(e["count"])
            width = _TIFF_TYPES.get(typ)
            if width is None or width not in (2, 4, 8):
                return True                       # odd: the station judges it
            read += count
            if read > MAX_TIFF_ENTRIES:
                return True                       # the station refuses it, saying why
            nbytes = width * count
            if nbytes <= 4:
                raw = e["value"].tobytes()[:nbytes]
            else:
                off = num(e["value"].tobytes())
                if off + nbytes > size:
                    return False
                raw = _read_at(fh, off, nbytes)
                if len(raw) != nbytes:
                    return False
            arrays[tag] = np.frombuffer(raw, f"{order}u{width}").astype(np.uint64)
        for offs_tag, counts_tag in ((273, 279), (324, 325)):
            offs, counts = arrays.get(offs_tag), arrays.get(counts_tag)
            if offs is not None and counts is not None and len(offs) and len(counts):
                k = min(len(offs), len(counts))
                offs, counts = offs[:k], counts[:k]
                # offset + length past the end, without the sum overflowing 64 bits
                if bool(np.any((offs > size) | (counts > np.uint64(size) - np.minimum(offs, np.uint64(size))))):
                    return False
        ifd = num(raw_dir[12 * n:12 * n + 4])
    return True


def reason_name(name: str) -> str:
    """The name of the reason file beside ``name`` in failed/: ``<name>.reason.txt``, or, where
    that passes NAME_MAX bytes, the name cut short, ``~`` and 10 hex digits of the whole
    name's SHA-256 (``LLL…L~1a2b3c4d5e.reason.txt``): listed beside its file and found by it.
    A hash alone (``8c65703e6abc6cb2.reason.txt``) was not taken for that file's reason."""
    full = name + REASON_SUFFIX
    if len(os.fsencode(full)) <= NAME_MAX:
        return full
    tail = f"~{hashlib.sha256(os.fsencode(name)).hexdigest()[:10]}{REASON_SUFFIX}"
    return _cut(name, NAME_MAX - len(tail)) + tail


def _cut(text: str, room: int) -> str:
    """``text`` cut to at most ``room`` bytes as a file name, on a character's edge."""
    text = text[:room]
    while len(os.fsencode(text)) > room:
        text = text[:-1]
    return text


def _free_name(name: str, taken: Callable[[str], bool]) -> str:
    """``name``, or, when ``taken``, the name with the time in ms before its suffix (cut short
    to stay within NAME_MAX: a long name made the move fail at every poll)."""
    if not taken(name):
        return name
    stem, suffix = os.path.splitext(name)
    for i in range(100):
        stamp = f".{int(time.time() * 1000)}" + (f"-{i}" if i else "")
        new = _cut(stem, NAME_MAX - len(os.fsencode(stamp + suffix))) + stamp + suffix
        if not taken(new):
            return new
    raise FileExistsError(errno.EEXIST, "no free name for the file", name)


def _lexists(name: str, dir_fd: int) -> bool:
    try:
        os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    return True


def _copy_across(name: str, src_fd: int, new: str, dst_fd: int) -> None:
    """Move ``name`` (in the folder ``src_fd``) to ``new`` (in ``dst_fd``) on another disk: copied
    (a link as a link, a file with its times), then removed; never through a link at ``new``."""
    st = os.lstat(name, dir_fd=src_fd)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(name, dir_fd=src_fd), new, dir_fd=dst_fd)
    else:
        fin = os.open(name, os.O_RDONLY | _NOFOLLOW, dir_fd=src_fd)
        try:
            fout = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644, dir_fd=dst_fd)
            try:
                with os.fdopen(fout, "wb") as out, os.fdopen(os.dup(fin), "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
                    out.flush()
                    os.fsync(out.fileno())
                    os.utime(out.fileno(), ns=(st.st_atime_ns, st.st_mtime_ns))
            except BaseException:
                # a copy cut short (done/'s disk full): not left there as a photo done, one
                # more under a new name at each retry
                with contextlib.suppress(OSError):
                    os.unlink(new, dir_fd=dst_fd)
                raise
        finally:
            os.close(fin)
    os.unlink(name, dir_fd=src_fd)
