"""Request bodies and answers at the API edge (pydantic)."""
from __future__ import annotations

from typing import Any, Literal, Optional, Union

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..line.alarms import CAUSES
from ..line.reviews import FOUND_BY
from ..vision.preprocess import side_ok, size_rule
# no_nul: free text (PostgreSQL refuses NUL: a 500 instead of a 422); printable: a part
# field's rule (no control or invisible character), for names people read and choose from
from .text_rules import NO_NUL, NulFree, no_nul, printable  # noqa: F401 - NO_NUL: the routers' query patterns
MAX_SIDE = 1024   # the largest input side a retrain may ask for (the bound on a square side before size rules)


class RequestIn(NulFree):
    """A request's body: a field it does not take is refused (422 naming it), not dropped. An
    acknowledgement sent with "couse" for "cause" was taken without its cause, 200, and the
    cause could not be given again by the same call (409: acknowledged already)."""
    model_config = ConfigDict(extra="forbid")


class ReviewIn(RequestIn):
    label: Literal["good", "defect"] = Field(description="good: no defect (on an NG/REVIEW part, a false alarm); "
                                             "defect: a confirmed defect (on an OK part, a missed one: an escape)")
    defect_type: Optional[no_nul(100)] = Field(default=None,
                                               description="with label defect: one of the product's defect types")
    note: Optional[no_nul(2000)] = None
    # a plain string, checked by line.reviews (one list, one message, the allowed list in the 422)
    found_by: Optional[no_nul(40)] = Field(
        default=None, description="with label defect on a part the station passed (OK), an escape: where it was "
                                  "found, one of " + ", ".join(f'"{f}"' for f in FOUND_BY) + " (\"audit\": the "
                                  "random audit sample, for a part drawn for it). Sent on any other review: 422; "
                                  "left out: not said")
    seen_review: Optional[no_nul(64)] = Field(
        default=None, description="the part's latest review as the reviewer saw it: its review.reviewed_at, or "
                                  "\"none\" when the part showed no review. If another review came meanwhile the "
                                  "answer is 409 review_changed naming it (two reviewers on one part: a person "
                                  "decides, not whoever wrote last); left out: no check")


class DefectTypesIn(RequestIn):
    defect_types: list[printable(100)] = Field(min_length=1, max_length=100,
                                    description="the names reviewers choose from, e.g. scratch, dent")
    # no_nul, not printable: a list stored under older rules must still be sendable back
    expected: Optional[list[no_nul(100)]] = Field(
        default=None, max_length=100,
        description="the product's list as the sender last read it (GET's defect_types, the defaults included). "
                    "If the stored list differs by now, nothing is written and the answer is 409 "
                    "defect_types_changed with the stored list in defect_types (two engineers saving at once: "
                    "neither's change lost unseen); left out: no check, the list is replaced")
    new_product: bool = Field(default=False, description="the product is new, though its name is a slip of one the "
                                                         "station knows (without it: 409, did you mean)")


class TestPartIn(RequestIn):
    __test__ = False   # not a pytest class, whatever its name
    name: printable(200, min_length=1) = Field(
        description="the serial (or else part id) the test part is sent with, e.g. RR-01")
    expect: Literal["OK", "NG", "REVIEW"] = Field(
        description="the verdict it must get: NG for a defect the station must reject, OK for a good part, "
                    "REVIEW for a limit sample")
    description: Optional[no_nul(2000)] = Field(default=None,
                                                description="what it is, e.g. 'crack 0.3 mm, left edge'")


class AlarmAckIn(RequestIn):
    note: Optional[no_nul(2000)] = Field(default=None,
                                         description="what was found and done, e.g. 'lamp 2 out, replaced'")
    cause: Optional[str] = Field(
        default=None, max_length=100,
        description="what it turned out to be, a key of GET /api/v1/alarm-causes (in any case): built in "
                    + "; ".join(f"{k}: {v}" for k, v in CAUSES.items()) + "; or one of the plant's own")

    @field_validator("cause", mode="before")
    @classmethod
    def _a_cause_key(cls, v: Any) -> Any:
        # "Process" was refused with a regular expression, and the PLC's number 7 with "Input
        # should be a valid string": a key in another case is that key; one the station does
        # not offer is refused by the station with the list of those it does
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            raise ValueError("give the cause's key (GET /api/v1/alarm-causes lists them: process, material, ...), "
                             "not its number: the number is the PLC's AlarmAckCause")
        return v.strip().lower() if isinstance(v, str) else v


