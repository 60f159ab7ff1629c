"""Re-scored archives (``lineguard rescore --station-db``): the runs, and one run's summary.

Read-only: runs are written by the CLI, and their results are never inspections, so
nothing here moves the line counters or the SPC charts.
"""
from __future__ import annotations

from typing import Any, Literal, Optional

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam

from ...line import rescores
from ...line.station import Station
from ..deps import DB_INT_MAX, get_station, reader
from ..schemas import errors

router = APIRouter(prefix="/api/v1/rescores", tags=["rescores"])


@router.get("", summary="Re-scoring runs of image archives, newest first",
            description="Each run is one `lineguard rescore --station-db` results folder and model; `counts` "
                        "holds the results per verdict (`error`: unreadable images).",
            responses=errors(401, 403, 422))
def list_rescores(limit: int = Query(50, ge=1, le=500),
                  before_id: Optional[int] = Query(None, ge=1, le=DB_INT_MAX,
                                                   description="cursor: the last id of the previous page"),
                  station: Station = Depends(get_station), _r: Any = Depends(reader)) -> dict[str, Any]:
    with station.db.session() as s:
        runs = rescores.list_runs(s, limit=limit, before_id=before_id)
    return {"runs": runs, "next_before_id": runs[-1]["id"] if len(runs) == limit else None}


@router.get("/{run_id}", summary="One re-scoring run: counts, score quantiles, changes against the live "
                                 "verdicts, and a page of its NG (or other) results",
            description="`compare_live` pairs archive images with inspections of the same image (SHA-256) and "
                        "counts how often the verdict changed (e.g. `OK->NG`). `page` lists the results of "
                        "`verdict`, highest score first (`error`: unreadable images, by path).",
            responses=errors(401, 403, 404, 422))
def get_rescore(run_id: int = PathParam(ge=1, le=DB_INT_MAX),
                verdict: Literal["NG", "REVIEW", "OK", "error"] = Query("NG"),
                limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0, le=DB_INT_MAX),
                compare: bool = Query(True, description="pair with live inspections (one join over the run)"),
                station: Station = Depends(get_station), _r: Any = Depends(reader)) -> dict[str, Any]:
    with station.db.session() as s:
        return rescores.run_summary(s, run_id, verdict=verdict, limit=limit, offset=offset, with_live=compare)
