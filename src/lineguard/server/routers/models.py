"""Model versions per product (and line): upload, list, activate, roll back, train, shadow, compare."""
from __future__ import annotations

from typing import Any, Optional

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from ...line.errors import UploadTooLarge
from ...line.orm import Job, ModelVersion
from ...line.registry import rollback_target
from ...line.station import Station, _iso
from ...runtime.onnx_file import HEAD_BYTES
from ..deps import DB_INT_MAX, Caller, get_station, known_query_only, reader, require
from ..schemas import (NO_NUL, ActivateIn, CompareOut, JobList, JobOut, ModelVersionOut, RatesOut, RollbackIn,
                       ShadowIn, TrainIn, errors, refuse_odd_form_fields)

from .spc import RateOut

router = APIRouter(prefix="/api/v1", tags=["models"])


class SampleVerdictOut(BaseModel):
    judged: int = Field(description="the audit sample's parts given this verdict by the version")
    reviewed: int = Field(description="of them, reviewed good or defect")


class SampleRatesOut(BaseModel):
    judged: int = Field(description="parts of the random audit sample the version judged (as the active version, "
                                    "or in shadow)")
    reviewed: int = Field(description="of them, reviewed good or defect: what every rate here rests on")
    by_verdict: dict[str, SampleVerdictOut] = Field(description="judged and reviewed per verdict of its own (OK, "
                                                                "REVIEW, NG)")
    by_line_verdict: dict[str, SampleVerdictOut] = Field(description="judged and reviewed per verdict the line gave "
                                                                     "(the active version's: what people picked "
                                                                     "reviews by); the same as by_verdict for the "
                                                                     "parts a version judged as the active one")
    escape: RateOut = Field(description="of the sample's parts it judged OK, the share that are defects, read off "
                                        "those people reviewed: the share of what it passes that is defective. "
                                        "Where the line gave its OK parts more than one verdict (a shadow's: "
                                        "people picked which to review by the active version's verdict) it has "
                                        "weighted_by, per verdict of the line {judged, reviewed, k}: rate is each "
                                        "kind's share weighted by its part of the judged parts (null when a kind "
                                        "was not reviewed at all), lo/hi a conservative interval (each kind's exact "
                                        "interval, Bonferroni over the kinds, weighted), and k/n only the plain "
                                        "counts of reviews, which would read the rate wrong")
    defects_passed: Optional[RateOut] = Field(description="of the sample's parts reviewed as defects, those it "
                                                          "judged OK; null unless even_review")
    even_review: bool = Field(description="the sample's parts of each verdict the line gave were reviewed in about "
                                          "the same share (within 0.9x): only then does defects_passed say what "
                                          "the version passes rather than what people reviewed")
    false_reject: RateOut = Field(description="of the sample's parts it judged NG, the share that are good "
                                              "(weighted by the line's verdict as escape is)")
    confidence: float


class ModelVersionRatesOut(ModelVersionOut):
    precision: Optional[str] = Field(default=None, description="what its scores are computed in: fp32, int8 (an "
                                                               "int8 export) or bf16 (OpenVINO); null: not known")
    runtime: Optional[str] = Field(default=None, description="what runs it: torch (a .lgm), onnxruntime or openvino "
                                                             "(an exported .onnx); null: not known")
    same_file_as: Optional[int] = Field(default=None, description="the earliest version of its product and line "
                                                                  "with the very same model file (model_id): this "
                                                                  "one is a copy of it; null: none")
    warning: Optional[str] = Field(default=None, description="an upload's, an activation's or a rollback's: what to "
                                                             "know about it (the same file as a version there "
                                                             "already; a shadow now compared with this version, or "
                                                             "ended; activated without a shadow comparison beside "
                                                             "the version live before; versions a rollback passed, "
                                                             "their file unusable)")
    file_problem: Optional[str] = Field(default=None, description="why its model file cannot be loaded, in a few "
                                                                  "words (missing from the models folder, empty, "
                                                                  "truncated, not a model, or its last load refused "
                                                                  "it), read off the file's size and header; null: "
                                                                  "it looks whole. Activating it, rolling back or "
                                                                  "shadowing to it is refused (409 "
                                                                  "model_file_missing / model_file_damaged); on the "
                                                                  "active version: it runs from memory, a restart "
                                                                  "cannot load it")
    rollback_to_line: Optional[str] = Field(default=None, description="an active version: the line of the version "
                                                                      "rollback_to names: its own, or \"\" where a "
                                                                      "rollback gives the line's parts back to the "
                                                                      "product's model of every line (which judged "
                                                                      "them before its first own model)")
    rates: Optional[RatesOut] = Field(default=None, description="on every part people reviewed that it judged; null "
                                                                "when none. People review the flagged parts far more "
                                                                "than the passed ones, so its escape_rate reads low: "
                                                                "see sample_rates")
    sample_rates: Optional[SampleRatesOut] = Field(default=None, description="on the random audit sample's parts it "
                                                                             "judged alone (drawn before any "
                                                                             "verdict); null when it judged none")


