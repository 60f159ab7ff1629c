"""A fault that lasts, said the way a plant can read it: once when it begins, then at most
once every ``REPEAT_S`` while it lasts (with the newest details: frames dropped, files
waiting), and once when it ends (with how long it lasted). Never a line for each frame or
file: a 17 s station outage once logged 92 lines.

The camera (:class:`.camera.CameraSource`) and the hot folder (:class:`.folder.FolderWatcher`)
both say their lasting faults through :class:`LastingFaults`. One object holds any number of
faults, each under its own key (the hot folder's station, scan, status file, heartbeat, one
file...); each begins, repeats and ends on its own.

Messages are ``%``-style templates with named fields (``"%(waiting)d files wait"``), formatted
by logging only when the line is written, from the fault's details and:

* ``lasted``: seconds since the fault began;
* ``tries``: how many times it happened since it began (this time included);
* ``times``: how many times it happened since it was last said (this time included);
* ``quiet_s``: seconds since it was last said.

Not thread-safe: each object is used from one thread (a source's run, a heartbeat's sender).
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Hashable, Iterator, Optional

# A fault that lasts is said again this often while it lasts, not at every frame or poll
REPEAT_S = 60.0

# How a fault said with no ``still`` of its own is said again: its first words, and how
# often it happened meanwhile
STILL_SUFFIX = " (still; %(times)d more times in the last %(quiet_s).0f s)"


class LastingFault:
    """One fault going on: when it began (monotonic clock, and wall clock for a status file),
    when it was last said, how often it happened, and the details its caller keeps with it
    (``fault["lost"] += 1``)."""

    __slots__ = ("key", "since", "wall", "said", "tries", "unsaid", "details")

    def __init__(self, key: Hashable, now: float, wall: float, details: dict[str, Any]):
        self.key = key
        self.since = now          # began (monotonic)
        self.wall = wall          # began (time.time: what a status file or /health shows)
        self.said = now           # last said (monotonic)
        self.tries = 1            # times it happened since it began
        self.unsaid = 0           # times it happened since it was last said, not counting that one
        self.details = details

    def __getitem__(self, name: str) -> Any:
        return self.details[name]

    def __setitem__(self, name: str, value: Any) -> None:
        self.details[name] = value

    def get(self, name: str, default: Any = None) -> Any:
        return self.details.get(name, default)

    def fields(self, now: float) -> dict[str, Any]:
        """What a message template may name: the details, then the fault's own counts."""
        return {**self.details, "lasted": now - self.since, "tries": self.tries, "times": self.unsaid + 1,
                "quiet_s": now - self.said}


class LastingFaults:
    """Lasting faults, each said when it begins, at most every ``repeat_s`` while it lasts and
    when it ends. ``clock`` (monotonic seconds) and ``wall_clock`` are for tests."""

    def __init__(self, logger: logging.Logger, repeat_s: float = REPEAT_S,
                 clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time):
        self.log = logger
        self.repeat_s = repeat_s
        self.clock = clock
        self.wall_clock = wall_clock
        self._faults: dict[Hashable, LastingFault] = {}

    def happens(self, key: Hashable, level: int, begins: str, still: Optional[str] = None,
                start: Optional[dict[str, Any]] = None, **details: Any) -> LastingFault:
        """The fault ``key`` happened (again) now; its ``details`` replace those of the last
        time (the newest counts are the ones said). When it begins it is said with
        ``begins``, and ``start`` gives the details kept from its beginning (a count from
        zero, the frame it began with); while it lasts it is said again with ``still``, at
        most every ``repeat_s`` (``still`` None: ``begins`` with how many more times it
        happened meanwhile). The fault is returned: ``tries == 1`` when this began it."""
        now = self.clock()
        fault = self._faults.get(key)
        if fault is None:
            fault = LastingFault(key, now, self.wall_clock(), {**(start or {}), **details})
            self._faults[key] = fault
            self._say(level, begins, fault, now)
            return fault
        fault.tries += 1
        fault.details.update(details)
        if now - fault.said >= self.repeat_s:
            self._say(level, still if still is not None else begins + STILL_SUFFIX, fault, now)
            fault.said = now
            fault.unsaid = 0
        else:
            fault.unsaid += 1
        return fault

    def ends(self, key: Hashable, level: int = logging.INFO, over: Optional[str] = None,
             **details: Any) -> Optional[LastingFault]:
        """The fault ``key`` is over: said with ``over`` (``lasted``: how long it lasted;
        ``details``: the newest, e.g. the files that waited) when it was going on, and
        returned; None, and nothing said, when it was not. ``over`` None: ended unsaid."""
        fault = self._faults.pop(key, None)
        if fault is None:
            return None
        fault.details.update(details)
        if over is not None:
            self._say(level, over, fault, self.clock())
        return fault

    def get(self, key: Hashable) -> Optional[LastingFault]:
        """The fault ``key`` if it is going on."""
        return self._faults.get(key)

    def __getitem__(self, key: Hashable) -> LastingFault:
        return self._faults[key]

    def __contains__(self, key: Hashable) -> bool:
        return key in self._faults

    def keys(self) -> Iterator[Hashable]:
        """The keys of the faults going on (a copy: a caller may end them meanwhile)."""
        return iter(list(self._faults))

    def _say(self, level: int, template: str, fault: LastingFault, now: float) -> None:
        # formatted by logging, from the fields as they are now
        self.log.log(level, template, fault.fields(now))
