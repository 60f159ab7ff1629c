"""Shifts: the plant's working day cut into the periods its people report by.

Records are stored in naive UTC (see :func:`lineguard.line.orm.utcnow`); shifts are
wall-clock times in the plant's own time zone, so "the morning shift" stays 06:00 to
14:00 across daylight-saving changes. A shift that starts before midnight and ends
after it belongs to the day it started.
"""
from __future__ import annotations

import calendar
import datetime as dt
import functools
import logging
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_SHIFT_STARTS = ("06:00", "14:00", "22:00")
# the times a shift is looked up for: a valid ISO time in year 1 or 9999 has no
# neighbouring shift or week to compare with (datetime overflows)
EARLIEST, LATEST = dt.datetime(1900, 1, 1), dt.datetime(9000, 1, 1)
_EPOCH = dt.datetime(1970, 1, 1)


def parse_shift_starts(starts: Sequence[str] | str) -> tuple[dt.time, ...]:
    """``"06:00,14:00,22:00"`` or a sequence of ``HH:MM`` -> sorted times; ValueError saying what to fix."""
    items = [s.strip() for s in (starts.split(",") if isinstance(starts, str) else starts) if s.strip()]
    if not items:
        raise ValueError("shift starts are empty; give at least one time like 06:00")
    out = []
    for s in items:
        try:
            h, m = s.split(":")
            out.append(dt.time(int(h), int(m)))
        except ValueError:
            raise ValueError(f"shift start {s!r} is not a time like 06:00 (24-hour HH:MM)") from None
    if len(set(out)) != len(out):
        raise ValueError(f"shift starts repeat a time: {', '.join(items)}")
    return tuple(sorted(out))


def _zone_or_none(name: Optional[str]) -> Optional[ZoneInfo]:
    # a name zoneinfo knows, or None ("localtime", "posixrules", a POSIX rule such as
    # "CET-1CEST,M3.5.0,M10.5.0/3" are no IANA names; "posix/..." and "right/..." are
    # folders of the zone files, whose names a browser refuses: see _plain)
    if not name or name in ("localtime", "posixrules", "Factory") or name.startswith(("posix/", "right/")):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _plain(name: str) -> str:
    """``posix/Europe/Berlin`` -> ``Europe/Berlin``: the zone files' ``posix/`` folder holds
    the same zones, and ``right/`` the same with leap seconds counted (which would put a
    clock change 27 s late); a browser knows neither name."""
    for folder in ("posix/", "right/"):
        if name.startswith(folder):
            return name[len(folder):]
    return name


def _name_from_path(path: str) -> Optional[str]:
    """``/usr/share/zoneinfo/Europe/Berlin`` -> ``Europe/Berlin``: the part after the last
    ``zoneinfo/`` folder of a zone file's path (the distributions' folders differ)."""
    marker = "zoneinfo/"
    at = path.rfind(marker)
    if at < 0:
        return None
    return _plain(path[at + len(marker):].strip("/")) or None


def _clock_agrees(name: str, offset_at: Callable[[float], int]) -> bool:
    """Whether zone ``name`` gives the PC clock's UTC offset (``offset_at(t)``: the C
    library's, ``time.localtime(t).tm_gmtoff``) now and in mid-January and mid-July: a
    Docker container given the host's /etc/localtime as a file kept its image's
    /etc/timezone (Etc/UTC) while its clock ran on Berlin time; counted by the name, every
    shift was an hour or two off all year, with no word."""
    zone = ZoneInfo(name)
    now = time.time()
    year = time.gmtime(now).tm_year
    for t in (now, calendar.timegm((year, 1, 15, 12, 0, 0)), calendar.timegm((year, 7, 15, 12, 0, 0))):
        off = zone.utcoffset(dt.datetime.fromtimestamp(t, dt.timezone.utc).replace(tzinfo=None))
        if off is None or int(off.total_seconds()) != offset_at(t):
            return False
    return True