class ModelVersionRatesList(BaseModel):
    items: list[ModelVersionRatesOut]


class ShadowRunOut(BaseModel):
    started_at: str
    stopped_at: Optional[str] = Field(description="null: it runs still")


class OtherBaselineOut(BaseModel):
    version: int
    line: str
    parts: int = Field(description="parts the candidate judged in shadow beside this version, left out here")


class CompareSampleOut(CompareOut):
    active: ModelVersionRatesOut
    candidate: ModelVersionRatesOut
    sample: dict[str, Optional[SampleRatesOut]] = Field(description="active and candidate rates on the audit "
                                                                    "sample's parts both judged")
    not_compared: int = Field(description="parts the active version judged while the candidate ran in shadow "
                                          "(shadow_runs) that the candidate did not: the shadow fell behind "
                                          "(dropped them) or failed on them. The time it was stopped is not counted")
    compared_share: Optional[float] = Field(description="parts / (parts + not_compared); null with no parts")
    shadow_runs: list[ShadowRunOut] = Field(default_factory=list,
                                            description="when the candidate ran in shadow, from the change log "
                                                        "(started, stopped or replaced or made active); for parts "
                                                        "compared before the log's first run, from the first of "
                                                        "them to that run")
    other_baselines: list[OtherBaselineOut] = Field(
        default_factory=list, description="the other versions the candidate was compared with while it ran in "
                                          "shadow (the live model changed: an activation or a rollback), with the "
                                          "parts it judged beside each: everything here is on the parts the version "
                                          "active now judged, those are left out (they count again while that "
                                          "version is live)")

# The largest model file the station takes. Usual ones are 1-30 MB: the quality profile
# on 762 magnetic tiles (MobileNetV2 stages 2+4, 128 channels, 256x224: 896 patches a
# part, 2% kept) banks ~13,700 rows x 128 x 4 bytes = 7 MB, its 0.7x size ~7,300 rows =
# 3.7 MB, plus the backbone's few MB. But the station itself trains on up to 10,000 parts,
# whose streaming coreset keeps up to 500,000 rows a bank: a quality model of 10,000 long
# parts is ~300 MB with its second size, and a fast one at a coreset ratio of 0.1 as much
# (a review found 256 MiB refused a model the station had trained, moved to another). 1 GiB
# holds those; what is no model at all is refused from its first bytes before it is read
# (a 1.9 GB video took the station to 4.5 GB), and a model is read once.
MAX_MODEL_BYTES = 1024 ** 3


def model_too_large() -> str:
    """What an upload over the limit is told (the body-size guard in app.py says the same)."""
    return (f"model files over {MAX_MODEL_BYTES / (1 << 20):g} MiB are refused (a lineguard model file is 1-30 MB, "
            "a few hundred MB for one learnt from thousands of parts: is this the model file?)")


