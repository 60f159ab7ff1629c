"""The report of a period (a month, as a plant sends its customer): what the lines made,
scrapped, let through and still owe a review, on one page or one workbook.

Assembled from the very functions the SPC endpoints answer with (``spc_data`` counts,
``spc`` maths), each over one window, so the report's numbers are those the SPC page
shows for the same since/until/line/product: the share of good parts scrapped is
``spc.review_rates``' ``good_scrapped`` (an estimate while NG parts wait for review,
said so), the defective share of passed parts the random audit sample's, the p-chart
the p-chart route's by day. A quality manager combined five endpoints by hand, each
with its own default window and CSV format, to write the month's report. One difference:
where the record keeper deleted the window's first parts, the report's reviews are
counted from its cutoff too (the review-rates route reads them over the whole window),
so that each count of a report is of the same parts.
"""
from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from typing import Any, Optional

from sqlalchemy import and_, case, func, or_, select

from . import alarm_causes, spc, xlsx
from .db import Database
from .orm import Inspection, LineAlarm, iso_utc, utcnow
from .part_names import folded, station_is, stored_names
from .shifts import plant_zone, wall_to_utc
from .spc_data import (FOUND_OTHERWISE, Filters, Periods, _where, audit_ok_counts, defect_subgroups,
                       defect_type_counts, escape_places_text, escapes_found_otherwise_by,
                       kept_filters, naive_utc, no_verdict_counts, refuse_backwards, rejected_never_judged,
                       review_counts, said, verdict_counts)
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
    until_given = until is not None
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
    refuse_backwards(since, until, until_given, zone)
    if until - since > dt.timedelta(days=MAX_DAYS):
        raise InvalidRequest(f"since ({said(since, zone)}) to until ({said(until, zone)}) is longer than {MAX_DAYS} "
                             "days: send a shorter window (a month: since=2026-11-01&until=2026-11-30), or take "
                             "the parts export for longer")
    return since, until


def _share(k: Any, n: Any) -> dict[str, Any]:
    """A share next to its counts: {rate, k, n, text "k of n"}; rate null when n is 0."""
    return {"rate": (k / n) if n else None, "k": k, "n": n, "text": f"{_num_text(k)} of {_num_text(n)}"}


def _num_text(x: Any) -> str:
    return "?" if x is None else f"{x:.1f}" if isinstance(x, float) and not float(x).is_integer() else f"{int(x)}"


def _line_numbers(db: Database, kept: Filters, audit_rate: float,
                  no_verdict: tuple[int, int] = (0, 0)) -> dict[str, Any]:
    """One line's (or every line's) counts and rates over the window ``kept``, from the
    records all kept: its reviews too, though the reviewed parts before it are kept, so
    every count is of the same parts (the reviews of a month the record keeper had emptied
    said "1750 of 3094 NG parts reviewed were good" beside 0 parts judged, and a month
    across the cutoff more REVIEW parts reviewed than it had); ``no_verdict``: the parts
    the PLC rejected without a verdict and how many of them were judged later
    (:func:`_no_verdict_by_line`)."""
    parts = verdict_counts(db, kept)
    rr = spc.review_rates(review_counts(db, kept), audit=audit_ok_counts(db, kept), parts=parts,
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
    # ...and those by where they were found (an 8D report's and the customer's question);
    # an audit-sample part whose review names another place (the customer's) counts there
    found_by = escapes_found_otherwise_by(db, kept)
    found_otherwise = sum(found_by.values())
    found_by_audit = max(0, int(es["k"]) - found_otherwise)
    where_found = escape_places_text(found_by)
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
        "escapes": {"parts": int(es["k"]), "audit": found_by_audit, "found_otherwise": found_otherwise,
                    "found_otherwise_by": found_by,
                    "text": f"{int(es['k'])} passed parts reviewed as defects: {found_by_audit} found by the audit "
                            f"sample, {found_otherwise} found otherwise"
                            + (f" ({where_found})" if where_found else "")},
        "review_workload": {"parts": get("REVIEW"), "reviewed_good": band["good"],
                            "reviewed": band["good"] + band["defect"],
                            "good_share": _share(band["good"], band["good"] + band["defect"])},
        "waiting_for_review": {"parts": waiting_ng + waiting_review, "NG": waiting_ng, "REVIEW": waiting_review},
        # scrapped whatever the model would have said, and not among the parts above unless
        # judged later: the shift reports' no_verdict, summed
        "no_verdict": {"parts": no_verdict[0], "judged_later": no_verdict[1],
                       "never_judged": no_verdict[0] - no_verdict[1],
                       "text": f"{no_verdict[0]} parts rejected by the PLC without a verdict in time ({no_verdict[1]} "
                               f"judged later, among the parts above; {no_verdict[0] - no_verdict[1]} never judged)"},
    }


