"""Reports a plant hands around: the shift handover report, the period's (month's) report."""
from __future__ import annotations

import datetime as dt
import socket
from typing import Any, Literal, Optional

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response
from pydantic import Field

from ... import __version__
from ...line import handover, issued_reports, period_report, tuning
from ...line.errors import InvalidRequest
from ...line.shifts import Shift, parse_shift_starts, plant_zone, shift_as_signed, shift_of
from ...line.record_keeper import kept_since
from ...line.shift_report import shift_report
from ...line.spc_data import known_names, known_station
from ...line.orm import iso_utc
from ...line.station import Station
from ..deps import DB_INT_MAX, Caller, get_station, known_query_only, reader, require
from ..text_rules import NO_NUL
from ..schemas import RequestIn, errors
from .spc import _LINE, _PRODUCT, _STATION, AT_HELP, SINCE_HELP, TIME_TEXT, UNTIL_HELP, Scope, plant_time, shift_time

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])

@router.get("/shift", summary="One shift's parts, verdicts, control, reviews, defect types and models "
                              "(the handover report)", responses=errors(401, 403, 404, 422))
def shift(line: Optional[str] = _LINE, product: Optional[str] = _PRODUCT,
          at: Optional[str] = Query(None, max_length=TIME_TEXT, description=AT_HELP + " (default: the last shift "
                                                                             "that has ended)"),
          station: Station = Depends(get_station), _r: Any = Depends(reader),
          _known: None = Depends(known_query_only)) -> dict[str, Any]:
    at_utc = shift_time(station, at)
    _refuse_not_started(station, at_utc, "its report")
    report = _shift_made_now(station, line, product, at_utc)
    # the signatures of this very shift and scope: what was handed over may differ from this
    out = {**report, "signed": issued_reports.issued_for(station.db, report, "shift")}
    if not report["line"]:
        # the every-line report: the signatures of each line's report of the shift, said apart
        # (the page read "Not signed yet" beside them)
        lines = sorted({r["line"] for r in report["stations"]} | {n["line"] for n in report["notes_of_lines"]})
        out["signed_for_lines"] = [{**x, "line": ln} for ln in lines
                                   for x in issued_reports.issued_for(station.db, {**report, "line": ln}, "shift")]
    return out


def _refuse_not_started(station: Station, at: Optional[dt.datetime], what: str) -> None:
    """A shift no one has worked yet is refused, as its handover note is: its report read as a
    running shift ("(running)", "the station ran through the shift", the alarms of today
    "still active when the shift began") for a mistyped day ahead."""
    if at is None:
        return
    cfg = station.config
    zone = plant_zone(cfg.timezone)
    shift = shift_of(at, parse_shift_starts(cfg.shift_starts) if cfg.shift_starts else (), zone)
    if shift.start_utc > dt.datetime.now(dt.timezone.utc).replace(tzinfo=None):
        begins = shift.start_utc.replace(tzinfo=dt.timezone.utc).astimezone(zone)
        raise InvalidRequest(f"the shift {shift.label} has not started: it starts at {begins:%Y-%m-%d %H:%M} "
                             f"plant time, so {what} has nothing yet (give `at` within the running shift or an "
                             "earlier one; leave it out for the last shift that ended)",
                             not_started=True, shift_start=iso_utc(shift.start_utc),
                             # the station's own now: a tablet whose clock runs ahead asked for the
                             # running shift by its clock and was refused, again at each try
                             running_at=iso_utc(dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)))


def _shift_made_now(station: Station, line: Optional[str], product: Optional[str],
                    at: Optional[dt.datetime], shift: Optional[Shift] = None) -> dict[str, Any]:
    cfg = station.config
    # "l1" for line L1: the names as the parts carry them (the report compares exactly); a
    # misspelt one is a 404 naming the close ones, not the report of a shift with no parts
    named_line, named_product = known_names(station.db, line or None, product or None)
    return shift_report(station.db, cfg.shift_starts, cfg.timezone, line=named_line, product=named_product,
                        kept_since=kept_since(station.db), at=at, shift=shift,
                        # a version with tuned thresholds scores as its source: not another model
                        score_sources=lambda ids: tuning.score_sources(station, ids))


