"""The shift handover report: what one shift made, rejected and let through, on one page.

A plant's day is handed over shift to shift; the supervisor coming in asks "how did the
last shift run?": parts and verdicts per line and station, whether the defect rate was
in control against the shifts before it, what reviewers found among its parts (false
rejects, escapes, the defect types), what is still waiting for review, which models
judged it, whether the scores drifted, whether each line's test parts got their
verdicts, and the line alarms raised. Everything here is read from the records of
the parts the shift made (a review done later counts for the shift that made the part).
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import func, select

from . import alarm_causes, handover, spc
from .alarms import history as alarm_history
from .alarms import escalation_step, no_verdict_plain
from .db import Database
from .orm import Inspection, LineSignal, ShiftNote, iso_utc, utcnow
from .shifts import Shift, days_before, parse_shift_starts, plant_zone, shift_of
from .spc_data import (Filters, Periods, ScoreSources, _where, audit_ok_counts, defect_subgroups,
                       defect_type_counts, escape_places_text, escapes_found_otherwise_by, no_verdict_counts,
                       review_counts, score_subgroups)
from .station import _iso
from .test_parts import verification

# the p-chart and the drift compare the shift with the shifts of the week before it, in days
# on the plant's clock (the same shift a week before, whatever the clocks did since)
CONTEXT_DAYS = 7
# the parts rejected without a verdict listed one by one (the count is always whole)
NO_VERDICT_LISTED = 500


def shift_report(db: Database, shift_starts: Any = (), timezone: Optional[str] = None,
                 line: Optional[str] = None, product: Optional[str] = None,
                 at: Optional[dt.datetime] = None, now: Optional[dt.datetime] = None,
                 kept_since: Optional[dt.datetime] = None,
                 score_sources: Optional[ScoreSources] = None, shift: Optional[Shift] = None) -> dict[str, Any]:
    """The report of the shift holding ``at`` (naive UTC); without it the last shift that
    has ended; ``shift``: that very window (a signed report's, read again after the
    station's shift starts changed). ``line``/``product`` narrow it (None: every line,
    every product).
    ``kept_since``: parts recorded before it are not all kept (line.record_keeper).
    ``score_sources``: model ids -> the model whose scores each gives (line.tuning), so a
    version with tuned thresholds does not count as another model in the drift."""
    starts = parse_shift_starts(shift_starts) if shift_starts else ()
    zone = plant_zone(timezone)
    now = now or utcnow()
    if shift is None:
        if at is None:
            at = shift_of(now, starts, zone).start_utc - dt.timedelta(microseconds=1)   # the last one that ended
        shift = shift_of(at, starts, zone)
    f = Filters(line=line, product=product, since=shift.start_utc, until=shift.end_utc)

    with db.session() as s:
        # with whether the photo check doubted the photo: a camera's health, station by station
        doubted = Inspection.photo_issues.is_not(None)
        rows = s.execute(select(Inspection.line, Inspection.station, Inspection.verdict, doubted, func.count())
                         .where(*_where(f))
                         .group_by(Inspection.line, Inspection.station, Inspection.verdict, doubted)).all()
        # parts the PLC link rejected without a verdict in time: scrapped whatever the model says
        no_verdict = no_verdict_counts(s, f)
        no_verdict_parts = _no_verdict_parts(s, f)
        models = s.execute(select(Inspection.product, Inspection.model_id, Inspection.registry_version,
                                  func.count()).where(*_where(f))
                           .group_by(Inspection.product, Inspection.model_id, Inspection.registry_version)).all()
    stations: dict[tuple[str, str], dict[str, Any]] = {}

    def station_row(ln: str, st: str) -> dict[str, Any]:
        return stations.setdefault((ln, st), {"line": ln, "station": st, "parts": 0, "OK": 0, "NG": 0, "REVIEW": 0,
                                              "photo_doubted": 0, "no_verdict": 0, "no_verdict_late": 0})
    for ln, st, verdict, photo_doubted, n in rows:
        r = station_row(ln, st)
        r["parts"] += int(n)
        r[verdict] = r.get(verdict, 0) + int(n)
        r["photo_doubted"] += int(n) if photo_doubted else 0
    for (ln, st), (n, n_late) in no_verdict.items():
        r = station_row(ln, st)
        r["no_verdict"], r["no_verdict_late"] = n, n_late
    for r in stations.values():
        r["ng_rate"] = r["NG"] / r["parts"] if r["parts"] else None
    total = {k: sum(r[k] for r in stations.values())
             for k in ("parts", "OK", "NG", "REVIEW", "photo_doubted", "no_verdict", "no_verdict_late")}
    total["ng_rate"] = total["NG"] / total["parts"] if total["parts"] else None

    # the shift's defect rate on the p-chart of the week of shifts before it
    periods = Periods("shift", shift_starts or (), timezone)
    week = Filters(line=line, product=product, since=days_before(shift, CONTEXT_DAYS, zone), until=shift.end_utc)
    control = _control(defect_subgroups(db, week, "shift", periods), shift, week.since)
    groups, score_models = score_subgroups(db, week, "shift", periods, score_sources)
    drift = spc.score_drift(groups)
    drifted = bool(drift.alarm and drift.points and any(
        q.drift for q in drift.points if q.label == shift.label))
    # the models are the week's: they differ for this shift only when it has scores to compare
    # (a shift with no part said "several models judged these parts" beside no model at all)
    scored = any(q.n for q in drift.points if q.label == shift.label)

    reviewed = review_counts(db, f)
    audited = audit_ok_counts(db, f)
    first_run = handover.runs_recorded_from(db)
    # where the shift's escapes were found: the audit sample's, then the others by place (the
    # month report's split, so a customer's complaint reads as such at the next handover); the
    # audit sample's are the escapes the others leave
    found_otherwise = escapes_found_otherwise_by(db, f)
    escapes_audit = reviewed.get(("OK", "defect"), 0) - sum(found_otherwise.values())
    type_counts, waiting = defect_type_counts(db, f)
    # the line alarms (line.alarms) still active when the shift began, then those raised
    # in it, oldest first, with who saw to them and what each turned out to be
    alarms = ([{**a, "from_before": True} for a in alarm_history(db, line=line, product=product,
                                                                 open_at=shift.start_utc, limit=1000)[::-1]]
              + alarm_history(db, line=line, product=product, since=shift.start_utc, until=shift.end_utc,
                              limit=1000)[::-1])
    # each alarm's cause counts in the shift it was acknowledged in (once, whenever read)
    causes: dict[str, int] = {}
    named = alarm_causes.labels(db) if any(a["ack_cause"] for a in alarms) else {}
    for a in alarms:
        acked = a["acked_at"] and dt.datetime.fromisoformat(a["acked_at"].replace("Z", "+00:00")).replace(tzinfo=None)
        if acked and shift.start_utc <= acked < shift.end_utc:
            key = a["ack_cause"] or "not given"
            causes[key] = causes.get(key, 0) + 1
    for a in alarms:
        _as_at_end(a, shift.end_utc, zone)
    return {
        "shift": {"label": shift.label, "start": _iso(shift.start_utc), "end": _iso(shift.end_utc),
                  "ended": shift.end_utc <= now,
                  "previous_at": _iso(shift.start_utc - dt.timedelta(microseconds=1)),
                  "next_at": _iso(shift.end_utc) if shift.end_utc <= now else None},
        "line": line, "product": product,
        # a shift (or the week it is compared with) reaching before the records kept: its
        # counts are of the parts kept, mostly reviewed ones, not the shift's
        "records_incomplete": None if kept_since is None or week.since >= kept_since else
        f"parts recorded before {_iso(kept_since)} are no longer kept (only reviewed parts, the audit sample and "
        "test-part checks are): the counts here, and the week compared with, are not all of the line's parts",
        "totals": total,
        "stations": sorted(stations.values(), key=lambda r: (r["line"], r["station"])),
        "control": control,
        "reviews": {"false_rejects": reviewed.get(("NG", "good"), 0),
                    "confirmed_defects": reviewed.get(("NG", "defect"), 0),
                    "escapes": reviewed.get(("OK", "defect"), 0),
                    "escapes_audit": escapes_audit, "escapes_found_otherwise_by": found_otherwise,
                    "escapes_text": ", ".join(([f"{escapes_audit} by the audit sample"] if escapes_audit else [])
                                              + ([escape_places_text(found_otherwise)]
                                                 if any(found_otherwise.values()) else [])),
                    "review_good": reviewed.get(("REVIEW", "good"), 0),
                    "review_defect": reviewed.get(("REVIEW", "defect"), 0),
                    # the random audit sample's OK parts reviewed, as the period report's "audited OK
                    # reviewed": every OK part reviewed counted the customer's escapes as audited too
                    "ok_audited": audited["good"] + audited["defect"],
                    "waiting": waiting},
        "defect_types": [vars(b) for b in spc.pareto(type_counts)],
        "models": [{"product": p, "model_id": m, "registry_version": v, "parts": int(n)}
                   for p, m, v, n in sorted(models, key=lambda r: -r[3])],
        # the week's drift text when this shift is not the one that drifted ("steady", or
        # why nothing could be compared); a drift the week shows elsewhere is not this shift's
        # the test parts put through each line in the shift (line.test_parts)
        "verification": [v for v in verification(db, shift, now, line) if product is None or v["product"] == product],
        "alarms": alarms,
        # each part the PLC rejected without a verdict (no part record: its trigger), oldest
        # first, and one sentence for the operator on what went wrong and whom to call
        "no_verdict_parts": no_verdict_parts,
        # said from the most common reason among those listed (the last one's alone named the
        # recipe table for a shift of timeouts)
        "no_verdict_text": (no_verdict_plain(total["no_verdict"], [p["reason"] for p in no_verdict_parts])
                            if total["no_verdict"] and no_verdict_parts else None),
        # the station's stops, starts and outages in the shift: no part was judged meanwhile
        "stops_and_starts": handover.stops_and_starts(db, shift.start_utc, shift.end_utc, now),
        # runs on record only from then: a shift before the station's first start read "the
        # station ran through the shift"
        "runs_recorded_from": _iso(first_run) if first_run is not None and first_run > shift.start_utc else None,
        # what the shift wrote for the next one (the newest; its earlier versions as history)
        # and the notes written for a shift under other shift starts that overlaps this one
        # (the starts were changed since), each with the shift it was written for
        "handover_note": handover.notes(db, shift.start_utc, line, shift.end_utc,
                                        lambda t: _ends_if_starts(t, starts, zone)),
        # the every-line report: the notes written on each line's report of this shift (the
        # every-line page said "no note yet" beside them, and an operator wrote a second copy)
        "notes_of_lines": _notes_of_lines(db, shift.start_utc) if not line else [],
        # what the acknowledged ones turned out to be, most first: what stopped the line
        "alarm_causes": [{"cause": k, "label": named.get(k, k), "alarms": n}
                         for k, n in sorted(causes.items(), key=lambda kv: (-kv[1], kv[0]))],
        "drift": {"alarm": drifted, "text": _drift_words(drift, shift.label, drifted),
                  "models_differ": scored and len(score_models) > 1},
    }


def _notes_of_lines(db: Database, start: dt.datetime) -> list[dict[str, Any]]:
    """Each line's handover note of the shift from ``start`` (the newest; none taken back), by line."""
    with db.session() as s:
        rows = list(s.scalars(select(ShiftNote).where(ShiftNote.shift_start == start, ShiftNote.line != "")
                              .order_by(ShiftNote.id.desc()).limit(1000)))
    newest: dict[str, ShiftNote] = {}
    for r in rows:
        newest.setdefault(r.line, r)
    return [{"line": ln, "note": r.note, "written_by": r.written_by, "written_at": iso_utc(r.written_at)}
            for ln, r in sorted(newest.items()) if r.note]


