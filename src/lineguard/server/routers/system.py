"""Health, metrics and API keys."""
from __future__ import annotations

from typing import Any, Optional
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from ... import __version__
from ...line.auth import create_key, revoke_key
from ...line.errors import NotFound
from ...line.orm import ApiKey, LineAlarm, iso_utc, utcnow
from ...line.outbox import REFUSED_SHOWN_S
from ...line.registry import model_subject
from ...line.station import HEALTH_LOCK_WAIT_MS, Station, _iso, stops_parts
from ...line.watchers import backlogs, statuses, summaries, watcher_faults
from ..deps import DB_INT_MAX, Caller, get_station, require
from ..schemas import HealthOut, KeyCreated, KeyIn, KeyList, KeyRevoked, ResentOut, errors

# a sink retrying this long makes /health "degraded": a blip rides out unseen, an outage is said
SINK_LATE_S = 60.0

router = APIRouter()   # tags per route: a router's own would list a route under two headings in /docs


def _alarms(station: Station) -> tuple[Optional[dict[str, Any]], dict[str, str]]:
    """The line alarms not yet acknowledged, counted for /health (no part data), and a
    fault per station where one stayed so past its escalation time (its station's
    escalate_min, stored on the alarm as escalate_at; escalated_at once the escalation was
    sent): "alarm LINE/STATION". A camera's bad week ran with two such alarms and every
    part NG while /health said "ok". One query (the partial index of active alarms), as
    /health is polled; None where the database did not answer it."""
    now = utcnow()
    try:
        # a lock wait of /health's own (1 s), not a part's 30 s: a monitor's call answers
        with station.db.quick_session(HEALTH_LOCK_WAIT_MS) as s:
            rows = s.execute(select(LineAlarm.line, LineAlarm.station, LineAlarm.kind, LineAlarm.raised_at,
                                    LineAlarm.escalate_at, LineAlarm.escalated_at, LineAlarm.escalations)
                             .where(LineAlarm.acked_at.is_(None)).order_by(LineAlarm.raised_at, LineAlarm.id)).all()
    except SQLAlchemyError:
        return None, {}
    by_kind: dict[str, int] = {}
    late: dict[str, list[str]] = {}
    for r in rows:
        by_kind[r.kind] = by_kind.get(r.kind, 0) + 1
        # escalated by any process on the database, or due and not yet marked (no process
        # looking for escalations: a hot folder's watcher alone, the escalation thread stuck)
        if r.escalated_at is not None or (r.escalate_at is not None and r.escalate_at <= now):
            waited = max(0.0, (now - r.raised_at).total_seconds()) / 60
            escalated = f", escalated {r.escalations or 1} time(s)" if r.escalated_at is not None else ""
            late.setdefault(f"alarm {r.line}/{r.station}", []).append(
                f"{r.kind} unacknowledged for {waited:.0f} min{escalated}")
    faults = {name: (f"{len(said)} alarm(s) unacknowledged past their escalation time ({'; '.join(said)}): "
                     "parts are still judged; acknowledge on the line view, the API or the PLC's AlarmAck")
              for name, said in late.items()}
    oldest = rows[0] if rows else None
    # active: not acknowledged (an acknowledged alarm is no longer active)
    return {"active": len(rows), "by_kind": by_kind,
            "stations": sorted({f"{r.line}/{r.station}" for r in rows}),
            "past_escalation": sum(len(said) for said in late.values()),
            "oldest": None if oldest is None else {
                "line": oldest.line, "station": oldest.station, "kind": oldest.kind,
                "raised_at": iso_utc(oldest.raised_at), "escalated": oldest.escalated_at is not None,
                "waiting_min": round(max(0.0, (now - oldest.raised_at).total_seconds()) / 60, 1)}}, faults


@router.get("/health", tags=["system"],
            summary="Is the station up, its database reachable and its data folder writable",
            response_model=HealthOut,
            responses={503: {"model": HealthOut, "description": "a fault: the body's faults say which"}})
