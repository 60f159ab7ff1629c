"""The live line view's data: station events as they happen, and this shift's counters."""
from __future__ import annotations

import datetime as dt
import logging
import math
import time
from typing import Any, Optional

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import func, null, select, text
from sqlalchemy.orm import aliased

from ...line import handover
from ...line.errors import StationError
from ...line.orm import Inspection, LineSignal, utcnow
from ...line.spc_data import Filters, no_verdict_counts
from ...line.station import Station, _iso, _naive_utc
from ...line.test_parts import verification
from ...line.watchers import statuses, watcher_faults
from ..deps import Caller, credential_lapsed, get_station, known_query_only, reader
from ..events import EventHub
from ..schemas import errors
from .spc import SINCE_HELP, TIME_TEXT, plant_time

router = APIRouter(prefix="/api/v1", tags=["live"])
log = logging.getLogger("lineguard.server")

THROUGHPUT_WINDOW = dt.timedelta(minutes=5)   # parts per minute is the recent pace, not the shift's mean
LATENCY_SAMPLE = 500                          # newest parts per station the latency percentiles use
# The station's own time for a part, from upload received to record stored (the model's
# share is station_model); older records without these keys fall back to the model total.
_LATENCY_PARTS = ("station_decode", "station_queue", "station_model", "station_store_files")


def event_hub(request: Request) -> EventHub:
    return request.app.state.events


@router.get("/events", summary="Inspections, reviews and line alarms as they happen (server-sent events)",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "`event: inspection` or `review` with the record as JSON in `data:`, "
                                            "`event: alarm` with a line alarm raised or acknowledged here (`change`); "
                                            "`event: dropped` when this client read too slowly and missed events "
                                            "(reload the counters); a comment line every 15 s when idle. The key or "
                                            "sign-in is asked again every few seconds: once it is revoked, disabled, "
                                            "signed out, expired or given a new password, `event: ended` (its "
                                            "`reason` in `data:`) and the stream ends"},
                       **errors(401, 403, 503)})
async def events(request: Request, hub: EventHub = Depends(event_hub), station: Station = Depends(get_station),
                 caller: Optional[Caller] = Depends(reader)) -> Any:
    sub = hub.subscribe()
    if sub is None:
        from ...line.errors import StorageUnavailable
        raise StorageUnavailable("the station is shutting down; connect again when it is back")

    async def still_holds() -> Optional[str]:
        try:
            return await credential_lapsed(request, station, "operator")
        except Exception as exc:  # noqa: BLE001 - the database, most likely
            # fail closed: records go only to a caller known to hold; the page
            # reconnects (and is asked again) on its own
            log.warning("live stream of %s ended: its key or sign-in could not be checked: %s",
                        caller.who if caller else "?", exc)
            return "the station could not confirm your key or sign-in just now; connect again"

    async def stream():
        try:
            # caller None: reads are open (--open-reads), nothing was asked, nothing to withdraw
            async for chunk in sub.messages(recheck=still_holds if caller is not None else None):
                yield chunk
        finally:
            # the client went away (Starlette cancels the stream), the server stops, or
            # the caller's key or sign-in no longer holds
            hub.unsubscribe(sub)

    # no-transform/X-Accel-Buffering: a reverse proxy must pass events on, not gather them
    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"})


def _percentile(sorted_vals: list[float], q: float) -> Optional[float]:
    if not sorted_vals:
        return None
    # nearest rank: a latency that some part really had, not an interpolation
    k = max(0, min(len(sorted_vals) - 1, math.ceil(q * len(sorted_vals)) - 1))
    return round(sorted_vals[k], 1)


def _part_latency_ms(timings: dict[str, Any]) -> Optional[float]:
    vals = [timings[k] for k in _LATENCY_PARTS if isinstance(timings.get(k), (int, float))]
    if vals:
        return float(sum(vals))
    total = timings.get("total")
    return float(total) if isinstance(total, (int, float)) else None


def _first(col: Any, *where: Any) -> Any:
    """The least ``col`` where ``where`` holds: one seek along an index that leads with the
    columns compared, not a read of every row (SELECT DISTINCT would read all history)."""
    return select(func.min(col)).where(*where).scalar_subquery()


