"""Reports a plant hands around: the shift handover report."""
from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from fastapi import APIRouter, Depends, Query

from ...line import tuning
from ...line.errors import InvalidRequest
from ...line.record_keeper import kept_since
from ...line.shift_report import shift_report
from ...line.shifts import parse_shift_starts, plant_zone, shift_instant
from ...line.spc_data import known_names
from ...line.station import Station
from ..deps import get_station, reader
from ..schemas import errors
from .spc import _LINE, _PRODUCT, TIME_TEXT

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])

# taken as text, as since/until are: FastAPI read a day alone as its 00:00 UTC, in the
# plant's night shift of the day before (Berlin) or its afternoon (Chicago)
AT_HELP = ("a time within the shift: an ISO time, 2026-12-01T10:00:00Z or 2026-12-01T11:00+01:00 (without an "
           "offset: UTC), or a day, 2026-12-01: the plant's day (in its time zone: GET /api/v1/session's "
           "timezone), whose first shift is meant")


def shift_time(station: Station, text: Optional[str], name: str = "at") -> Optional[dt.datetime]:
    """An ``at`` as typed, as the naive-UTC instant whose shift is meant
    (:func:`~lineguard.line.shifts.shift_instant`: a day alone is the plant's day's first
    shift); None or blank: none given. A value it cannot read is a 422 saying what to write."""
    if text is None or not text.strip():
        return None
    try:
        # the station's own starts and zone: checked at start-up
        return shift_instant(text, parse_shift_starts(station.config.shift_starts),
                             plant_zone(station.config.timezone), name=name)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None


@router.get("/shift", summary="One shift's parts, verdicts, control, reviews, defect types and models "
                              "(the handover report)", responses=errors(401, 403, 404, 422))
def shift(line: Optional[str] = _LINE, product: Optional[str] = _PRODUCT,
          at: Optional[str] = Query(None, max_length=TIME_TEXT, description=AT_HELP + " (default: the last shift "
                                                                             "that has ended)"),
          station: Station = Depends(get_station), _r: Any = Depends(reader)) -> dict[str, Any]:
    cfg = station.config
    # "l1" for line L1: the names as the parts carry them (the report compares exactly); a
    # misspelt one is a 404 naming the close ones, not the report of a shift with no parts
    named_line, named_product = known_names(station.db, line or None, product or None)
    return shift_report(station.db, cfg.shift_starts, cfg.timezone, line=named_line, product=named_product,
                        kept_since=kept_since(station.db),
                        at=shift_time(station, at),
                        # a version with tuned thresholds scores as its source: not another model
                        score_sources=lambda ids: tuning.score_sources(station, ids))
