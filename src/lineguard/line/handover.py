"""What a shift hands over beside its counts: the note the shift writes for the next one,
and the station's stops and starts in it (a restart or an outage judges no part).

Notes are only ever added: the newest for a shift and line is the note, the ones before
it its history (who wrote what, when), so a note changed after a complaint still shows
what it said at the handover. A station process's run is a row written at its start,
its last sign of life renewed every ``BEAT`` (the alarm watch's thread) and its clean
stop; a run that never stopped cleanly (killed, a crash, the power gone) ends at its last
sign of life, or at the last part judged within the beat after it (a run killed 9 s after
its start, before its first beat, judged parts until then: ended at its start, the report
said no part was judged across them). A run is written once the station's start is
accepted (its process named): a start refused (an unknown product) is no run.
"""
from __future__ import annotations

import datetime as dt
import os
import re
import socket
from typing import Any, Callable, Optional

from sqlalchemy import func, select, update

from .orm import Inspection, ShiftNote, StationRun, iso_utc, utcnow

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


def notes(db: Any, shift_start: dt.datetime, line: Optional[str], shift_end: Optional[dt.datetime] = None,
          is_start: Optional[Callable[[dt.datetime], Optional[dt.datetime]]] = None) -> dict[str, Any]:
    """The shift's note (the newest, None when none was written or it was taken back) and
    its history, newest first. With the shift's end: ``other_shifts``, the notes written
    for shifts under other shift starts that overlap this one (:func:`_overlapping`), each
    with the start of the shift it was written for. ``is_start``: for an instant, the end
    of the shift starting there under the station's shift starts now (None: no shift does)."""
    with db.session() as s:
        rows = list(s.scalars(select(ShiftNote).where(ShiftNote.shift_start == shift_start,
                                                      ShiftNote.line == (line or ""))
                              .order_by(ShiftNote.id.desc()).limit(100)))
    out = _note_of(rows)
    if shift_end is not None:
        out["other_shifts"] = [{"shift_start": iso_utc(start), **_note_of(rows)}
                               for start, rows in _overlapping(db, shift_start, shift_end, line, is_start)]
    return out


def _note_of(rows: list[ShiftNote]) -> dict[str, Any]:
    history = [{"note": r.note, "written_by": r.written_by, "written_at": iso_utc(r.written_at)} for r in rows]
    current = history[0] if history and history[0]["note"] else None
    return {"note": current["note"] if current else None,
            "written_by": current["written_by"] if current else None,
            "written_at": current["written_at"] if current else None,
            "history": history}


# a shift is a day at the longest (one shift start a day): a note's shift reaches no further
LONGEST_SHIFT = dt.timedelta(hours=24)


def _overlapping(db: Any, start: dt.datetime, end: dt.datetime, line: Optional[str],
                 is_start: Optional[Callable[[dt.datetime], Optional[dt.datetime]]]
                 ) -> list[tuple[dt.datetime, list[ShiftNote]]]:
    """The notes of ``line`` written for shifts other than the one from ``start`` to ``end``
    that overlap it, by the start of the shift each was written for, oldest first (each's
    versions newest first). A note names its shift by its start alone: after the station's
    shift starts changed (06:00/14:00/22:00 to 06:00/18:00), the night's notes were written
    for a 22:00 shift no report asks for any more, and were lost. A note's shift started in
    this one, or before it and ended after this one began: a shift starting where a shift
    starts now ends where that shift ends now; any other (written under other starts) ends
    at the next such start a note was written for, on any line, or a day after it began at
    most (the shift starts then are not kept: a shift no note was written for after it may
    make it look longer)."""
    with db.session() as s:
        starts = sorted({t for (t,) in s.execute(
            select(ShiftNote.shift_start).where(ShiftNote.shift_start >= start - LONGEST_SHIFT,
                                                ShiftNote.shift_start < end + LONGEST_SHIFT).distinct())})
        mine = {t for (t,) in s.execute(
            select(ShiftNote.shift_start).where(ShiftNote.line == (line or ""), ShiftNote.shift_start != start,
                                                ShiftNote.shift_start >= start - LONGEST_SHIFT,
                                                ShiftNote.shift_start < end).distinct())}
        ends_now = {t: (is_start(t) if is_start is not None else None) for t in starts}
        out = []
        for t in sorted(mine):
            if t < start:
                if ends_now[t] is not None:
                    t_end = ends_now[t]
                else:
                    later = [u for u in starts if u > t and ends_now[u] is None]
                    t_end = min(later + [t + LONGEST_SHIFT])
                if t_end <= start:
                    continue
            rows = list(s.scalars(select(ShiftNote).where(ShiftNote.shift_start == t,
                                                          ShiftNote.line == (line or ""))
                                  .order_by(ShiftNote.id.desc()).limit(100)))
            out.append((t, rows))
    return out


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