def _ends_if_starts(t: dt.datetime, starts: Any, zone: dt.tzinfo) -> Optional[dt.datetime]:
    """The end of the shift starting at ``t`` under the shift starts now; None when none does."""
    sh = shift_of(t, starts, zone)
    return sh.end_utc if sh.start_utc == t else None


def _control(subgroups: list[spc.Subgroup], shift: Shift, since: dt.datetime) -> Optional[dict[str, Any]]:
    """The shift's defect rate judged against the shifts before it in the week: the centre
    line is their NG share alone and the limits are set from it. With the shift itself in
    the centre, a shift of 10 NG in 17 parts pulled a week's 3.3 % up to 8.1 % and its own
    upper limit up to 38 %: the worse the shift, the wider the limits it was judged by.
    None when the shift judged no part; without a shift with parts before it (a new line),
    or with fewer than spc.MIN_REFERENCE_PARTS parts in them, the shift's rate and no
    limits, said so."""
    before = [g for g in subgroups if g.label != shift.label and g.n > 0]
    this = next((g for g in subgroups if g.label == shift.label and g.n > 0), None)
    if this is None:
        return None
    parts, ng = sum(g.n for g in before), sum(g.defects for g in before)
    limits_from = {"shifts": len(before), "parts": parts, "ng": ng, "since": _iso(since),
                   "until": _iso(shift.start_utc)}
    def no_limits(text: str) -> dict[str, Any]:
        # shifts_compared: the shifts looked at, as with limits (limits_from says their parts)
        return {"p": this.defects / this.n, "centre": None, "ucl": None, "lcl": None,
                "shifts_compared": len(before), "alarms": [], "limits_from": limits_from, "text": text}
    if not before:
        return no_limits("no limits: no shift before this one in the week judged a part (a new line or product, "
                         "or the records start here), so there is nothing to judge this shift against")
    if parts < spc.MIN_REFERENCE_PARTS:
        # as the p-chart's baseline: a centre from a handful of parts is their luck (one OK
        # part set it at 50 %, and a shift at 17 % NG read "below the control limit")
        return no_limits(f"no limits: the {len(before)} shift{'' if len(before) == 1 else 's'} before this one in "
                         f"the week judged {parts} part{'' if parts == 1 else 's'} ({ng} NG), and limits need at "
                         f"least {spc.MIN_REFERENCE_PARTS}; this shift is judged against them once the week's "
                         "shifts before it hold that many")
    # Phase II: the centre fixed from the shifts before, this shift charted after them so a
    # run rule (nine above the centre, two of three beyond 2 sigma) sees the shifts leading to it
    chart = spc.p_chart([*before, this], centre=spc.reference_centre(ng, parts))
    i = len(chart.points) - 1
    p = chart.points[i]
    text = (f"limits from the {len(before)} shift{'' if len(before) == 1 else 's'} before this one in the week "
            f"({ng} NG of {parts} parts, {100 * ng / parts:.2f} %); this shift is not in them")
    if ng == 0:
        text += (f": none of them had an NG part, so the centre is taken as half an NG part in them "
                 f"({100 * 0.5 / parts:.3g} %), not 0")
    return {"p": p.p, "centre": chart.centre, "ucl": p.ucl, "lcl": p.lcl, "shifts_compared": len(before),
            "alarms": [h.text for h in chart.alarms if h.index == i], "limits_from": limits_from, "text": text}