def model_to_dict(mv: ModelVersion, state: Optional[str] = None,
                  rates: Optional[dict[str, Any]] = None,
                  sample_rates: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """A version's JSON; ``state``/``rates``/``sample_rates`` from :func:`models_to_dicts`
    (which knows the shadows and the reviews), else active/inactive and no rates."""
    return {"product": mv.product, "line": mv.line, "version": mv.version, "model_id": mv.model_id,
            "model_version": mv.model_version, "active": bool(mv.active), "note": mv.note,
            "uploaded_at": _iso(mv.uploaded_at), "uploaded_by": mv.uploaded_by,
            "activated_at": _iso(mv.activated_at),
            "state": state or ("active" if mv.active else "inactive"),
            "threshold": mv.threshold, "review_threshold": mv.review_threshold, "detector": mv.detector,
            "features": mv.features,
            "train_images": mv.train_images, "trained_from": mv.trained_from, "rates": rates,
            "sample_rates": sample_rates}


def models_to_dicts(station: Station, versions: list[ModelVersion]) -> list[dict[str, Any]]:
    """Versions with their state (a shadow is one), their rates on reviewed parts and on
    the audit sample's."""
    from ...line.compare import version_rates_both
    shadows = {mv.id for mv in station.shadow.current().values()}
    with station.db.session() as s:
        rates = version_rates_both(s, versions)
        copies = _same_files(s, versions)
        # never a version whose file is missing (a restore without it): the rollback walks past it too
        back_to = {(mv.product, mv.line): rollback_target(s, mv.product, mv.line, station.models.file_usable)
                   for mv in versions if mv.active}

    def rollback_to(mv: ModelVersion) -> dict[str, Any]:
        to = back_to.get((mv.product, mv.line))
        return {"rollback_to": to[0] if to else None, "rollback_to_line": to[1] if to else None}
    return [{**model_to_dict(mv, "active" if mv.active else "shadow" if mv.id in shadows else "inactive",
                             *rates.get(mv.id, (None, None))),
             **dict(zip(("precision", "runtime"), station.models.precision(mv))),
             "same_file_as": copies.get(mv.id),
             # its file's size and header, read again only once the file changed: no model is loaded
             "file_problem": station.models.file_problem(mv),
             "warning": getattr(mv, "shadow_note", None),     # an activation's or rollback's, this call's
             **(rollback_to(mv) if mv.active else {})} for mv in versions]


def _same_files(s: Any, versions: list[ModelVersion]) -> dict[int, int]:
    """Version id -> the earliest version of its product and line with the same model file
    (model_id), for each version that repeats an earlier one: an upload of a file already
    there read as a new model (re-activating an old file by upload is legitimate; its list
    entry says it is that file)."""
    from sqlalchemy import select
    ids = {mv.model_id for mv in versions}
    if not ids:
        return {}
    first: dict[tuple[str, str, str], int] = {}
    for product, line, model_id, version in s.execute(
            select(ModelVersion.product, ModelVersion.line, ModelVersion.model_id, ModelVersion.version)
            .where(ModelVersion.model_id.in_(ids))):
        key = (product, line, model_id)
        first[key] = min(first.get(key, version), version)
    out = {}
    for mv in versions:
        v = first.get((mv.product, mv.line, mv.model_id))
        if v is not None and v < mv.version:
            out[mv.id] = v
    return out


def job_to_dict(job: Job) -> dict[str, Any]:
    return {"id": job.id, "kind": job.kind, "status": job.status, "progress": job.progress,
            "message": job.message, "params": job.params, "result": job.result,
            "created_at": _iso(job.created_at), "finished_at": _iso(job.finished_at),
            "links": {"self": f"/api/v1/jobs/{job.id}"}}


# what a version's slot with a slip of a line in it is told (check_product_and_line)
_LINE_ADVICE = "Give the line as the Models page lists it, or leave it empty for the product's model of every line"


def _known_slot(station: Station, product: str, line: str) -> None:
    """A product or line the station holds nothing of is a 404 saying the one meant, as train
    and Compare say it: activating "l1" (the line is "L1") was told to upload a version,
    rolling back a line never seen "nothing to roll back", and "Cell" no did-you-mean."""
    from ...line.part_names import check_product_and_line
    check_product_and_line(station.db, product, line, _LINE_ADVICE)


@router.post("/models", status_code=201, summary="Upload a model (.lgm bundle or exported .onnx) as the next version",
             response_model=ModelVersionRatesOut, responses=errors(401, 403, 409, 413, 422, 503))
async def upload_model(request: Request,
                       file: UploadFile = File(..., description="a .lgm bundle, or an exported .onnx (its name "
                                                                  "ending .onnx)"),
                       product: str = Form(..., min_length=1, max_length=100, pattern=r"^[^\x00]*[^\x00\s][^\x00]*$",
                                           examples=["cell"], description="the product the parts are sent with"),
                       line: str = Form("", max_length=100, pattern=NO_NUL, examples=[""],
                                        description="a line of its own; empty: the model for every line"),
                       note: Optional[str] = Form(None, pattern=NO_NUL, examples=[""]), activate: bool = Form(False),
                       new_product: bool = Form(False, description="the product is new, though its name is a slip "
                                                "of one the station knows (without it: 409, did you mean)"),
                       station: Station = Depends(get_station),
                       caller: Caller = Depends(require("engineer"))) -> dict[str, Any]:
    await refuse_odd_form_fields(request)
    said: list[str] = []

    def work():
        # The framework has spooled the upload to disk: its size and first bytes are known
        # before it is read, and a file too large or no model at all is refused from them;
        # only a file that may be a model is read, once.
        fh = file.file
        fh.seek(0, 2)
        size = fh.tell()
        if size > MAX_MODEL_BYTES:
            raise UploadTooLarge(f"the file is {size / (1 << 20):.1f} MiB; {model_too_large()}")
        fh.seek(0)
        station.models.check_head(fh.read(HEAD_BYTES), file.filename)
        # a misspelt product ("tiles" beside "tile") is refused before the file is read
        said.extend(w for w in [station.models.new_product_check(product, new_product)] if w)
        fh.seek(0)
        data = fh.read()
        mv = station.add_model(data, product, line, note=note, by=caller.who, activate=activate, try_first=True,
                               filename=file.filename)
        return models_to_dicts(station, [mv])[0]
    out = await run_in_threadpool(work)
    if out["same_file_as"] is not None:
        v = out["same_file_as"]
        same = (f"same file as v{v}: v{out['version']} is the model file of v{v} again (model id "
                f"{out['model_id']}), not a new model; activating v{v} would have done the same")
        out["warning"] = same + (f"; {out['warning']}" if out.get("warning") else "")
    if said:      # a new product: the ones it is not
        out["warning"] = "; ".join(said + ([out["warning"]] if out.get("warning") else []))
    return out


@router.get("/models", summary="Model versions, per product and line", response_model=ModelVersionRatesList,
            responses=errors(401, 403, 422))
def list_models(product: Optional[str] = None, line: Optional[str] = None,
                station: Station = Depends(get_station), _r: Any = Depends(reader),
                _known: None = Depends(known_query_only)) -> dict[str, Any]:
    return {"items": models_to_dicts(station, station.models.list(product, line))}


@router.get("/models/{product}/versions/{version}/file", summary="Download a version's model file",
            description="The file exactly as the station keeps it (a .lgm bundle, or an exported .onnx), to keep a "
                        "copy: a version trained or tuned on the station exists nowhere else, and a restore from a "
                        "backup without it can only get it back from such a copy (upload it again). ``line``: "
                        "the version's line as registered, \"\" for a model of every line.",
            response_class=Response, responses={**errors(401, 403, 404, 409, 422),
                                                200: {"content": {"application/octet-stream": {}}}})
def download_model_file(product: str, version: int = Path(ge=1, le=DB_INT_MAX),
                        line: str = Query("", max_length=100), station: Station = Depends(get_station),
                        caller: Caller = Depends(require("engineer")),
                        _known: None = Depends(known_query_only)) -> Response:
    import re

    from fastapi.responses import FileResponse
    _known_slot(station, product, line)
    mv = station.models.get(product, line, version)
    path = station.models.file_path(mv)
    suffix = "".join(path.suffixes[-1:]) or ".lgm"
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{product}" + (f"-{line}" if line else "") + f"-v{version}") + suffix
    return FileResponse(path, media_type="application/octet-stream", filename=name)


@router.post("/models/{product}/activate", summary="Make a version the one that judges parts",
             description="The version is first tried on up to 20 of the product's latest good parts (judged OK or "
                         "reviewed good, images kept): when it would not pass more than half of them (at least 5 "
                         "tried: judged NG, REVIEW for a photo it doubts that the line did not doubt, or REVIEW on "
                         "its score of a part the line passed OK; REVIEW sets the PLC's NG bit too), the answer is "
                         "409 rejects_good_parts, saying which (photo_doubted; photo_doubted_by_line: the photos "
                         "the line doubted too, not counted), nothing changes, unless \"force\": true; then on up "
                         "to 20 of the latest parts reviewed as defects (images kept): when it judges more than half "
                         "of them OK, and more than the line passed, 409 passes_reviewed_defects, the same way. With "
                         "\"expected_active\", a version other than that one active by now is a 409 active_changed; "
                         "without, so is a change another request made at the same moment. A version that never "
                         "judged the line's parts in shadow beside the live one is activated with a warning saying "
                         "so, in the change log too (not the product's first model, nor the version Roll back "
                         "would go back to; a version live before and never compared with the live one is told).",
             response_model=ModelVersionRatesOut, responses=errors(401, 403, 404, 409, 422, 503))
def activate_model(product: str, body: ActivateIn, station: Station = Depends(get_station),
                   caller: Caller = Depends(require("engineer"))) -> dict[str, Any]:
    _known_slot(station, product, body.line)
    # as the list shows it (rates, rollback_to): the answer said rollback_to null where the list said 1
    return models_to_dicts(station, [station.activate_model(product, body.line, body.version, by=caller.who,
                                                            expected_active=body.expected_active,
                                                            force=body.force)])[0]


@router.post("/models/{product}/rollback", summary="Go back to the version active before the current one",
             description="Two rollbacks at the same moment undo one activation: the second answers 409 "
                         "active_changed, unless its \"expected_active\" names the version the first went back to. "
                         "The rollback of a line's first own model gives the line's parts back to the product's "
                         "model of every line, which judged them before (its own versions stay, none active): the "
                         "answer is that version (line \"\"), and the model event says \"given_back\" with "
                         "for_line and the line's own version dropped. A shadow of the line's own version is "
                         "compared with that version from then on, or ends where it is that very model (the change "
                         "log's model.rolled_back says which). With nothing before, 409.",
             response_model=ModelVersionRatesOut, responses=errors(401, 403, 404, 409, 422, 503))
def rollback_model(product: str, body: Optional[RollbackIn] = None, station: Station = Depends(get_station),
                   caller: Caller = Depends(require("engineer"))) -> dict[str, Any]:
    body = body or RollbackIn()
    _known_slot(station, product, body.line)
    return models_to_dicts(station, [station.rollback_model(product, body.line, by=caller.who,
                                                            expected_active=body.expected_active)])[0]


def photo_check_of(insp: Any) -> bool:
    """Whether a retrain keeps the photo check: off only when the model it replaces (loaded;
    None: the product's first model, on by default) was trained with it off
    (--no-photo-check: photos that vary more than a camera fault); on for models from before
    the check (they gain it)."""
    if insp is None:
        return True
    info = getattr(insp, "info", None) or {}
    return "photo_range" not in info or info["photo_range"] is not None


def _replaced_version(station: Station, product: str, line: str, left: list[str]) -> tuple[Any, Any]:
    """The registry row and the loaded model of the version a retrain replaces, for the
    settings the request ``left`` to it: (None, None) for the product's first model; the
    model None where the row alone answers (its detector, read off the file at upload).
    A file that cannot be read (deleted, corrupt) is a 422 before the job that names every
    setting to give, at once and as ``settings_needed``: the Models page then shows those
    fields, so the plant can retrain away from the broken version. Asked one at a time (the
    photo check after the rest), giving what the first answer named got a second 422."""
    from ...line.errors import InvalidRequest, NoActiveModel, StationError
    try:
        mv = station.models.active_for(product, line)
    except NoActiveModel:
        return None, None
    if not [k for k in left if not (k == "detector" and mv.detector)]:
        return mv, None
    try:
        return mv, station.models.inspector(mv)
    except StationError as exc:   # not guessed: settings the user chose must not change unseen
        needed = [k for k in left if not (k == "detector" and mv.detector)]
        kept = f" (its detector, {mv.detector}, is kept: the version's record has it)" if \
            "detector" in left and mv.detector else ""
        named = [f'"{k}"' for k in needed]
        raise InvalidRequest(f"the active model of {product!r} (version {mv.version}) could not be read to take "
                             f"its training settings ({exc}); give "
                             + " and ".join(filter(None, [", ".join(named[:-1]), named[-1]])) + kept,
                             settings_needed=needed, version=mv.version, detector=mv.detector) from exc


def profile_of(insp: Any) -> str:
    """The profile a model was trained with, by what it looks at (its backbone, and the
    second input size the quality profile adds); the default for a model that says neither."""
    from ...vision.profiles import DEFAULT_PROFILE, PROFILES
    det = getattr(insp, "detector", None)
    params = getattr(det, "params", None)
    params = params if isinstance(params, dict) else {}
    backbone = getattr(det, "backbone", None) or params.get("backbone")
    scales = tuple(float(s) for s in (getattr(det, "extra_scales", None) or params.get("extra_scales") or ()))
    for name, settings in PROFILES.items():
        if backbone == settings["backbone"] and scales == tuple(settings.get("extra_scales", ())):
            return name
    for name, settings in PROFILES.items():
        if backbone == settings["backbone"]:
            return name
    return DEFAULT_PROFILE


def inherited_training(insp: Any) -> dict[str, Any]:
    """What a retrain keeps of the model it replaces when the request does not say:
    its review band's rate, its false-reject target and its profile (a retrain from the
    Models page sends only line and source, and a profile only when one is chosen:
    without this, the review band vanished from the line and the target went back to 1%).
    Its input size is kept too (:func:`input_size_of`) while the profile stays."""
    from ...vision.profiles import DEFAULT_PROFILE
    if insp is None:          # the product's first model: the defaults
        return {"review_rate": 0.0, "false_reject_rate": 0.01, "profile": DEFAULT_PROFILE}
    cal = getattr(insp, "calibration", None)
    cal = cal if isinstance(cal, dict) else {}

    def rate(name: str, default: float) -> float:
        try:
            v = float(cal[name])
        except (KeyError, TypeError, ValueError):
            return default
        return v if 0 <= v < 0.5 else default
    return {"review_rate": rate("review_rate", 0.0),
            "false_reject_rate": rate("target_false_reject_rate", 0.01) or 0.01,
            "profile": profile_of(insp)}


def detector_of(insp: Any) -> str:
    """The detector a loaded model was trained with (``detector.name``, an exported model's
    too), as ``detector`` takes it; patchcore for a product's first model or a model that
    does not say. A retrain keeps it: a padim product retrained from the Models page (it
    sends no detector) became patchcore, its threshold on another scale of scores."""
    name = getattr(getattr(insp, "detector", None), "name", None)
    return name if isinstance(name, str) and name else "patchcore"


def input_size_of(insp: Any) -> Any:
    """The input a loaded model judges parts at, as ``image_size`` takes it (a square's
    side, or [height, width]); None when it does not say. A retrain keeps it while the
    profile stays: a model trained at 128 went back to the profile's 224 x 224 on its
    first retrain, a threshold on another scale of scores."""
    rule = (getattr(insp, "info", None) or {}).get("image_size_rule")
    if isinstance(rule, str) and rule:
        # the rule it was trained with ("area224", "auto"), not the size it gave: applied to the
        # retrain's own parts (a camera turned, a new ROI gave long parts the square's input)
        return rule
    size = getattr(getattr(insp, "preprocess", None), "image_size", None) or \
        getattr(getattr(insp, "detector", None), "input_size_", None)
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return size
    if isinstance(size, (tuple, list)) and len(size) == 2 and \
            all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size):
        return int(size[0]) if size[0] == size[1] else [int(size[0]), int(size[1])]
    return None