class _ShiftIn(RequestIn):
    """Which shift's report a body is about: a time within it, and its line."""
    at: str = Field(..., max_length=TIME_TEXT, description="a time within the shift (as the report's `at`)")
    line: Optional[str] = Field(None, max_length=100, pattern=NO_NUL,
                                description="the line; empty or left out: the report of every line")


class ShiftSignIn(_ShiftIn):
    product: Optional[str] = Field(None, max_length=100, pattern=NO_NUL, description="the product, as the report's")
    note: str = Field("", max_length=issued_reports.NOTE_MAX, pattern=NO_NUL,
                      description="what the signature says (\"handed over to B shift, line stopped 20 min\")")


@router.post("/shift/sign", status_code=201,
             summary="Sign the shift's report at the handover: keep it as it is now, with who signed, when and the "
                     "note, never changed by later reviews (read back as an issued report of kind shift)",
             responses=errors(401, 403, 404, 422))
def sign_shift(body: ShiftSignIn, station: Station = Depends(get_station),
               caller: Caller = Depends(require("operator"))) -> dict[str, Any]:
    at = shift_time(station, body.at)
    _refuse_not_started(station, at, "its report")
    report = _shift_made_now(station, body.line, body.product, at)
    if not report["totals"]["parts"] and not report["totals"]["no_verdict"]:
        raise InvalidRequest("no part was judged in this shift: there is nothing to sign (choose the shift the line "
                             "ran in)")
    return {"issued": issued_reports.issue(station.db, report, caller.who, body.note, kind="shift"), "report": report}


class HandoverNoteIn(_ShiftIn):
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
    shift = shift_of(at, starts, plant_zone(cfg.timezone))
    if shift.start_utc > dt.datetime.now(dt.timezone.utc).replace(tzinfo=None):
        # a note kept for a shift no one has worked yet sat unseen on a report days ahead
        # (a mistyped day), while the shift it was meant for handed over without it
        raise InvalidRequest(f"the shift {shift.label} has not started: a handover note is written in the shift "
                             "it hands over from (give `at` within the running shift or an earlier one)")
    start = shift.start_utc
    try:
        return handover.write_note(station.db, start, named_line, body.note, caller.who)
    except handover.NoteRefused as exc:
        raise InvalidRequest(str(exc)) from None


_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _period_scope(caller: Optional[Caller] = Depends(reader),     # first: signed in before the database is read
                  line: Optional[str] = _LINE, station_name: Optional[str] = _STATION,
                  product: Optional[str] = _PRODUCT,
                  since: Optional[str] = Query(None, max_length=TIME_TEXT, description=SINCE_HELP + " (default: "
                                               "the first of the last whole month, or of until's month)"),
                  until: Optional[str] = Query(None, max_length=TIME_TEXT, description=UNTIL_HELP + " (default: "
                                               "the end of the last whole month, or today's 00:00 when since is "
                                               "given)"),
                  station: Station = Depends(get_station)) -> Scope:
    # the SPC endpoints' scope (spc.scope), read the same way; only the defaults of
    # since/until differ (whole plant days, a month: line.period_report.window)
    named_line, named_product = known_names(station.db, line or None, product or None)
    # "s1" is the stored S1: the report says S1 and is the next revision of S1's, not another
    named_station = known_station(station.db, station_name or None, named_line)
    return Scope(named_line, named_station, named_product, plant_time(station, since, "since"),
                 plant_time(station, until, "until", end=True), kept_since(station.db))


