"""Line alarms (see lineguard.line.alarms): the active ones, the history, acknowledging."""
from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from fastapi.responses import Response
from sqlalchemy import select

from ...line import alarm_causes, part_names
from ...line.alarm_rules import listing
from ...line.alarms import KINDS, has_own_note, summary
from ...line.errors import InvalidRequest
from ...line.orm import LineAlarm
from ...line.spc_data import refuse_backwards
from ...line.station import Station
from ..deps import DB_INT_MAX, Caller, get_station, known_query_only, reader, require
from ..schemas import AlarmAckIn, AlarmCauseIn, StationAlarmRulesIn, errors
from .spc import _LINE, _STATION, _TEXT, SINCE_HELP, TIME_TEXT, UNTIL_HELP, _csv, plant_time

router = APIRouter(prefix="/api/v1", tags=["alarms"])

_RAISED_SINCE = Query(None, max_length=TIME_TEXT, description="raised at or after; " + SINCE_HELP)
_RAISED_UNTIL = Query(None, max_length=TIME_TEXT, description="raised before; " + UNTIL_HELP)


def _as_stored(station: Station, line: Optional[str],
               station_name: Optional[str]) -> tuple[Optional[str], Optional[str]]:
    """The line and station as the alarms carry them (as their parts name them) when typed
    in another case ("l1" for L1); the query then compares exactly."""
    line = part_names.as_stored(line, part_names.stored_names(station.db, "line")) if line else None
    if not station_name:
        return line, None
    with station.db.session() as s:      # the alarms' stations: a short list
        q = select(LineAlarm.station).distinct()
        names = list(s.scalars(q.where(LineAlarm.line == line) if line else q))
    return line, part_names.as_stored(station_name, names)


def alarm_filters(_r: Any = Depends(reader), line: Optional[str] = _LINE, station_name: Optional[str] = _STATION,
                  kind: Optional[str] = Query(None, pattern="^(" + "|".join(KINDS) + ")$"),
                  cause: Optional[str] = Query(None, max_length=20, pattern="^[a-z0-9_]*$",
                                               description="what it turned out to be (a key of GET "
                                                           "/api/v1/alarm-causes); none: acknowledged without one"),
                  active: Optional[bool] = Query(None, description="only active (true) or acknowledged (false)"),
                  since: Optional[str] = _RAISED_SINCE, until: Optional[str] = _RAISED_UNTIL,
                  station: Station = Depends(get_station)) -> dict[str, Any]:
    """The filters the list and the CSV share (a blank one is no filter); a line or station
    typed in another case is the one the alarms carry."""
    if cause and cause != "none" and cause not in alarm_causes.labels(station.db):
        raise InvalidRequest(f"no alarm cause {cause!r}; GET /api/v1/alarm-causes lists them (none: acknowledged "
                             "without one)")
    line, station_name = _as_stored(station, line, station_name)
    t0, t1 = plant_time(station, since, "since"), plant_time(station, until, "until", end=True)
    refuse_backwards(t0, t1)
    return dict(line=line, station=station_name, kind=kind or None, cause=cause or None,
                active=active, since=t0, until=t1)


@router.get("/alarms", summary="Line alarms, newest first: a run of rejected parts, a high NG rate, or "
                                     "photos the model cannot judge (check the camera)",
            description="`active=true`: those not yet acknowledged (what the line view and the PLC's Alarm bit "
                        "show); `active=false`: those acknowledged. Page with `before_id`.",
            responses=errors(401, 403, 422))
def list_alarms(filters: dict[str, Any] = Depends(alarm_filters),
                # after the filters (they sign the caller in first): ?activ=true listed every alarm
                _known: None = Depends(known_query_only),
                before_id: Optional[int] = Query(None, ge=1, le=DB_INT_MAX, description="next_before_id of the page "
                                                 "before"),
                limit: int = Query(50, ge=1, le=1000),
                station: Station = Depends(get_station), _r: Any = Depends(reader)) -> dict[str, Any]:
    items = station.alarms.history(before_id=before_id, limit=limit, **filters)
    # causes: those to choose from; cause_labels: every one an alarm may carry (retired ones too)
    causes, cause_labels = alarm_causes.offered_and_labels(station.db)
    return {"items": items, "rules": station.alarms.rules.to_dict(), "causes": causes, "cause_labels": cause_labels,
            "next_before_id": items[-1]["id"] if len(items) == limit else None}