def _drift_words(drift: spc.DriftResult, label: str, drifted: bool) -> str:
    """The score drift as the shift report says it: about this shift, and what it means for
    the shift. The SPC page's own words ("widen the time window or give a baseline window")
    told an operator to set windows this page has not got."""
    if drifted:
        return drift.text
    if drift.alarm:     # the week drifted in another shift: that one's report says so
        return "scores of this shift did not move away from the week's first shifts"
    point = next((q for q in drift.points if q.label == label), None)
    if point is None or not point.n:
        return "no part of this shift was scored, so there is nothing to compare"
    if point.z is not None and point.drift:     # moved, but one shift is not yet a drift
        return (f"this shift's parts scored {'higher' if (point.shift or 0) > 0 else 'lower'} than in the week's "
                "first shifts; one shift alone is not a drift: see whether the next shift's do too")
    if point.z is not None:
        return "steady: this shift's parts score like those of the week's first shifts"
    # the shifts the others are compared with (the first with parts: score_drift's baseline)
    first = [q.label for q in drift.points if q.n][:drift.baseline.get("subgroups") or 0]
    if label in first:
        return ("not compared: this shift is one of the week's first shifts with parts, which the shifts after "
                "them are compared with")
    if (drift.baseline.get("n") or 0) < spc.DRIFT_MIN_PARTS:
        return (f"not compared yet: the week's first shifts had {drift.baseline.get('n') or 0} parts scored, "
                f"{spc.DRIFT_MIN_PARTS} are needed to compare a shift with them")
    return (f"not compared: only {point.n} part{'' if point.n == 1 else 's'} of this shift scored, "
            f"{spc.DRIFT_MIN_PARTS} are needed to tell whether the scores moved")


