"""The report of a period (a month, as a plant sends its customer): what the lines made,
scrapped, let through and still owe a review, on one page or one workbook.

Assembled from the very functions the SPC endpoints answer with (``spc_data`` counts,
``spc`` maths), each over one window, so the report's numbers are those the SPC page
shows for the same since/until/line/product: the share of good parts scrapped is
``spc.review_rates``' ``good_scrapped`` (an estimate while NG parts wait for review,
said so), the defective share of passed parts the random audit sample's, the p-chart
the p-chart route's by day. A quality manager combined five endpoints by hand, each
with its own default window and CSV format, to write the month's report.
"""
from __future__ import annotations

import datetime as dt
import io
from typing import Any, Optional

from sqlalchemy import func, select

from . import alarm_causes, spc, xlsx
from .db import Database
from .orm import Inspection, LineAlarm, iso_utc, utcnow
from .part_names import station_is, stored_names
from .shifts import plant_zone, wall_to_utc
from .spc_data import (Filters, Periods, _where, audit_ok_counts, defect_subgroups, defect_type_counts,
                       kept_filters, naive_utc, refuse_backwards, rejected_never_judged, review_counts,
                       verdict_counts)
from .errors import InvalidRequest

# a report's window at most: a year and a month (a report "since the plant opened" is the
# parts export's job; 400 days of days is still a chart one can read)
MAX_DAYS = 400
# alarms listed one by one in a report (counted all the same): a line that alarmed more
# often than this in a month has a problem the counts already say
MAX_ALARMS = 2000


def window(since: Optional[dt.datetime], until: Optional[dt.datetime], timezone: Optional[str],
           now: Optional[dt.datetime] = None) -> tuple[dt.datetime, dt.datetime]:
    """The report's [since, until) in naive UTC from the edges as read (plant_time: a day
    alone is the plant's whole day; until's is included). Left out, whole plant days:
    neither, the last whole calendar month on the plant's clocks; no until, up to today's
    00:00 (today is not over; now, when since is today); no since, from the first of the
    month of until's last day (month to date). InvalidRequest when it ends before it starts
    or is longer than MAX_DAYS, saying what to send."""
    zone = plant_zone(timezone)
    now = now or utcnow()
    until = naive_utc(until)
    since = naive_utc(since)

    def local_day(t: dt.datetime) -> dt.date:
        return t.replace(tzinfo=dt.timezone.utc).astimezone(zone).date()
    try:
        today = wall_to_utc(local_day(now), dt.time(0), zone)
        if since is None and until is None:
            month = local_day(now).replace(day=1)
            until = wall_to_utc(month, dt.time(0), zone)
            since = wall_to_utc((month - dt.timedelta(days=1)).replace(day=1), dt.time(0), zone)
        elif until is None:
            assert since is not None
            until = today if since < today else now
        elif since is None:
            since = wall_to_utc(local_day(until - dt.timedelta(microseconds=1)).replace(day=1), dt.time(0), zone)
    except (OverflowError, ValueError):     # an edge at the calendar's very start or end
        raise InvalidRequest("since/until lie at the calendar's edge: send both, as days (since=2026-11-01"
                             "&until=2026-11-30)") from None
    refuse_backwards(since, until)
    if until - since > dt.timedelta(days=MAX_DAYS):
        raise InvalidRequest(f"since ({iso_utc(since)}) to until ({iso_utc(until)}) is longer than {MAX_DAYS} days: "
                             "send a shorter window (a month: since=2026-11-01&until=2026-11-30), or take the "
                             "parts export for longer")
    return since, until


def _share(k: Any, n: Any) -> dict[str, Any]:
    """A share next to its counts: {rate, k, n, text "k of n"}; rate null when n is 0."""
    return {"rate": (k / n) if n else None, "k": k, "n": n, "text": f"{_num_text(k)} of {_num_text(n)}"}


def _num_text(x: Any) -> str:
    return "?" if x is None else f"{x:.1f}" if isinstance(x, float) and not float(x).is_integer() else f"{int(x)}"