def _shift_counts(start: dt.datetime) -> Any:
    """Rows (line, station, verdict, parts, newest part's time): each station's production
    parts of each verdict since ``start``, and for each station a row with verdict None
    counting its test parts since then.

    Grouped in one statement along the creation time, the database read every part of the
    shift, and SQLite sorted them by line, station and verdict, on every poll of the line
    view: 0.35-0.8 s at 200,000 parts (SQLite). Here the lines, each line's stations and each
    station's verdicts are found a seek apiece (a loose index scan), and each is counted
    where its parts since ``start`` lie together in the production parts' index (or the
    test parts', migration 0031): what is read is the shift's index entries, no table row
    and no sort; and it is still a plain count of the rows, whichever process wrote them,
    in whatever order their ids were committed, whatever the record keeper deleted."""
    x = aliased(Inspection, name="x")
    lines = select(_first(x.line).label("line")).cte("shift_lines", recursive=True)
    lines = lines.union_all(select(_first(x.line, x.line > lines.c.line)).where(lines.c.line.is_not(None)))
    stations = (select(lines.c.line, _first(x.station, x.line == lines.c.line).label("station"))
                .where(lines.c.line.is_not(None)).cte("shift_stations", recursive=True))
    stations = stations.union_all(
        select(stations.c.line, _first(x.station, x.line == stations.c.line, x.station > stations.c.station))
        .where(stations.c.station.is_not(None)))
    # test_part IS NULL, as the partial index reads it (SQLite uses it only so)
    production = x.test_part.is_(None)
    groups = (select(stations.c.line, stations.c.station,
                     _first(x.verdict, x.line == stations.c.line, x.station == stations.c.station, production)
                     .label("verdict"))
              .where(stations.c.station.is_not(None)).cte("shift_verdicts", recursive=True))
    groups = groups.union_all(
        select(groups.c.line, groups.c.station,
               _first(x.verdict, x.line == groups.c.line, x.station == groups.c.station, production,
                      x.verdict > groups.c.verdict))
        .where(groups.c.verdict.is_not(None)))
    i = Inspection
    mine = (i.line == groups.c.line, i.station == groups.c.station, i.verdict == groups.c.verdict,
            i.test_part.is_(None), i.created_at >= start)
    parts = select(groups.c.line, groups.c.station, groups.c.verdict,
                   select(func.count()).select_from(i).where(*mine).scalar_subquery().label("n"),
                   select(func.max(i.created_at)).where(*mine).scalar_subquery().label("last")
                   ).where(groups.c.verdict.is_not(None))
    tests = select(stations.c.line, stations.c.station, null(),
                   select(func.count()).select_from(i)
                   .where(i.line == stations.c.line, i.station == stations.c.station, i.test_part.is_not(None),
                          i.created_at >= start).scalar_subquery(),
                   null()).where(stations.c.station.is_not(None))
    return parts.union_all(tests)


def _grouped_counts(start: dt.datetime) -> Any:
    """The rows of :func:`_shift_counts`, grouped over the shift's parts along their time:
    PostgreSQL's way (below)."""
    i = Inspection
    production = (select(i.line, i.station, i.verdict, func.count(), func.max(i.created_at))
                  .where(i.created_at >= start, i.test_part.is_(None)).group_by(i.line, i.station, i.verdict))
    tests = (select(i.line, i.station, null(), func.count(), null())
             .where(i.created_at >= start, i.test_part.is_not(None)).group_by(i.line, i.station))
    return production.union_all(tests)


def shift_counts(s: Any, start: dt.datetime, sqlite: bool) -> list[Any]:
    """Each station's parts of each verdict since ``start`` and its test parts (rows of
    :func:`_shift_counts`), read in session ``s`` (``sqlite``: the database is SQLite).

    SQLite counts along the stations' verdicts (:func:`_shift_counts`): it sorted the shift's
    parts on every poll. PostgreSQL groups the shift's parts (18-50 ms at 50,000-200,000):
    the loose scan starts each station's verdicts at their oldest index entries, the very
    ones the record keeper deletes, and PostgreSQL keeps deleted entries until VACUUM, so
    after 1.5 million old parts were deleted each poll stepped over them all (87-150 ms, the
    first 2.7 s; grouped: 7 ms), and it walked every station ever recorded (90 ms with 1,000
    of them; grouped: 18 ms)."""
    if sqlite:
        return s.execute(_shift_counts(start)).all()
    # a large shift's estimate passes jit_above_cost: each poll would compile the statement
    # (0.6-1.3 s of JIT for a statement that runs in milliseconds)
    s.execute(text("SET LOCAL jit = off"))
    return s.execute(_grouped_counts(start)).all()