# The fewest stored parts each detector trains on: what it learns from (its
# min_good_images) and one more to set the threshold (Inspector.fit refuses fewer). Here,
# torch-free, so that "min_images": 2 is a 422 and not a job failing minutes later.
MIN_TRAIN_IMAGES = {"patchcore": 3, "padim": 11}


def _checked_min_images(body: TrainIn, detector: str) -> int:
    """The fewest parts the job may train on with ``detector`` (the one given, else the
    replaced version's). A detector the station does not know, or a ``min_images`` below
    what it trains on, is a 422 before the job (both failed inside it, after the 202); the
    default 10 rises to the detector's own least (padim's 11)."""
    from ...line.errors import InvalidRequest
    from ...vision.bundle import DETECTOR_NAMES
    if detector not in DETECTOR_NAMES:
        if body.detector is None:   # not guessed: a model made elsewhere, with a detector this station lacks
            raise InvalidRequest(f"the active model was trained with detector {detector!r}, which the station "
                                 f"cannot train; say \"detector\": one of {', '.join(DETECTOR_NAMES)}")
        raise InvalidRequest(f"unknown detector {detector!r}; choose one of {', '.join(DETECTOR_NAMES)} "
                             "(default: the active model's)")
    need = MIN_TRAIN_IMAGES.get(detector, 3)
    if body.min_images < need and "min_images" in body.model_fields_set:
        raise InvalidRequest(f"min_images {body.min_images} is too few: {detector} needs at least {need} parts "
                             f"(some to learn from, one to set the threshold); give \"min_images\": {need} or more")
    return max(body.min_images, need)