def _line_numbers(db: Database, kept: Filters, reviewed: Filters, audit_rate: float) -> dict[str, Any]:
    """One line's (or every line's) counts and rates over the window: ``kept``, the window
    from the records all kept (every part: verdicts, good share scrapped); ``reviewed``,
    the whole window (reviewed parts are kept however old), as the review-rates route."""
    parts = verdict_counts(db, kept)
    rr = spc.review_rates(review_counts(db, reviewed), audit=audit_ok_counts(db, reviewed), parts=parts,
                          audit_rate=audit_rate, never_judged=rejected_never_judged(db, kept))

    def get(v: str, key: str = "parts") -> int:
        return int((parts.get(v) or {}).get(key, 0))
    judged = sum(get(v) for v in parts)
    gs = {**rr["good_scrapped"], "counted_since": iso_utc(kept.since)}
    gs["share"] = _share(gs["k"], gs["n"])
    fr, ea, band, es = rr["false_reject"], rr["escape_audit"], rr["review_band"], rr["escape"]
    # every passed part found defective, however found: the audit sample's (a rate a customer
    # can be given) and the others (downstream, the customer's complaints: no rate, the
    # parts looked at were not drawn at random). Only the audit's were reported, so a month
    # with a customer's escape read "0 escapes" to the customer who found it.
    found_otherwise = max(0, int(es["k"]) - int(ea["k"]))
    # REVIEW and NG parts no person has reviewed good or defect yet (the Review queue's)
    waiting_ng = get("NG") - get("NG", "good") - get("NG", "defect")
    waiting_review = get("REVIEW") - get("REVIEW", "good") - get("REVIEW", "defect")
    return {
        "parts": judged, "OK": get("OK"), "NG": get("NG"), "REVIEW": get("REVIEW"),
        "ng_share": _share(get("NG"), judged),
        # the share of good parts scrapped: spc.review_rates' own, with its counts and words
        "good_scrapped": gs,
        "rejected_reviewed_good": {**fr, "text": f"{fr['k']} of {fr['n']} NG parts reviewed were good"},
        "passed_defective_audit": {**ea, "text": f"{ea['k']} of {ea['n']} audited OK parts reviewed were defects"},
        "escapes": {"parts": int(es["k"]), "audit": int(ea["k"]), "found_otherwise": found_otherwise,
                    "text": f"{int(es['k'])} passed parts reviewed as defects: {int(ea['k'])} found by the audit "
                            f"sample, {found_otherwise} found otherwise (downstream, by the customer)"},
        "review_workload": {"parts": get("REVIEW"), "reviewed_good": band["good"],
                            "reviewed": band["good"] + band["defect"],
                            "good_share": _share(band["good"], band["good"] + band["defect"])},
        "waiting_for_review": {"parts": waiting_ng + waiting_review, "NG": waiting_ng, "REVIEW": waiting_review},
    }


def _by_week(db: Database, f: Filters, periods: Periods, name: str) -> dict[str, Any]:
    """One line's (or every line's) p-chart by the plant's calendar week (ISO 8601, Monday
    first: the week a plant and its customer number, "KW 41"): the day subgroups, summed per
    week. A week the window cuts (a month starts and ends mid-week) is ``partial`` and names
    the days it holds, so a short first week is not read as a quiet one."""
    weeks: dict[tuple[int, int], list[Any]] = {}
    for g in defect_subgroups(db, f, "day", periods):
        day = dt.date.fromisoformat(g.label)
        acc = weeks.setdefault(day.isocalendar()[:2], [g.start, day, day, 0, 0])
        acc[2] = day
        acc[3] += g.n
        acc[4] += g.defects
    chart = spc.p_chart([spc.Subgroup(f"{y}-W{w:02d}", a[0], a[3], a[4]) for (y, w), a in sorted(weeks.items())])
    spans = [a for _, a in sorted(weeks.items()) if a[3]]
    # a week is whole when the window holds its Monday and Sunday, whether or not the line ran each day
    first, last = (f.since, f.until - dt.timedelta(microseconds=1)) if f.since and f.until else (None, None)
    zone = periods.zone

    def whole(a: list[Any]) -> bool:
        if first is None or last is None:
            return True
        mon = a[1] - dt.timedelta(days=a[1].weekday())
        lo = first.replace(tzinfo=dt.timezone.utc).astimezone(zone).date()
        hi = last.replace(tzinfo=dt.timezone.utc).astimezone(zone).date()
        return lo <= mon and mon + dt.timedelta(days=6) <= hi
    return {"line": name, "centre": chart.centre, "parts": sum(p.n for p in chart.points),
            "ng": sum(p.defects for p in chart.points),
            "points": [{"week": p.label, "start": iso_utc(p.start), "first_day": a[1].isoformat(),
                        "last_day": a[2].isoformat(), "partial": not whole(a), "n": p.n, "ng": p.defects, "p": p.p,
                        "ucl": p.ucl, "lcl": p.lcl, "z": _finite(p.z), "rules": p.rules}
                       for p, a in zip(chart.points, spans)],
            "alarms": [{"index": h.index, "week": chart.points[h.index].label, "rule": h.rule, "text": h.text}
                       for h in chart.alarms]}


