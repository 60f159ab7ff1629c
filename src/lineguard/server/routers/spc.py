"""SPC of the line: the defect-rate p-chart, score drift, reviewed rates (JSON or CSV)."""
from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from typing import Any, Literal, Optional

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from ...line import spc, tuning
from ...line.errors import InvalidRequest
from ...line.part_records import BOM
from ...line.record_keeper import kept_since
from ...line.shifts import parse_shift_starts, plant_instant, plant_zone, shift_instant
from ...line.spc_data import (Filters, Periods, as_typed, audit_ok_counts, baseline_scores, defect_subgroups,
                              parts_without_lot, defect_type_counts, kept_filters, known_names, known_station,
                              region_centres, rejected_never_judged,
                              resolve_window, review_counts, score_subgroups, verdict_counts)
from ...line.spreadsheet_cells import spreadsheet_safe
from ...line.station import Station, _iso
from ..deps import get_station, known_query_only, reader
from ..schemas import NO_NUL, errors

router = APIRouter(prefix="/api/v1/spc", tags=["spc"])

By = Literal["hour", "shift", "day", "lot"]
Format = Literal["json", "csv"]
# since/until are taken as text and read by plant_time: FastAPI reads a day alone as 00:00
# UTC, hours off the day the plant counts (its shifts, SPC days, plant_time column)
_DAY_IS_PLANTS = "the plant's time zone: GET /api/v1/session's timezone"
SINCE_HELP = ("inclusive: a day, 2026-12-01, from its 00:00 plant time (" + _DAY_IS_PLANTS + "), or an ISO time, "
              "2026-12-01T06:00:00Z or 2026-12-01T06:00+01:00 (without an offset: UTC)")
UNTIL_HELP = ("exclusive: an ISO time as for since, or a day, 2026-12-01, which holds all of that day in plant "
              "time (up to the next day's 00:00)")
TIME_TEXT = 64           # characters: any ISO time fits
_SINCE = Query(None, max_length=TIME_TEXT, description=SINCE_HELP + " (default: a window that fits `by`: 48 hours "
               "by hour, 7 days by shift, 30 whole plant days ending with until's day by day or lot and for one window)")
_UNTIL = Query(None, max_length=TIME_TEXT, description=UNTIL_HELP + " (default: now)")


def plant_time(station: Station, text: Optional[str], name: str, end: bool = False) -> Optional[dt.datetime]:
    """A since/until (``end``: an until) as typed, as the naive-UTC instant the records are
    compared with (:func:`~lineguard.line.shifts.plant_instant`: a day alone is the plant's
    day); None or blank: no edge. A value it cannot read is a 422 saying what to write."""
    if text is None or not text.strip():
        return None
    zone = plant_zone(station.config.timezone)     # the station's own: checked at start-up
    try:
        # knowing what was typed: a refusal says the day typed, not the UTC instant it became
        return as_typed(plant_instant(text, zone, end=end, name=name), text)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None


# taken as text, as since/until are: FastAPI read a day alone as its 00:00 UTC, in the
# plant's night shift of the day before (Berlin) or its afternoon (Chicago)
AT_HELP = ("a time within the shift: an ISO time, 2026-12-01T10:00:00Z or 2026-12-01T11:00+01:00 (without an "
           "offset: UTC), a day, 2026-12-01: the plant's day (in its time zone: GET /api/v1/session's "
           "timezone), whose first shift is meant, or now: the running shift by the station's clock")


def shift_time(station: Station, text: Optional[str], name: str = "at") -> Optional[dt.datetime]:
    """An ``at`` as typed, as the naive-UTC instant whose shift is meant
    (:func:`~lineguard.line.shifts.shift_instant`: a day alone is the plant's day's first
    shift); None or blank: none given. A value it cannot read is a 422 saying what to write."""
    if text is None or not text.strip():
        return None
    if text.strip().lower() == "now":
        # the running shift by the station's clock: a tablet's clock a few minutes behind asked
        # for the shift before at a shift change, and showed it as if it were the running one
        return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    try:
        # the station's own starts and zone: checked at start-up
        return shift_instant(text, parse_shift_starts(station.config.shift_starts),
                             plant_zone(station.config.timezone), name=name)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None