@router.post("/models/{product}/train", status_code=202,
             summary="Train a new version from stored good parts (background job)", response_model=JobOut,
             responses=errors(400, 401, 403, 404, 409, 422))
def train_model(product: str, body: TrainIn, station: Station = Depends(get_station),
                caller: Caller = Depends(require("engineer"))) -> dict[str, Any]:
    from ...vision.profiles import profile_settings
    if body.detector is not None:
        _checked_min_images(body, body.detector)    # a name or count it cannot train with: before the model loads
    given = {"review_rate": body.review_rate, "false_reject_rate": body.false_reject_rate, "profile": body.profile}
    missing = [k for k, v in given.items() if v is None]
    image_size, detector, photo_check = body.image_size, body.detector, body.photo_check
    # as the version it replaces was trained (its detector too): an explicit value wins. Its
    # input size is asked of it only with its profile: a profile given trains at its own
    left = missing + (["detector"] if detector is None else []) + (["photo_check"] if photo_check is None else [])
    if left:
        mv, insp = _replaced_version(station, product, body.line, left)
        kept = inherited_training(insp)
        given.update({k: kept[k] for k in missing})
        if detector is None:
            detector = mv.detector if mv is not None and mv.detector else detector_of(insp)
        if image_size is None and insp is not None and body.profile is None:
            # its input too, where no profile is chosen (the page's "as the active version"); a
            # profile chosen, even the same one, trains at that profile's own input, as the page says
            image_size = input_size_of(insp)
        if photo_check is None:
            photo_check = photo_check_of(insp)
    min_images = _checked_min_images(body, detector)     # padim's floor for a padim product's retrain too
    settings = profile_settings(given["profile"], image_size)
    if detector != "patchcore":
        settings.pop("backbone")     # other detectors keep their own default features
        settings.pop("extra_scales", None)   # and have no bank per input size
    settings["photo_check"] = photo_check
    job = station.jobs.submit_training(product, body.line, limit=body.limit, min_images=min_images,
                                       activate=body.activate, by=caller.who, detector=detector,
                                       false_reject_rate=given["false_reject_rate"], seed=body.seed,
                                       review_rate=given["review_rate"], source=body.source,
                                       reference=body.reference, **settings)
    return job_to_dict(job)