def line_summary(station: Station, since: Optional[dt.datetime] = None,
                 now: Optional[dt.datetime] = None) -> dict[str, Any]:
    """Counters per line and station since ``since`` (default: the start of the current shift)."""
    now = now or utcnow()
    shift = station.config.shift_at(now)
    start = _naive_utc(since) if since is not None else shift.start_utc
    lines: dict[tuple[str, str], dict[str, Any]] = {}

    def row(line: str, st: str) -> dict[str, Any]:
        return lines.setdefault((line, st), {"line": line, "station": st, "parts": 0, "ok": 0, "ng": 0,
                                             "review": 0, "defect_rate": None, "parts_per_min": 0.0,
                                             "latency_ms": {"p50": None, "p95": None}, "last_part_at": None,
                                             "no_verdict": 0})

    recent_from = max(start, now - THROUGHPUT_WINDOW)
    window_min = max((now - recent_from).total_seconds() / 60.0, 1e-9)
    production = Inspection.test_part.is_(None)   # test parts' checks are shown apart (verification)
    with station.db.session() as s:
        # each station's records since start, test parts too: where the latency sample's
        # newest-first walk may stop (below)
        in_span: dict[tuple[str, str], int] = {}
        for line, st, verdict, n, last in shift_counts(s, start, station.db.is_sqlite):
            in_span[(line, st)] = in_span.get((line, st), 0) + n
            if verdict is None or not n:
                continue     # its test parts (counted for the sample only), or none since start
            r = row(line, st)
            r["parts"] += n
            key = {"OK": "ok", "NG": "ng", "REVIEW": "review"}.get(verdict)
            if key:
                r[key] += n
            if last is not None and (r["last_part_at"] is None or last > r["last_part_at"]):
                r["last_part_at"] = last
        recent = s.execute(select(Inspection.line, Inspection.station, func.count())
                           .where(Inspection.created_at >= recent_from, production)
                           .group_by(Inspection.line, Inspection.station))
        for line, st, n in recent:
            row(line, st)["parts_per_min"] = round(n / window_min, 2)
        # parts a PLC link rejected without a verdict in time, counted from what the PLC was told
        for (line, st), (n, _late) in no_verdict_counts(s, Filters(since=start)).items():
            row(line, st)["no_verdict"] = n
        timings: dict[tuple[str, str], list[float]] = {}
        # SQLite: not along (line, created_at) (the same rows; the expression keeps that index out)
        since_start = ((func.coalesce(Inspection.created_at, Inspection.created_at) if station.db.is_sqlite
                        else Inspection.created_at) >= start)
        for key in list(lines):
            # newest first along the station's own index (line, station, id), and no further than
            # its records since start: along the line's (line, created_at) SQLite read and sorted
            # every part of the line since start for each station (117 ms for 4 stations at a
            # 50,000-part shift), and newest first with LIMIT 500 alone a station with fewer went
            # on through its whole history (every station in a shift's first minutes)
            q = (select(Inspection.timings_ms)
                 .where(Inspection.line == key[0], Inspection.station == key[1], since_start)
                 .order_by(Inspection.id.desc()).limit(min(LATENCY_SAMPLE, in_span.get(key, 0))))
            timings[key] = sorted(v for v in (_part_latency_ms(t or {}) for t in s.scalars(q)) if v is not None)
    for key, r in lines.items():
        r["defect_rate"] = round(r["ng"] / r["parts"], 6) if r["parts"] else None
        r["latency_ms"] = {"p50": _percentile(timings[key], 0.5), "p95": _percentile(timings[key], 0.95)}
        r["last_part_at"] = _iso(r["last_part_at"])

    from .models import model_to_dict
    models = [model_to_dict(m) for m in station.models.list() if m.active]
    sinks = [{"name": name, **state} for name, state in station.sinks.status().items()]
    links = getattr(station, "plc", None) or []    # serve's links, one per protocol
    plc = None
    if links:
        with station.db.session() as s:
            plc = [_plc_link_view(link, s, now) for link in links]
    # the station's restarts and outages since the shift began: the line view showed one only
    # while it lasted ("reconnecting…"), and the time no part was judged was then lost to the
    # shift (the shift report lists them after the shift; the operator needs them in it)
    runs = handover.stops_and_starts(station.db, start, now, now)
    return {"since": _iso(start), "now": _iso(now),
            "stops_and_starts": runs,
            "verification": verification(station.db, shift, now),
            "alarms": station.alarms.active(),
            "shift": {"label": shift.label, "start": _iso(shift.start_utc), "end": _iso(shift.end_utc)},
            "lines": sorted(lines.values(), key=lambda r: (r["line"], r["station"])),
            "models": models, "sinks": sinks, "plc": plc, "faults": {**station.faults, **station.model_faults(),
                       # the hot folders' watchers too (a file refused, given up, a watcher behind or
                       # silent): /health said them, the line view, which draws these, did not
                       **watcher_faults(statuses(station.config.data_dir))},
            "disk": station.disk.status(),
            "records": station.records.status() if station.records is not None else None,
            "backup": station.backups.status() if station.backups is not None else None}