def _no_verdict_by_line(db: Database, t0: dt.datetime, t1: dt.datetime, line: Optional[str],
                        station: Optional[str], product: Optional[str]) -> dict[str, tuple[int, int]]:
    """Per line, the parts the PLC rejected without a verdict in the window (line_signals,
    by the trigger's time) and how many were judged after their window: counted as the
    shift report counts them (spc_data.no_verdict_counts), so a month's is the sum of its
    shifts'. Not clipped at the records kept: the shift report is not either. ``station``
    as the report's other counts take it, in any case."""
    with db.session() as s:
        counts = no_verdict_counts(s, Filters(line=line, product=product, since=t0, until=t1))
    out: dict[str, tuple[int, int]] = {}
    for (ln, st), (n, late) in counts.items():
        if station and not (st == station or folded(st) == folded(station.strip())):
            continue
        had = out.get(ln, (0, 0))
        out[ln] = (had[0] + n, had[1] + late)
    return out


def _by_week(db: Database, f: Filters, periods: Periods, name: str) -> dict[str, Any]:
    """One line's (or every line's) p-chart by the plant's calendar week (ISO 8601, Monday
    first: the week a plant and its customer number, "KW 41"): the day subgroups, summed per
    week. A week the window cuts (a month starts and ends mid-week) is ``partial`` and names
    the days it holds, so a short first week is not read as a quiet one."""
    weeks: dict[tuple[int, int], list[Any]] = {}
    for g in defect_subgroups(db, f, "day", periods):
        day = dt.date.fromisoformat(g.label)
        acc = weeks.setdefault(day.isocalendar()[:2], [g.start, day, 0, 0])
        acc[2] += g.n
        acc[3] += g.defects
    chart = spc.p_chart([spc.Subgroup(f"{y}-W{w:02d}", a[0], a[2], a[3]) for (y, w), a in sorted(weeks.items())])
    spans = [a for _, a in sorted(weeks.items()) if a[2]]
    # a week is whole when the window holds its Monday and Sunday, whether or not the line ran each day
    first, last = (f.since, f.until - dt.timedelta(microseconds=1)) if f.since and f.until else (None, None)
    zone = periods.zone
    lo, hi = ((first.replace(tzinfo=dt.timezone.utc).astimezone(zone).date(),
               last.replace(tzinfo=dt.timezone.utc).astimezone(zone).date()) if first and last else (None, None))

    def days(a: list[Any]) -> tuple[dt.date, dt.date]:
        # the days of the week the window holds, whether or not the line ran each: they were
        # the first and last days with parts (December's W49, Dec 1-6, read Dec 2-4)
        mon = a[1] - dt.timedelta(days=a[1].weekday())
        sun = mon + dt.timedelta(days=6)
        return (max(mon, lo), min(sun, hi)) if lo and hi else (mon, sun)

    def whole(a: list[Any]) -> bool:
        return days(a) == (a[1] - dt.timedelta(days=a[1].weekday()),
                           a[1] + dt.timedelta(days=6 - a[1].weekday()))
    return {"line": name, "centre": chart.centre, "parts": sum(p.n for p in chart.points),
            "ng": sum(p.defects for p in chart.points),
            "points": [{"week": p.label, "start": iso_utc(p.start), "first_day": days(a)[0].isoformat(),
                        "last_day": days(a)[1].isoformat(), "partial": not whole(a), "n": p.n, "ng": p.defects,
                        "p": p.p,
                        "ucl": p.ucl, "lcl": p.lcl, "z": _finite(p.z), "rules": p.rules}
                       for p, a in zip(chart.points, spans)],
            "alarms": [{"index": h.index, "week": chart.points[h.index].label, "rule": h.rule, "text": h.text}
                       for h in chart.alarms]}


def _alarms(db: Database, t0: dt.datetime, t1: dt.datetime, line: Optional[str],
            station: Optional[str], now: Optional[dt.datetime] = None) -> dict[str, Any]:
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
    # an alarm still active waited, in this report, until the window's end: counted to now,
    # a past month's report said its alarm waited more every time it was made
    end = min(t1, now or utcnow())
    for a, item in zip(rows, items):
        item["waiting_min"] = round(max(0.0, (end - a.raised_at).total_seconds()) / 60, 1) \
            if a.acked_at is None else None
    if out.get("oldest_active_waiting_min") is not None:
        q = select(func.min(LineAlarm.raised_at)).where(LineAlarm.raised_at >= t0, LineAlarm.raised_at < t1,
                                                        LineAlarm.acked_at.is_(None))
        if line:
            q = q.where(LineAlarm.line == line)
        if station:
            q = q.where(station_is(LineAlarm.station, station))
        with db.session() as s:
            oldest = s.scalar(q)
        if oldest is not None:
            wait = round(max(0.0, (end - oldest).total_seconds()) / 60, 1)
            out["oldest_active_waiting_min"] = wait
            out["oldest_active_waiting_until"] = iso_utc(end)
            out["oldest_active_text"] = (
                f"the oldest alarm not acknowledged had waited {wait} min by "
                + ("the window's end" if end == t1 else "now") + " (raised " + (iso_utc(oldest) or "")
                + "), and is still active now")
    out["items"] = items
    out["more"] = len(rows) > MAX_ALARMS
    return out


# -- the month's test-part verification ---------------------------------------------------

# the station-shifts not passed listed one by one (counted all the same)
MAX_NOT_PASSED = 2000
# a shift's entries on a line read as the worst of them: the line's shift passed only when
# each of its stations (and products) did
_WORST = {"failed": 3, "due": 2, "incomplete": 1, "passed": 0}


