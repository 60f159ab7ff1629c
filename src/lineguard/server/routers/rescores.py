"""Re-scored archives (``lineguard rescore --station-db``): the runs, and one run's summary.

Read-only: runs are written by the CLI, and their results are never inspections, so
nothing here moves the line counters or the SPC charts.
"""
from __future__ import annotations

from typing import Any, Literal, Optional

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from ...line import rescores
from ...line.station import Station
from ..deps import DB_INT_MAX, get_station, known_query_only, reader
from ..schemas import errors

router = APIRouter(prefix="/api/v1/rescores", tags=["rescores"])


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class RescoreRunOut(_Out):
    id: int
    out: str = Field(description="the Parquet results folder (absolute path or URL): with the model, the run's key")
    images: str = Field(description="the archive as given: folder, glob or URL")
    model_id: str
    model_version: str
    mode: str = Field(description="single process, or ray ADDRESS xN")
    listed: int = Field(description="images in the archive at the run's last start")
    results: int = Field(description="results stored so far")
    counts: dict[str, int] = Field(description="results per verdict; `error`: images that could not be read")
    starts: int = Field(description="1 + the times the run was resumed")
    started_at: str
    updated_at: str
    finished_at: Optional[str] = Field(description="None while it runs, or after it stopped unfinished (run it again)")
    finished: bool
    status: Literal["running", "finished", "stopped", "silent"] = Field(
        description="finished; stopped: it ended unfinished on an error or an interrupt (`stop_reason` says why); "
                    "silent: the run's record was not renewed for `silent_after_s` (its process renews it every "
                    "`heartbeat_s`, results or not: killed, a power cut, or the database out of its reach): run "
                    "the same command again to resume; running (a run hung inside its process stays running, "
                    "its results not growing)")
    stopped_at: Optional[str] = Field(None, description="when it ended unfinished (status stopped)")
    stop_reason: Optional[str] = Field(None, description="why it ended unfinished, and how to go on")
    silent_after_s: float = Field(description="the record not renewed for this long: status silent")
    heartbeat_s: float = Field(description="a running run's process renews its record this often, whatever a chunk "
                                           "of results takes")
    last_results_at: Optional[str] = Field(None, description="when its newest chunk of results was copied in (None: "
                                                             "none yet); running while this stays put: a chunk at "
                                                             "work, or a run hung inside its process")


class RescoreListOut(_Out):
    runs: list[RescoreRunOut]
    next_before_id: Optional[int] = Field(description="pass as before_id for the next page; None: no more")


class QuantilesOut(_Out):
    min: Optional[float]
    p50: Optional[float]
    p90: Optional[float]
    p99: Optional[float]
    max: Optional[float]


class CompareLiveOut(_Out):
    matched: int = Field(description="(inspection, result) pairs of the same image (SHA-256)")
    changed: int
    unchanged: int
    changes: dict[str, int] = Field(description="pairs per change, e.g. {\"OK->NG\": 3}")


class RescoreResultOut(_Out):
    path: str
    sha256: Optional[str]
    score: Optional[float]
    verdict: Optional[str]
    threshold: Optional[float]
    review_threshold: Optional[float]
    pixel_threshold: Optional[float]
    n_regions: Optional[int]
    largest_region_area: Optional[int]
    error: Optional[str]
    photo_issues: Optional[list[str]] = Field(None, description="what the photo check found off (too dark, "
                                              "blurred...), as a part's photo_issues; null: nothing, or a run "
                                              "from before")
    scored_at: Optional[str]


class ResultPageOut(_Out):
    verdict: str
    offset: int
    limit: int
    next_offset: Optional[int] = Field(description="pass as offset for the next page; None: no more")
    results: list[RescoreResultOut]


class RescoreSummaryOut(RescoreRunOut):
    score_quantiles: QuantilesOut
    compare_live: Optional[CompareLiveOut] = Field(None, description="left out with compare=false")
    page: ResultPageOut


@router.get("", summary="Re-scoring runs of image archives, newest first",
            description="Each run is one `lineguard rescore --station-db` results folder and model; `counts` "
                        "holds the results per verdict (`error`: unreadable images).",
            response_model=RescoreListOut, responses=errors(401, 403, 422))
def list_rescores(limit: int = Query(50, ge=1, le=500),
                  before_id: Optional[int] = Query(None, ge=1, le=DB_INT_MAX,
                                                   description="cursor: the last id of the previous page"),
                  station: Station = Depends(get_station), _r: Any = Depends(reader),
                  _known: None = Depends(known_query_only)) -> dict[str, Any]:
    with station.db.session() as s:
        runs = rescores.list_runs(s, limit=limit, before_id=before_id)
    return {"runs": runs, "next_before_id": runs[-1]["id"] if len(runs) == limit else None}


@router.get("/{run_id}", summary="One re-scoring run: counts, score quantiles, changes against the live "
                                 "verdicts, and a page of its NG (or other) results",
            description="`compare_live` pairs archive images with inspections of the same image (SHA-256) and "
                        "counts how often the verdict changed (e.g. `OK->NG`). `page` lists the results of "
                        "`verdict`, highest score first (`error`: unreadable images, by path).",
            response_model=RescoreSummaryOut, response_model_exclude_unset=True,
            responses=errors(401, 403, 404, 422))
def get_rescore(run_id: int = PathParam(ge=1, le=DB_INT_MAX),
                verdict: Literal["NG", "REVIEW", "OK", "error"] = Query("NG"),
                limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0, le=DB_INT_MAX),
                compare: bool = Query(True, description="pair with live inspections (one join over the run)"),
                station: Station = Depends(get_station), _r: Any = Depends(reader),
                _known: None = Depends(known_query_only)) -> dict[str, Any]:
    with station.db.session() as s:
        return rescores.run_summary(s, run_id, verdict=verdict, limit=limit, offset=offset, with_live=compare)