_TEXT = NO_NUL
_LINE = Query(None, max_length=100, pattern=_TEXT, description="a line; empty or left out: every line")
_STATION = Query(None, alias="station", max_length=100, pattern=_TEXT)
_PRODUCT = Query(None, max_length=100, pattern=_TEXT)


# -- answers (FastAPI checks every JSON answer against these; /openapi.json shows them) ----

class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class ChartPointOut(_Out):
    label: str = Field(description="the hour, shift or day in plant time, or the lot")
    start: Optional[str] = Field(description="start of the period (lot: its first part), ISO UTC")
    n: int = Field(description="parts judged")
    ng: int = Field(description="parts judged NG (NG verdicts: a false reject counts, a defect passed OK does not)")
    defects: int = Field(description="the same as ng, kept for clients that read it: NG verdicts, not reviewed "
                                     "defects (the Pareto's)")
    p: float
    ucl: float
    lcl: float
    z: Optional[float] = Field(description="(p - centre) / sigma of this subgroup")
    rules: list[int] = Field(description="Nelson rules this point completes")


class AlarmOut(_Out):
    index: int
    label: str
    rule: int
    text: str


class PChartOut(_Out):
    by: str
    since: Optional[str]
    until: Optional[str]
    centre: float = Field(description="the NG share the limits are set from: the baseline's (see baseline)")
    parts: int = Field(description="parts judged in the window drawn")
    ng: int = Field(description="of them, judged NG (NG verdicts: a false reject counts, a defect passed OK does "
                                "not)")
    defects: int = Field(description="the same as ng, kept for clients that read it: NG verdicts, not reviewed "
                                     "defects (the Pareto's are those)")
    baseline: dict[str, Any] = Field(description="where the centre comes from: `from` is \"window\" (the window "
                                                 "drawn, its own points included) or \"baseline_since/until\" "
                                                 "(a reference window given), with its since, until, parts and ng")
    points: list[ChartPointOut]
    alarms: list[AlarmOut]
    without_lot: Optional[int] = Field(None, description="by lot: the parts in the window sent with no lot, "
                                                         "left out of the chart (null for the other subgroups)")


class ScorePointOut(_Out):
    label: str
    start: Optional[str]
    n: int
    mean: Optional[float]
    median: Optional[float]
    p95: Optional[float]
    shift: Optional[float] = Field(description="P(a part here scores above a baseline part) - 0.5; "
                                               "null for baseline and too-small subgroups")
    z: Optional[float]
    drift: bool


class DriftOut(_Out):
    alarm: bool
    index: Optional[int]
    label: Optional[str]
    text: str


class ScoresOut(_Out):
    by: str
    points: list[ScorePointOut]
    baseline: dict[str, Any]
    drift: DriftOut


class RateOut(_Out):
    rate: Optional[float] = Field(description="k / n; null when n is 0")
    lo: float
    hi: float
    k: int
    n: int


class ParetoBarOut(_Out):
    defect_type: str = Field(description="the reviewer's defect type; '(no type given)' for none")
    parts: int = Field(description="parts whose latest review says this defect")
    caught: int = Field(description="of them, judged NG by the model")
    at_review: int = Field(description="judged REVIEW (a person caught them)")
    escaped: int = Field(description="judged OK: the model passed them")
    share: float
    cumulative: float


class ParetoOut(_Out):
    since: str
    until: str
    defects: int = Field(description="reviewed defects in the window")
    not_reviewed: int = Field(description="NG and REVIEW parts not reviewed yet: their types are unknown")
    bars: list[ParetoBarOut]


class DefectMapOut(_Out):
    since: str
    until: str
    which: str = Field(description="ng: regions of parts judged NG; defects: of parts reviewed as defects")
    parts: int = Field(description="parts read (the newest 20 000 at most)")
    parts_with_regions: int
    regions: int
    columns: int
    rows: int
    aspect: Optional[float] = Field(description="the photos' median width / height (the grid's shape)")
    counts: list[list[int]] = Field(description="regions whose centre falls in each cell, rows top to bottom")
    backdrop: Optional[int] = Field(description="id of a recent part whose photo is kept, to draw the map on")