def _verification(db: Database, t0: dt.datetime, t1: dt.datetime, now: dt.datetime, shift_starts: Any,
                  zone: dt.tzinfo, line: Optional[str], station: Optional[str],
                  product: Optional[str]) -> dict[str, Any]:
    """Each shift that started in the window (a shift belongs to the day it started), as
    GET /api/v1/verification answers it one shift at a time (test_parts.verification: a
    month was ~93 calls): the shifts with test parts registered per line, station and
    product, how many ended passed / incomplete / due / failed, and those not passed with
    their start on the plant's clock. Read in one pass: the month's test parts, its checks
    (and each test part's last check before it), and the station's parts counted by 15-minute
    slot and model and photo size; each shift's state is then test_parts' own
    (station_entry) over those rows, with no query a shift."""
    from .orm import TestPart
    from .shifts import parse_shift_starts, shift_of
    from .spc_data import slot_expr, slot_seconds
    # the verification's own pieces, so a month says what each shift's call says
    from .test_parts import LEAD, CHECK_COLUMNS, active_for, active_models, Judging, station_entry
    starts = parse_shift_starts(shift_starts) if shift_starts else ()
    stop = min(t1, now)
    shifts = []
    sh = shift_of(t0, starts, zone)
    if sh.start_utc < t0:
        sh = shift_of(sh.end_utc, starts, zone)
    while sh.start_utc < stop:
        shifts.append(sh)
        sh = shift_of(sh.end_utc, starts, zone)
    out: dict[str, Any] = {"shifts": len(shifts), "lines": [], "not_passed": [], "more": False}
    if not shifts:
        return out
    first_opened, last_end = shifts[0].start_utc - LEAD, min(shifts[-1].end_utc, now)
    with db.session() as s:
        q = select(TestPart).where(TestPart.created_at < last_end,
                                   (TestPart.retired_at.is_(None)) | (TestPart.retired_at > shifts[0].start_utc))
        if product:
            q = q.where(TestPart.product == product)
        tps = list(s.scalars(q.order_by(TestPart.product, TestPart.name)))
        for tp in tps:
            s.expunge(tp)
        if not tps:
            out["text"] = "no test parts were registered in the window"
            return out
        mine = [Inspection.product.in_(sorted({tp.product for tp in tps}))]
        if line:
            mine.append(Inspection.line == line)
        if station:
            mine.append(station_is(Inspection.station, station))
        is_check = Inspection.test_part.in_(sorted({tp.name for tp in tps}))
        # each test part's last check before the first shift opened (a wrong one stands until
        # put right), then every check of the window in time order
        last = (select(Inspection.line, Inspection.station, Inspection.product, Inspection.test_part,
                       func.max(Inspection.created_at).label("at"))
                .where(*mine, is_check, Inspection.created_at < first_opened)
                .group_by(Inspection.line, Inspection.station, Inspection.product, Inspection.test_part).subquery())
        checks = list(s.execute(CHECK_COLUMNS.join(last, and_(Inspection.line == last.c.line,
                                                       Inspection.station == last.c.station,
                                                       Inspection.product == last.c.product,
                                                       Inspection.test_part == last.c.test_part,
                                                       Inspection.created_at == last.c.at))
                                .order_by(Inspection.created_at, Inspection.id)))
        checks += list(s.execute(CHECK_COLUMNS.where(*mine, is_check, Inspection.created_at >= first_opened,
                                              Inspection.created_at < last_end)
                                 .order_by(Inspection.created_at, Inspection.id)))
        # the station's parts by slot (shift starts and the half hour's lead fall on slot
        # edges, as the SPC charts' periods do), by the model and photo size each was judged with
        slot_s = slot_seconds(starts or parse_shift_starts(("06:00",)))
        slot = slot_expr(db, slot_s).label("slot")
        slots = s.execute(
            select(Inspection.line, Inspection.station, Inspection.product, Inspection.model_id,
                   Inspection.registry_version, Inspection.image_width, Inspection.image_height, slot,
                   func.sum(case((Inspection.test_part.is_(None), 1), else_=0)).label("n"),
                   func.min(Inspection.created_at).label("first"), func.max(Inspection.created_at).label("last"))
            .where(*mine, Inspection.created_at >= first_opened, Inspection.created_at < last_end)
            .group_by(Inspection.line, Inspection.station, Inspection.product, Inspection.model_id,
                      Inspection.registry_version, Inspection.image_width, Inspection.image_height, slot)).all()
        # the shift running now is judged by the model active now (as the verification's)
        active = active_models(s, sorted({tp.product for tp in tps})) if now < shifts[-1].end_utc else {}
    epoch = dt.datetime(1970, 1, 1)
    by_slot = sorted(((epoch + dt.timedelta(seconds=int(r.slot) * slot_s), r) for r in slots), key=lambda x: x[0])
    entries: list[tuple[Any, dict[str, Any]]] = []
    before: dict[tuple[str, str, str, str], Any] = {}     # (line, station, product, test part): its last check
    ci = si = 0
    for sh in shifts:
        start, end = sh.start_utc, min(sh.end_utc, now)
        opened = start - LEAD
        registered: dict[str, list[Any]] = {}
        for tp in tps:
            if tp.created_at < end and (tp.retired_at is None or tp.retired_at > start):
                registered.setdefault(tp.product, []).append(tp)
        while ci < len(checks) and checks[ci].created_at < opened:
            c = checks[ci]
            before[(c.line, c.station, c.product, c.test_part)] = c
            ci += 1
        while si < len(by_slot) and by_slot[si][0] < opened:
            si += 1
        if not registered:
            continue
        names = {p: {tp.name for tp in ps} for p, ps in registered.items()}
        every_name = set().union(*names.values())
        now_checks: dict[tuple[str, str, str], list[Any]] = {}
        j = ci
        while j < len(checks) and checks[j].created_at < end:
            c = checks[j]
            if c.product in registered and c.test_part in every_name:
                now_checks.setdefault((c.line, c.station, c.product), []).append(c)
            j += 1
        carried: dict[tuple[str, str, str], list[Any]] = {}
        for (ln, st, pr, name), c in before.items():
            if pr in registered and name in every_name:
                carried.setdefault((ln, st, pr), []).append(c)
        for rows in carried.values():
            rows.sort(key=lambda c: (c.created_at, c.id))
        ran: dict[tuple[str, str, str], int] = {}
        groups: dict[tuple[Any, ...], list[Any]] = {}
        j = si
        while j < len(by_slot) and by_slot[j][0] < end:
            at, r = by_slot[j]
            j += 1
            if r.product not in registered:
                continue
            key = (r.line, r.station, r.product)
            g = groups.setdefault(key + (r.model_id, r.registry_version, r.image_width, r.image_height),
                                  [0, r.first, r.last])
            g[1], g[2] = min(g[1], r.first), max(g[2], r.last)
            if at >= start and r.n:
                g[0] += int(r.n)
                ran[key] = ran.get(key, 0) + int(r.n)
        judged: dict[tuple[str, str, str], list[Any]] = {}
        for k, (n, f, la) in groups.items():
            judged.setdefault(k[:3], []).append(_Group(k[3], k[4], k[5], k[6], n, f, la))
        failed_before = {k for k, rows in carried.items()
                         if any(c.verdict != c.test_expected and c.test_part in names[k[2]] for c in rows)}
        for key in sorted(set(ran) | set(now_checks) | failed_before):
            # no session and 0 parts made: the state alone, read from the rows above (the parts
            # made before a set passed, and failures' parts in doubt, are the shift's own call's)
            state = station_entry(None, key, registered[key[2]], now_checks.get(key, []), carried.get(key, []),
                                   0, start, end, now, False,
                                   Judging(judged.get(key, []), active_for(active, key[2], key[0])))
            if state["test_parts"]:
                entries.append((sh, state))

    def local(t: dt.datetime) -> str:
        return t.replace(tzinfo=dt.timezone.utc).astimezone(zone).isoformat()

    def counts() -> dict[str, Any]:
        return {"shifts": 0, "passed": 0, "incomplete": 0, "due": 0, "failed": 0}
    per_line: dict[str, dict[str, Any]] = {}
    per_station: dict[tuple[str, str, str], dict[str, Any]] = {}
    line_shift: dict[tuple[str, dt.datetime], str] = {}
    for sh, v in entries:
        acc = per_station.setdefault((v["line"], v["station"], v["product"]), counts())
        acc["shifts"] += 1
        acc[v["state"]] += 1
        k = (v["line"], sh.start_utc)
        if k not in line_shift or _WORST[v["state"]] > _WORST[line_shift[k]]:
            line_shift[k] = v["state"]
        if v["state"] != "passed":
            if len(out["not_passed"]) >= MAX_NOT_PASSED:
                out["more"] = True
                continue
            missed = [t["name"] for t in v["test_parts"] if not t["this_shift"] or t["before_change"]]
            wrong = [f"{t['name']} judged {t['verdict']}, must be {t['expected']}" for t in v["test_parts"]
                     if t["right"] is False]
            said = "; ".join(wrong + ([f"not put through: {', '.join(missed)}"] if missed and not wrong else []))
            out["not_passed"].append({"line": v["line"], "station": v["station"], "product": v["product"],
                                      "shift": sh.label, "start": iso_utc(sh.start_utc),
                                      "start_plant": local(sh.start_utc), "state": v["state"],
                                      "test_parts": said, "reason": v["reason"]})
    for (ln, _), state in line_shift.items():
        acc = per_line.setdefault(ln, counts())
        acc["shifts"] += 1
        acc[state] += 1
    out["lines"] = [{"line": ln, **acc,
                     "stations": [{"station": st, "product": pr, **a} for (l2, st, pr), a in sorted(per_station.items())
                                  if l2 == ln]}
                    for ln, acc in sorted(per_line.items())]
    out["text"] = "; ".join(f"{ln['line']}: {ln['passed']} of {ln['shifts']} shifts with test parts verified"
                            + "".join(f", {ln[k]} {k}" for k in ("failed", "due", "incomplete") if ln[k])
                            for ln in out["lines"]) or "no shift had test parts to put through"
    return out