class AlarmCauseIn(RequestIn):
    label: printable(100, min_length=1) = Field(
        description="what the cause is, as the line says it, e.g. 'coil change'")
    key: Optional[str] = Field(default=None, max_length=20, pattern="^[a-z0-9][a-z0-9_]*$",
                               description="its key in exports and the API (default: made from the label)")


class StationAlarmRulesIn(RequestIn):
    """A station's own alarm settings; one left out or null follows the process's default (0 turns a rule off).
    A misspelt setting is refused, not dropped (dropped, the PUT would clear the station's rules), and so is
    a number given as text or true/false."""
    model_config = ConfigDict(extra="forbid")
    line: no_nul(100, min_length=1)
    station: no_nul(100, min_length=1)
    ng_run: Optional[int] = Field(default=None, strict=True, description="parts in a row not passed (2-10000; 0: off)")
    ng_rate: Optional[float] = Field(default=None, strict=True,
                                     description="share of NG parts in the window (0-1; 0: off)")
    window: Optional[int] = Field(default=None, strict=True, description="parts the NG rate is taken over (10-100000)")
    photo_run: Optional[int] = Field(default=None, strict=True,
                                     description="doubted photos among the last 2N-1 parts (2-10000; 0: off)")
    no_verdict_run: Optional[int] = Field(default=None, strict=True,
                                          description="PLC answers in a row NG without a verdict (2-10000; 0: off)")
    escalate_min: Optional[float] = Field(default=None, strict=True, description="minutes unacknowledged before "
                                          "an alarm is escalated (0.5-1440; 0: never)")
    escalate_again_min: Optional[float] = Field(default=None, strict=True, description="then again every so many "
                                                "minutes while unacknowledged (1-1440; 0: once)")
    drift_parts: Optional[int] = Field(default=None, strict=True, description="parts per group whose scores are "
                                       "compared with the model's first 5 groups at the station (20-10000; 0: off)")


class ShadowIn(RequestIn):
    version: int = Field(ge=1, le=2 ** 31 - 1)
    line: no_nul(100) = ""


def _expected_active() -> Any:
    return Field(default=None, ge=0, le=2 ** 31 - 1, examples=[2], description=(
        "the version you saw active (0: none); when another one is active by now (an engineer changed it "
        "meanwhile) the station answers 409 active_changed and changes nothing"))


class ActivateIn(RequestIn):
    version: int = Field(ge=1, le=2 ** 31 - 1)
    line: no_nul(100) = ""
    expected_active: Optional[int] = _expected_active()
    force: bool = Field(default=False, description=(
        "activate even when the version rejects most of the product's latest good parts (409 rejects_good_parts "
        "otherwise) or passes most of the latest parts reviewed as defects (409 passes_reviewed_defects); the "
        "change log says it was forced"))


class RollbackIn(RequestIn):
    line: no_nul(100) = ""
    expected_active: Optional[int] = _expected_active()