# the line view's PLC panel: rejects without a verdict over this span are "recent"
PLC_RECENT = dt.timedelta(minutes=15)
# a result unread this long is the PLC's trouble (a PLC reads its answer within ms)
PLC_ACK_LATE_S = 2.0
# codes of answers rejected without a verdict, as the line_signals rows keep them
_TIMEOUT, _NOT_INSPECTED = 10, 20


def _plc_link_view(link: Any, s: Any, now: dt.datetime) -> dict[str, Any]:
    """One PLC link as the line view shows it: its snapshot (what the PLC sees, the counts
    since start, the answers not yet recorded) under its protocol, the part in inspection,
    the part whose result waits for the PLC's acknowledgement and for how long, and its
    rejects without a verdict in the last PLC_RECENT (a link timing out every part showed
    a green dot: the counts were nowhere on the page)."""
    snap = link.snapshot()
    hs = link.hs
    view: dict[str, Any] = {"protocol": link.protocol, **snap, "line": hs.line, "station": hs.station_name}
    view.setdefault("busy", hs.busy)
    pending = hs.pending
    view["part_in_inspection"] = pending.tag if pending is not None else None
    view["result_part"] = view["result_waiting_s"] = None
    mine = (LineSignal.protocol == link.protocol, LineSignal.line == hs.line, LineSignal.station == hs.station_name)
    if snap.get("results_valid") and hs.answered_at is not None:
        # the handshake's own record of the answer up, not its database row: looked up by
        # trigger number (no index) that read every row of the station, and a row not yet
        # recorded (the database locked: the very time the PLC is kept waiting) said nothing
        view["result_part"] = hs.answered_part
        view["result_waiting_s"] = round(max(0.0, time.monotonic() - hs.answered_at), 1)
    since = now - PLC_RECENT
    recent = {"minutes": PLC_RECENT.total_seconds() / 60, "answers": 0, "timeouts": 0, "not_inspected": 0,
              "other_no_verdict": 0}
    for code, n in s.execute(select(LineSignal.result_code, func.count()).where(*mine, LineSignal.triggered_at >= since)
                             .group_by(LineSignal.result_code)):
        recent["answers"] += n
        if code == _TIMEOUT:
            recent["timeouts"] += n
        elif code == _NOT_INSPECTED:
            recent["not_inspected"] += n
        elif code >= _TIMEOUT:
            recent["other_no_verdict"] += n
    view["recent"] = recent
    view["ack_late"] = view["result_waiting_s"] is not None and view["result_waiting_s"] >= PLC_ACK_LATE_S
    return view


@router.get("/lines/summary", summary="Counters per line and station this shift (the line view)",
            responses=errors(401, 403, 422))
def summary(request: Request,
            since: Optional[str] = Query(None, max_length=TIME_TEXT, description=SINCE_HELP + "; default the "
                                         "start of the current shift (the plant's shift starts)"),
            station: Station = Depends(get_station), _r: Any = Depends(reader),
            _known: None = Depends(known_query_only)) -> dict[str, Any]:
    start = plant_time(station, since, "since")
    try:
        body = line_summary(station, start)
    except ValueError as exc:   # shift settings: checked at start-up, but say so if not
        raise StationError(str(exc)) from exc
    hub = getattr(request.app.state, "events", None)
    body["live"] = {"clients": hub.clients if hub else 0, "dropped": hub.dropped if hub else 0}
    return body
