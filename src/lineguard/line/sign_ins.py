"""Failed sign-ins counted per user name and per client address, in the station's database.

In the database, not in a server process's memory: a station's server processes and the
stations of a plant sharing one database count the same tries (a guesser gets five per
name in all, not five per process), an admin's lift clears them everywhere, and a
restart hands a guesser no new tries.
"""
from __future__ import annotations

import datetime as dt
import threading
from typing import Any, Optional

from sqlalchemy import delete, func, select, text

from .db import LOCK_SIGN_INS
from .orm import SignInFailure


def name_key(name: Optional[str]) -> Optional[str]:
    # a name signs in in any case (users.find_user): counted the same in every case, or a
    # guesser gets five tries per spelling
    return name.strip().lower() if name else name


class SignInThrottle:
    """After ``per_name`` failures for one name (or ``per_address`` from one address) within
    ``window_s``, further tries are refused without checking them until the oldest failure
    leaves the window: a guesser gets a few tries per window, a person who mistyped waits
    minutes at most. Unknown names are counted like known ones, so the answer never tells
    whether a name exists.
    """

    def __init__(self, db: Any, per_name: int = 5, per_address: int = 20, window_s: float = 300.0):
        self.db = db
        self.per_name, self.per_address, self.window_s = per_name, per_address, window_s
        self._lock = threading.Lock()     # this process's tries one at a time (SQLite: no waiting on itself)

    def _whos(self, name: Optional[str], address: str) -> list[tuple[str, int]]:
        name = name_key(name)
        return [(f"addr:{address}", self.per_address)] + ([(f"name:{name}", self.per_name)] if name else [])

    def _begin(self, s: Any) -> None:
        # the lock of sign-in counting, to the commit: two processes counting the same name
        # at once would each see four failures and both let a fifth through
        self.db.hold(s, LOCK_SIGN_INS, "sign_in_failures")

    def _now(self, s: Any) -> dt.datetime:
        """The database's clock, naive UTC: one clock for every station and process on it
        (each station's own may be minutes off, and one station's clean-out would then
        drop another's failures early), read after the lock (a try that waited for it is
        counted from when it was)."""
        if self.db.is_sqlite:
            return dt.datetime.fromisoformat(s.scalar(text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")))
        return s.scalar(text("SELECT clock_timestamp() AT TIME ZONE 'UTC'"))

    @staticmethod
    def _nth_newest(s: Any, who: str, limit: int, since: dt.datetime) -> Optional[dt.datetime]:
        # the limit-th newest failure in the window: the try after it waits until that one leaves it
        return s.scalar(select(SignInFailure.at).where(SignInFailure.who == who, SignInFailure.at > since)
                        .order_by(SignInFailure.at.desc()).offset(limit - 1).limit(1))

    def _wait(self, s: Any, whos: list[tuple[str, int]], now: dt.datetime) -> float:
        since = now - dt.timedelta(seconds=self.window_s)
        wait = 0.0
        for who, limit in whos:
            oldest = self._nth_newest(s, who, limit, since)
            if oldest is not None:
                wait = max(wait, (oldest - since).total_seconds())
        return wait

    def attempt(self, name: Optional[str], address: str) -> float:
        """Seconds this name/address must wait (0: go ahead, and the try is counted).

        A try is counted as failed before it is checked, so many tries sent at once
        cannot all slip through before the first failure is recorded.
        """
        whos = self._whos(name, address)
        # a try already refused is told so by a read: a guesser hammering a locked name
        # takes no write lock from the line's parts
        with self.db.session() as s:
            wait = self._wait(s, whos, self._now(s))
        if wait > 0:
            return wait
        with self._lock, self.db.session() as s:
            self._begin(s)
            now = self._now(s)
            wait = self._wait(s, whos, now)       # again, under the lock: others may have counted meanwhile
            if wait > 0:
                return wait
            # the table kept to one window
            s.execute(delete(SignInFailure).where(SignInFailure.at <= now - dt.timedelta(seconds=self.window_s)))
            s.add_all(SignInFailure(who=who, at=now) for who, _ in whos)
        return 0.0

    def locks(self) -> list[dict[str, Any]]:
        """The names and addresses refused now, with how long they still wait."""
        out = []
        with self.db.session() as s:
            self._begin(s)      # one view of the rows: none forgotten between the count and the wait
            since = self._now(s) - dt.timedelta(seconds=self.window_s)
            counts = s.execute(select(SignInFailure.who, func.count())
                               .where(SignInFailure.at > since).group_by(SignInFailure.who)).all()
            for who, failures in counts:
                kind, _, value = who.partition(":")
                limit = self.per_name if kind == "name" else self.per_address
                if failures < limit:
                    continue
                oldest = self._nth_newest(s, who, limit, since)
                if oldest is None:
                    continue
                out.append({"kind": "name" if kind == "name" else "address", "value": value, "failures": failures,
                            "wait_s": int((oldest - since).total_seconds()) + 1})
        return sorted(out, key=lambda d: (d["kind"], d["value"]))

    def lift(self) -> None:
        """An admin lifts every lock: all failures are forgotten."""
        with self.db.session() as s:
            self._begin(s)     # in the order every try takes: no deadlock with a try's own deletes
            s.execute(delete(SignInFailure))

    def forget_name(self, name: str) -> None:
        """An admin let the user in again or reset their password: the lock-out ends too."""
        with self.db.session() as s:
            self._begin(s)
            s.execute(delete(SignInFailure).where(SignInFailure.who == f"name:{name_key(name)}"))

    def succeeded(self, name: Optional[str], address: str) -> None:
        """The try was good: forget the name's failures and take back the address's count of it."""
        key = name_key(name)
        with self._lock, self.db.session() as s:
            self._begin(s)
            if key:
                s.execute(delete(SignInFailure).where(SignInFailure.who == f"name:{key}"))
            newest = s.scalar(select(SignInFailure.id).where(SignInFailure.who == f"addr:{address}")
                              .order_by(SignInFailure.at.desc(), SignInFailure.id.desc()).limit(1))
            if newest is not None:
                s.execute(delete(SignInFailure).where(SignInFailure.id == newest))
