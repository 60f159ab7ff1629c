"""What a shift hands over beside its counts: the note the shift writes for the next one,
and the station's stops and starts in it (a restart or an outage judges no part).

Notes are only ever added: the newest for a shift and line is the note, the ones before
it its history (who wrote what, when), so a note changed after a complaint still shows
what it said at the handover. A station process's run is a row written at its start,
its last sign of life renewed every ``BEAT`` (the alarm watch's thread) and its clean
stop; a run that never stopped cleanly (killed, a crash, the power gone) ends at its last
sign of life, so the time no part was judged is known to within one beat.
"""
from __future__ import annotations

import datetime as dt
import os
import socket
from typing import Any, Optional

from sqlalchemy import select, update

from .orm import ShiftNote, StationRun, iso_utc, utcnow

NOTE_MAX = 4000          # a handover note is a paragraph, not a file
BEAT = dt.timedelta(seconds=15)   # the alarm watch's look (AlarmWatch.start's every_s)


class NoteRefused(ValueError):
    """A handover note the station cannot keep, with what to do instead."""


def write_note(db: Any, shift_start: dt.datetime, line: Optional[str], note: str,
               by: Optional[str]) -> dict[str, Any]:
    """Keep ``note`` as the handover note of the shift starting ``shift_start`` (naive UTC)
    on ``line`` (None: the report of every line); "" takes the note back. The earlier
    versions stay as its history."""
    text = (note or "").replace("\r\n", "\n").strip()
    if len(text) > NOTE_MAX:
        raise NoteRefused(f"the note has {len(text)} characters; a handover note keeps up to {NOTE_MAX}: "
                          "shorten it (put long findings in an alarm's note or the part's review)")
    with db.session() as s:
        s.add(ShiftNote(shift_start=shift_start, line=line or "", note=text,
                        written_by=by[:100] if by else by, written_at=utcnow()))
    return notes(db, shift_start, line)


def notes(db: Any, shift_start: dt.datetime, line: Optional[str]) -> dict[str, Any]:
    """The shift's note (the newest, None when none was written or it was taken back) and
    its history, newest first."""
    with db.session() as s:
        rows = list(s.scalars(select(ShiftNote).where(ShiftNote.shift_start == shift_start,
                                                      ShiftNote.line == (line or ""))
                              .order_by(ShiftNote.id.desc()).limit(100)))
    history = [{"note": r.note, "written_by": r.written_by, "written_at": iso_utc(r.written_at)} for r in rows]
    current = history[0] if history and history[0]["note"] else None
    return {"note": current["note"] if current else None,
            "written_by": current["written_by"] if current else None,
            "written_at": current["written_at"] if current else None,
            "history": history}


def process_name() -> str:
    """A station process's name in station_runs: its PC (a restart of the same PC's station
    follows the run before it)."""
    return f"station on {socket.gethostname()}"[:320]


def begin_run(db: Any, process: Optional[str] = None) -> int:
    """Write the start of this process's run; its id."""
    now = utcnow()
    with db.session() as s:
        run = StationRun(process=(process or process_name())[:320], pid=os.getpid(), started_at=now, seen_at=now)
        s.add(run)
        s.flush()
        return int(run.id)


def name_run(db: Any, run_id: int, process: str) -> None:
    """Name the run after the process it is (``serve on PC:folder``), once it says so."""
    with db.session() as s:
        s.execute(update(StationRun).where(StationRun.id == run_id).values(process=process[:320]))


def beat(db: Any, run_id: int) -> None:
    """Renew the run's last sign of life."""
    with db.session() as s:
        s.execute(update(StationRun).where(StationRun.id == run_id).values(seen_at=utcnow()))


def end_run(db: Any, run_id: int) -> None:
    """A clean stop: the run ends now, said as a stop (not an outage)."""
    now = utcnow()
    with db.session() as s:
        s.execute(update(StationRun).where(StationRun.id == run_id).values(seen_at=now, stopped_at=now))


def _secs(d: dt.timedelta) -> float:
    return round(d.total_seconds(), 1)


def stops_and_starts(db: Any, since: dt.datetime, until: dt.datetime,
                     now: Optional[dt.datetime] = None) -> list[dict[str, Any]]:
    """The station's stops, starts and outages from ``since`` to ``until`` (naive UTC), oldest
    first: each start after a run before it (of the same process) says whether that one
    stopped cleanly or went silent, and how long no part was judged between (``down_s``; a
    silent run ends at its last sign of life, at most one beat early). A run stopped or gone
    silent in the window that had not started again by its end is listed as still down."""
    now = now or utcnow()
    with db.session() as s:
        runs = list(s.scalars(select(StationRun).where(StationRun.started_at < until,
                                                       StationRun.seen_at >= since - BEAT * 2)
                              .order_by(StationRun.process, StationRun.started_at, StationRun.id)))
        # the run before the first of each process (its stop may fall in the window)
        firsts: dict[str, StationRun] = {}
        for r in runs:
            firsts.setdefault(r.process, r)
        before = {}
        for p, r in firsts.items():
            b = s.scalar(select(StationRun).where(StationRun.process == p, StationRun.started_at < r.started_at)
                         .order_by(StationRun.started_at.desc(), StationRun.id.desc()).limit(1))
            if b is not None:
                before[p] = b
    out: list[dict[str, Any]] = []
    by_process: dict[str, list[StationRun]] = {}
    for r in runs:
        by_process.setdefault(r.process, []).append(r)
    for p, rs in by_process.items():
        chain = ([before[p]] if p in before else []) + rs
        for prev, cur in zip([None] + chain[:-1], chain):
            if cur.started_at < since:
                continue
            if prev is None:
                out.append({"process": p, "kind": "started", "at": iso_utc(cur.started_at), "started_at":
                            iso_utc(cur.started_at), "stopped_at": None, "clean": None, "down_s": None,
                            "text": f"{p} started (no run of it before)"})
                continue
            end = prev.stopped_at or prev.seen_at
            if cur.started_at < end - BEAT:
                # the one before still ran when this one started: another process of the same
                # PC (a local watcher beside serve), not a restart
                continue
            clean = prev.stopped_at is not None
            down = _secs(max(cur.started_at - end, dt.timedelta(0)))
            out.append({"process": p, "kind": "restart" if clean else "outage", "at": iso_utc(end),
                        "stopped_at": iso_utc(end), "started_at": iso_utc(cur.started_at), "clean": clean,
                        "down_s": down,
                        "text": (f"{p} stopped at {iso_utc(end)} and started again at {iso_utc(cur.started_at)}: "
                                 f"no part judged for {down:.0f} s" if clean else
                                 f"{p} went silent after {iso_utc(end)} (no clean stop: killed, crashed or the power "
                                 f"went) and started again at {iso_utc(cur.started_at)}: no part judged for about "
                                 f"{down:.0f} s")})
        last = chain[-1]
        end = last.stopped_at or last.seen_at
        silent = last.stopped_at is None and min(now, until) - last.seen_at > BEAT * 3
        if (last.stopped_at is not None or silent) and since <= end < until:
            down = _secs(min(now, until) - end)
            out.append({"process": p, "kind": "down", "at": iso_utc(end), "stopped_at": iso_utc(end),
                        "started_at": None, "clean": last.stopped_at is not None, "down_s": down,
                        "text": f"{p} {'stopped' if last.stopped_at is not None else 'went silent'} at {iso_utc(end)} "
                                f"and had not started again by the shift's end: no part judged for {down:.0f} s "
                                "or more"})
    return sorted(out, key=lambda e: e["at"])