@router.get("/period", summary="A period's report (a month's, for the customer): parts and verdicts per line, the "
                               "share of good parts scrapped, the audit's defective share of passed parts, the "
                               "p-chart by day and by line and week, the defect types, the alarms and what "
                               "they turned out to be, the parts the PLC rejected without a verdict, each shift's "
                               "test-part verification, the models and their activations and rollbacks "
                               "(JSON or .xlsx)",
            responses={200: {"content": {"application/json": {}, _XLSX: {}},
                             "description": "the report; format=xlsx: a workbook of sheets Window, Summary, By day, "
                                            "Defect types, Models, By week, Alarms, Verification, Verification "
                                            "not passed, Model changes (numbers and times typed)"},
                       **errors(401, 403, 404, 422)})
def period(where: Scope = Depends(_period_scope), _known: None = Depends(known_query_only),
           format: Literal["json", "xlsx"] = Query("json", description="json, or xlsx: a workbook, a sheet a "
                                                   "section, shares as fractions (0-1)"),
           station: Station = Depends(get_station), caller: Optional[Caller] = Depends(reader)) -> Any:
    report = _made_now(where, station, caller)
    if format == "xlsx":
        return _workbook(report, station)
    # the reports issued for this very window and scope: the one sent may differ from this
    return {**report, "issued": issued_reports.issued_for(station.db, report)}


def _made_now(where: Scope, station: Station, caller: Optional[Caller]) -> dict[str, Any]:
    cfg = station.config
    return period_report.period_report(
        station.db, where.since, where.until, timezone=cfg.timezone, shift_starts=cfg.shift_starts,
        line=where.line, station=where.station, product=where.product, kept_since=where.kept_since,
        audit_rate=float(cfg.audit_sample_rate or 0.0), made_by=caller.who if caller is not None else None,
        station_host=socket.gethostname(), version=__version__)


def _workbook(report: dict[str, Any], station: Station, issued: Optional[dict[str, Any]] = None) -> Response:
    w = report["window"]
    name = "lineguard-period-" + "-".join(v for v in (w["line"], w["product"]) if v) + ("-" if w["line"] or
                                                                                          w["product"] else "")
    # the plant's days it covers, the last one included: -20261101-20261130 for November
    last = dt.datetime.fromisoformat(w["until_plant"]) - dt.timedelta(microseconds=1)
    name += w["since_plant"][:10].replace("-", "") + "-" + last.strftime("%Y%m%d")
    if issued is not None:
        name += f"-issued-{issued['id']}" + ("-WITHDRAWN" if issued["withdrawn"] else "")
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in name)
    # the zone an issued report was made in, should the plant's setting change since (a name
    # this PC's zone database knows; else, as for the report made now, the station's setting)
    zone = station.config.timezone
    if issued is not None and w.get("timezone"):
        try:
            plant_zone(w["timezone"])
            zone = w["timezone"]
        except ValueError:
            pass
    return Response(period_report.workbook(report, zone, issued), media_type=_XLSX,
                    headers={"Content-Disposition": f'attachment; filename="{safe}.xlsx"'})


class IssueIn(RequestIn):
    note: str = Field("", max_length=issued_reports.NOTE_MAX, pattern=NO_NUL,
                      description="where the report went and why (\"sent to ACME, with 8D 114\"); may be empty")
    revision: Optional[int] = Field(None, ge=1, le=DB_INT_MAX,
                                    description="the revision this is meant to be (1: the window's first report); "
                                                "when the window's next revision is another (issued since: a second "
                                                "tap, another engineer), 409 naming the report that stands "
                                                "(error.replaces, error.revision) and nothing is issued; left out: "
                                                "the next revision, whatever it is")


@router.post("/period/issue", status_code=201,
             summary="Issue the period's report (the window and scope as GET /period takes them): keep it as it "
                     "is now, with who issued it, when and the note, never changed by later reviews",
             responses=errors(401, 403, 404, 409, 422))