@router.post("/models/{product}/shadow", summary="Run a version beside the active one on every new part",
             description="Its verdict and score are stored per part for GET .../compare, never signalled to the "
                         "line. It runs after each part is answered, so it never slows the line; when it falls "
                         "behind, parts are left uncompared. Activating it ends the shadow.",
             response_model=ModelVersionRatesOut, responses=errors(401, 403, 404, 409, 422, 503))
def start_shadow(product: str, body: ShadowIn, station: Station = Depends(get_station),
                 caller: Caller = Depends(require("engineer"))) -> dict[str, Any]:
    _known_slot(station, product, body.line)
    mv = station.shadow.start(product, body.line, body.version, by=caller.who)
    return models_to_dicts(station, [mv])[0]


@router.delete("/models/{product}/shadow", status_code=204, summary="Stop the shadow of a product/line",
               response_class=Response, responses=errors(401, 403, 404, 422))
def stop_shadow(product: str, line: str = Query("", max_length=100), station: Station = Depends(get_station),
                caller: Caller = Depends(require("engineer"))) -> Response:
    _known_slot(station, product, line)
    station.shadow.stop(product, line, by=caller.who)
    return Response(status_code=204)


@router.get("/models/{product}/compare", summary="A candidate's shadow verdicts against the active version's",
            response_model=CompareSampleOut, responses=errors(401, 403, 404, 422))