class TrainIn(RequestIn):
    line: no_nul(100) = ""
    limit: int = Field(default=200, ge=1, le=10000)
    min_images: int = Field(default=10, ge=1, le=10000)
    activate: bool = False
    # None: the replaced version's, as the profile and review band (a padim product retrained
    # from the Models page, which sends no detector, became patchcore)
    detector: Optional[no_nul(50)] = Field(
        default=None, description="patchcore or padim; default: the replaced version's (patchcore for a "
                                  "product's first model)")
    profile: Optional[Literal["fast", "quality"]] = Field(
        default=None, description="fast: EfficientNet-Lite0 on at most 224x224 pixels (long parts keep their "
                                  "shape); quality: the parts' own aspect ratio, "
                                  "MobileNetV2, each part also seen at 0.7x that size (slower; for thin or "
                                  "small defects on long parts); default: as the active model was trained "
                                  "(fast when none)")
    # the same sizes as `train --image-size` but HEIGHTxWIDTH: a square side, or a rule that reads
    # the stored parts' shape; checked here so that a size the model cannot take is a 422, not a
    # failed job
    image_size: Optional[Union[int, str]] = Field(
        default=None, description="model input: a square side (a multiple of 32, 64-1024), 'auto' / 'autoN' "
                                  "(the parts' aspect ratio, short side 224 / N) or 'areaN' (at most NxN pixels, "
                                  "the parts' shape when they are long); default: the replaced version's input "
                                  "while the profile stays, else the profile's")

    @field_validator("image_size")
    @classmethod
    def _known_size(cls, v: Union[None, int, str]) -> Union[None, int, str]:
        if v is None:
            return v
        if isinstance(v, str) and v.strip().isdigit():
            v = int(v)
        if isinstance(v, int):
            if not side_ok(v) or v > MAX_SIDE:
                raise ValueError(f"a square input side must be a multiple of 32 from 64 to {MAX_SIDE}, got {v}")
            return v
        rule, side = size_rule(v)        # the model's own check, the same message as `train`
        if side > MAX_SIDE:
            raise ValueError(f"the side of an {rule} image_size must be at most {MAX_SIDE}; got {side}")
        return v.strip().lower()
    false_reject_rate: Optional[float] = Field(
        default=None, gt=0, lt=0.5, description="the false-reject target; default: the active model's (0.01 when "
                                                "none)")
    review_rate: Optional[float] = Field(
        default=None, ge=0, lt=0.5, description="share of good parts sent to REVIEW; 0: no review band; default: "
                                                "as the active model has it (none when no model is active)")
    seed: int = Field(default=0, ge=0, le=2 ** 32 - 1)   # numpy seeds are 32-bit
    source: Literal["confirmed", "sample", "both"] = Field(
        default="both", description="learn from parts a person confirmed good, from the random audit sample "
                                    "(judged OK, or reviewed good), or both; never from unreviewed OK parts outside "
                                    "the sample, unreviewed NG/REVIEW parts, or a photo reviewed as a defect")
    photo_check: Optional[bool] = Field(
        default=None, description="keep the good photos' brightness/contrast/focus range, so a photo unlike them "
                                  "is not passed on its score; default: as the active model has it (on when none)")
    reference: bool = Field(
        default=True, description="learn the product's reference photos of good parts too (those given with "
                                  "POST /api/v1/reference-photos or `lineguard reference add`: the photos its first "
                                  "model was trained on), besides the stored parts; their count adds to min_images. "
                                  "false: the stored parts alone")


class KeyIn(RequestIn):
    role: Literal["operator", "engineer", "admin"]
    name: Optional[printable(100)] = Field(default=None, description="who or what the key is for, as lists "
                                 "and the change log show it, e.g. 'line 1 camera PC'")


# -- answers ---------------------------------------------------------------------------
# The API's responses are these models (FastAPI checks every answer against them), so
# the OpenAPI document at /openapi.json is the code, not a description of it.

class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")   # e.g. differs/existing_id on a 409, problems on a 422
    code: str = Field(description="machine-readable reason, e.g. not_found, upload_too_large")
    message: str = Field(description="what is wrong and what to do next, for the operator")


class ErrorOut(BaseModel):
    error: ErrorDetail
    detail: str = Field(description="the same message (FastAPI's usual field)")


class RegionOut(BaseModel):
    box: list[int] = Field(description="x, y, width, height in pixels of the judged image")
    area_px: int
    peak_score: float
    mean_score: float


class ModelRef(BaseModel):
    model_id: str
    model_version: str
    registry_version: Optional[int]


class ReviewState(BaseModel):
    reviewed: bool
    label: Optional[str]
    reviewer: Optional[str]
    note: Optional[str]
    reviewed_at: Optional[str]
    defect_type: Optional[str] = None
    found_by: Optional[str] = Field(default=None, description="an escape's: where it was found")


class ReviewOut(BaseModel):
    id: int
    label: str
    defect_type: Optional[str]
    reviewer: Optional[str]
    note: Optional[str]
    created_at: Optional[str]
    verdict_at_review: str = Field(description="what the model had said when the person looked")
    found_by: Optional[str] = Field(default=None, description="an escape's: where it was found")


class ReviewList(BaseModel):
    items: list[ReviewOut] = Field(description="oldest first")


class DefectTypesOut(BaseModel):
    product: str
    defect_types: list[str]


class TestPartCheck(BaseModel):
    __test__ = False   # not a pytest class, whatever its name
    name: str
    expected: str = Field(description="the verdict the test part must get")
    right: bool = Field(description="whether it got it")


