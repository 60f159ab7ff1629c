"""Model versions per product (and line): upload, list, activate, roll back, train."""
from __future__ import annotations

from typing import Any, Optional

from fastapi import APIRouter, Depends, File, Form, Path, UploadFile
from fastapi.concurrency import run_in_threadpool

from ...line.errors import UploadTooLarge
from ...line.orm import Job, ModelVersion
from ...line.station import Station, _iso
from ..deps import DB_INT_MAX, Caller, get_station, reader, require
from ..schemas import ActivateIn, JobOut, ModelVersionList, ModelVersionOut, RollbackIn, TrainIn, errors

router = APIRouter(prefix="/api/v1", tags=["models"])

MAX_MODEL_BYTES = 2 * 1024 ** 3


def model_to_dict(mv: ModelVersion) -> dict[str, Any]:
    return {"product": mv.product, "line": mv.line, "version": mv.version, "model_id": mv.model_id,
            "model_version": mv.model_version, "active": bool(mv.active), "note": mv.note,
            "uploaded_at": _iso(mv.uploaded_at), "uploaded_by": mv.uploaded_by,
            "activated_at": _iso(mv.activated_at)}


def job_to_dict(job: Job) -> dict[str, Any]:
    return {"id": job.id, "kind": job.kind, "status": job.status, "progress": job.progress,
            "message": job.message, "params": job.params, "result": job.result,
            "created_at": _iso(job.created_at), "finished_at": _iso(job.finished_at),
            "links": {"self": f"/api/v1/jobs/{job.id}"}}


@router.post("/models", status_code=201, summary="Upload a .lgm model bundle as the next version",
             response_model=ModelVersionOut, responses=errors(401, 403, 409, 413, 422, 503))
async def upload_model(file: UploadFile = File(..., description="a .lgm bundle"),
                       product: str = Form(..., min_length=1, max_length=100, pattern=r"\S"),
                       line: str = Form("", max_length=100),
                       note: Optional[str] = Form(None), activate: bool = Form(False),
                       station: Station = Depends(get_station),
                       caller: Caller = Depends(require("engineer"))) -> dict[str, Any]:
    def work():
        data = file.file.read(MAX_MODEL_BYTES + 1)
        if len(data) > MAX_MODEL_BYTES:
            raise UploadTooLarge("model files over 2 GB are refused")
        return station.add_model(data, product, line, note=note, by=caller.name, activate=activate)
    return model_to_dict(await run_in_threadpool(work))


@router.get("/models", summary="Model versions, per product and line", response_model=ModelVersionList,
            responses=errors(401, 403, 422))
def list_models(product: Optional[str] = None, line: Optional[str] = None,
                station: Station = Depends(get_station), _r: Any = Depends(reader)) -> dict[str, Any]:
    return {"items": [model_to_dict(m) for m in station.models.list(product, line)]}


@router.post("/models/{product}/activate", summary="Make a version the one that judges parts",
             response_model=ModelVersionOut, responses=errors(401, 403, 404, 409, 422, 503))
def activate_model(product: str, body: ActivateIn, station: Station = Depends(get_station),
                   caller: Caller = Depends(require("engineer"))) -> dict[str, Any]:
    return model_to_dict(station.activate_model(product, body.line, body.version, by=caller.name))


@router.post("/models/{product}/rollback", summary="Go back to the version active before the current one",
             response_model=ModelVersionOut, responses=errors(401, 403, 404, 409, 422, 503))
def rollback_model(product: str, body: Optional[RollbackIn] = None, station: Station = Depends(get_station),
                   caller: Caller = Depends(require("engineer"))) -> dict[str, Any]:
    return model_to_dict(station.rollback_model(product, (body or RollbackIn()).line, by=caller.name))


@router.post("/models/{product}/train", status_code=202,
             summary="Train a new version from stored good parts (background job)", response_model=JobOut,
             responses=errors(400, 401, 403, 404, 409, 422))
def train_model(product: str, body: TrainIn, station: Station = Depends(get_station),
                caller: Caller = Depends(require("engineer"))) -> dict[str, Any]:
    job = station.jobs.submit_training(product, body.line, limit=body.limit, min_images=body.min_images,
                                       activate=body.activate, by=caller.name, detector=body.detector,
                                       image_size=body.image_size, false_reject_rate=body.false_reject_rate,
                                       seed=body.seed, review_rate=body.review_rate)
    return job_to_dict(job)


@router.get("/jobs/{job_id}", summary="Status and progress of a background job", response_model=JobOut,
            responses=errors(401, 403, 404, 422))
def get_job(job_id: int = Path(ge=1, le=DB_INT_MAX), station: Station = Depends(get_station), _r: Any = Depends(reader)) -> dict[str, Any]:
    return job_to_dict(station.jobs.get(job_id))