class AuditSampleOut(_Out):
    ok_parts: int = Field(description="parts of the random audit sample judged OK")
    reviewed: int = Field(description="of them, reviewed good or defect")


class GoodScrappedOut(_Out):
    rate: Optional[float] = Field(description="k / n: the share of good parts judged NG; null when no NG part "
                                              "was reviewed yet (or no part was made)")
    lo: Optional[float] = Field(description="exact interval, only when every NG part was reviewed; else null")
    hi: Optional[float]
    k: Optional[int | float] = Field(description="good parts judged NG: NG parts reviewed good, or when some NG parts "
                                           "are not reviewed (estimate) that good share x all NG parts")
    n: Optional[int | float] = Field(description="good parts made: every part less the confirmed defects (estimate: "
                                           "less the NG parts taken as defects too)")
    estimate: bool = Field(description="true when NG parts were left unreviewed: k and n are estimates")
    ng_parts: int
    ng_reviewed: int
    ng_reviewed_good: int
    ng_not_reviewed: int
    good_parts_passed: int = Field(description="parts judged OK or REVIEW less those reviewed as defects and "
                                               "those the PLC had rejected before their verdict came")
    rejected_late_good: int = Field(0, description="in k: parts judged OK or REVIEW after their inspection window, "
                                                   "which the PLC had already rejected without a verdict (less "
                                                   "those reviewed as defects): good parts scrapped")
    rejected_never_judged: int = Field(0, description="parts the PLC rejected without a verdict that were never "
                                                      "judged (no record): left out of k and n, goodness unknown")
    rate_if_never_judged_good: Optional[float] = Field(None, description="the share were every never-judged "
                                                                         "reject good; null when there are none")
    text: str = Field(description="exact or an estimate, and why, in words")
    counted_since: Optional[str] = Field(None, description="the start it counts from: the window's, or the "
                                                           "oldest records kept when the window starts before")


class EscapeAuditOut(RateOut):
    upper_bound: float = Field(description="one-sided exact upper bound at the confidence: \"at most this share "
                                           "of passed parts defective\"")
    target: float = Field(description="the bound a customer claim states: 0.001 (1000 ppm)")
    needed: int = Field(description="audited OK parts reviewed that state the target with the defects found so "
                                    "far and no more (none: ln(1 - confidence) / ln(1 - target), 2995 at 95 %)")
    more_needed: int
    waiting: int = Field(description="OK parts of the audit sample in the window not reviewed yet")
    audit_sample_rate: Optional[float] = Field(description="the station's share of parts drawn for the audit")
    parts_to_make: Optional[int] = Field(description="about how many more parts the line must make to draw the "
                                                     "rest at that rate; null when it draws none")
    setting: str = Field(description="where the audit rate is set")


class ReviewRatesOut(_Out):
    good_scrapped: GoodScrappedOut = Field(description="the share of good parts judged NG (the false-reject "
                                                       "rate of training's --frr and the Tuning page)")
    false_reject: RateOut = Field(description="rejected parts reviewed good: NG parts reviewed good / NG parts "
                                              "reviewed (not the share of good parts scrapped)")
    escape: RateOut = Field(description="over every OK part reviewed, those picked by hand included")
    escape_audit: EscapeAuditOut = Field(description="defective share of passed parts (audit sample): over the "
                                                     "random audit sample's OK parts reviewed, the unbiased "
                                                     "estimate, and the audited parts a claim of 1000 ppm needs")
    audit_sample: AuditSampleOut
    confidence: float


def _documented(model: type, *codes: int) -> dict[int | str, dict[str, Any]]:
    return {200: {"model": model, "content": {"text/csv": {}},
                  "description": "JSON, or with format=csv the numbers behind the chart"}, **errors(*codes)}