CSV_MAX = 100_000     # alarms in one CSV: years of a line's alarms
# signal_id: the PLC answer that raised a no_verdict alarm (inspection_id 0: it has no part)
CSV_COLUMNS = ["id", "raised_at", "line", "station", "product", "kind", "message", "inspection_id", "signal_id",
               "parts", "rejected", "escalated_at", "escalations", "acked_at", "minutes_to_acknowledge", "acked_by", "ack_cause",
               "ack_note"]


@router.get("/alarms/export", summary="The alarms the filters match as CSV, newest first (for a spreadsheet)",
            response_class=Response, responses={200: {"content": {"text/csv": {}}}, **errors(401, 403, 422)})
def export_alarms(filters: dict[str, Any] = Depends(alarm_filters), _known: None = Depends(known_query_only),
                  station: Station = Depends(get_station), _r: Any = Depends(reader)) -> Response:
    rows, before = [], None
    while True:
        page = station.alarms.history(before_id=before, limit=1000, **filters)
        for a in page:
            waited = None
            if a["acked_at"]:
                raised, acked = (dt.datetime.fromisoformat(a[k].replace("Z", "+00:00"))
                                 for k in ("raised_at", "acked_at"))
                waited = round(max(0.0, (acked - raised).total_seconds()) / 60, 2)
            rows.append([waited if c == "minutes_to_acknowledge" else a[c] for c in CSV_COLUMNS])
        if len(rows) > CSV_MAX:       # a file cut short would look whole in a spreadsheet
            raise InvalidRequest(f"more than {CSV_MAX} alarms match; narrow since/until and take them in parts")
        if len(page) < 1000:
            break
        before = page[-1]["id"]
    return _csv("line-alarms", CSV_COLUMNS, rows)


@router.get("/alarms/summary", summary="The alarms raised in a period, counted: by kind, station and cause, "
                                     "escalated, still active, minutes to acknowledge",
            responses=errors(401, 403, 422))
def alarm_summary(line: Optional[str] = _LINE, station_name: Optional[str] = _STATION,
                  since: Optional[str] = _RAISED_SINCE, until: Optional[str] = _RAISED_UNTIL,
                  station: Station = Depends(get_station), _r: Any = Depends(reader),
                  _known: None = Depends(known_query_only)) -> dict[str, Any]:
    line, station_name = _as_stored(station, line, station_name)
    t0, t1 = plant_time(station, since, "since"), plant_time(station, until, "until", end=True)
    refuse_backwards(t0, t1)
    return summary(station.db, line=line, station=station_name, since=t0, until=t1)


OTHER_NEEDS_NOTE = ("the cause 'other' needs a note: write what it was (e.g. 'air hose off the gripper'), or "
                    "choose the cause it was")


@router.post("/alarms/{alarm_id}/acknowledge", summary="Acknowledge an alarm: someone is seeing to it",
             description="The alarm stops showing as active (the PLC's Alarm bit drops once none is left at its "
                         "station) and its rule counts afresh from the next part. 409 when someone acknowledged "
                         "it already; 422 for the cause `other` with no note (write what it was).",
             responses=errors(401, 403, 404, 409, 422))
def acknowledge_alarm(body: Optional[AlarmAckIn] = None, alarm_id: int = PathParam(ge=1, le=DB_INT_MAX),
                      station: Station = Depends(get_station),
                      caller: Caller = Depends(require("operator"))) -> dict[str, Any]:
    # "other" is counted as other for good: without a note nobody can tell later what stopped
    # the line (the PLC, which has no note to give, acknowledges through the station, not here)
    if body is not None and body.cause == "other" and not (body.note or "").strip():
        raise InvalidRequest(OTHER_NEEDS_NOTE)
    return station.alarms.acknowledge(alarm_id, caller.who, body.note if body is not None else None,
                                      body.cause if body is not None else None)


@router.patch("/alarms/{alarm_id}", summary="Say later what an acknowledged alarm turned out to be, or add a note",
              description="Sets the cause (one of those GET /api/v1/alarms lists) and/or adds to the note of an "
                          "acknowledged alarm. Each addition goes to the end of the note with when and by whom (a "
                          "changed cause with what it was), so the note keeps the history. 409 while the alarm is "
                          "still active: acknowledge it instead; 422 for the cause `other` "
                          "when neither the PATCH nor the alarm has a note (write what it was).",
              responses=errors(401, 403, 404, 409, 422))
def set_alarm_cause(body: AlarmAckIn, alarm_id: int = PathParam(ge=1, le=DB_INT_MAX),
                    station: Station = Depends(get_station),
                    caller: Caller = Depends(require("operator"))) -> dict[str, Any]:
    # as at acknowledging: "other" is counted as other for good, and without a note nobody can
    # tell what stopped the line (the alarm's own note counts: a PATCH only adds to it)
    if body.cause == "other" and not (body.note or "").strip() and not _has_note(station, alarm_id):
        raise InvalidRequest(OTHER_NEEDS_NOTE)
    return station.alarms.set_cause(alarm_id, caller.who, body.cause, body.note)