@dataclass(frozen=True)
class _Group:
    """A station's parts in a shift judged by one model and photo size, as test_parts'
    verification reads them (``n``: its own parts from the shift's start)."""
    model_id: str
    registry_version: Optional[int]
    image_width: Any
    image_height: Any
    n: int
    first: dt.datetime
    last: dt.datetime


# -- the month's model changes ------------------------------------------------------------

# a change-log entry is written in the activation's (the rollback's) own transaction, just after it
_LOGGED_WITHIN = dt.timedelta(minutes=1)


def _model_changes(db: Database, t0: dt.datetime, t1: dt.datetime, line: Optional[str],
                   product: Optional[str], zone: dt.tzinfo) -> list[dict[str, Any]]:
    """The window's activations and rollbacks (model_activations), oldest first: when, which
    version, by whom, forced or not and the change log's words (the trials' warnings, the
    forced text), so a reader sees what changed in the judging and why, not only which
    models judged parts. A line's list holds the product's model of every line too."""
    from .orm import ChangeLogEntry, ModelActivation, ModelVersion
    with db.session() as s:
        q = select(ModelActivation, ModelVersion).join(ModelVersion,
                                                       ModelVersion.id == ModelActivation.model_version_id)
        if product:
            q = q.where(ModelActivation.product == product)
        if line:
            q = q.where(ModelActivation.line.in_([line, ""]))
        acts = s.execute(q.where(or_(and_(ModelActivation.activated_at >= t0, ModelActivation.activated_at < t1),
                                     and_(ModelActivation.rolled_back_at >= t0, ModelActivation.rolled_back_at < t1)))
                         .order_by(ModelActivation.activated_at, ModelActivation.id)).all()
        logged = list(s.scalars(select(ChangeLogEntry).where(
            ChangeLogEntry.action.in_(["model.activated", "model.rolled_back"]), ChangeLogEntry.at >= t0,
            ChangeLogEntry.at < t1 + _LOGGED_WITHIN).order_by(ChangeLogEntry.at, ChangeLogEntry.id)))
        for e in logged:
            s.expunge(e)
        rows = [(a.id, a.product, a.line, a.activated_at, a.activated_by, a.rolled_back_at, a.rolled_back_by,
                 mv.version, mv.model_id, mv.note) for a, mv in acts]

    def entry(action: str, at: dt.datetime, subject: Any) -> Optional[Any]:
        for e in logged:
            if e.action == action and at <= e.at <= at + _LOGGED_WITHIN and subject(e.subject):
                logged.remove(e)     # each entry words one change
                return e
        return None

    def local(t: dt.datetime) -> str:
        return t.replace(tzinfo=dt.timezone.utc).astimezone(zone).isoformat()

    def where(p: str, ln: str) -> str:
        return f"{p} on {ln}" if ln else f"{p} on every line"
    out = []
    for _id, p, ln, at, by, back_at, back_by, version, model_id, note in rows:
        if not t0 <= at < t1:
            continue
        subject = f"{p}/{ln or '*'} v{version}"
        e = entry("model.activated", at, lambda x, subject=subject: x == subject)
        d = (e.details or {}) if e is not None else {}
        forced = d.get("forced")
        words = "; ".join(str(w) for w in (f"forced: {forced}" if forced else None, d.get("unshadowed"),
                                           d.get("shadow")) if w)
        out.append({"at": iso_utc(at), "at_plant": local(at), "change": "activated", "product": p, "line": ln,
                    "version": version, "model_id": model_id, "by": by, "forced": bool(forced),
                    "forced_text": forced, "words": words or None, "note": note, "undone": None,
                    "text": f"{where(p, ln)}: version {version} made active by {by or 'unknown'}"
                            + (f" (forced: {forced})" if forced else "")})
    # one rollback marks every activation it walks past with one time: told once
    undone: dict[tuple[str, str, dt.datetime], list[Any]] = {}
    for r in rows:
        if r[5] is not None and t0 <= r[5] < t1:
            undone.setdefault((r[1], r[2], r[5]), []).append(r)
    for (p, ln, at), rs in undone.items():
        head = f"{p}/{ln or '*'}"
        e = entry("model.rolled_back", at, lambda x, head=head: x == head or x.startswith(head + " v"))
        d = (e.details or {}) if e is not None else {}
        versions = sorted({r[7] for r in rs})
        back = d.get("back_to") or (e.subject if e is not None and e.subject != head else None)
        words = "; ".join(str(w) for w in (d.get("shadow"),) if w)
        by = rs[0][6]
        out.append({"at": iso_utc(at), "at_plant": local(at), "change": "rolled back", "product": p, "line": ln,
                    "version": None, "model_id": None, "by": by, "forced": False, "forced_text": None,
                    "words": words or None, "note": None, "undone": versions, "back_to": back,
                    "text": f"{where(p, ln)}: version {', '.join(map(str, versions))} rolled back by "
                            f"{by or 'unknown'}" + (f", back to {back}" if back else "")})
    out.sort(key=lambda c: c["at"])
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

    def over(ln: Optional[str]) -> Filters:
        # the SPC routes' own clipping: counts of every part start at the records kept, and
        # the report's reviews with them (see _line_numbers)
        return kept_filters(t0, t1, kept_since, line=ln, station=station, product=product)

    # the PLC's answers before the cutoff went with the parts (line.record_keeper)
    no_verdict = _no_verdict_by_line(db, over(None).since or t0, t1, line, station, product)
    total = _line_numbers(db, over(line), audit_rate,
                          (sum(n for n, _ in no_verdict.values()), sum(k for _, k in no_verdict.values())))
    lines = []
    # a line whose only parts in the window were rejected without a verdict is listed too
    names = [line] if line else stored_names(db, "line")
    for ln in names + [ln for ln in sorted(no_verdict) if ln not in names]:
        numbers = _line_numbers(db, over(ln), audit_rate, no_verdict.get(ln, (0, 0)))
        if numbers["parts"] or numbers["rejected_reviewed_good"]["n"] or numbers["passed_defective_audit"]["n"] \
                or numbers["no_verdict"]["parts"]:
            lines.append({"line": ln, **numbers})

    # the p-chart by day, as GET /api/v1/spc/p-chart?by=day draws it (centre from the window)
    chart = spc.p_chart(defect_subgroups(db, over(line), "day", Periods("day", shift_starts, timezone)))
    type_counts, not_reviewed = defect_type_counts(db, over(line))
    # the defect rate per line and week, and of every line together (the customer's chart)
    days = Periods("day", shift_starts, timezone)
    by_week = [_by_week(db, over(ln["line"]), days, ln["line"]) for ln in lines]
    if not line:
        by_week.append(_by_week(db, over(None), days, "all lines"))
    bars = spc.pareto(type_counts)
    # the same Pareto for each line alone: the lines' defects differ (one line's press makes
    # the cracks), and all lines summed hid it unless each was asked for in its own report
    by_line_types = []
    for ln in lines:
        counts, waiting = defect_type_counts(db, over(ln["line"]))
        line_bars = spc.pareto(counts)
        by_line_types.append({"line": ln["line"], "defects": sum(b.parts for b in line_bars),
                              "not_reviewed": waiting, "bars": [vars(b) for b in line_bars]})
    # the models that judged the window's parts, named as the shift report names them
    with db.session() as s:
        models = s.execute(select(Inspection.product, Inspection.model_id, Inspection.registry_version,
                                  func.count(), func.min(Inspection.created_at), func.max(Inspection.created_at))
                           .where(*_where(over(line)))
                           .group_by(Inspection.product, Inspection.model_id, Inspection.registry_version)).all()

    def local(t: dt.datetime) -> str:
        try:
            return t.replace(tzinfo=dt.timezone.utc).astimezone(zone).isoformat()
        except OverflowError:     # at the calendar's end the plant's clock has no such day: UTC
            return iso_utc(t) or ""

    def clock(t: dt.datetime) -> str:
        return f"{dt.datetime.fromisoformat(local(t)):%Y-%m-%d %H:%M}"
    empty = total["parts"] == 0
    deleted = kept_since is not None and t0 < kept_since
    if not empty:
        said = f"{total['parts']} parts judged, {total['NG']} NG, {total['REVIEW']} REVIEW"
    elif deleted and kept_since >= t1:
        # "no part was judged" of a month the line ran, whose parts the record keeper deleted
        said = (f"the parts of this window were deleted by the record keeper: parts recorded before "
                f"{clock(kept_since)} ({getattr(zone, 'key', str(zone))}) are no longer kept, so there is "
                "nothing to report (choose a window from then on)")
    elif deleted:
        said = (f"no part was judged from {clock(kept_since)} ({getattr(zone, 'key', str(zone))}), where the records "
                "kept start, to the window's end: the parts before were deleted by the record keeper, so there is "
                "nothing to report")
    else:
        said = "no part was judged in this window: nothing to report (choose the window when the line ran)"
    return {
        # what the report covers and who made it when: the lines a customer reads first
        "window": {"since": iso_utc(t0), "until": iso_utc(t1), "since_plant": local(t0), "until_plant": local(t1),
                   "timezone": getattr(zone, "key", str(zone)), "line": line, "station": station, "product": product,
                   "station_host": station_host, "lineguard_version": version, "made_at": iso_utc(now),
                   "made_by": made_by,
                   # a month issued before it ended read as the whole month to the customer
                   # since alone stops at today's 00:00 (whole plant days: the same window all day, so
                   # a second issue of it is its next revision), and says so: the p-chart over the same
                   # since counted today's parts too, and the report's 66 beside its 69 was unexplained
                   "today_left_out": (f"until today's 00:00 ({clock(t1)}, {getattr(zone, 'key', str(zone))}): no "
                                      "until was given and the report holds whole plant days, so today's parts are "
                                      f"not in it; send until={local(t1)[:10]} for today so far")
                   if until is None and since is not None and t1 < now else None,
                   "still_running": None if t1 <= now else
                   f"the window runs until {clock(t1)}: made at {clock(now)} ({getattr(zone, 'key', str(zone))}), "
                   "this report leaves out the parts still to come",
                   "records_incomplete": None if kept_since is None or t0 >= kept_since else
                   f"parts recorded before {iso_utc(kept_since)} are no longer kept (only reviewed parts, the audit "
                   "sample and test-part checks are): every count of this report starts there, its reviews too"},
        "empty": empty,
        "text": said,
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
        "defect_types_by_line": by_line_types,
        "by_week": by_week,
        "alarms": _alarms(db, t0, t1, line, station, now),
        "models": [{"product": p, "model_id": m, "registry_version": v, "parts": int(n), "first": iso_utc(a),
                    "last": iso_utc(b)} for p, m, v, n, a, b in sorted(models, key=lambda r: (-r[3], r[1]))],
        # what changed in the judging and why: activations and rollbacks, not only the models seen
        "model_changes": _model_changes(db, t0, t1, line, product, zone),
        # each shift's test-part verification, as GET /api/v1/verification answers it a shift at a time
        "verification": _verification(db, t0, t1, now, shift_starts, zone, line, station, product),
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


def sheets(report: dict[str, Any], timezone: Optional[str],
           issued: Optional[dict[str, Any]] = None) -> list[tuple[str, list[str], list[list[Any]]]]:
    """The report as (sheet name, header, rows): Window, Summary, By day, Defect types,
    Models, By week, Alarms, Verification, Verification not passed, Model changes, Defect
    types by line. Numbers are
    numbers, times are times on the plant's clocks, shares fractions. ``issued``: the
    header of the issued report this is (line.issued_reports), said on the Window sheet."""
    zone = plant_zone(timezone)
    w = report["window"]
    window_rows = [["since", _parse(w["since"], zone)], ["until (exclusive)", _parse(w["until"], zone)],
                   ["time zone", w["timezone"]], ["line", w["line"] or "every line"],
                   ["station", w["station"] or "every station"], ["product", w["product"] or "every product"],
                   ["station PC", w["station_host"]], ["lineguard version", w["lineguard_version"]],
                   ["made at", _parse(w["made_at"], zone)], ["made by", w["made_by"] or "(open reads)"],
                   ["note", report["text"]]]
    # .get: a report issued before the window said whether it was still running
    window_rows += [["window", w["still_running"]]] if w.get("still_running") else []
    window_rows += [["window", w["today_left_out"]]] if w.get("today_left_out") else []
    window_rows += [["records", w["records_incomplete"]]] if w["records_incomplete"] else []
    # n is estimated too while NG parts wait (every part less the NG taken as defects at the
    # reviewed ones' share): 103.57 read as a count under "(n)". Said here, not in the Summary's
    # heading: sheets that look a column up by its heading (Power Query) lost it when renamed
    estimated = [ln["line"] for ln in report["lines"] if (ln.get("good_scrapped") or {}).get("estimate")]
    window_rows += [["good parts made", f"estimated where the Summary's estimate is TRUE ({', '.join(estimated)}): "
                     "NG parts there still wait for review, so good parts made (n) and good parts scrapped (k) are "
                     "estimates (the reviewed NG parts' good share taken for all), not counts; review every NG part "
                     "for a count"]] if estimated else []
    window_rows += _issued_rows(issued, zone)
    summary_head = ["line", "parts judged", "OK", "NG", "REVIEW", "NG " + _SHARE,
                    "good parts scrapped " + _SHARE, "good parts scrapped (k)", "good parts made (n)", "estimate",
                    "rejected parts reviewed good " + _SHARE, "NG reviewed good (k)", "NG reviewed (n)",
                    "passed parts defective, audit " + _SHARE, "audited defects (k)", "audited OK reviewed (n)",
                    "one-sided upper bound " + _SHARE, "audited parts needed for the target",
                    "REVIEW parts", "REVIEW reviewed good (k)", "REVIEW reviewed (n)", "REVIEW good " + _SHARE,
                    "waiting for review", "NG waiting", "REVIEW waiting",
                    "passed parts found defective", "found by the audit sample", "found otherwise (downstream, "
                    "customer)",
                    # new columns at the end: a sheet's macros read the columns by position
                    "rejected by the PLC without a verdict", "of them judged later", "never judged"] + [
                    f"found otherwise: {words}" for words in FOUND_OTHERWISE.values()]

    def summary(name: str, r: dict[str, Any]) -> list[Any]:
        gs, fr, ea, rw, wt = (r["good_scrapped"], r["rejected_reviewed_good"], r["passed_defective_audit"],
                              r["review_workload"], r["waiting_for_review"])
        return [name, r["parts"], r["OK"], r["NG"], r["REVIEW"], r["ng_share"]["rate"], gs["rate"], gs["k"], gs["n"],
                gs["estimate"], fr["rate"], fr["k"], fr["n"], ea["rate"], ea["k"], ea["n"], ea["upper_bound"],
                ea["needed"], rw["parts"], rw["reviewed_good"], rw["reviewed"], rw["good_share"]["rate"],
                wt["parts"], wt["NG"], wt["REVIEW"], r["escapes"]["parts"], r["escapes"]["audit"],
                r["escapes"]["found_otherwise"], r["no_verdict"]["parts"], r["no_verdict"]["judged_later"],
                r["no_verdict"]["never_judged"]] + [r["escapes"]["found_otherwise_by"][k] for k in FOUND_OTHERWISE]
    # a report of one line: its totals are that line's row, not a second row of the same
    # numbers under the same name (a column's sum doubled)
    one_line = report["window"]["line"] and len(report["lines"]) == 1
    summary_rows = [summary(ln["line"], ln) for ln in report["lines"]] + (
        [] if one_line else [summary(report["window"]["line"] or "all lines", report["total"])])
    by_day = report["by_day"]
    day_rows = [[_parse(p["start"], zone), p["label"], p["n"], p["ng"], p["p"], by_day["centre"], p["ucl"], p["lcl"],
                 p["z"], " ".join(map(str, p["rules"]))] for p in by_day["points"]]
    type_rows = [[b["defect_type"], b["parts"], b["caught"], b["at_review"], b["escaped"], b["share"],
                  b["cumulative"]] for b in report["defect_types"]["bars"]]
    line_type_rows = [[ln["line"], b["defect_type"], b["parts"], b["caught"], b["at_review"], b["escaped"], b["share"],
                       b["cumulative"]] for ln in report["defect_types_by_line"] for b in ln["bars"]]
    week_rows = [[w["line"], p["week"], p["first_day"], p["last_day"], p["partial"], p["n"], p["ng"], p["p"],
                  w["centre"], p["ucl"], p["lcl"], p["z"], " ".join(map(str, p["rules"]))]
                 for w in report["by_week"] for p in w["points"]]
    alarm_rows = [[a["line"], a["station"], a["product"], a["kind"], _parse(a["raised_at"], zone), a["message"],
                   _parse(a["acked_at"], zone), a["acked_by"], a["cause_label"], a["note"], a["waiting_min"]]
                  for a in report["alarms"]["items"]]
    model_rows = [[m["product"], m["model_id"], m["registry_version"], m["parts"], _parse(m["first"], zone),
                   _parse(m["last"], zone)] for m in report["models"]]
    ver = report["verification"]
    verification_rows = [[ln["line"], st["station"], st["product"], st["shifts"], st["passed"], st["incomplete"],
                          st["due"], st["failed"]] for ln in ver["lines"] for st in ln["stations"]] + [
        [ln["line"], "every station", "every product", ln["shifts"], ln["passed"], ln["incomplete"], ln["due"],
         ln["failed"]] for ln in ver["lines"]]
    missed_rows = [[v["line"], v["station"], v["product"], v["shift"], _parse(v["start"], zone), v["state"],
                    v["test_parts"], v["reason"]] for v in ver["not_passed"]]
    change_rows = [[c["product"], c["line"] or "every line", _parse(c["at"], zone), c["change"],
                    c["version"] if c["version"] is not None else ", ".join(map(str, c["undone"] or [])),
                    c.get("back_to"), c["model_id"], c["by"], c["forced"], c["forced_text"], c["words"], c["note"]]
                   for c in report["model_changes"]]
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
                        "turned out to be", "note", "waiting at the window's end (min; still active)"], alarm_rows),
            ("Verification", ["line", "station", "product", "shifts with test parts", "passed", "incomplete", "due",
                              "failed"], verification_rows),
            ("Verification not passed", ["line", "station", "product", "shift", "shift start", "state",
                                         "test parts", "why not counted"], missed_rows),
            ("Model changes", ["product", "line", "when", "change", "version (rolled back: those undone)",
                               "back to", "model id", "by", "forced", "forced: what the trial found",
                               "change log's words", "version's note"], change_rows),
            ("Defect types by line", ["line", "defect type", "parts", "judged NG", "judged REVIEW",
                                      "judged OK (escaped)", _SHARE, "cumulative " + _SHARE], line_type_rows)]