def issue_period(body: IssueIn, where: Scope = Depends(_period_scope), _known: None = Depends(known_query_only),
                 station: Station = Depends(get_station),
                 caller: Caller = Depends(require("engineer"))) -> dict[str, Any]:
    report = _made_now(where, station, caller)
    return {"issued": issued_reports.issue(station.db, report, caller.who, body.note, revision_meant=body.revision),
            "report": report}


@router.get("/issued", summary="The reports issued (period reports) and signed (shift reports), newest first (who, "
                               "when, the window, the note)",
            responses=errors(401, 403, 422))
def issued(limit: int = Query(100, ge=1, le=issued_reports.LIST_MAX),
           kind: Optional[Literal["period", "shift"]] = Query(None, description="only period reports or only signed "
                                                                               "shift reports (default: both)"),
           before: Optional[int] = Query(None, ge=1, le=DB_INT_MAX, description="next_before of the previous page: "
                                                                               "the older ones"),
           station: Station = Depends(get_station), _r: Any = Depends(reader)) -> dict[str, Any]:
    # paged: the SPC page listed the last 20 and a report issued two years ago could not be found
    items = issued_reports.issued_list(station.db, limit, kind, before)
    return {"issued": items, "next_before": items[-1]["id"] if len(items) == limit else None}


@router.get("/issued/{report_id}",
            summary="One issued report as it was issued (JSON or .xlsx), and the counts that differ in the "
                    "report made from the records now",
            responses={200: {"content": {"application/json": {}, _XLSX: {}}}, **errors(401, 403, 404, 422)})
def issued_one(report_id: int = Path(ge=1, le=DB_INT_MAX, description="the issued report's id"),
               format: Literal["json", "xlsx"] = Query("json"),
               station: Station = Depends(get_station), caller: Optional[Caller] = Depends(reader)) -> Any:
    header, report = issued_reports.issued_one(station.db, report_id)
    if header["kind"] == "shift":
        if format == "xlsx":
            raise InvalidRequest("a shift report has no workbook: its JSON is here, and /app/report prints it")
        # over the window signed, not the shift holding its start now: after the station's
        # shift starts changed, a 21:00-05:00 shift was compared with a 18:30-02:30 one and
        # "changed" by parts no one recorded since
        signed = report["shift"]
        now = _shift_made_now(station, report.get("line"), report.get("product"), None,
                              shift_as_signed(signed["label"], issued_reports.window_time(signed["start"]),
                                              issued_reports.window_time(signed["end"]),
                                              plant_zone(station.config.timezone)))
    else:
        if format == "xlsx":
            return _workbook(report, station, issued=header)
        w = report["window"]
        now = _made_now(Scope(w.get("line"), w.get("station"), w.get("product"),
                              issued_reports.window_time(w["since"]), issued_reports.window_time(w["until"]),
                              kept_since(station.db)), station, caller)
    changed = issued_reports.changes(report, now, header["kind"])
    return {"issued": header, "report": report, "changed_since_issued": changed,
            "changed_text": issued_reports.changes_text(changed)}


class WithdrawIn(RequestIn):
    reason: str = Field(..., min_length=1, max_length=issued_reports.NOTE_MAX, pattern=NO_NUL,
                        description="why it is withdrawn (\"sent for the wrong line; replaced by the next one\")")


@router.post("/issued/{report_id}/withdraw",
             summary="Withdraw an issued report sent in error: kept and readable, marked withdrawn with who, when "
                     "and why (once; a second withdrawal is 409)",
             responses=errors(401, 403, 404, 409, 422))
def withdraw(body: WithdrawIn, report_id: int = Path(ge=1, le=DB_INT_MAX, description="the issued report's id"),
             station: Station = Depends(get_station), caller: Caller = Depends(require("engineer"))) -> dict[str, Any]:
    return {"issued": issued_reports.withdraw(station.db, report_id, caller.who, body.reason)}