class PartInspectionRef(BaseModel):
    id: int
    station: str
    created_at: Optional[str]
    verdict: str
    review_label: Optional[str] = Field(description="its latest review: good or defect; null: not reviewed")
    link: str = Field(description="its record in the API")


class PartHistory(BaseModel):
    total: int = Field(description="the part's inspections on this line, this one included, counted up to 10,000 "
                                   "(total_capped then says there are more): over 1, the part id came again with "
                                   "another photo (a re-inspection after rework, or a PLC or scanner repeating an id)")
    total_capped: bool
    latest_id: int = Field(description="the part's newest inspection at this station: this one's id when it is the "
                                       "latest, else the one whose verdict now stands for the part")
    others: list[PartInspectionRef] = Field(description="its other inspections on the line (any station), newest "
                                                        "first, at most 20")


class InspectionOut(BaseModel):
    id: int
    part_id: str
    line: str
    station: str
    product: str
    lot: Optional[str]
    serial: Optional[str]
    source: str
    verdict: str = Field(description="OK, NG or REVIEW (between the review and the reject threshold: a person looks)")
    score: float
    threshold: float
    review_threshold: Optional[float] = Field(default=None, description="at or below it a part is OK; "
                                              "null for models without a review band")
    pixel_threshold: float
    margin: Optional[float] = Field(description="score / threshold: over 1 is NG")
    regions: list[RegionOut]
    model: ModelRef
    timings_ms: dict[str, float]
    image_sha256: str
    image_size: list[int] = Field(description="width, height of the judged image")
    stored: dict[str, bool]
    created_at: Optional[str]
    defect_type: Optional[str] = Field(default=None, description="the latest review's defect type")
    audit_sample: bool = Field(default=False, description="in the random audit sample: image kept whatever the "
                                                          "verdict, retraining may learn from it")
    photo_issues: list[str] = Field(default_factory=list, description="what was off about the photo against the "
                                    "model's good photos (the photo check): the part went to REVIEW whatever its score")
    test_part: Optional[TestPartCheck] = Field(default=None, description="a test part's check (known verdict, "
                                               "see /api/v1/verification); null for the line's own parts")
    review: ReviewState
    links: dict[str, str]
    created: Optional[bool] = Field(default=None, description="on POST: false when this part and image "
                                                               "were already inspected (the existing record)")
    earlier_inspections: Optional[int] = Field(
        default=None, description="on POST: how many inspections of this part id, with other photos, this station "
                                  "recorded before this one (counted up to 1000); over 0: a re-inspection after "
                                  "rework, or a PLC or scanner repeating an id (GET the record for the list)")
    part_history: Optional[PartHistory] = Field(default=None, description="on GET of one inspection: the part's "
                                                "other inspections on the line")


class InspectionPage(BaseModel):
    items: list[InspectionOut]
    next_cursor: Optional[str] = Field(description="pass as cursor for the next (older) page; null at the end")
    total: Optional[int] = Field(None, description="with count=true: how many parts the filters match, counted "
                                                    "up to 100,000 (total_capped then says there are more)")
    total_capped: Optional[bool] = None


class RatesOut(BaseModel):
    n_good: int = Field(description="reviewed-good parts judged")
    n_defect: int = Field(description="reviewed-defect parts judged")
    false_reject_rate: Optional[float] = Field(description="reviewed-good parts judged NG / n_good")
    escape_rate: Optional[float] = Field(description="reviewed-defect parts judged OK / n_defect")


class ModelVersionOut(BaseModel):
    product: str
    line: str
    version: int
    model_id: str
    model_version: str
    active: bool
    note: Optional[str]
    uploaded_at: Optional[str]
    uploaded_by: Optional[str]
    activated_at: Optional[str]
    state: Literal["active", "shadow", "inactive"] = "inactive"
    threshold: Optional[float] = None
    review_threshold: Optional[float] = None
    detector: Optional[str] = None
    features: Optional[str] = Field(default=None, description="what it looks at: backbone, input height x width, "
                                                              "extra sizes (e.g. 'mobilenet_v2 320x192 + 0.7x')")
    rollback_to: Optional[int] = Field(default=None, description="an active version: the version a rollback would "
                                                                 "make active now (null: nothing earlier stands)")
    train_images: Optional[int] = Field(default=None, description="parts it was trained on (trained here)")
    trained_from: Optional[str] = None
    rates: Optional[RatesOut] = Field(default=None, description="on reviewed parts it judged; null when none")