def compare_models(product: str, line: str = Query("", max_length=100),
                   candidate: Optional[int] = Query(None, ge=1, le=DB_INT_MAX,
                                                    description="version; default: the shadow of product/line"),
                   station: Station = Depends(get_station), _r: Any = Depends(reader),
                   _known: None = Depends(known_query_only)) -> dict[str, Any]:
    from ...line.compare import compare
    from ...line.errors import NotFound
    from ...line.part_names import check_product_and_line
    active = station.models.active_for(product, line)
    # a line nothing is stored of answered "0 parts", as if the shadow had judged none
    check_product_and_line(station.db, product, line, "Leave the line empty to compare on every line's parts")
    if candidate is None:
        cand = station.shadow.for_part(product, line)
        if cand is None:
            raise NotFound(f"no shadow is running for product {product!r}" + (f" line {line!r}" if line else "")
                           + "; name the version with ?candidate=, or start one with POST "
                           f"/api/v1/models/{product}/shadow")
    else:
        try:
            cand = station.models.get(product, line, candidate)
        except NotFound:
            if not line:
                raise
            cand = station.models.get(product, "", candidate)   # a product-wide version shadowing this line
    with station.db.session() as s:
        out = compare(s, active, cand, line)
        out["other_baselines"] = _other_baselines(s, active, cand, line)
    out["shadow_runs"] = [{"started_at": _iso(r["started_at"]), "stopped_at": _iso(r["stopped_at"])}
                          for r in out["shadow_runs"]]
    a, c = models_to_dicts(station, [active, cand])
    return {"active": a, "candidate": c, **out}