def pc_zone_name(environ: Optional[Mapping[str, str]] = None, localtime: Path = Path("/etc/localtime"),
                 timezone_file: Path = Path("/etc/timezone"),
                 offset_at: Optional[Callable[[float], int]] = None) -> Optional[str]:
    """This PC's time zone as an IANA name zoneinfo knows, or None where none is found.

    Looked up where the PC's clock takes it from: the ``TZ`` variable (``Europe/Berlin``,
    ``:Europe/Berlin``, or a zone file's path; it overrides the rest, so a ``TZ`` that
    is set but names no zone finds none, rather than a zone the clock does not follow),
    then the zone file ``/etc/localtime`` links to, then ``/etc/timezone`` (Debian's). A
    name is taken only where it gives the clock's own UTC offsets (:func:`_clock_agrees`;
    ``offset_at``, by default the C library's when ``environ`` is this process's)."""
    env = os.environ if environ is None else environ
    if offset_at is None and environ is None:
        offset_at = _clock_offset

    def agreed(name: Optional[str]) -> Optional[str]:
        if _zone_or_none(name) is None:
            return None
        assert name is not None
        return name if offset_at is None or _clock_agrees(name, offset_at) else None
    tz = env.get("TZ")
    if tz is not None:
        tz = tz.strip()
        if tz in ("", ":"):
            return "UTC"            # set and empty: the C library's clock is UTC
        tz = tz[1:] if tz.startswith(":") else tz
        for name in ((_name_from_path(tz), _name_from_path(os.path.realpath(tz))) if tz.startswith("/")
                     else (_plain(tz),)):
            if agreed(name):
                return name
        return None
    try:
        target = os.readlink(localtime)
    except OSError:                 # not there, or a copied file rather than a link
        target = None
    if target is not None:
        full = os.path.join(os.path.dirname(str(localtime)), target)
        # the link's own target first (Europe/Berlin, not the file it may link on to)
        for name in (_name_from_path(full), _name_from_path(os.path.realpath(full))):
            if agreed(name):
                return name
    try:
        name = timezone_file.read_text(encoding="utf-8").split("\n", 1)[0].strip()
    except (OSError, UnicodeDecodeError):
        name = ""
    return agreed(_plain(name)) if name else None


def _clock_offset(t: float) -> int:
    return time.localtime(t).tm_gmtoff


_warned_fixed_offset = False


def _fixed_offset_now() -> dt.tzinfo:
    global _warned_fixed_offset
    zone = dt.datetime.now().astimezone().tzinfo
    assert zone is not None
    if not _warned_fixed_offset:
        _warned_fixed_offset = True
        off = zone.utcoffset(None) or dt.timedelta(0)
        logging.getLogger("lineguard.config").warning(
            "this PC's time zone has no name the station can find (TZ, /etc/localtime, /etc/timezone), so "
            "shifts, SPC hours and days and plant_time use its UTC offset now (%s) all year, an hour off across "
            "a daylight-saving change: pass --timezone (e.g. Europe/Berlin) or set LINEGUARD_TIMEZONE",
            f"{'-' if off < dt.timedelta(0) else '+'}{str(abs(off))[:-3].zfill(5)}")
    return zone


class PcZone(ZoneInfo):
    """This PC's zone, found by name (:func:`pc_zone_name`): a ZoneInfo, daylight saving
    and all. Asked for its offset with no time (``utcoffset(None)``, which a plain
    ZoneInfo answers None), it answers the offset now, as the fixed offset it replaces did
    (the session answer shows the PC's offset that way)."""

    def utcoffset(self, t: Optional[dt.datetime]) -> Optional[dt.timedelta]:
        return super().utcoffset(t if t is not None else dt.datetime.now(self))

    def tzname(self, t: Optional[dt.datetime]) -> Optional[str]:
        return super().tzname(t if t is not None else dt.datetime.now(self))

    def dst(self, t: Optional[dt.datetime]) -> Optional[dt.timedelta]:
        return super().dst(t if t is not None else dt.datetime.now(self))


def plant_zone(name: Optional[str]) -> dt.tzinfo:
    """The plant's time zone: an IANA name (``Europe/Berlin``), or None for this PC's zone.

    This PC's zone is its IANA zone (:func:`pc_zone_name`), so shifts, days and hours are
    cut by the plant's clocks on both sides of a daylight-saving change. Only where no
    name is found is it the PC's UTC offset now, said once in the log (an hour off for
    half the year where the clocks change: the way out is ``--timezone``)."""
    if not name:
        found = pc_zone_name()
        return PcZone(found) if found else _fixed_offset_now()
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin") from None


@dataclass(frozen=True)
class Shift:
    label: str              # e.g. "2026-12-01 S2 (14:00)"
    start_utc: dt.datetime  # naive UTC, like the records
    end_utc: dt.datetime
    day: dt.date            # the plant's day it starts on
    wall: dt.time           # the start on the plant's clock (its configured start)


def shift_as_signed(label: str, start_utc: dt.datetime, end_utc: dt.datetime, zone: dt.tzinfo) -> Shift:
    """A shift as a signed report stored it (its label and window), for reading the records
    again over that very window after the station's shift starts or time zone changed."""
    local = start_utc.replace(tzinfo=dt.timezone.utc).astimezone(zone)
    return Shift(label=label, start_utc=start_utc, end_utc=end_utc, day=local.date(),
                 wall=local.time().replace(tzinfo=None))