def span(secs: float) -> str:
    """A time no part was judged as the shift reads it: "35 s", "12 min 5 s", "2 h 0 min"
    (an outage of hours said in seconds had to be worked out before it could be told on)."""
    secs = int(round(secs))
    if secs < 60:
        return f"{secs} s"
    if secs < 3600:
        return f"{secs // 60} min" + (f" {secs % 60} s" if secs % 60 else "")
    return f"{secs // 3600} h {secs % 3600 // 60} min"


# how far before a shift a run's end is still looked for: a station down since then is
# down in this shift too; a process name not heard of for longer is taken as retired (a
# station moved to another PC), not as down in every shift after
DOWN_LOOKBACK = dt.timedelta(days=7)


# a Ray Serve replica's run (server.ray_serve.replica_process, "on HOST:DATA" added): its
# deployment's other replicas are its siblings
_REPLICA = re.compile(r"^(serve-ray .*?replica) \S+ (on .+)$")


def _retired_replicas(runs: list[StationRun]) -> dict[str, tuple[dt.datetime, str]]:
    """The serve-ray replicas that may have been retired: a sibling (the same deployment on the
    same PC and data) started after replica K's last run ended (or was last seen) while K
    never started again; stops_and_starts asks only for a K that stopped or went silent.
    Serve gives a replica started in a dead one's place the same number, so this is serve-ray
    started again with fewer replicas; K is not down in every shift after (for a week).
    {process: (when it was retired, the sibling that started)}."""
    last: dict[str, StationRun] = {}
    for r in sorted(runs, key=lambda r: (r.started_at, r.id or 0)):
        last[r.process] = r
    deployment = {p: m.groups() for p in last if (m := _REPLICA.match(p)) is not None}
    out: dict[str, tuple[dt.datetime, str]] = {}
    for p, group in deployment.items():
        end = last[p].stopped_at or last[p].seen_at
        # the first start of a sibling after it (not the sibling's last: one started again
        # since would move the retirement past the shift it happened in)
        after = [(x.started_at, x.process) for x in runs
                 if x.process != p and x.started_at > end and deployment.get(x.process) == group]
        if after:
            out[p] = min(after)
    return out


def _end(run: StationRun, last_parts: Optional[dict[int, dt.datetime]] = None) -> dt.datetime:
    """When a run ended: its clean stop, else its last sign of life or the last part judged
    after it (``last_parts``, :func:`_last_parts`), whichever came later."""
    if run.stopped_at is not None:
        return run.stopped_at
    part = (last_parts or {}).get(run.id)
    return max(run.seen_at, part) if part is not None else run.seen_at


# a process that feeds one station ("watch L1/S1 on PC:DATA", "camera ..."): its parts are
# that station's alone
_ONE_STATION = re.compile(r"^(?:watch|camera) .+/.+ on ")


