"""Reports a plant hands around: the shift handover report."""
from __future__ import annotations

from typing import Any, Optional

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from ...line import handover, tuning
from ...line.errors import InvalidRequest
from ...line.shifts import parse_shift_starts, plant_zone, shift_of
from ...line.record_keeper import kept_since
from ...line.shift_report import shift_report
from ...line.spc_data import known_names
from ...line.station import Station
from ..deps import Caller, get_station, known_query_only, reader, require
from ..text_rules import NO_NUL
from ..schemas import errors
from .spc import _LINE, _PRODUCT, AT_HELP, TIME_TEXT, shift_time

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])

@router.get("/shift", summary="One shift's parts, verdicts, control, reviews, defect types and models "
                              "(the handover report)", responses=errors(401, 403, 404, 422))
def shift(line: Optional[str] = _LINE, product: Optional[str] = _PRODUCT,
          at: Optional[str] = Query(None, max_length=TIME_TEXT, description=AT_HELP + " (default: the last shift "
                                                                             "that has ended)"),
          station: Station = Depends(get_station), _r: Any = Depends(reader),
          _known: None = Depends(known_query_only)) -> dict[str, Any]:
    cfg = station.config
    # "l1" for line L1: the names as the parts carry them (the report compares exactly); a
    # misspelt one is a 404 naming the close ones, not the report of a shift with no parts
    named_line, named_product = known_names(station.db, line or None, product or None)
    return shift_report(station.db, cfg.shift_starts, cfg.timezone, line=named_line, product=named_product,
                        kept_since=kept_since(station.db),
                        at=shift_time(station, at),
                        # a version with tuned thresholds scores as its source: not another model
                        score_sources=lambda ids: tuning.score_sources(station, ids))



class HandoverNoteIn(BaseModel):
    at: str = Field(..., max_length=TIME_TEXT, description="a time within the shift (as the report's `at`)")
    line: Optional[str] = Field(None, max_length=100, pattern=NO_NUL,
                                description="the line; empty or left out: the report of every line")
    note: str = Field(..., max_length=handover.NOTE_MAX + 200, pattern=NO_NUL,
                      description="what the next shift must know; empty: take the note back")


@router.put("/shift/note", summary="Write the shift's handover note (the newest is the note, the earlier ones "
                                   "its history, each with who and when)", responses=errors(401, 403, 404, 422))
def shift_note(body: HandoverNoteIn, station: Station = Depends(get_station),
               caller: Caller = Depends(require("operator"))) -> dict[str, Any]:
    at = shift_time(station, body.at)
    if at is None:
        raise InvalidRequest("give `at`: a time within the shift the note is for (the report's shift.start)")
    named_line, _ = known_names(station.db, body.line or None, None)
    cfg = station.config
    starts = parse_shift_starts(cfg.shift_starts) if cfg.shift_starts else ()
    start = shift_of(at, starts, plant_zone(cfg.timezone)).start_utc
    try:
        return handover.write_note(station.db, start, named_line, body.note, caller.who)
    except handover.NoteRefused as exc:
        raise InvalidRequest(str(exc)) from None