def health(station: Station = Depends(get_station)) -> Any:
    faults = station.check_storage()
    active: list[str] = []
    if "database" not in faults:
        active = [model_subject(m) for m in station.models.list() if m.active]
        faults.update(station.model_faults())
    # local watchers' status files and --server ones' heartbeats (routers.watchers) alike
    watchers = statuses(station.config.data_dir)
    faults.update(watcher_faults(watchers))
    sinks = station.sinks.status() if "database" not in faults else {}
    for name, sink in sinks.items():
        # results held for the MES or the andon: parts are still judged and kept (not a
        # 503), but a plant monitor that reads only the status would have said "ok" all
        # weekend while nothing reached the receiver. Late by the oldest row owed, not by
        # how long this process has failed: a station restarting more often than
        # SINK_LATE_S never said it, however old its backlog
        oldest, failing = sink.get("oldest_pending_s"), sink["failing_for_s"]
        late = max(oldest or 0, failing or 0)
        if late >= SINK_LATE_S and (oldest is not None or failing is not None):
            said = [f"the oldest owed {oldest:.0f} s" if oldest is not None else None,
                    f"failing for {failing:.0f} s" if failing is not None else None]
            faults[f"sink {name}"] = (f"{sink['backlog']} result message(s) not delivered for {late:.0f} s "
                                      f"({', '.join(w for w in said if w)}): "
                                      f"{sink['last_error'] or 'being delivered, behind'}")
        # refused for good: dropped from the backlog, so nothing above says them; a receiver
        # refusing every message (a schema changed, a proxy answering 400) lost them all
        # while /health said "ok"
        if sink.get("refused_recent"):
            faults[f"sink {name} refused"] = (
                f"{sink['refused_recent']} message(s) refused by the receiver in the last "
                f"{REFUSED_SHOWN_S / 60:.0f} min (last: {sink['last_refused']}); they are kept in the outbox "
                "table marked refused until pruned: once the receiver takes them, send them again (POST "
                "/api/v1/sinks/resend-refused)")
    stopping = [f for f in faults if stops_parts(f)]
    # after the stopping faults are told: an alarm unanswered is the line's to act on, parts
    # are still judged and stored (degraded, 200, as a sink's backlog)
    alarms, late = _alarms(station) if "database" not in faults else (None, {})
    faults.update(late)
    body = {"status": "fault" if stopping else "degraded" if faults else "ok", "version": __version__,
            "database": "sqlite" if station.db.is_sqlite else "postgresql", "active_models": active,
            "faults": faults, "sinks": sinks,
            # the line alarms not yet acknowledged: how many of which kind, the oldest's wait
            "alarms": alarms,
            "disk": station.disk.status(),
            "records": station.records.status() if station.records is not None else None,
            "backup": station.backups.status() if station.backups is not None else None,
            # each running watcher's backlog, set-aside, given-up and refused files (a file given
            # up or refused is a fault only for a while; its count stays here for as long as the
            # watcher runs: a file refused was in the watcher's log alone, /health said "ok")
            "watchers": summaries(watchers)}
    # when the newest part was recorded: a line that stopped feeding parts (idle, its camera or
    # PLC silent) was "ok" here like one at work. Not a fault: a planned stop looks the same.
    # Kept in memory (Station.newest_part), so a polled /health seldom asks the database
    last = station.newest_part()
    body["last_part_at"] = iso_utc(last)
    body["last_part_age_s"] = None if last is None else round(max(0.0, (utcnow() - last).total_seconds()), 1)
    links = getattr(station, "plc", None) or []
    if links:
        # each link (Modbus and OPC UA side by side) under its protocol
        body["plc"] = {link.protocol: link.snapshot() for link in links}
    # 503 when parts cannot be judged or stored, so a load balancer or plant monitor sees
    # it without reading the body; housekeeping faults alone: 200, "degraded"
    return JSONResponse(body, status_code=503 if stopping else 200)