def _last_parts(s: Any, ended: list[tuple[StationRun, dt.datetime]]) -> dict[int, dt.datetime]:
    """For each run gone silent (``ended``: the run, and when the next run of its process
    started or now), the newest part judged after its last sign of life and before it would
    have given the next (a beat) or the next run started: the part's time is when the run
    was last seen working. A beat is every 15 s, and the parts judged in it were said as a
    time none was judged. A watcher's own station's parts only; serve's any (the parts
    carry no process: another process judging within that beat moves the end at most a
    beat late, as the beat moved it early). One indexed range of at most a beat per run
    (the parts' created_at), read only for the report, never on a part's way."""
    out: dict[int, dt.datetime] = {}
    for run, next_start in ended:
        upto = min(run.seen_at + BEAT, next_start)
        if upto <= run.seen_at:
            continue
        rows = s.execute(select(Inspection.line, Inspection.station, func.max(Inspection.created_at))
                         .where(Inspection.created_at > run.seen_at, Inspection.created_at <= upto)
                         .group_by(Inspection.line, Inspection.station)).all()
        if _ONE_STATION.match(run.process):
            # its line/station as typed may differ in case from the stored one (l1/s1 for L1/S1)
            said = run.process.casefold()
            verb = said.split(" ", 1)[0]
            rows = [r for r in rows if said.startswith(f"{verb} {r[0]}/{r[1]} on ".casefold())]
        newest = max((r[2] for r in rows if r[2] is not None), default=None)
        if newest is not None:
            out[run.id] = newest
    return out


def runs_recorded_from(db: Any) -> Optional[dt.datetime]:
    """When the first station run on record started (naive UTC; None: none yet): before it
    nothing is known of stops and starts (the station did not exist yet, or ran a lineguard
    that did not record its runs)."""
    with db.session() as s:
        return s.scalar(select(func.min(StationRun.started_at)))


