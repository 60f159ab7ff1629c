"""A station's housekeeping job on a thread of its own, run every so often.

The disk keeper, the store sweep, the backups and the record keeper each look after the
station on a schedule: a first run at start (the disk keeper) or some time after it (the
others: not while the line starts up), then one every ``every_s``, sooner when asked (``soon``: the disk just filled), and none
after ``close``. What each run does, and what a failure means, is the job's own; this
holds the thread, so the four loop, wake and stop alike.
"""
from __future__ import annotations

import logging
import threading
from typing import Optional

log = logging.getLogger("lineguard.station")


class PeriodicJob:
    """Runs :meth:`run_once` on its own thread: :meth:`first_wait` after :meth:`start`,
    then every ``every_s``; a run that raises is logged and the next one comes after
    ``retry_after_s`` (None: the usual wait). Subclasses set ``thread_name`` and ``what``."""

    thread_name = "lg-job"
    what = "a station job"              # for the log: "<what> failed"
    join_s = 10.0                       # close() waits this long for a run under way
    retry_after_s: Optional[float] = None
    # asked for a run (soon) while one ran: False, that run was it (a sweep reads every
    # file); True, run again at once (the disk keeper: a write failed during a look)
    again_if_asked_during_run = False

    def __init__(self, every_s: float, first_after_s: float):
        self.every_s = every_s
        self.first_after_s = first_after_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "PeriodicJob":
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.join_s)

    def soon(self) -> None:
        """Run now (or as soon as the run under way ends: then that run was it)."""
        self._wake.set()

    def stopping(self) -> bool:
        """Closed: a long run looks at this between steps and stops."""
        return self._stop.is_set()

    def first_wait(self) -> float:
        return self.first_after_s

    def run_once(self) -> object:
        raise NotImplementedError

    def _tick(self) -> float:
        """One run; the seconds until the next."""
        try:
            self.run_once()
        except Exception:  # noqa: BLE001 - the job is tried again; the station goes on
            wait = self.every_s if self.retry_after_s is None else min(self.every_s, self.retry_after_s)
            log.exception("%s failed; tried again in %s", self.what, _duration(wait))
            return wait
        return self.every_s

    def _run(self) -> None:
        wait = self.first_wait()
        while True:
            self._wake.wait(wait)
            self._wake.clear()
            if self._stop.is_set():
                return
            wait = self._tick()
            if not self.again_if_asked_during_run:
                self._wake.clear()
            # after the clear: a close() during the run (or between the two) set stop
            # before its wake, so it is seen here, not after a day's wait
            if self._stop.is_set():
                return


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"
