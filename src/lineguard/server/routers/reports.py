"""Reports a plant hands around: the shift handover report."""
from __future__ import annotations

from typing import Any, Optional

from fastapi import APIRouter, Depends, Query

from ...line import tuning
from ...line.record_keeper import kept_since
from ...line.shift_report import shift_report
from ...line.spc_data import known_names
from ...line.station import Station
from ..deps import get_station, known_query_only, reader
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