def _no_verdict_parts(s: Any, f: Filters) -> list[dict[str, Any]]:
    """The triggers the PLC link answered NG without a verdict in the shift, oldest first:
    the PLC's part number, the station, when and why (at most NO_VERDICT_LISTED, the newest)."""
    q = select(LineSignal).where(LineSignal.inspection_id.is_(None), LineSignal.signal == "NG",
                                 LineSignal.triggered_at >= f.since, LineSignal.triggered_at < f.until)
    for col, v in ((LineSignal.line, f.line), (LineSignal.product, f.product)):
        if v:
            q = q.where(col == v)
    rows = list(s.scalars(q.order_by(LineSignal.id.desc()).limit(NO_VERDICT_LISTED)))[::-1]
    return [{"signal_id": r.id, "line": r.line, "station": r.station, "product": r.product, "part_tag": r.part_tag,
             "trigger_seq": r.trigger_seq, "triggered_at": iso_utc(r.triggered_at), "result_code": r.result_code,
             "reason": r.reason, "judged_later_id": r.late_inspection_id} for r in rows]


def _parse(t: Optional[str]) -> Optional[dt.datetime]:
    return dt.datetime.fromisoformat(t.replace("Z", "+00:00")).replace(tzinfo=None) if t else None


def _plant_clock(t: dt.datetime, zone: dt.tzinfo) -> str:
    """A naive-UTC time as the plant's clock reads it, said so (the report's texts are read on
    the plant's clock: "acknowledged at ...Z" was the UTC one, hours off in Asia/Kolkata)."""
    return f"{t.replace(tzinfo=dt.timezone.utc).astimezone(zone):%Y-%m-%d %H:%M:%S} plant time"


