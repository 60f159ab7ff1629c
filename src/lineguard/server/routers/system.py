"""Health, metrics and API keys."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select

from ... import __version__
from ...line.auth import create_key, revoke_key
from ...line.errors import NotFound
from ...line.orm import ApiKey
from ...line.station import Station, _iso, stops_parts
from ..deps import DB_INT_MAX, Caller, get_station, require
from ..schemas import HealthOut, KeyCreated, KeyIn, KeyList, KeyRevoked, errors

# a sink retrying this long makes /health "degraded": a blip rides out unseen, an outage is said
SINK_LATE_S = 60.0

router = APIRouter()   # tags per route: a router's own would list a route under two headings in /docs


@router.get("/health", tags=["system"],
            summary="Is the station up, its database reachable and its data folder writable",
            response_model=HealthOut,
            responses={503: {"model": HealthOut, "description": "a fault: the body's faults say which"}})
def health(station: Station = Depends(get_station)) -> Any:
    faults = station.check_storage()
    active: list[str] = []
    if "database" not in faults:
        active = [f"{m.product}/{m.line or '*'} v{m.version}" for m in station.models.list() if m.active]
        faults.update(station.model_faults())
    sinks = station.sinks.status() if "database" not in faults else {}
    for name, sink in sinks.items():
        # results held for the MES or the andon: parts are still judged and kept (not a
        # 503), but a plant monitor that reads only the status would have said "ok" all
        # weekend while nothing reached the receiver
        if (sink["failing_for_s"] or 0) >= SINK_LATE_S:
            faults[f"sink {name}"] = (f"{sink['backlog']} result message(s) not delivered for "
                                      f"{sink['failing_for_s']:.0f} s: {sink['last_error']}")
    stopping = [f for f in faults if stops_parts(f)]
    body = {"status": "fault" if stopping else "degraded" if faults else "ok", "version": __version__,
            "database": "sqlite" if station.db.is_sqlite else "postgresql", "active_models": active,
            "faults": faults, "sinks": sinks,
            "disk": station.disk.status(),
            "records": station.records.status() if station.records is not None else None,
            "backup": station.backups.status() if station.backups is not None else None}
    plc = getattr(station, "plc", None)
    if plc is not None:
        # one server or several (Modbus and OPC UA side by side), each under its protocol
        servers = plc if isinstance(plc, (list, tuple)) else [plc]
        body["plc"] = {srv.protocol: srv.snapshot() for srv in servers}
    # 503 when parts cannot be judged or stored, so a load balancer or plant monitor sees
    # it without reading the body; housekeeping faults alone: 200, "degraded"
    return JSONResponse(body, status_code=503 if stopping else 200)


@router.get("/metrics", tags=["system"], summary="Prometheus metrics", response_class=Response)
def metrics(station: Station = Depends(get_station)) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST
    station.alarms.count_active()    # another process on the database may have raised or acknowledged some
    faults = station.check_storage()         # as /health would say them now
    if "database" not in faults:
        faults.update(station.model_faults())
    station.metrics.set_faults(faults)
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