def _csv(name: str, header: list[str], rows: list[list[Any]]) -> Response:
    buf = io.StringIO()
    buf.write(BOM)      # as the parts export: a spreadsheet reads the file as UTF-8
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(header)
    w.writerows([spreadsheet_safe(v) for v in r] for r in rows)     # a lot named "=..." is shown, not run
    return Response(buf.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


def _stamp(t: dt.datetime) -> str:
    return t.strftime("%Y%m%dT%H%MZ")


@dataclass(frozen=True)
class Scope:
    """Which parts a chart is about: line, station, product and a time window (each SPC
    endpoint's shared query parameters; a blank one is no filter)."""
    line: Optional[str]
    station: Optional[str]
    product: Optional[str]
    since: Optional[dt.datetime]
    until: Optional[dt.datetime]
    # parts recorded before this are not all kept (line.record_keeper): the few kept,
    # mostly reviewed ones, are no sample of the line, so no chart of the line's parts
    # reads before it (those of reviewed parts do: every reviewed part is kept)
    kept_since: Optional[dt.datetime] = None
    # the plant's: a default window of days is of whole plant days (spc_data.resolve_window)
    zone: Optional[dt.tzinfo] = None

    def window(self, by: str = "lot", all_parts: bool = True) -> tuple[Filters, dt.datetime, dt.datetime]:
        """The filters over the window (its default fits ``by``; "lot": a window of any
        length, 30 whole plant days), starting at the records kept when the chart counts
        ``all_parts``."""
        t0, t1 = resolve_window(by, self.since, self.until, zone=self.zone)
        f = self.over(t0, t1, all_parts)
        return f, f.since, t1

    def over(self, t0: dt.datetime, t1: dt.datetime, all_parts: bool = True) -> Filters:
        return kept_filters(t0, t1, self.kept_since, all_parts, line=self.line, station=self.station,
                            product=self.product)


def _on_plant_clock(t: dt.datetime, zone: Optional[dt.tzinfo]) -> Optional[dt.datetime]:
    """A naive-UTC instant on the plant's clock; None where no zone is set or at the
    calendar's very edge (said in UTC then)."""
    if zone is None:
        return None
    try:
        return t.replace(tzinfo=dt.timezone.utc).astimezone(zone)
    except (OverflowError, ValueError):
        return None


def _plant_span(t0: dt.datetime, t1: dt.datetime, zone: Optional[dt.tzinfo]) -> str:
    """[t0, t1) on the plant's clocks as a refusal says it: its days, the last one included
    ("2026-08-01 to 2026-08-31"), when both edges fall at the plant's 00:00, else its
    times with the zone. A baseline of August in Berlin was said as "2026-07-31T22:00:00Z
    to 2026-08-31T22:00:00Z", where the other refusals say the days typed."""
    a, b = _on_plant_clock(t0, zone), _on_plant_clock(t1, zone)
    if a is None or b is None:
        return f"{_iso(t0)} to {_iso(t1)}"
    if a.time() == b.time() == dt.time(0):
        return f"{a.date().isoformat()} to {(b - dt.timedelta(days=1)).date().isoformat()}"
    return f"{a:%Y-%m-%d %H:%M} to {b:%Y-%m-%d %H:%M} ({getattr(zone, 'key', str(zone))})"


def _plant_instant(t: dt.datetime, zone: Optional[dt.tzinfo]) -> str:
    """A naive-UTC instant on the plant's clock, its zone said ("2026-11-23 00:00
    Europe/Berlin"; ISO UTC where no zone is set or at the calendar's edge)."""
    a = _on_plant_clock(t, zone)
    return _iso(t) if a is None else f"{a:%Y-%m-%d %H:%M} {getattr(zone, 'key', str(zone))}"


def _baseline_window(station: Station, where: Scope, since: Optional[str], until: Optional[str],
                     otherwise: str) -> Optional[tuple[dt.datetime, dt.datetime, Filters]]:
    """A reference window's (start, end, filters over the records kept) from
    baseline_since/baseline_until as the p-chart and the scores take them (plant time: a
    day alone is the plant's day), None when neither is given; both or neither, else a
    refusal ending in what ``otherwise`` happens."""
    b_since = plant_time(station, since, "baseline_since")
    b_until = plant_time(station, until, "baseline_until", end=True)
    if b_since is None and b_until is None:
        return None
    if b_since is None or b_until is None:
        raise InvalidRequest(f"give both baseline_since and baseline_until, or neither ({otherwise})")
    b0, b1 = resolve_window("lot", b_since, b_until)
    return b0, b1, where.over(b0, b1)


def scope(_r: Any = Depends(reader),     # first: a caller is let in before the database is read
          line: Optional[str] = _LINE, station_name: Optional[str] = _STATION, product: Optional[str] = _PRODUCT,
          since: Optional[str] = _SINCE, until: Optional[str] = _UNTIL,
          station: Station = Depends(get_station)) -> Scope:
    # a line or product typed in another case finds its parts, as in the gallery; a misspelt
    # one is a 404 naming the close ones (it answered 0 parts, read as a line that made nothing)
    named_line, named_product = known_names(station.db, line or None, product or None)
    # the station likewise: "s1" is S1 (and said so), "S9" a 404 naming the stations
    named_station = known_station(station.db, station_name or None, named_line)
    # the cutoff of the last deletion of old records, by whichever process on the database
    return Scope(named_line, named_station, named_product, plant_time(station, since, "since"),
                 plant_time(station, until, "until", end=True), kept_since(station.db),
                 plant_zone(station.config.timezone))


def _periods(station: Station, by: str) -> Optional[Periods]:
    return None if by == "lot" else Periods(by, station.config.shift_starts, station.config.timezone)


@router.get("/p-chart", summary="Defect rate (share of parts judged NG) per subgroup, with control limits "
                                "and Nelson rule alarms", response_model=PChartOut,
            responses=_documented(PChartOut, 401, 403, 404, 422))
def p_chart(where: Scope = Depends(scope),
            # after the scope, which signs the caller in first: ?lnie=L1 charted every line
            _known: None = Depends(known_query_only), by: By = "hour", format: Format = "json",
            baseline_since: Optional[str] = Query(None, max_length=TIME_TEXT, description="with baseline_until: a "
                                                  "reference window (e.g. a good month) whose NG share is the "
                                                  "centre line, instead of the window drawn, which holds any "
                                                  "excursion it shows; it must hold at least "
                                                  f"{spc.MIN_REFERENCE_PARTS} parts judged (fewer: 422); "
                                                  + SINCE_HELP),
            baseline_until: Optional[str] = Query(None, max_length=TIME_TEXT, description=UNTIL_HELP),
            station: Station = Depends(get_station), _r: Any = Depends(reader)) -> Any:
    window = _baseline_window(station, where, baseline_since, baseline_until,
                              "then the centre line is the NG share of the window drawn")
    f, t0, t1 = where.window(by)
    periods = _periods(station, by)
    groups = defect_subgroups(station.db, f, by, periods)
    centre = None
    if window is not None:
        b0, b1, bf = window
        # counted in the chart's own subgroups: by lot, of the parts sent with a lot, as drawn
        reference = defect_subgroups(station.db, bf, by, periods)
        b_parts, b_ng = sum(g.n for g in reference), sum(g.defects for g in reference)
        # the record keeper deleted the parts before kept_since that no one reviewed: a baseline
        # reaching before it is counted from what is kept, and a refusal says so (in plant time)
        cut = where.kept_since is not None and b0 < where.kept_since
        kept = _plant_instant(where.kept_since, where.zone) if cut else ""
        deleted = (f"; it starts before the oldest records kept ({kept}: the record keeper deleted the parts before "
                   "it that no one reviewed), so only what is kept of it counts") if cut else ""
        if not b_parts and cut:
            raise InvalidRequest(f"the baseline window ({_plant_span(b0, b1, where.zone)}) starts before the oldest "
                                 f"records kept ({kept}: the record keeper deleted the parts before it that no one "
                                 f"reviewed), and what is kept of it holds no part judged: choose a baseline after "
                                 f"{kept}")
        span = _plant_span(bf.since, b1, where.zone)     # the plant's days, as the other refusals say them
        if not b_parts:
            raise InvalidRequest(f"the baseline window ({span}) holds no part judged"
                                 + (" with a lot" if by == "lot" else "") + ": no centre line can be set from it; "
                                 "choose a window when the line ran")
        if b_parts < spc.MIN_REFERENCE_PARTS:
            # refused, not drawn with a warning: every limit and rule of the chart comes from
            # this centre, so a chart centred on a handful of parts has nothing right to show
            raise InvalidRequest(f"the baseline window ({span}) holds {b_parts} part(s) judged"
                                 + (" with a lot" if by == "lot" else "") + f" ({b_ng} NG){deleted}: a centre line "
                                 f"needs at least {spc.MIN_REFERENCE_PARTS} (from {b_parts} it would be "
                                 f"{spc.reference_centre(b_ng, b_parts):.1%}, that handful's luck); "
                                 + (f"choose a baseline after {kept} that holds that many" if cut else
                                    "choose a longer baseline window")
                                 + ", or leave baseline_since/baseline_until out to centre on the window drawn",
                                 baseline_parts=b_parts, parts_needed=spc.MIN_REFERENCE_PARTS)
        centre = spc.reference_centre(b_ng, b_parts)
        baseline = {"from": "baseline_since/until", "since": _iso(bf.since), "until": _iso(b1), "parts": b_parts,
                    "ng": b_ng}
    chart = spc.p_chart(groups, centre=centre)
    if centre is None:
        baseline = {"from": "window", "since": _iso(t0), "until": _iso(t1), "parts": sum(p.n for p in chart.points),
                    "ng": sum(p.defects for p in chart.points)}
    if format == "csv":
        # "ng" at the end, beside "defects" (the same count, its older name): a sheet that
        # reads the columns by position finds the others where they were
        return _csv(f"lineguard-p-chart-{by}-{_stamp(t0)}-{_stamp(t1)}",
                    ["label", "start", "n", "defects", "p", "ucl", "lcl", "centre", "z", "rules", "ng"],
                    [[p.label, _iso(p.start), p.n, p.defects, p.p, p.ucl, p.lcl, chart.centre,
                      _num(p.z), " ".join(map(str, p.rules)), p.defects] for p in chart.points])
    ng = sum(p.defects for p in chart.points)
    # "ng": NG verdicts (a false reject counts); "defects", the same, is kept for the clients
    # that read it, though the Pareto's "defects" are reviewed defects
    return {"by": by, "since": _iso(t0), "until": _iso(t1), "centre": chart.centre, "baseline": baseline,
            "parts": sum(p.n for p in chart.points), "ng": ng, "defects": ng,
            "rules": {str(k): v for k, v in spc.RULES.items()},
            "points": [{"label": p.label, "start": _iso(p.start), "n": p.n, "ng": p.defects, "defects": p.defects,
                        "p": p.p, "ucl": p.ucl, "lcl": p.lcl, "z": _num(p.z), "rules": p.rules} for p in chart.points],
            "alarms": [{"index": h.index, "label": chart.points[h.index].label, "rule": h.rule, "text": h.text}
                       for h in chart.alarms],
            "without_lot": parts_without_lot(station.db, f) if by == "lot" else None}


def _num(x: Optional[float]) -> Optional[float]:
    # JSON has no infinity: a first defect on a chart whose centre is 0 is "off the chart"
    if x is None:
        return None
    return x if abs(x) != float("inf") else (1e9 if x > 0 else -1e9)


@router.get("/scores", summary="Distribution of part scores per subgroup, and a drift alarm when it moves "
                               "away from the baseline (camera moved, light changed)", response_model=ScoresOut,
            responses=_documented(ScoresOut, 401, 403, 404, 422))
def scores(where: Scope = Depends(scope), _known: None = Depends(known_query_only), by: By = "hour",
           format: Format = "json",
           baseline_subgroups: int = Query(5, ge=1, le=500,
                                           description="the first this many subgroups are the baseline"),
           baseline_since: Optional[str] = Query(None, max_length=TIME_TEXT, description="with baseline_until: a "
                                                  "reference window (e.g. a good week) instead of the first "
                                                  "subgroups; " + SINCE_HELP),
           baseline_until: Optional[str] = Query(None, max_length=TIME_TEXT, description=UNTIL_HELP),
           station: Station = Depends(get_station), _r: Any = Depends(reader)) -> Any:
    window = _baseline_window(station, where, baseline_since, baseline_until,
                              "then the first baseline_subgroups subgroups are the baseline")
    f, t0, t1 = where.window(by)
    # a version with tuned thresholds scores as the model it was tuned from: one model here
    groups, models = score_subgroups(station.db, f, by, _periods(station, by),
                                     lambda ids: tuning.score_sources(station, ids))
    baseline = None
    if window is not None:
        _, b1, bf = window
        b0 = bf.since
        baseline = baseline_scores(station.db, bf)
    drift = spc.score_drift(groups, baseline_groups=baseline_subgroups, baseline=baseline)
    if baseline is not None:
        drift.baseline.update({"since": _iso(b0), "until": _iso(b1)})
    text = drift.text
    if len(models) > 1:
        text += (f" (note: {len(models)} different models judged these parts; their scores are not comparable, "
                 "filter by product and a window with one model)")
    if format == "csv":
        return _csv(f"lineguard-scores-{by}-{_stamp(t0)}-{_stamp(t1)}",
                    ["label", "start", "n", "mean", "median", "p95", "shift", "z", "drift"],
                    [[p.label, _iso(p.start), p.n, p.mean, p.median, p.p95, p.shift, p.z, int(p.drift)]
                     for p in drift.points])
    return {"by": by, "since": _iso(t0), "until": _iso(t1), "models": models,
            "points": [{"label": p.label, "start": _iso(p.start), "n": p.n, "mean": p.mean, "median": p.median,
                        "p95": p.p95, "shift": p.shift, "z": p.z, "drift": p.drift} for p in drift.points],
            "baseline": drift.baseline,
            "drift": {"alarm": drift.alarm, "index": drift.index, "label": drift.label, "text": text,
                      "min_shift": spc.DRIFT_MIN_SHIFT, "z_limit": spc.DRIFT_Z}}


@router.get("/review-rates", summary="Share of good parts scrapped, rejected parts reviewed good, and "
                                     "defective share of passed parts, with exact 95% intervals",
            response_model=ReviewRatesOut,
            responses=_documented(ReviewRatesOut, 401, 403, 404, 422))
def review_rates(where: Scope = Depends(scope), _known: None = Depends(known_query_only), format: Format = "json",
                 station: Station = Depends(get_station), _r: Any = Depends(reader)) -> Any:
    f, t0, t1 = where.window(all_parts=False)   # a window of any length, no subgroups; reviewed parts stay
    # the share of good parts scrapped counts every part: only where all records are kept
    # (older, the unreviewed parts are gone and the share would be overstated)
    kept = where.over(t0, t1)
    out = spc.review_rates(review_counts(station.db, f), audit=audit_ok_counts(station.db, f),
                           parts=verdict_counts(station.db, kept),
                           audit_rate=float(station.config.audit_sample_rate or 0.0),
                           never_judged=rejected_never_judged(station.db, kept))
    out["good_scrapped"]["counted_since"] = _iso(kept.since)
    if format == "csv":
        ea = out["escape_audit"]
        # the audit's claim in columns of its own, named (a row that put "parts needed" under
        # n and the target under rate was misread in a spreadsheet): the one-sided bound now,
        # the audited OK parts a bound of the target (1000 ppm) needs, how many more
        return _csv(f"lineguard-review-rates-{_stamp(t0)}-{_stamp(t1)}",
                    ["measure", "k", "n", "rate", "lo", "hi", "upper_bound", "target", "needed", "more_needed"],
                    [[m, out[m]["k"], out[m]["n"], out[m]["rate"], out[m]["lo"], out[m]["hi"], None, None, None, None]
                     for m in ("good_scrapped", "false_reject", "escape")]
                    + [["escape_audit", ea["k"], ea["n"], ea["rate"], ea["lo"], ea["hi"], ea["upper_bound"],
                        ea["target"], ea["needed"], ea["more_needed"]]])
    return {"since": _iso(t0), "until": _iso(t1), **out,
            "definitions": {"good_scrapped": "good parts judged NG / good parts made (every part less the confirmed "
                                             "defects); with NG parts left unreviewed, an estimate: NG parts "
                                             "reviewed good / NG parts reviewed x all NG parts. k also counts the "
                                             "parts judged OK or REVIEW after their window, which the PLC had "
                                             "rejected without a verdict; parts it rejected that were never judged "
                                             "are in neither k nor n (rejected_never_judged)",
                            "false_reject": "rejected parts reviewed good: NG parts reviewers called good / NG parts "
                                            "reviewed (not the share of good parts scrapped)",
                            "escape": "OK parts reviewers called defect / OK parts reviewed",
                            "escape_audit": "defective share of passed parts (audit sample): OK parts of the random "
                                            "audit sample reviewers called defect / those reviewed"}}


@router.get("/pareto", summary="Reviewed defects by type, biggest first (Pareto), and how the model judged "
                               "each type", response_model=ParetoOut,
            responses=_documented(ParetoOut, 401, 403, 404, 422))
def pareto(where: Scope = Depends(scope), _known: None = Depends(known_query_only), format: Format = "json",
           station: Station = Depends(get_station), _r: Any = Depends(reader)) -> Any:
    # 30 days unless told: one set of bars, no subgroups; reviewed parts stay (those
    # waiting for review before the records kept are gone, so not counted)
    f, t0, t1 = where.window(all_parts=False)
    counts, waiting = defect_type_counts(station.db, f)
    bars = spc.pareto(counts)
    if format == "csv":
        return _csv(f"lineguard-pareto-{_stamp(t0)}-{_stamp(t1)}",
                    ["defect_type", "parts", "caught", "at_review", "escaped", "share", "cumulative"],
                    [[b.defect_type, b.parts, b.caught, b.at_review, b.escaped, b.share, b.cumulative]
                     for b in bars])
    return {"since": _iso(t0), "until": _iso(t1), "defects": sum(b.parts for b in bars), "not_reviewed": waiting,
            "bars": [vars(b) for b in bars]}


@router.get("/defect-map", summary="Where on the part the defect regions are: counts per cell of a grid "
                                   "over the photo", response_model=DefectMapOut,
            responses=_documented(DefectMapOut, 401, 403, 404, 422))
def defect_map(where: Scope = Depends(scope), _known: None = Depends(known_query_only),
               which: Literal["ng", "defects"] = Query("ng", description="ng: parts judged NG; defects: parts "
                                                       "reviewed as defects (escapes included)"),
               columns: int = Query(24, ge=2, le=200, description="cells across the part"),
               format: Format = "json", station: Station = Depends(get_station), _r: Any = Depends(reader)) -> Any:
    f, t0, t1 = where.window(all_parts=which == "ng")     # the reviewed defects stay
    found = region_centres(station.db, f, which)
    rows = max(2, min(200, round(columns / found.aspect))) if found.aspect else columns
    counts = spc.defect_map(found.centres, columns, rows)
    if format == "csv":
        return _csv(f"lineguard-defect-map-{which}-{_stamp(t0)}-{_stamp(t1)}", ["row", "column", "regions"],
                    [[r, c, int(counts[r, c])] for r in range(rows) for c in range(columns) if counts[r, c]])
    return {"since": _iso(t0), "until": _iso(t1), "which": which, "parts": found.parts,
            "parts_with_regions": found.parts_with_regions, "regions": int(counts.sum()), "columns": columns,
            "rows": rows, "aspect": found.aspect, "counts": counts.tolist(), "backdrop": found.backdrop}