def _alarms(db: Database, t0: dt.datetime, t1: dt.datetime, line: Optional[str],
            station: Optional[str]) -> dict[str, Any]:
    """The line alarms raised in the window: alarms.summary's counts and each alarm with what
    it turned out to be (the cause given at acknowledging, its note): a customer's auditor
    asks what stopped the line and what was done, and the report had not a word of it."""
    from .alarms import summary     # the alarms module is heavy (numpy): only when a report is made
    out = summary(db, line=line, since=t0, until=t1)
    named = alarm_causes.labels(db)
    q = select(LineAlarm).where(LineAlarm.raised_at >= t0, LineAlarm.raised_at < t1)
    if line:
        q = q.where(LineAlarm.line == line)
    if station:
        q = q.where(station_is(LineAlarm.station, station))
    with db.session() as s:
        rows = list(s.scalars(q.order_by(LineAlarm.raised_at, LineAlarm.id).limit(MAX_ALARMS + 1)))
        items = [{"id": a.id, "raised_at": iso_utc(a.raised_at), "line": a.line, "station": a.station,
                  "product": a.product, "kind": a.kind, "message": a.message, "acked_at": iso_utc(a.acked_at),
                  "acked_by": a.acked_by,
                  "cause": a.ack_cause or ("not given" if a.acked_at is not None else None),
                  "cause_label": (named.get(a.ack_cause, a.ack_cause) if a.ack_cause else
                                  "not given" if a.acked_at is not None else "still active"),
                  "note": a.ack_note} for a in rows[:MAX_ALARMS]]
    if station:     # summary() compares the station exactly: count what is listed
        out = summary(db, line=line, station=rows[0].station, since=t0, until=t1) if rows else {
            **out, "alarms": 0, "active": 0, "escalated": 0, "by_kind": [], "by_station": [], "by_cause": []}
    out["items"] = items
    out["more"] = len(rows) > MAX_ALARMS
    return out