def days_before(shift: Shift, days: int, zone: dt.tzinfo) -> dt.datetime:
    """The naive-UTC instant the same shift started ``days`` days earlier on the plant's
    clock: across a clock change that is an hour more or less than ``days`` x 24 h (a week
    of 168 h cut the week-old shift in half)."""
    return wall_to_utc(shift.day - dt.timedelta(days=days), shift.wall, zone)


# a month of 15-minute SPC slots asks for the same few hundred starts thousands of times
@functools.lru_cache(maxsize=4096)
def wall_to_utc(day: dt.date, wall: dt.time, zone: dt.tzinfo) -> dt.datetime:
    """The naive-UTC instant the plant's clocks show ``wall`` on ``day``.

    A time the clocks show twice (the hour repeated when daylight saving ends) is its
    first showing; a time they jump over (the hour skipped when it begins) is the moment
    they jump (02:30 on the spring day in Berlin: 03:00 CEST). Both keep the instants of
    later wall times never before those of earlier ones, so shifts follow each other
    with no gap and no overlap."""
    naive = dt.datetime.combine(day, wall)
    utc = naive.replace(tzinfo=zone, fold=0).astimezone(dt.timezone.utc)
    if utc.astimezone(zone).replace(tzinfo=None) == naive:
        return utc.replace(tzinfo=None)
    # in the gap: fold=0 read it with the offset before the jump (an instant after the
    # jump), fold=1 with the offset after (an instant before it); the jump lies between
    lo = naive.replace(tzinfo=zone, fold=1).astimezone(dt.timezone.utc)
    hi = utc
    if lo > hi:
        lo, hi = hi, lo
    after = hi.astimezone(zone).utcoffset()
    lo_s, hi_s = math.floor(lo.timestamp()), math.ceil(hi.timestamp())
    while hi_s - lo_s > 1:                  # the first second on the new offset
        mid = (lo_s + hi_s) // 2
        if dt.datetime.fromtimestamp(mid, zone).utcoffset() == after:
            hi_s = mid
        else:
            lo_s = mid
    return _EPOCH + dt.timedelta(seconds=hi_s)


def shift_of(t_utc: dt.datetime, starts: Sequence[dt.time] = (), zone: Optional[dt.tzinfo] = None) -> Shift:
    """The shift a record's naive-UTC time falls in: the one that started last at or
    before it, so its window always holds it (a start the clocks jump over or show twice
    is placed by :func:`wall_to_utc`)."""
    if not EARLIEST <= t_utc <= LATEST:
        from .errors import InvalidRequest
        raise InvalidRequest(f"no shift is looked up for {t_utc.isoformat()}Z; use a time between "
                             f"{EARLIEST.year} and {LATEST.year}")
    starts = tuple(starts) or parse_shift_starts(DEFAULT_SHIFT_STARTS)
    zone = zone or plant_zone(None)
    day = t_utc.replace(tzinfo=dt.timezone.utc).astimezone(zone).date()
    # every start from the day before to the day after next, in the order of their
    # instants; two starts at one instant (both in a skipped hour) leave the first an
    # empty shift, never one that holds a part
    begun = sorted((wall_to_utc(d, s, zone), d, i)
                   for d in (day + dt.timedelta(days=k) for k in range(-1, 3)) for i, s in enumerate(starts))
    at = max(k for k, b in enumerate(begun) if b[0] <= t_utc)
    (start, sday, idx), end = begun[at], begun[at + 1][0]
    return Shift(label=f"{sday.isoformat()} S{idx + 1} ({starts[idx].strftime('%H:%M')})",
                 start_utc=start, end_utc=end, day=sday, wall=starts[idx])


# -- since/until as a person types them: a day is the plant's day ------------------------

TIME_FORMS = "2026-12-01 (the plant's day), 2026-12-01T06:00:00Z or 2026-12-01T06:00+01:00 (a time without an offset is UTC)"


_PLUS_AS_SPACE = re.compile(r"T\d\d:\d\d(:\d\d(\.\d+)?)? \d\d(:?\d\d)?$", re.I)