def _as_at_end(a: dict[str, Any], end: dt.datetime, zone: dt.tzinfo = dt.timezone.utc) -> None:
    """An alarm as it stood when the shift ended (``at_end``), what came after apart (``later``,
    its times on the plant's clock, ``zone``): an acknowledgement or escalation after the end
    is the next shift's, not this one's."""
    acked, escalated = _parse(a.get("acked_at")), _parse(a.get("escalated_at"))
    later = []
    if acked is not None and acked >= end:
        later.append(f"acknowledged at {_plant_clock(acked, zone)}"
                     + (f" by {a['acked_by']}" if a.get("acked_by") else ""))
    if escalated is not None and escalated >= end:
        later.append(f"escalated at {_plant_clock(escalated, zone)}")
    elif escalated is not None and (a.get("escalations") or 0) > 1:
        # escalated again and again: the report counts those by the end, not those since
        n = a["escalations"]
        lo, hi = _escalations_by(a, escalated, end)
        a["escalations"] = lo
        if hi > lo:
            later.append(f"escalated {n} times in all, {lo} to {hi} of them by the shift's end (the time of "
                         "each repeated escalation is not kept)")
        elif lo < n:
            later.append(f"escalated {n - lo} more time{'s' if n - lo > 1 else ''} after the shift's end "
                         f"({n} in all)")
    a["at_end"] = {"acknowledged": acked is not None and acked < end,
                   # the last escalation is all that is kept: one after the end hides any before it
                   "escalated": escalated is not None and escalated < end}
    a["later"] = "; ".join(later) or None


def _escalations_by(a: dict[str, Any], first: dt.datetime, end: dt.datetime) -> tuple[int, int]:
    """How many of an alarm's escalations came before ``end``: at least, at most. Only the
    first one's time is kept, the count, and the next due time (the last one's time plus
    the interval, line.alarms._escalate); each came at least the interval after the one
    before (later where the processes were down), so the k-th came after first + (k-1)
    intervals and before last - (n-k) intervals: exact while the escalations came on time."""
    n = a["escalations"]
    again = a.get("escalate_again_min") or 0
    nxt = _parse(a.get("escalate_at"))
    if again <= 0 or nxt is None:        # a row of another kind (edited by hand): the first one alone is known
        return 1, n
    step = escalation_step(again)
    last = nxt - step
    lo = sum(1 for k in range(1, n + 1) if last - (n - k) * step < end)
    # the last one's time is known: the one before it no later than the interval before
    hi = sum(1 for k in range(1, n) if first + (k - 1) * step < end) + (last < end)
    return max(1, min(lo, hi)), max(1, hi)
