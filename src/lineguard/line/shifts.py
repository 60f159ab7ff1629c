"""Shifts: the plant's working day cut into the periods its people report by.

Records are stored in naive UTC (see :func:`lineguard.line.orm.utcnow`); shifts are
wall-clock times in the plant's own time zone, so "the morning shift" stays 06:00 to
14:00 across daylight-saving changes. A shift that starts before midnight and ends
after it belongs to the day it started.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Optional, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_SHIFT_STARTS = ("06:00", "14:00", "22:00")
# the times a shift is looked up for: a valid ISO time in year 1 or 9999 has no
# neighbouring shift or week to compare with (datetime overflows)
EARLIEST, LATEST = dt.datetime(1900, 1, 1), dt.datetime(9000, 1, 1)


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


def plant_zone(name: Optional[str]) -> dt.tzinfo:
    """The plant's time zone: an IANA name (``Europe/Berlin``), or None for this PC's local zone."""
    if not name:
        return dt.datetime.now().astimezone().tzinfo  # type: ignore[return-value]
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin") from None


@dataclass(frozen=True)
class Shift:
    label: str              # e.g. "2026-12-01 S2 (14:00)"
    start_utc: dt.datetime  # naive UTC, like the records
    end_utc: dt.datetime


def shift_of(t_utc: dt.datetime, starts: Sequence[dt.time] = (), zone: Optional[dt.tzinfo] = None) -> Shift:
    """The shift a record's naive-UTC time falls in."""
    if not EARLIEST <= t_utc <= LATEST:
        from .errors import InvalidRequest
        raise InvalidRequest(f"no shift is looked up for {t_utc.isoformat()}Z; use a time between "
                             f"{EARLIEST.year} and {LATEST.year}")
    starts = tuple(starts) or parse_shift_starts(DEFAULT_SHIFT_STARTS)
    zone = zone or plant_zone(None)
    local = t_utc.replace(tzinfo=dt.timezone.utc).astimezone(zone)
    day = local.date()
    # the latest start at or before the local time; before the first start of the day
    # it is the previous day's last shift
    candidates = [(day, i, s) for i, s in enumerate(starts) if s <= local.time()]
    if candidates:
        sday, idx, stime = candidates[-1]
    else:
        sday, idx, stime = day - dt.timedelta(days=1), len(starts) - 1, starts[-1]
    if idx + 1 < len(starts):
        eday, etime = sday, starts[idx + 1]
    else:
        eday, etime = sday + dt.timedelta(days=1), starts[0]

    def to_utc(d: dt.date, t: dt.time) -> dt.datetime:
        return (dt.datetime.combine(d, t, tzinfo=zone).astimezone(dt.timezone.utc).replace(tzinfo=None))

    return Shift(label=f"{sday.isoformat()} S{idx + 1} ({stime.strftime('%H:%M')})",
                 start_utc=to_utc(sday, stime), end_utc=to_utc(eday, etime))