def stops_and_starts(db: Any, since: dt.datetime, until: dt.datetime,
                     now: Optional[dt.datetime] = None) -> list[dict[str, Any]]:
    """The station's stops, starts and outages from ``since`` to ``until`` (naive UTC), oldest
    first: each start after a run before it (of the same process) says whether that one
    stopped cleanly or went silent, and how long no part was judged between (``down_s``; a
    silent run ends at its last sign of life or the last part judged after it). A run
    stopped or gone silent in the window that had not started again by its end (or yet,
    while the window reaches ``now``: the shift goes on) is listed as still down; so is one
    that stopped or went silent before the window (up to DOWN_LOOKBACK) and was not
    running at its start (``before_window``: down all of it, or until its start in it, with
    ``down_in_window_s`` the part of the time no part was judged that lies in the window).
    A serve-ray replica retired by a start with fewer replicas (:func:`_retired_replicas`)
    is not down: ``kind`` "retired", in the window it stopped in only.
    The sentences (``text``) carry no times: the stopped/started fields do, for the page to
    say in plant time."""
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
        # a process with no run in the window at all: down since before it (its last run
        # went silent or stopped then), so the whole window passed without a part judged
        earlier = list(s.scalars(select(StationRun).where(StationRun.started_at < since,
                                                          StationRun.seen_at >= since - DOWN_LOOKBACK)
                                 .order_by(StationRun.process, StationRun.started_at, StationRun.id)))
        quiet: dict[str, StationRun] = {}
        for r in earlier:
            if r.process not in firsts:
                quiet[r.process] = r          # the last one of the process
        by_process: dict[str, list[StationRun]] = {}
        for r in runs:
            by_process.setdefault(r.process, []).append(r)
        for p, r in quiet.items():
            by_process[p] = [r]
        # the runs that went silent (no clean stop; started again since, or silent for
        # three beats), with when the next one started: their last parts after their last beat
        ended: list[tuple[StationRun, dt.datetime]] = []
        for p, rs in by_process.items():
            chain = ([before[p]] if p in before else []) + rs
            for i, r in enumerate(chain):
                following = chain[i + 1].started_at if i + 1 < len(chain) else None
                if r.stopped_at is None and (following is not None or now - r.seen_at > BEAT * 3):
                    ended.append((r, following if following is not None else now))
        last_parts = _last_parts(s, ended)

    def end_of(run: StationRun) -> dt.datetime:
        return _end(run, last_parts)
    out: list[dict[str, Any]] = []
    span_end = min(now, until)
    # the window reaches now (the line view asks up to now, the report of the shift on ends
    # later): the shift goes on, a station down may yet start in it
    going_on = until >= now
    retired = _retired_replicas(runs + list(before.values()) + earlier)
    for p, rs in sorted(by_process.items()):
        chain = ([before[p]] if p in before else []) + rs
        # of the runs started so far, the one that ended last: a start is a restart only after
        # it ended. The run started just before is not enough: second starts refused within
        # seconds while the station ran on (a wrong --recipe, a port taken) were read as a
        # restart of one another, and the last of them as the station down
        latest: Optional[StationRun] = None
        for cur in chain:
            prev, latest = latest, cur if latest is None or end_of(cur) > end_of(latest) else latest
            if cur.started_at < since:
                continue
            if prev is None:
                out.append({"process": p, "kind": "started", "at": iso_utc(cur.started_at), "started_at":
                            iso_utc(cur.started_at), "stopped_at": None, "clean": None, "down_s": None,
                            "before_window": False, "down_in_window_s": None,
                            "text": f"{p} started (no run of it before)"})
                continue
            end = end_of(prev)
            if cur.started_at < end - BEAT:
                # one before still ran when this one started: another process of the same
                # PC (a local watcher beside serve), or a second start refused, not a restart
                continue
            clean = prev.stopped_at is not None
            down = _secs(max(cur.started_at - end, dt.timedelta(0)))
            early = end < since
            in_window = _secs(max(cur.started_at - max(end, since), dt.timedelta(0)))
            if early:
                text = (f"{p} {'stopped' if clean else 'went silent (no clean stop: killed, crashed or the power went)'}"
                        f" before this shift began and started again in it: down all of the shift until then, no "
                        f"part judged for {'' if clean else 'about '}{span(down)} ({span(in_window)} of them in "
                        "this shift)")
            elif clean:
                text = f"{p} stopped and started again: no part judged for {span(down)}"
            else:
                text = (f"{p} went silent (no clean stop: killed, crashed or the power went) and started again: "
                        f"no part judged for about {span(down)}")
            out.append({"process": p, "kind": "restart" if clean else "outage", "at": iso_utc(end),
                        "stopped_at": iso_utc(end), "started_at": iso_utc(cur.started_at), "clean": clean,
                        "down_s": down, "before_window": early, "down_in_window_s": in_window, "text": text})
        last = latest or chain[-1]      # the one that ended last
        end = end_of(last)
        clean = last.stopped_at is not None
        silent = not clean and span_end - last.seen_at > BEAT * 3
        # stopped or gone silent in the window, or before it and not started since
        gone = (clean or silent) and end < until and last.started_at < until
        if gone and p in retired and retired[p][0] < until:
            # serve-ray started again with fewer replicas: said once, in the window it stopped
            # in; the time no part was judged is its sibling's restart's or outage's
            if end >= since:
                sibling = retired[p][1]
                out.append({"process": p, "kind": "retired", "at": iso_utc(end), "stopped_at": iso_utc(end),
                            "started_at": None, "clean": clean, "down_s": None, "before_window": False,
                            "down_in_window_s": None,
                            "text": f"{p} {'stopped' if clean else 'went silent'} and {sibling} started after it "
                                    "without it: serve-ray runs with fewer replicas since, this one is not down"})
        elif gone:
            # either way not running at the window's end
            early = end < since
            down = _secs(span_end - end)
            in_window = _secs(span_end - max(end, since))
            how = "stopped" if clean else "went silent"
            if going_on:
                # the shift is not over: it may yet start in it (the line view asks during the shift)
                text = (f"{p} {how} before this shift began and has not started again yet: down all of this "
                        f"shift so far, no part judged in its {span(in_window)} ({span(down)} since it {how})"
                        if early else
                        f"{p} {how} and has not started again yet: no part judged for {span(down)} so far")
            else:
                text = (f"{p} {how} before this shift began and had not started again by its end: down all of "
                        f"this shift, no part judged in its {span(in_window)} ({span(down)} since it {how})"
                        if early else
                        f"{p} {how} and had not started again by the shift's end: no part judged for "
                        f"{span(down)} or more")
            out.append({"process": p, "kind": "down", "at": iso_utc(end), "stopped_at": iso_utc(end),
                        "started_at": None, "clean": clean, "down_s": down, "before_window": early,
                        "down_in_window_s": in_window, "text": text})
    return sorted(out, key=lambda e: e["at"])