def read_time(text: str, name: str = "time") -> dt.date | dt.datetime:
    """A since/until as typed: a day alone (``2026-12-01``) is a :class:`datetime.date`, left
    for :func:`plant_instant` to place in the plant's zone; a time is the naive-UTC instant
    it names, its ``Z`` or offset applied, one without an offset read as UTC (as the API and
    the exports write times). ValueError saying what to write (``name``, the field's, first)."""
    s = text.strip()
    try:
        return dt.date.fromisoformat(s)
    except ValueError:
        pass
    try:
        # "t"/"z" as some tools write them; fromisoformat reads only capitals
        t = dt.datetime.fromisoformat(s.upper()) if len(s) <= 64 else None
    except ValueError:
        t = None
    if t is None:
        # an offset's "+" sent unescaped in an address arrives as a space ("...16:27:00 01:00"):
        # the forms below were said, the very one typed among them
        plus = " (in an address a + is read as a space: write it %2B, 2026-12-01T06:00%2B01:00, or use Z)" \
            if _PLUS_AS_SPACE.search(s) else ""
        # worded as the API's other 422s ("field: Input should be ..."), then what to write
        raise ValueError(f"{name + ': ' if name else ''}Input should be a valid datetime or a day; {text[:64]!r} "
                         f"is neither: write {TIME_FORMS}{plus}")
    return naive_utc(t, name)


def naive_utc(t: dt.datetime, name: str = "the time") -> dt.datetime:
    """``t`` as the naive UTC time records are compared with (a naive one is UTC already);
    ValueError naming ``name`` when it falls outside the calendar once converted."""
    if t.tzinfo is None:
        return t
    try:
        return t.astimezone(dt.timezone.utc).replace(tzinfo=None)
    except OverflowError:
        raise ValueError(f"{name + ' ' if name else ''}{t.isoformat()} is out of range once converted to UTC; use "
                         "a time between years 1 and 9999") from None


def plant_instant(value: str | dt.date | dt.datetime | None, zone: dt.tzinfo, *, end: bool = False,
                  name: str = "time") -> Optional[dt.datetime]:
    """A window's edge (since, until, baseline_since...) as the naive-UTC instant the records
    are compared with; None stays None (no edge).

    A day alone is the plant's day, as shifts and SPC days count it: a start (``end`` false)
    is its 00:00 on the plant's clocks; an end, every window's until being exclusive, is the
    00:00 after it, so ``until=2026-12-01`` holds all of that day (since and until the same
    day: that one day). Midnight is placed as :func:`wall_to_utc` places any wall time (a
    zone whose clocks skip it starts the day when they jump). A time keeps its meaning (see
    :func:`read_time`). ValueError saying what to write."""
    return _instant(value, zone, name, lambda day: (day + dt.timedelta(days=1) if end else day, dt.time(0)))


def shift_instant(value: str | dt.date | dt.datetime | None, starts: Sequence[dt.time], zone: dt.tzinfo, *,
                  name: str = "at") -> Optional[dt.datetime]:
    """A time in a shift (the ``at`` of the shift report and the verification) as typed, as
    the naive-UTC instant :func:`shift_of` looks up; None or blank stays None (the caller's
    default shift). A time keeps its meaning (:func:`read_time`).

    A day alone is the plant's day, as for since/until, and the shift it names is that
    day's first: the one starting at the earliest shift start on the plant's clocks (06:00
    by default). Not the day's 00:00: a shift that starts before midnight belongs to the
    day it started (see :func:`shift_of`), so 00:00 lies in the night shift of the day
    before, and ``at=2026-12-01`` showed "2026-11-30 S3". Not its noon either: which shift
    holds noon depends on the plant's starts (with 13:00 and 23:00, the night shift of the
    day before again). The first shift is the one labelled with that day whatever the
    starts, and the report walks on from it a shift at a time. ValueError saying what to
    write."""
    first = min(starts) if starts else parse_shift_starts(DEFAULT_SHIFT_STARTS)[0]
    return _instant(value, zone, name, lambda day: (day, first))


def _instant(value: str | dt.date | dt.datetime | None, zone: dt.tzinfo, name: str,
             wall_of_day: Callable[[dt.date], tuple[dt.date, dt.time]]) -> Optional[dt.datetime]:
    """``value`` as typed, as a naive-UTC instant: None or blank stays None, a time keeps
    its meaning (:func:`read_time`), a day alone is the plant's wall time ``wall_of_day``
    gives for it (a day and a time on its clocks)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        value = read_time(value, name)
    if isinstance(value, dt.datetime):
        return naive_utc(value, name)
    try:
        return wall_to_utc(*wall_of_day(value), zone)
    except OverflowError:   # the first or the last day the calendar holds, in a zone far from UTC
        raise ValueError(f"{name} {value.isoformat()} is out of range in the plant's time zone; use a day "
                         "between years 1 and 9999") from None