@router.post("/api/v1/sinks/resend-refused", tags=["system"], response_model=ResentOut,
             summary="Send the messages a receiver refused for good again", responses=errors(401, 403, 404),
             description="After the receiver was fixed (a schema at the MES, a proxy that answered 400): the "
                         "messages it refused in the last day (kept, marked refused) are owed again, each before "
                         "its line's next ones. `sink`: its address as stored in `outbox_deliveries.sink` "
                         "(`webhook:host:port/path`, `mqtt:host:port`) or its name as /health shows it "
                         "(`webhook:host:port #1a2b3c4d`, URL-encoded: `%20%23`); unset: every sink.")
def resend_refused(sink: Optional[str] = Query(None, max_length=500), station: Station = Depends(get_station),
                   _c: Caller = Depends(require("engineer"))) -> dict[str, Any]:
    if sink and station.sinks.sink_named(sink) is None:
        # each name also as a query value to paste where it needs it: the " #" of a label
        # cut a URL at its fragment
        names = [name if quote(name, safe=":/") == name else f"{name} (?sink={quote(name, safe=':/')})"
                 for name in station.sinks.status()]
        raise NotFound(f"no sink named {sink!r}; give its address as configured (webhook:host:port/path, "
                       f"mqtt:host:port) or its name as /health shows it: "
                       f"{', '.join(names) if names else 'this station has no sinks'}")
    return {"resent": station.sinks.resend_refused(sink or None)}


@router.get("/metrics", tags=["system"], summary="Prometheus metrics", response_class=Response)
def metrics(station: Station = Depends(get_station)) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST
    station.alarms.count_active()    # another process on the database may have raised or acknowledged some
    faults = station.check_storage()         # as /health would say them now
    if "database" not in faults:
        faults.update(station.model_faults())
        # another process on the database may have activated or rolled back a version (this
        # one's series stood on with the old version, and a line given back kept its model)
        station.refresh_active_metrics()
    watchers = statuses(station.config.data_dir)      # each status file read once
    faults.update(watcher_faults(watchers))
    station.metrics.set_faults(faults)
    # a watcher silent past its limit (killed) drops its series: its last count is not now's
    station.metrics.set_hot_folders(backlogs(watchers))
    return Response(station.metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.post("/api/v1/keys", status_code=201, tags=["keys"], summary="Create an API key (shown once)",
             response_model=KeyCreated, responses=errors(401, 403, 422))
def new_key(body: KeyIn, station: Station = Depends(get_station),
            caller: Caller = Depends(require("admin"))) -> dict[str, Any]:
    with station.db.session() as s:
        row, key = create_key(s, body.role, body.name, by=caller.who)
    return {"id": row.id, "prefix": row.prefix, "role": row.role, "name": row.name, "key": key}


@router.get("/api/v1/keys", tags=["keys"], summary="List API keys (never the keys themselves)",
            response_model=KeyList, responses=errors(401, 403))
def list_keys(station: Station = Depends(get_station), caller: Caller = Depends(require("admin"))) -> dict[str, Any]:
    with station.db.session() as s:
        rows = list(s.scalars(select(ApiKey).order_by(ApiKey.id)))
    return {"items": [{"id": r.id, "prefix": r.prefix, "role": r.role, "name": r.name,
                       "created_at": _iso(r.created_at), "revoked": r.revoked} for r in rows]}


@router.delete("/api/v1/keys/{key_id}", tags=["keys"], summary="Revoke an API key",
               response_model=KeyRevoked, responses=errors(401, 403, 404, 409, 422))
def delete_key(key_id: int = PathParam(ge=1, le=DB_INT_MAX), station: Station = Depends(get_station),
               caller: Caller = Depends(require("admin"))) -> dict[str, Any]:
    with station.db.session() as s:
        if not revoke_key(s, key_id, by=caller.who):
            raise NotFound(f"no API key with id {key_id}")
    station.key_cache.clear()   # after the commit: the revoked key and its sessions stop working now
    return {"id": key_id, "revoked": True}