def period_report(db: Database, since: Optional[dt.datetime], until: Optional[dt.datetime], *,
                  timezone: Optional[str] = None, shift_starts: Any = (), line: Optional[str] = None,
                  station: Optional[str] = None, product: Optional[str] = None,
                  kept_since: Optional[dt.datetime] = None, audit_rate: float = 0.0,
                  made_by: Optional[str] = None, station_host: str = "", version: str = "",
                  now: Optional[dt.datetime] = None) -> dict[str, Any]:
    """The period's report (see the module's docstring) as a dict, JSON as it is.

    ``since``/``until``: naive UTC as the routes read them (None: :func:`window`'s
    defaults); ``line``/``station``/``product`` as the records spell them (None: all);
    ``kept_since``: parts recorded before it are not all kept (line.record_keeper);
    ``audit_rate``: the station's audit_sample_rate."""
    now = now or utcnow()
    zone = plant_zone(timezone)
    t0, t1 = window(since, until, timezone, now)

    def over(ln: Optional[str], all_parts: bool) -> Filters:
        # the SPC routes' own clipping: counts of every part start at the records kept
        return kept_filters(t0, t1, kept_since, all_parts, line=ln, station=station, product=product)

    total = _line_numbers(db, over(line, True), over(line, False), audit_rate)
    lines = []
    for ln in ([line] if line else stored_names(db, "line")):
        numbers = _line_numbers(db, over(ln, True), over(ln, False), audit_rate)
        if numbers["parts"] or numbers["rejected_reviewed_good"]["n"] or numbers["passed_defective_audit"]["n"]:
            lines.append({"line": ln, **numbers})

    # the p-chart by day, as GET /api/v1/spc/p-chart?by=day draws it (centre from the window)
    chart = spc.p_chart(defect_subgroups(db, over(line, True), "day", Periods("day", shift_starts, timezone)))
    type_counts, not_reviewed = defect_type_counts(db, over(line, False))
    # the defect rate per line and week, and of every line together (the customer's chart)
    days = Periods("day", shift_starts, timezone)
    by_week = [_by_week(db, over(ln["line"], True), days, ln["line"]) for ln in lines]
    if not line:
        by_week.append(_by_week(db, over(None, True), days, "all lines"))
    bars = spc.pareto(type_counts)
    # the models that judged the window's parts, named as the shift report names them
    with db.session() as s:
        models = s.execute(select(Inspection.product, Inspection.model_id, Inspection.registry_version,
                                  func.count(), func.min(Inspection.created_at), func.max(Inspection.created_at))
                           .where(*_where(over(line, True)))
                           .group_by(Inspection.product, Inspection.model_id, Inspection.registry_version)).all()

    def local(t: dt.datetime) -> str:
        try:
            return t.replace(tzinfo=dt.timezone.utc).astimezone(zone).isoformat()
        except OverflowError:     # at the calendar's end the plant's clock has no such day: UTC
            return iso_utc(t) or ""
    empty = total["parts"] == 0
    return {
        # what the report covers and who made it when: the lines a customer reads first
        "window": {"since": iso_utc(t0), "until": iso_utc(t1), "since_plant": local(t0), "until_plant": local(t1),
                   "timezone": getattr(zone, "key", str(zone)), "line": line, "station": station, "product": product,
                   "station_host": station_host, "lineguard_version": version, "made_at": iso_utc(now),
                   "made_by": made_by,
                   "records_incomplete": None if kept_since is None or t0 >= kept_since else
                   f"parts recorded before {iso_utc(kept_since)} are no longer kept (only reviewed parts, the audit "
                   "sample and test-part checks are): counts of every part start there"},
        "empty": empty,
        "text": ("no part was judged in this window: nothing to report (choose the window when the line ran)"
                 if empty else f"{total['parts']} parts judged, {total['NG']} NG, {total['REVIEW']} REVIEW"),
        "total": total,
        "lines": lines,
        "by_day": {"centre": chart.centre, "parts": sum(p.n for p in chart.points),
                   "ng": sum(p.defects for p in chart.points), "rules": {str(k): v for k, v in spc.RULES.items()},
                   "points": [{"label": p.label, "start": iso_utc(p.start), "n": p.n, "ng": p.defects, "p": p.p,
                               "ucl": p.ucl, "lcl": p.lcl, "z": _finite(p.z), "rules": p.rules}
                              for p in chart.points],
                   "alarms": [{"index": h.index, "label": chart.points[h.index].label, "rule": h.rule, "text": h.text}
                              for h in chart.alarms]},
        "defect_types": {"defects": sum(b.parts for b in bars), "not_reviewed": not_reviewed,
                         "bars": [vars(b) for b in bars]},
        "by_week": by_week,
        "alarms": _alarms(db, t0, t1, line, station),
        "models": [{"product": p, "model_id": m, "registry_version": v, "parts": int(n), "first": iso_utc(a),
                    "last": iso_utc(b)} for p, m, v, n, a, b in sorted(models, key=lambda r: (-r[3], r[1]))],
    }


def _finite(x: float) -> float:
    # JSON has no infinity: a first NG on a chart whose centre is 0 is "off the chart" (as the p-chart route)
    return x if abs(x) != float("inf") else (1e9 if x > 0 else -1e9)


# -- the workbook ------------------------------------------------------------------------

_SHARE = "share (0-1)"      # xlsx.py writes no % format: shares are fractions, said in the heading


def _parse(t: Optional[str], zone: dt.tzinfo) -> Optional[dt.datetime]:
    """An ISO UTC answer as the plant's clock shows it (a typed time, its offset beside it)."""
    if not t:
        return None
    return dt.datetime.fromisoformat(t.replace("Z", "+00:00")).astimezone(zone)