def _other_baselines(s: Any, active: ModelVersion, cand: ModelVersion, line: str) -> list[dict[str, Any]]:
    """The versions other than ``active`` that judged the parts ``cand`` judged in shadow,
    with how many: Compare counts only the active one's, and says the others are left out."""
    from sqlalchemy import and_, func, select

    from ...line.orm import Inspection, ShadowResult
    q = (select(Inspection.registry_version, Inspection.model_id, func.count())
         .join(ShadowResult, ShadowResult.inspection_id == Inspection.id)
         .where(ShadowResult.model_version_id == cand.id, Inspection.product == active.product,
                Inspection.test_part.is_(None),
                ~and_(Inspection.model_id == active.model_id, Inspection.registry_version == active.version))
         .group_by(Inspection.registry_version, Inspection.model_id))
    if line:
        q = q.where(Inspection.line == line)
    out = []
    for version, model_id, n in s.execute(q):
        # a part's record names the version number and its model; the line is the version's
        mv = s.scalar(select(ModelVersion).where(ModelVersion.product == active.product,
                                                 ModelVersion.version == version, ModelVersion.model_id == model_id)
                      .order_by(ModelVersion.line.desc()).limit(1))
        out.append({"version": int(version) if version is not None else 0,
                    "line": mv.line if mv is not None else "", "parts": int(n)})
    return sorted(out, key=lambda o: (-o["parts"], o["version"]))


JOB_STATES = ("queued", "running", "done", "failed", "interrupted")


@router.get("/jobs", summary="Background jobs, newest first (a reloaded page finds the training it started)",
            response_model=JobList, responses=errors(401, 403, 422))
def list_jobs(status: Optional[str] = Query(None, max_length=200,
                                            description="only these states, comma-separated: queued,running "
                                                        f"(of {', '.join(JOB_STATES)})"),
              kind: Optional[str] = Query(None, pattern=r"^train$", description="only jobs of this kind"),
              limit: int = Query(20, ge=1, le=200), station: Station = Depends(get_station),
              _r: Any = Depends(reader), _known: None = Depends(known_query_only)) -> dict[str, Any]:
    wanted = [w.strip() for w in status.split(",")] if status else None
    unknown = [w for w in wanted or () if w not in JOB_STATES]
    if unknown:
        # the pattern's refusal showed its regular expression, not the states
        from ...line.errors import InvalidRequest
        raise InvalidRequest(f"status: unknown job state {unknown[0]!r}; give one or more of {', '.join(JOB_STATES)}, "
                             "comma-separated (e.g. queued,running)")
    return {"items": [job_to_dict(j) for j in station.jobs.recent(limit, wanted, kind)]}


@router.get("/jobs/{job_id}", summary="Status and progress of a background job", response_model=JobOut,
            responses=errors(401, 403, 404, 422))
def get_job(job_id: int = Path(ge=1, le=DB_INT_MAX), station: Station = Depends(get_station), _r: Any = Depends(reader)) -> dict[str, Any]:
    return job_to_dict(station.jobs.get(job_id))


# the reference photos of good parts a retrain learns (routers.reference), under this
# router: the station's app includes it with the models' routes
from .reference import router as _reference_router  # noqa: E402
router.include_router(_reference_router)