class ModelVersionList(BaseModel):
    items: list[ModelVersionOut]


class DisagreementOut(BaseModel):
    inspection_id: int
    part_id: str = Field(description="the part's own id, as the line knows it")
    active_verdict: str
    candidate_verdict: str
    active_score: float
    candidate_score: float
    review_label: Optional[str]


class CompareOut(BaseModel):
    active: ModelVersionOut
    candidate: ModelVersionOut
    parts: int = Field(description="parts both versions judged")
    agreement: Optional[float] = Field(description="share of those with the same verdict; null with no parts")
    disagreements: list[DisagreementOut] = Field(description="newest first, at most 200")
    reviewed: dict[str, Optional[RatesOut]] = Field(description="active and candidate rates on the reviewed "
                                                                "parts both judged")


class JobOut(BaseModel):
    id: int
    kind: str
    status: str
    progress: float
    message: Optional[str]
    params: Optional[dict[str, Any]]
    result: Optional[dict[str, Any]]
    created_at: Optional[str]
    finished_at: Optional[str]
    links: dict[str, str]


class PartNames(BaseModel):
    lines: list[str]
    products: list[str]


class JobList(BaseModel):
    items: list[JobOut]


class HealthOut(BaseModel):
    status: Literal["ok", "degraded", "fault"] = Field(
        description="ok; degraded: a housekeeping fault (backup, old records, store sweep, disk under its floor "
                    "with nothing left to delete, PLC answers waiting to be recorded), a sink owing a message a "
                    "minute old or more or one whose receiver refused messages in the last 10 minutes, an alarm "
                    "unacknowledged past its escalation time, every part "
                    "still judged and stored (200); fault: parts cannot be judged or stored (data folder, "
                    "database, PLC, camera, an active model that does not load; 503)")
    version: str
    database: str
    active_models: list[str]
    faults: dict[str, str] = Field(description="what is wrong, by what (images: the data folder, database, disk, "
                                               "plc, camera, backup, records, records_image, store_sweep, 'sink NAME', "
                                               "'sink NAME refused', 'alarm LINE/STATION', 'model PRODUCT/LINE vN'), "
                                               "empty when ok")
    sinks: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="per sink (e.g. mqtt:host:port): backlog (outbox rows not yet taken), state (ok, delivering, "
                    "retrying), oldest_pending_s, failing_for_s, last_error, delivered, refused, refused_recent, "
                    "last_refused. A message owed a minute or more is a 'sink NAME' fault (status degraded, 200): "
                    "results wait in the outbox and none is lost")
    alarms: Optional[dict[str, Any]] = Field(
        None, description="line alarms not yet acknowledged (null: the database did not answer): active, by_kind, "
                          "stations (LINE/STATION), past_escalation (unacknowledged past their escalation time: "
                          "an 'alarm LINE/STATION' fault, degraded, 200), oldest (line, station, kind, raised_at, "
                          "escalated, waiting_min); no part data")
    plc: Optional[dict[str, Any]] = Field(None, description="the PLC handshake by protocol (modbus, opcua): state, error code, counts; "
                                                            "an error also appears in faults")
    disk: Optional[dict[str, Any]] = Field(
        None, description="the data disk: free_gb, min_free_gb (under it the oldest parts' images are deleted, OK "
                          "parts' first; reviewed parts and the audit sample never), ok_image_days, images_deleted "
                          "(parts whose images went since the station started, by verdict), store_sweep (files no "
                          "part's record names, deleted daily: every_h, files_deleted, last)")
    records: Optional[dict[str, Any]] = Field(
        None, description="old parts' records deleted (serve --keep-records-days; null: every record kept): "
                          "keep_days, kept_since (parts before it are not all kept: reviewed parts, the audit "
                          "sample and test-part checks are), deleted_since_start (parts, files, signals), last")
    backup: Optional[dict[str, Any]] = Field(
        None, description="the station's own backups (serve --backup-to; null: none): to, every_h, last (the last "
                          "that worked: made_at, parts, files_copied, bytes_copied, verified, repaired, seconds), "
                          "verified_at (when every file of the backup was last read back; weekly), error (why the "
                          "last try failed; also a 'backup' fault)")
    watchers: list[dict[str, Any]] = Field(
        default_factory=list,
        description="each running hot-folder watcher (status file or --server heartbeat): watcher (LINE/STATION), "
                    "folder, via, updated, silent, waiting, oldest_wait_s, behind, station_taking_parts, set_aside, "
                    "set_aside_files, only_set_aside, given_up (since it started), given_up_files (newest), "
                    "given_up_last; a file given up is also a 'watcher L/S given up' fault for 10 minutes")
    last_part_at: Optional[str] = Field(
        None, description="when the newest part was recorded (UTC; null: none yet), by this process or another on "
                          "its database (a hot-folder watcher's, seen within 15 s); not a fault: a stop may be planned")
    last_part_age_s: Optional[float] = Field(None, description="seconds since last_part_at, by this station's clock")


