"""The change log (see lineguard.line.audit): read only, newest first, or as CSV."""
from __future__ import annotations

import json
from typing import Any, Optional

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from ...line.audit import ACTIONS, entries, entry_to_dict
from ...line.errors import InvalidRequest
from ...line.spc_data import refuse_backwards
from ...line.station import Station
from ..deps import DB_INT_MAX, Caller, get_station, known_query_only, require
from ..schemas import errors
from .spc import _TEXT, SINCE_HELP, TIME_TEXT, UNTIL_HELP, _csv, plant_time

router = APIRouter(prefix="/api/v1", tags=["change log"])

CSV_MAX = 100_000     # entries in one CSV: years of a station's changes


def _filters(since: Optional[str] = Query(None, max_length=TIME_TEXT, description=SINCE_HELP),
             until: Optional[str] = Query(None, max_length=TIME_TEXT, description=UNTIL_HELP),
             actor: Optional[str] = Query(None, max_length=100, pattern=_TEXT,
                                          description="who made the change, or a part of it (case-blind)"),
             action: Optional[str] = Query(None, max_length=50, pattern=_TEXT,
                                           description="one action (model.activated) or a family (model)"),
             subject: Optional[str] = Query(None, max_length=300, pattern=_TEXT,
                                            description="part of what was changed, e.g. a product's name"),
             station: Station = Depends(get_station)) -> dict[str, Any]:
    if action and action not in ACTIONS and not any(a.startswith(action + ".") for a in ACTIONS):
        families = sorted({a.split(".")[0] for a in ACTIONS})
        raise InvalidRequest(f"unknown action {action!r}; use one of {', '.join(ACTIONS)} or a family "
                             f"({', '.join(families)})")
    t0, t1 = plant_time(station, since, "since"), plant_time(station, until, "until", end=True)
    refuse_backwards(t0, t1)
    return dict(since=t0, until=t1, actor=actor or None,
                action=action or None, subject=subject or None)


@router.get("/change-log", summary="Who changed what on the station, newest first",
            description="Models uploaded, activated, rolled back, shadowed and trained; defect types; test "
                        "parts; keys and users. Each entry was written with the change itself.",
            responses=errors(401, 403, 422))
def change_log(filters: dict[str, Any] = Depends(_filters), limit: int = Query(100, ge=1, le=1000),
               cursor: Optional[int] = Query(None, ge=1, le=DB_INT_MAX, description="next_cursor of the page before"),
               station: Station = Depends(get_station),
               _c: Caller = Depends(require("engineer")), _known: None = Depends(known_query_only)) -> dict[str, Any]:
    rows = entries(station.db, before_id=cursor, limit=limit, **filters)
    return {"items": [entry_to_dict(e) for e in rows], "actions": ACTIONS,
            "next_cursor": rows[-1].id if len(rows) == limit else None}


@router.get("/change-log/export", summary="The change log as CSV (for an audit)", response_class=Response,
            responses={200: {"content": {"text/csv": {}}}, **errors(401, 403, 422)})
def change_log_csv(filters: dict[str, Any] = Depends(_filters), station: Station = Depends(get_station),
                   _c: Caller = Depends(require("engineer")), _known: None = Depends(known_query_only)) -> Response:
    rows = []
    for e in _all(station, filters):
        d = entry_to_dict(e)
        rows.append([d["id"], d["at"], d["actor"], d["action"], d["what"], d["subject"],
                     json.dumps(d["details"], ensure_ascii=False)])
    return _csv("change-log", ["id", "at", "actor", "action", "what", "subject", "details"], rows)


def _all(station: Station, filters: dict[str, Any]) -> list[Any]:
    """Every matching entry, newest first, read a thousand at a time; more than CSV_MAX
    is refused (a file cut short would look whole to an auditor)."""
    out: list[Any] = []
    before = None
    while True:
        page = entries(station.db, before_id=before, limit=1000, **filters)
        out += page
        if len(out) > CSV_MAX:
            raise InvalidRequest(f"more than {CSV_MAX} changes match; narrow since/until and take it in parts")
        if len(page) < 1000:
            return out
        before = page[-1].id