def sheets(report: dict[str, Any], timezone: Optional[str]) -> list[tuple[str, list[str], list[list[Any]]]]:
    """The report as (sheet name, header, rows): Window, Summary, By day, Defect types,
    Models, By week, Alarms. Numbers are numbers, times are times on the plant's clocks, shares fractions."""
    zone = plant_zone(timezone)
    w = report["window"]
    window_rows = [["since", _parse(w["since"], zone)], ["until (exclusive)", _parse(w["until"], zone)],
                   ["time zone", w["timezone"]], ["line", w["line"] or "every line"],
                   ["station", w["station"] or "every station"], ["product", w["product"] or "every product"],
                   ["station PC", w["station_host"]], ["lineguard version", w["lineguard_version"]],
                   ["made at", _parse(w["made_at"], zone)], ["made by", w["made_by"] or "(open reads)"],
                   ["note", report["text"]]] + ([["records", w["records_incomplete"]]] if w["records_incomplete"]
                                                else [])
    summary_head = ["line", "parts judged", "OK", "NG", "REVIEW", "NG " + _SHARE,
                    "good parts scrapped " + _SHARE, "good parts scrapped (k)", "good parts made (n)", "estimate",
                    "rejected parts reviewed good " + _SHARE, "NG reviewed good (k)", "NG reviewed (n)",
                    "passed parts defective, audit " + _SHARE, "audited defects (k)", "audited OK reviewed (n)",
                    "one-sided upper bound " + _SHARE, "audited parts needed for the target",
                    "REVIEW parts", "REVIEW reviewed good (k)", "REVIEW reviewed (n)", "REVIEW good " + _SHARE,
                    "waiting for review", "NG waiting", "REVIEW waiting",
                    "passed parts found defective", "found by the audit sample", "found otherwise (downstream, "
                    "customer)"]

    def summary(name: str, r: dict[str, Any]) -> list[Any]:
        gs, fr, ea, rw, wt = (r["good_scrapped"], r["rejected_reviewed_good"], r["passed_defective_audit"],
                              r["review_workload"], r["waiting_for_review"])
        return [name, r["parts"], r["OK"], r["NG"], r["REVIEW"], r["ng_share"]["rate"], gs["rate"], gs["k"], gs["n"],
                gs["estimate"], fr["rate"], fr["k"], fr["n"], ea["rate"], ea["k"], ea["n"], ea["upper_bound"],
                ea["needed"], rw["parts"], rw["reviewed_good"], rw["reviewed"], rw["good_share"]["rate"],
                wt["parts"], wt["NG"], wt["REVIEW"], r["escapes"]["parts"], r["escapes"]["audit"],
                r["escapes"]["found_otherwise"]]
    summary_rows = [summary(ln["line"], ln) for ln in report["lines"]] + [
        summary(report["window"]["line"] or "all lines", report["total"])]
    by_day = report["by_day"]
    day_rows = [[_parse(p["start"], zone), p["label"], p["n"], p["ng"], p["p"], by_day["centre"], p["ucl"], p["lcl"],
                 p["z"], " ".join(map(str, p["rules"]))] for p in by_day["points"]]
    type_rows = [[b["defect_type"], b["parts"], b["caught"], b["at_review"], b["escaped"], b["share"],
                  b["cumulative"]] for b in report["defect_types"]["bars"]]
    week_rows = [[w["line"], p["week"], p["first_day"], p["last_day"], p["partial"], p["n"], p["ng"], p["p"],
                  w["centre"], p["ucl"], p["lcl"], p["z"], " ".join(map(str, p["rules"]))]
                 for w in report["by_week"] for p in w["points"]]
    alarm_rows = [[a["line"], a["station"], a["product"], a["kind"], _parse(a["raised_at"], zone), a["message"],
                   _parse(a["acked_at"], zone), a["acked_by"], a["cause_label"], a["note"]]
                  for a in report["alarms"]["items"]]
    model_rows = [[m["product"], m["model_id"], m["registry_version"], m["parts"], _parse(m["first"], zone),
                   _parse(m["last"], zone)] for m in report["models"]]
    return [("Window", ["item", "value"], window_rows),
            ("Summary", summary_head, summary_rows),
            ("By day", ["day starts", "day", "parts judged", "NG", "NG " + _SHARE, "centre " + _SHARE,
                        "upper limit " + _SHARE, "lower limit " + _SHARE, "z", "rules"], day_rows),
            ("Defect types", ["defect type", "parts", "judged NG", "judged REVIEW", "judged OK (escaped)",
                              _SHARE, "cumulative " + _SHARE], type_rows),
            ("Models", ["product", "model id", "registry version", "parts", "first part", "last part"], model_rows),
            # new sheets go last: a sheet's macros find the older ones where they were
            ("By week", ["line", "week", "first day", "last day", "partial week", "parts judged", "NG",
                         "NG " + _SHARE, "centre " + _SHARE, "upper limit " + _SHARE, "lower limit " + _SHARE, "z",
                         "rules"], week_rows),
            ("Alarms", ["line", "station", "product", "kind", "raised", "message", "acknowledged", "by",
                        "turned out to be", "note"], alarm_rows)]


def workbook(report: dict[str, Any], timezone: Optional[str]) -> bytes:
    """The report as .xlsx bytes (a month's report is a few hundred rows)."""
    buf = io.BytesIO()
    xlsx.write_workbook(buf, sheets(report, timezone))
    return buf.getvalue()