def _has_note(station: Station, alarm_id: int) -> bool:
    """Whether the alarm has a note already; True for one that is missing or still active,
    so set_cause says that (404, 409) rather than asking for a note."""
    with station.db.session() as s:
        a = s.get(LineAlarm, alarm_id)
        return a is None or a.acked_at is None or has_own_note(a.ack_note)


@router.get("/alarms/rules", summary="When parts raise a line alarm: the defaults and each station's own rules",
            description="`defaults`: this process's settings (serve --alarm-*), which every station follows "
                        "unless it has its own; `stations`: those that have, with their own settings (`own`) and "
                        "the rules they make with the defaults (`rules`).",
            responses=errors(401, 403))
def get_alarm_rules(station: Station = Depends(get_station), _r: Any = Depends(reader)) -> dict[str, Any]:
    defaults = station.alarms.rules
    return {"defaults": defaults.to_dict(), "stations": listing(station.db, defaults)}


@router.put("/alarms/rules", summary="Give a station alarm rules of its own",
            description="Settings left out or null follow the defaults; all left out puts the station back on "
                        "the defaults. Its parts are counted by them from its next part, in every process on the "
                        "database within 10 s. 404 for a station no part was ever inspected at and no PLC answer "
                        "names (a station whose parts all got no verdict has rules too), in any case (a "
                        "misspelt name would never raise an alarm; one typed in another case is kept under the name "
                        "its parts carry); 422 for a setting out of range. In the change log.",
            responses=errors(401, 403, 404, 409, 422))
def put_alarm_rules(body: StationAlarmRulesIn, station: Station = Depends(get_station),
                    caller: Caller = Depends(require("engineer"))) -> dict[str, Any]:
    own = body.model_dump(exclude={"line", "station"})
    return station.alarms.set_station_rules(body.line, body.station, own, by=caller.who)


@router.delete("/alarms/rules", summary="Put a station back on the default alarm rules",
               description="404 when it has no rules of its own. In the change log.",
               responses=errors(401, 403, 404, 422))
def delete_alarm_rules(line: str = Query(min_length=1, max_length=100, pattern=_TEXT),
                       station_name: str = Query(alias="station", min_length=1, max_length=100, pattern=_TEXT),
                       station: Station = Depends(get_station),
                       caller: Caller = Depends(require("engineer"))) -> dict[str, Any]:
    return station.alarms.clear_station_rules(line, station_name, by=caller.who)


@router.get("/alarm-causes", summary="What an alarm may turn out to be: the built-in causes and the plant's own",
            description="Each with its PLC number (Modbus AlarmAckCause, OPC UA AcknowledgeAlarmsWithCause): 1-6 built "
                        "in, 7 on the plant's own, kept for good. Retired ones are listed last: no longer offered, "
                        "still the name of the alarms that had them.",
            responses=errors(401, 403))
def list_alarm_causes(station: Station = Depends(get_station), _r: Any = Depends(reader)) -> dict[str, Any]:
    return {"items": alarm_causes.listing(station.db)}


@router.post("/alarm-causes", status_code=201, summary="Add a cause of the plant's own",
             description="Offered from now on wherever an alarm is acknowledged, with the next free PLC number (a "
                         "retired cause of the same label comes back under its old number and key). The key is made "
                         "from the label unless given (cause_<number> when that is taken). 409 when one of that key "
                         "or label is offered already, or the key was another cause's. In the change log.",
             responses=errors(401, 403, 409, 422))
def add_alarm_cause(body: AlarmCauseIn, station: Station = Depends(get_station),
                    caller: Caller = Depends(require("engineer"))) -> dict[str, Any]:
    return alarm_causes.add(station.db, body.label, by=caller.who, key=body.key)


@router.delete("/alarm-causes", summary="Retire a cause of the plant's own",
               description="No longer offered; the alarms that had it keep it, and its PLC number is never given "
                           "to another. The built-in causes cannot be retired (409). In the change log.",
               responses=errors(401, 403, 404, 409, 422))
def retire_alarm_cause(key: str = Query(min_length=1, max_length=20, pattern="^[a-z0-9_]+$",
                                        description="the cause's key (GET /api/v1/alarm-causes)"),
                       station: Station = Depends(get_station),
                       caller: Caller = Depends(require("engineer"))) -> dict[str, Any]:
    return alarm_causes.retire(station.db, key, by=caller.who)
