"""Threshold tuning of a product's model: the scores behind it, and saving new thresholds."""
from __future__ import annotations

from typing import Any, Optional

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from ...line import tuning
from ...line.station import Station
from ..deps import DB_INT_MAX, Caller, get_station, known_query_only, reader, require
from ..schemas import NO_NUL, ModelVersionOut, RequestIn, errors

router = APIRouter(prefix="/api/v1/models", tags=["models"])
_TEXT = NO_NUL
_PRODUCT = Path(max_length=100, pattern=_TEXT)


class ThresholdIn(RequestIn):      # a misspelt field refused, not dropped
    model_config = ConfigDict(allow_inf_nan=False)     # RequestIn's extra="forbid" kept: pydantic merges them
    line: str = Field(default="", max_length=100, pattern=_TEXT)
    # strict: JSON's true was taken as version 1 (and "2" as 2): a version is a number
    version: int = Field(ge=1, le=DB_INT_MAX, strict=True,
                         description="the version whose model gets the new thresholds")
    threshold: float = Field(description="above it a part is NG")
    review_threshold: Optional[float] = Field(default=None, description="above it (and up to threshold) a part "
                                                                        "is REVIEW; null: no review band")
    note: Optional[str] = Field(default=None, max_length=2000)
    false_reject_rate: Optional[float] = Field(default=None, examples=[0.01], description=(
        "the false-reject target the threshold was set from (the tuning/target answer's false_reject_rate): the "
        "station works it out again on the same parts and, when it sets this threshold, the version carries its "
        "promise; a threshold it does not set is refused (422). Left out: a threshold set by hand, no promise"))
    parts_line: Optional[str] = Field(default=None, max_length=100, pattern=_TEXT, description=(
        "with false_reject_rate: the line whose parts the target was measured on (the tuning/target answer's "
        "parts_line); default: line"))
    expected_active: Optional[int] = Field(default=None, ge=0, le=DB_INT_MAX, strict=True, examples=[1], description=(
        "the version you saw active for the product/line (the tuning answer's active_version; 0: none); when "
        "another one is active by now (a retrain or upload activated it meanwhile) the station answers 409 "
        "active_changed and saves nothing: the new version would carry the model that was replaced"))


class TuningOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    product: str
    line: str = Field(description="the model's line; empty: one model for every line")
    parts_line: Optional[str] = Field(default=None, description="the line whose parts the scores are from; null: "
                                                                "every line's")
    version: int
    active_version: Optional[int] = Field(default=None, description="the version active for the product and this "
                                                                    "version's line; null: none. Send it back as "
                                                                    "expected_active when saving")
    not_active: Optional[str] = Field(default=None, description="why it matters that this version is not the active "
                                                                "one; null: it is")
    threshold: float
    review_threshold: Optional[float] = Field(description="null: no review band")
    photo_review: dict[str, list[int]] = Field(
        default_factory=dict, description="for good, defect and recent: the positions in good_scores, defect_scores "
                                          "and recent_scores of the parts the photo check sent to REVIEW (too dark, "
                                          "blurred...): REVIEW whatever their score, at any threshold")
    good_scores: list[float] = Field(description="parts reviewed good, newest first")
    defect_scores: list[float] = Field(description="parts reviewed defect, newest first")
    recent_scores: list[float] = Field(description="the latest parts, any verdict")
    expected: dict[str, Any] = Field(description="false rejects, escapes and review load at these thresholds, each "
                                                 "part counted by the verdict it gets: one the photo check sent to "
                                                 "REVIEW is in the review load whatever its score (photo_review "
                                                 "counts the recent ones)")
    promise: Optional[dict[str, Any]] = Field(
        default=None, description="recent parts judged NG (and, with a band, not OK) against what the calibration "
                                  "promised for good parts, with exact intervals; parts reviewed as defects are "
                                  "left out (reviewed_defects_left_out counts them), parts the photo check sent to "
                                  "REVIEW are not NG (photo_review counts them); promised_by: training, or the "
                                  "false-reject target the thresholds were saved from; null: thresholds set by hand")


class TargetOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    product: str
    line: str
    version: int
    false_reject_rate: float = Field(description="the target asked for: a share of good parts judged NG")
    threshold: float = Field(description="the NG threshold that holds the target on the parts measured")
    review_threshold: Optional[float] = Field(description="the version's review threshold where it lies below the "
                                                          "new threshold; null: no band")
    band_removed: Optional[str] = Field(default=None, description="said when the version has a review band and its "
                                                                  "review threshold is not below the new threshold: "
                                                                  "no band then, and what to do to keep one")
    measured_on: str = Field(description="which good parts: the random audit sample's, reviewed good or judged OK "
                                         "and not reviewed (parts reviewed good alone are mostly the model's false "
                                         "alarms)")
    good_parts: int = Field(description="how many good parts the target is measured on")
    above: int = Field(description="of them, how many score above the threshold")
    guaranteed_false_reject_rate: float = Field(description="on average, at most this share of good parts like "
                                                            "these is judged NG")
    false_reject_rate_upper_95: float = Field(description="this threshold's own false-reject rate is below it with "
                                                          "95% confidence")
    unreviewed_not_ok: int = Field(description="of good_parts, the audit-sample parts judged NG or REVIEW that nobody "
                                               "reviewed, counted as good so the target holds even if they are (a "
                                               "defect among them only raises the threshold)")
    unreviewed_not_ok_above: int = Field(description="of those, how many score above the threshold")
    escapes: dict[str, Any] = Field(description="reviewed defects the threshold would pass as OK, with an exact 95% "
                                                "interval (k, n, rate, lo, hi): only the defects someone found")


class TunedVersionOut(ModelVersionOut):
    model_config = ConfigDict(extra="allow")
    threshold: float
    review_threshold: Optional[float]
    tuned_version: int = Field(description="the version whose model got the new thresholds")
    active_version: Optional[int] = Field(description="the version active for the product/line when saved; null: "
                                                      "none")
    not_active: Optional[str] = Field(default=None, description="said when the version tuned is not the active "
                                                                "one (activating the new version may put an older "
                                                                "model back); null: it is the active one")
    warning: Optional[str] = Field(default=None, description="said when the new version does not pass most of the "
                                                             "product's latest good parts: its activation will be "
                                                             "refused (rejects_good_parts) unless forced")


@router.get("/{product}/tuning", summary="Scores of reviewed good, reviewed defect and recent parts judged by a "
                                        "version's model, with its thresholds", response_model=TuningOut,
            responses=errors(401, 403, 404, 422))
def get_tuning(product: str = _PRODUCT, line: str = Query("", max_length=100, pattern=_TEXT),
               version: Optional[int] = Query(None, ge=1, le=DB_INT_MAX,
                                              description="default: the version active on the line"),
               station: Station = Depends(get_station), _r: Any = Depends(reader),
               _known: None = Depends(known_query_only)) -> dict[str, Any]:
    out = tuning.tuning_data(station, product, line, version)
    out["expected"] = tuning.expected_rates(out["good_scores"], out["defect_scores"], out["recent_scores"],
                                            out["threshold"], out["review_threshold"], out["photo_review"])
    return out


@router.get("/{product}/tuning/target", summary="The NG threshold that holds a target false-reject rate on the "
                                               "good parts of the audit sample", response_model=TargetOut,
            responses=errors(401, 403, 404, 422))
def get_threshold_for_target(product: str = _PRODUCT,
                             false_reject_rate: float = Query(description="the target: a share of good parts "
                                                                          "judged NG (0.005 for 0.5%)"),
                             line: str = Query("", max_length=100, pattern=_TEXT),
                             version: Optional[int] = Query(None, ge=1, le=DB_INT_MAX,
                                                            description="default: the version active on the line"),
                             station: Station = Depends(get_station), _r: Any = Depends(reader),
                             _known: None = Depends(known_query_only)) -> dict[str, Any]:
    # nothing is saved: the page moves its slider there, the engineer saves as for any threshold
    return tuning.threshold_for_target(station, product, line, version, false_reject_rate)


@router.post("/{product}/threshold", status_code=201,
             summary="Save new thresholds as a new (inactive) version of the same model",
             response_model=TunedVersionOut, responses=errors(401, 403, 404, 409, 422, 503))
def save_threshold(body: ThresholdIn, product: str = _PRODUCT, station: Station = Depends(get_station),
                   caller: Caller = Depends(require("engineer"))) -> dict[str, Any]:
    from .models import model_to_dict
    # every bound on the thresholds (above 0, within MAX_RAISE of the calibrated one) is
    # line.tuning's, so a verb or script saving thresholds is held to the same ones
    mv = tuning.save_thresholds(station, product, body.line, body.version, body.threshold, body.review_threshold,
                                body.note, caller.who, expected_active=body.expected_active,
                                false_reject_rate=body.false_reject_rate, parts_line=body.parts_line)
    d = model_to_dict(mv)
    src = station.models.get(product, mv.line, body.version)
    active = tuning.active_version(station, product, mv.line)
    d.update(tuned_version=src.version, active_version=active.version if active is not None else None,
             not_active=tuning.not_active_warning(station, src, active),
             warning=tuning.rejects_good_parts_warning(station, mv))
    # the lifecycle branch adds these to every version; until then the answer carries them
    d.setdefault("threshold", body.threshold)
    d.setdefault("review_threshold", body.review_threshold)
    return d
