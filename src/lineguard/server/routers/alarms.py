"""Line alarms (see lineguard.line.alarms): the active ones, the history, acknowledging."""
from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam

from ...line.alarms import CAUSES, KINDS, summary
from ...line.station import Station, _naive_utc
from ..deps import DB_INT_MAX, Caller, get_station, reader, require
from ..schemas import AlarmAckIn, errors
from .spc import _LINE, _STATION

router = APIRouter(prefix="/api/v1", tags=["alarms"])


@router.get("/alarms", summary="Line alarms, newest first: a run of rejected parts, a high NG rate, or "
                                     "photos the model cannot judge (check the camera)",
            description="`active=true`: those not yet acknowledged (what the line view and the PLC's Alarm bit "
                        "show); `active=false`: those acknowledged. Page with `before_id`.",
            responses=errors(401, 403, 422))
def list_alarms(line: Optional[str] = _LINE, station_name: Optional[str] = _STATION,
                kind: Optional[str] = Query(None, pattern="^(" + "|".join(KINDS) + ")$"),
                cause: Optional[str] = Query(None, pattern="^(" + "|".join((*CAUSES, "none")) + ")$",
                                             description="what it turned out to be; none: acknowledged without one"),
                active: Optional[bool] = Query(None, description="only active (true) or acknowledged (false)"),
                since: Optional[dt.datetime] = Query(None, description="raised at or after, ISO time"),
                until: Optional[dt.datetime] = Query(None, description="raised before, ISO time"),
                before_id: Optional[int] = Query(None, ge=1, le=DB_INT_MAX, description="next_before_id of the page "
                                                 "before"),
                limit: int = Query(50, ge=1, le=1000),
                station: Station = Depends(get_station), _r: Any = Depends(reader)) -> dict[str, Any]:
    items = station.alarms.history(line=line or None, station=station_name or None, kind=kind or None,
                                   cause=cause or None, active=active,
                                   since=_naive_utc(since), until=_naive_utc(until),
                                   before_id=before_id, limit=limit)
    return {"items": items, "rules": _rules(station), "causes": CAUSES,
            "next_before_id": items[-1]["id"] if len(items) == limit else None}


@router.get("/alarms/summary", summary="The alarms raised in a period, counted: by kind, station and cause, "
                                     "escalated, still active, minutes to acknowledge",
            responses=errors(401, 403, 422))
def alarm_summary(line: Optional[str] = _LINE, station_name: Optional[str] = _STATION,
                  since: Optional[dt.datetime] = Query(None, description="raised at or after, ISO time"),
                  until: Optional[dt.datetime] = Query(None, description="raised before, ISO time"),
                  station: Station = Depends(get_station), _r: Any = Depends(reader)) -> dict[str, Any]:
    return summary(station.db, line=line or None, station=station_name or None, since=_naive_utc(since),
                   until=_naive_utc(until))


@router.post("/alarms/{alarm_id}/acknowledge", summary="Acknowledge an alarm: someone is seeing to it",
             description="The alarm stops showing as active (the PLC's Alarm bit drops once none is left at its "
                         "station) and its rule counts afresh from the next part. 409 when someone acknowledged "
                         "it already.",
             responses=errors(401, 403, 404, 409, 422))
def acknowledge_alarm(body: Optional[AlarmAckIn] = None, alarm_id: int = PathParam(ge=1, le=DB_INT_MAX),
                      station: Station = Depends(get_station),
                      caller: Caller = Depends(require("operator"))) -> dict[str, Any]:
    return station.alarms.acknowledge(alarm_id, caller.who, body.note if body is not None else None,
                                      body.cause if body is not None else None)


def _rules(station: Station) -> dict[str, Any]:
    rules = station.alarms.rules
    return {"ng_run": rules.ng_run, "ng_rate": rules.ng_rate, "window": rules.window,
            "rate_limit": rules.rate_limit if rules.ng_rate else None, "photo_run": rules.photo_run,
            "escalate_min": rules.escalate_min}