def _issued_rows(issued: Optional[dict[str, Any]], zone: dt.tzinfo) -> list[list[Any]]:
    """An issued report's own rows on the Window sheet: which copy this is, and whether a
    later one replaced it or it was withdrawn (a printout left on a desk says so)."""
    if issued is None:
        return []
    rows = [["issued report", f"#{issued['id']}, revision {issued['revision']}"],
            ["issued at", _parse(issued["issued_at"], zone)], ["issued by", issued["issued_by"] or ""],
            ["issued note", issued["note"]]]
    if issued["replaces"]:
        rows.append(["replaces issued report", f"#{issued['replaces']}"])
    if issued["replaced_by"]:
        # the revision to send is the newest not withdrawn: "send #2" of a #2 withdrawn too
        # sent the customer a report taken back. "standing" .get: a header made before it
        stands, rb = issued.get("standing", issued["replaced_by"]), issued["replaced_by"]
        rows.append(["replaced by issued report",
                     f"#{rb} (a later revision: send that one)" if stands == rb else
                     f"#{rb}; the revision that stands (the newest not withdrawn) is #{stands}: send that one"
                     if stands is not None and stands > issued["id"] else
                     f"#{rb}, withdrawn, as every later revision: "
                     + ("this report is the one that stands" if stands == issued["id"] else
                        f"#{stands}, an earlier revision, still stands" if stands is not None else
                        "no revision of this window stands; to send its report, issue a new revision")])
    if issued["withdrawn"]:
        wd = issued["withdrawn"]
        rows += [["WITHDRAWN", wd["reason"]], ["withdrawn at", _parse(wd["at"], zone)], ["withdrawn by", wd["by"] or ""]]
    return rows


def workbook(report: dict[str, Any], timezone: Optional[str], issued: Optional[dict[str, Any]] = None) -> bytes:
    """The report as .xlsx bytes (a month's report is a few hundred rows); ``issued``: see sheets."""
    buf = io.BytesIO()
    xlsx.write_workbook(buf, sheets(report, timezone, issued))
    return buf.getvalue()