class KeyCreated(BaseModel):
    id: int
    prefix: str = Field(description="how lists and the change log name the key")
    role: str
    name: Optional[str]
    key: str = Field(description="the key itself: shown this once, stored only hashed")


class KeyOut(BaseModel):
    id: int
    prefix: str
    role: str
    name: Optional[str]
    created_at: Optional[str]
    revoked: bool


class KeyList(BaseModel):
    items: list[KeyOut]


class KeyRevoked(BaseModel):
    id: int
    revoked: bool


class ResentOut(BaseModel):
    resent: int = Field(description="messages refused for good that are owed again (each before its line's next)")


_WHY = {400: "the request cannot be used as sent (e.g. an empty image)",
        401: "no API key, or an unknown or revoked one",
        403: "the key's role may not do this",
        404: "no such record, product or active model",
        409: "conflicts with what is recorded (the message says what differs)",
        413: "the upload or the image's pixel count is over the station's limit",
        415: "not an image format the station accepts",
        422: "a field is missing, malformed or out of range",
        503: "the station cannot do this now (storage fault, model not loadable); try again"}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The documented error answers of an endpoint (all with the :class:`ErrorOut` body)."""
    return {c: {"model": ErrorOut, "description": _WHY[c]} for c in codes}


async def refuse_odd_form_fields(request: Any) -> Any:
    """The request's multipart form (parsed already by the route's Form and File
    parameters); a field the route does not take, or a text field given twice, is refused
    (InvalidRequest, 422) as a JSON body's misspelt field is: "seriall" and "lto" were
    dropped and the part stored with no serial and no lot (a test part never known by its
    serial), and a second "line" silently won over the first. The fields taken are the
    route's own form parameters (their aliases), read from the route, not listed again."""
    from ..line.close_names import close_names, did_you_mean
    from ..line.errors import InvalidRequest
    form = await request.form()
    fields = tuple(f.alias for f in request.scope["route"].dependant.body_params)
    names = [k for k, _ in form.multi_items()]
    for name in dict.fromkeys(names):
        if name not in fields:
            close = close_names(name, list(fields))
            raise InvalidRequest(f"{name[:60]}: not a field of this form (a misspelt one is refused, not dropped"
                                 + (f"; {did_you_mean(close)}" if close else "")
                                 + f"); it takes {', '.join(fields)}")
        if names.count(name) > 1 and not hasattr(form.getlist(name)[0], "filename"):
            raise InvalidRequest(f"the form holds {names.count(name)} values of {name}: send one")
    return form


async def refuse_blank_form_fields(request: Request) -> None:
    """A dependency of a route taking a multipart form: a required text field sent blank
    (empty, or spaces only) is refused (InvalidRequest, 422) as blank, by its name and what to
    give. FastAPI reads an empty form value as a field not sent: ``curl -F part_id=" "`` (curl
    drops a value's leading spaces) was answered "part_id: Field required" for a field that was
    sent, and spaces alone "String should match pattern '\\S'". Run before the form's fields are
    checked (a route's dependencies come first), after the key's (listed after it)."""
    from ..line.errors import InvalidRequest
    form = await request.form()
    for field in request.scope["route"].dependant.body_params:
        info = field.field_info
        if not info.is_required() or field.alias not in form:
            continue       # left out: the field's own check says it is required
        if any(isinstance(v, str) and not v.strip() for v in form.getlist(field.alias)):
            give = f": give {info.description}" if info.description else ""
            raise InvalidRequest(f"{field.alias} is blank (sent empty or as spaces only){give}; it cannot be left "
                                 "blank, the station makes none up")
