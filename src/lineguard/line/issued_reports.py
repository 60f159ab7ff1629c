"""Issued reports: a period's report kept as it was sent to the customer.

A month's report made again later is not the one sent: reviews go on after the month ends
(an NG part reviewed good lowers the share of good parts scrapped; a customer's complaint
adds an escape), so a quality manager asked "what did we tell them?" could only answer
with the numbers as they stand now. Issuing a report keeps its JSON, who issued it, when
and their note, never changed; read back, it is the report as issued, its workbook made
from it, and the counts that differ in the report made from the records now are listed.

A window issued again (a corrected report) is that window's next revision: each issued
report says which it replaces and which replaced it, worked out from the rows (issued
reports are only ever added). One sent in error (the wrong window, the wrong line) is
withdrawn with a reason: kept and readable, marked withdrawn, its workbook says so.
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Any, Optional

from sqlalchemy import select, update
from sqlalchemy.orm import defer

from . import audit
from .db import LOCK_ISSUED_REPORTS, Database
from .errors import Conflict, InvalidRequest, NotFound
from .orm import IssuedReport, iso_utc, utcnow
from .part_names import folded, station_is
from .spc_data import FOUND_OTHERWISE

NOTE_MAX = 2000          # a covering note ("sent to ACME with 8D 114"), not a letter
LIST_MAX = 1000
# changed counts named in the text; the list holds every one
SAID_MAX = 5


def window_time(text: str) -> dt.datetime:
    """A report window's ISO UTC time as stored (naive UTC)."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.timezone.utc).replace(tzinfo=None)


def _days(w: dict[str, Any]) -> str:
    """The plant's days a report's window covers, its last one included ("2026-11-01 to 2026-11-30")."""
    first = dt.datetime.fromisoformat(w.get("since_plant") or w["since"].replace("Z", "+00:00"))
    end = dt.datetime.fromisoformat(w.get("until_plant") or w["until"].replace("Z", "+00:00"))
    return f"{first.date().isoformat()} to {(end - dt.timedelta(microseconds=1)).date().isoformat()}"


def _scope(row: Any) -> tuple:
    """What makes two issued reports revisions of one report: the kind, window and scope.
    The station in any case, as the report's filter matches it (station_is): one issued
    for a typed "s1" counted S1's parts, and stood beside S1's as another revision 1."""
    return (row.kind, row.since, row.until, row.line, folded(row.station.strip()), row.product)


def _revisions(s: Any, rows: list[IssuedReport], leaving_out: Optional[int] = None
               ) -> dict[int, tuple[int, Optional[int], Optional[int], Optional[int]]]:
    """(revision, the id it replaces, the id that replaced it, the id that stands) for each
    of ``rows``: its place among every report issued for its window and scope, in the order
    issued; the one that stands is the newest of them not withdrawn (None: every one is),
    ``leaving_out`` not counted as one (a report being issued, not kept yet)."""
    if not rows:
        return {}
    # the reports of the same windows (a few a month: people issue them), their scopes compared here
    others = s.execute(select(IssuedReport.id, IssuedReport.kind, IssuedReport.since, IssuedReport.until,
                              IssuedReport.line, IssuedReport.station, IssuedReport.product,
                              IssuedReport.withdrawn_at)
                       .where(IssuedReport.since.in_(sorted({r.since for r in rows}))).order_by(IssuedReport.id)).all()
    chains: dict[tuple, list[int]] = {}
    withdrawn: set[int] = set()
    for o in others:
        chains.setdefault(_scope(o), []).append(o.id)
        if o.withdrawn_at is not None:
            withdrawn.add(o.id)
    out = {}
    for r in rows:
        ids = chains[_scope(r)]
        i = ids.index(r.id)
        standing = next((x for x in reversed(ids) if x not in withdrawn and x != leaving_out), None)
        out[r.id] = (i + 1, ids[i - 1] if i else None, ids[i + 1] if i + 1 < len(ids) else None, standing)
    return out


def _header(row: IssuedReport, revision: tuple[int, Optional[int], Optional[int], Optional[int]]) -> dict[str, Any]:
    withdrawn = None if row.withdrawn_at is None else {
        "by": row.withdrawn_by, "at": iso_utc(row.withdrawn_at), "reason": row.withdrawn_reason}
    # "standing": the revision to send, which "replaced_by" is not when it was withdrawn too (a
    # withdrawn #1's workbook said "replaced by #2: send that one" of a #2 withdrawn as well)
    return {"id": row.id, "kind": row.kind, "since": iso_utc(row.since), "until": iso_utc(row.until),
            "line": row.line or None, "station": row.station or None, "product": row.product or None,
            "issued_by": row.issued_by, "issued_at": iso_utc(row.issued_at), "note": row.note,
            "revision": revision[0], "replaces": revision[1], "replaced_by": revision[2], "withdrawn": withdrawn,
            "standing": revision[3]}


def _scope_words(w: dict[str, Any]) -> str:
    return ", ".join(f"{k} {w[k]}" for k in ("line", "station", "product") if w.get(k)) or "every line"


def window_of(kind: str, report: dict[str, Any]) -> dict[str, Any]:
    """A report's window and scope as issued reports keep them: a period report's
    ``window``; a shift report's shift (its start and end) and line and product."""
    if kind == "shift":
        sh = report["shift"]
        return {"since": sh["start"], "until": sh["end"], "line": report.get("line"), "station": None,
                "product": report.get("product"), "label": sh["label"]}
    return report["window"]


def _subject(kind: str, w: dict[str, Any]) -> str:
    """The change log's words for a report ("period report 2026-11-01 to 2026-11-30 (line L2)")."""
    what = f"shift report {w['label']}" if kind == "shift" else f"period report {_days(w)}"
    return f"{what} ({_scope_words(w)})"


def issue(db: Database, report: dict[str, Any], issued_by: Optional[str], note: str = "",
          kind: str = "period", revision_meant: Optional[int] = None) -> dict[str, Any]:
    """Keep ``report`` (line.period_report's, or for ``kind`` "shift" line.shift_report's,
    as made now) as issued; its header back. A shift report is kept so at the handover,
    signed by who hands over: what the next shift and the shift lead were told.
    ``revision_meant``: the revision the caller means to issue (1: the window's first); when the
    window's next is another (issued since: a second tap, another engineer), nothing is
    kept and :class:`Conflict` names the report that stands. A second tap on Issue made a
    revision 2 without the note, replacing the one sent with it."""
    note = (note or "").strip()
    if len(note) > NOTE_MAX:
        raise InvalidRequest(f"the note is {len(note)} characters; at most {NOTE_MAX}: say where the report went, "
                             "and keep the letter elsewhere")
    w = window_of(kind, report)
    if report.get("empty") and (report.get("window") or {}).get("records_incomplete"):
        # not "no part was judged": the record keeper deleted them (the report says since when)
        raise InvalidRequest(f"{_days(w)} ({_scope_words(w)}): {report['text']}; there is nothing to issue")
    if report.get("empty"):
        # the days said: without from/until the window is the last whole month, which on a
        # station started this month is empty (an engineer read "nothing" beside a chart of parts)
        raise InvalidRequest(f"no part was judged in {_days(w)} ({_scope_words(w)}): there is nothing to issue; "
                             "choose the window when the line ran (from/until; without them the last whole month)")
    row = IssuedReport(kind=kind, since=window_time(w["since"]), until=window_time(w["until"]),
                       line=w.get("line") or "", station=w.get("station") or "", product=w.get("product") or "",
                       issued_by=issued_by, issued_at=utcnow(), note=note,
                       report=json.dumps(report, separators=(",", ":")))
    with db.session() as s:
        # issues take turns (a few a month): one issued at the same instant counts this one
        db.hold(s, LOCK_ISSUED_REPORTS, "issued_reports")
        s.add(row)
        s.flush()
        revision = _revisions(s, [row])[row.id]
        if revision_meant is not None and revision[0] != revision_meant:
            last = s.get(IssuedReport, revision[1]) if revision[1] is not None else None
            stands = _revisions(s, [row], leaving_out=row.id)[row.id][3]
            raise _issued_since(w, revision, revision_meant, last, s.get(IssuedReport, stands) if stands else None)
        # in the change log with the report, in its transaction: a quality system asks who
        # sent what to the customer (or handed what over to the next shift), and when
        audit.record(s, "report.signed" if kind == "shift" else "report.issued", _subject(kind, w), issued_by,
                     issued_report=row.id, since=w["since"], until=w["until"], note=note or None,
                     revision=revision[0] if revision[0] > 1 else None, replaces=revision[1])
        return _header(row, revision)


def _issued_since(w: dict[str, Any], revision: tuple[int, Optional[int], Optional[int], Optional[int]], meant: int,
                  last: Optional[IssuedReport], stands: Optional[IssuedReport]) -> Conflict:
    """The refusal of a revision not meant: the report issued last for the window (``last``),
    whether it stands or was withdrawn, the newest that stands (``stands``: None, every one
    was withdrawn), and how to issue the next revision if that is what is wanted."""
    what = f"{_days(w)} ({_scope_words(w)})"
    if last is None:     # meant a later revision than the window has: nothing stands to replace
        return Conflict(f"no report of {what} is issued yet, so this would be its revision 1, not {meant}: issue "
                        "it as revision 1", revision=revision[0], replaces=None, withdrawn=False, stands=None)
    note = f", note \"{last.note}\"" if last.note else ", no note"
    issued = f"report #{last.id} of {what} was issued already (by {last.issued_by or 'an open read'} " \
             f"at {iso_utc(last.issued_at)}{note})"
    if last.withdrawn_at is not None:
        # "replacing #2" of a #2 withdrawn read as if #2 were what the customer has. The new
        # revision's header names the withdrawn one as the one it replaces (the chain's
        # order); the one that stands now is not replaced in the chain but stops being the
        # newest: said so, as the data has it ("replaces" #last, "stands" #stands)
        now = (f"it would follow withdrawn #{last.id}; report #{stands.id} (issued at "
               f"{iso_utc(stands.issued_at)}), the one that stands now, would no longer be the newest: this one "
               "would stand" if stands is not None else
               f"no report of {what} stands, so this replaces none that stands: it would follow withdrawn "
               f"#{last.id} and be the one that stands")
        return Conflict(f"{issued} and withdrawn (by {last.withdrawn_by or 'an open read'} at "
                        f"{iso_utc(last.withdrawn_at)}: {last.withdrawn_reason}): {now}. It would be revision "
                        f"{revision[0]}, not {meant}; nothing was issued. To send the report, issue it as revision "
                        f"{revision[0]}", revision=revision[0], replaces=last.id, withdrawn=True,
                        stands=stands.id if stands is not None else None)
    return Conflict(f"{issued}: this would be its revision {revision[0]}, replacing "
                    f"it, not revision {meant}; nothing was issued. To send a corrected report, issue it as revision "
                    f"{revision[0]} (its note is not carried over: write it again)",
                    revision=revision[0], replaces=last.id, withdrawn=False, stands=last.id)


def withdraw(db: Database, report_id: int, by: Optional[str], reason: str) -> dict[str, Any]:
    """Mark issued report ``report_id`` withdrawn (sent in error), once; its header back."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidRequest("say why the report is withdrawn (\"sent for the wrong line; replaced by the next "
                             "one\"): the customer and the next auditor will ask")
    if len(reason) > NOTE_MAX:
        raise InvalidRequest(f"the reason is {len(reason)} characters; at most {NOTE_MAX}")
    with db.session() as s:
        row = s.get(IssuedReport, report_id)
        if row is None:
            raise NotFound(f"no issued report {report_id}: GET /api/v1/reports/issued lists them")
        at = utcnow()
        # set only where not yet withdrawn, in the one statement: of two withdrawals at once
        # one sets it, the other is told who did
        done = s.execute(update(IssuedReport).where(IssuedReport.id == report_id, IssuedReport.withdrawn_at.is_(None))
                         .values(withdrawn_at=at, withdrawn_by=by, withdrawn_reason=reason)
                         .execution_options(synchronize_session=False)).rowcount
        s.refresh(row)
        if not done:
            raise Conflict(f"issued report {report_id} was withdrawn already, by {row.withdrawn_by or 'an open read'} "
                           f"at {iso_utc(row.withdrawn_at)}: {row.withdrawn_reason}")
        w = window_of(row.kind, json.loads(row.report))
        audit.record(s, "report.withdrawn", _subject(row.kind, w), by, issued_report=report_id, reason=reason)
        return _header(row, _revisions(s, [row])[row.id])


def _headers(db: Database, *where: Any, limit: int = LIST_MAX) -> list[dict[str, Any]]:
    with db.session() as s:
        rows = list(s.scalars(select(IssuedReport).options(defer(IssuedReport.report)).where(*where)
                              .order_by(IssuedReport.id.desc()).limit(limit)))
        revisions = _revisions(s, rows)
        return [_header(r, revisions[r.id]) for r in rows]


def issued_list(db: Database, limit: int = 100, kind: Optional[str] = None,
                before: Optional[int] = None) -> list[dict[str, Any]]:
    """The reports issued (``kind``: only period or only shift reports), newest first (their
    headers, not the reports); ``before``: only those older than that id (the next page)."""
    where = ([IssuedReport.kind == kind] if kind else []) + ([IssuedReport.id < before] if before else [])
    return _headers(db, *where, limit=max(1, min(int(limit), LIST_MAX)))


def issued_for(db: Database, report: dict[str, Any], kind: str = "period") -> list[dict[str, Any]]:
    """The reports issued (shift reports: signed) for exactly ``report``'s window and scope, newest first."""
    w = window_of(kind, report)
    return _headers(db, IssuedReport.kind == kind, IssuedReport.since == window_time(w["since"]),
                    IssuedReport.until == window_time(w["until"]), IssuedReport.line == (w.get("line") or ""),
                    station_is(IssuedReport.station, w.get("station") or ""),
                    IssuedReport.product == (w.get("product") or ""))


def issued_one(db: Database, report_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, the report as issued)."""
    with db.session() as s:
        row = s.get(IssuedReport, report_id)
        if row is None:
            raise NotFound(f"no issued report {report_id}: GET /api/v1/reports/issued lists them")
        return _header(row, _revisions(s, [row])[row.id]), json.loads(row.report)


def _flat(v: Any, prefix: str = "") -> dict[str, int]:
    """The counts in ``v`` by their path ("escapes.parts"). Counts only: the shares and rates
    are made of them, and would say each change twice."""
    if isinstance(v, bool):
        return {}
    if isinstance(v, int):
        return {prefix: v}
    if isinstance(v, dict):
        out: dict[str, int] = {}
        for k, x in v.items():
            if k not in ("rate", "text") and not k.endswith("share"):    # ng_share, good_share: counts again
                out.update(_flat(x, f"{prefix}.{k}" if prefix else k))
        return out
    return {}


def _shift_counts(report: dict[str, Any]) -> dict[str, int]:
    """A shift report's counts: its totals, what reviews found, each station's verdicts."""
    out = {f"shift: {k}": v for k, v in _flat(report.get("totals") or {}).items()}
    out.update({f"reviews: {k}": v for k, v in _flat(report.get("reviews") or {}).items()})
    for st in report.get("stations") or []:
        counts = _flat({k: v for k, v in st.items() if k not in ("line", "station")})
        out.update({f"{st.get('line')}/{st.get('station')}: {k}": v for k, v in counts.items()})
    return out


def _counts(report: dict[str, Any], totals: bool = True) -> dict[str, int]:
    """Every count of the report's totals and of each line, by where it is ("L1: escapes.parts")."""
    out = {f"all lines: {k}": v for k, v in _flat(report.get("total") or {}).items()} if totals else {}
    for ln in report.get("lines") or []:
        counts = _flat({k: v for k, v in ln.items() if k != "line"})
        out.update({f"{ln.get('line')}: {k}": v for k, v in counts.items()})
    return out


# A count's path in the report in the plant's words (the workbook's Summary columns, and
# for the counts of the good-scrapped estimate its own). A path not here is said as it is.
WORDS: dict[str, str] = {
    "parts": "parts judged", "OK": "OK", "NG": "NG", "REVIEW": "REVIEW",
    "good_scrapped.ng_parts": "NG (of the good parts scrapped)",
    "good_scrapped.ng_reviewed": "NG reviewed (of the good parts scrapped)",
    "good_scrapped.ng_reviewed_good": "NG reviewed good (of the good parts scrapped)",
    "good_scrapped.ng_not_reviewed": "NG waiting (of the good parts scrapped)",
    "good_scrapped.rejected_never_judged": "rejected by the PLC, never judged (of the good parts scrapped)",
    "good_scrapped.k": "good parts scrapped", "good_scrapped.n": "good parts made",
    "good_scrapped.good_parts_passed": "good parts passed",
    "good_scrapped.rejected_late_good": "parts the PLC rejected, judged later, reviewed good",
    "rejected_reviewed_good.k": "NG reviewed good", "rejected_reviewed_good.n": "NG reviewed",
    "passed_defective_audit.k": "audited defects", "passed_defective_audit.n": "audited OK parts reviewed",
    "passed_defective_audit.needed": "audited parts needed for the target",
    "passed_defective_audit.more_needed": "more audited parts needed",
    "passed_defective_audit.waiting": "audit parts waiting for review",
    "passed_defective_audit.parts_to_make": "parts to make for the audit's target",
    "escapes.parts": "passed parts found defective", "escapes.audit": "found by the audit sample",
    "escapes.found_otherwise": "found otherwise (downstream, customer)",
    **{f"escapes.found_otherwise_by.{k}": f"found otherwise: {v}" for k, v in FOUND_OTHERWISE.items()},
    "review_workload.parts": "REVIEW parts", "review_workload.reviewed_good": "REVIEW reviewed good",
    "review_workload.reviewed": "REVIEW reviewed", "waiting_for_review.parts": "waiting for review",
    "waiting_for_review.NG": "NG waiting", "waiting_for_review.REVIEW": "REVIEW waiting",
    "no_verdict.parts": "rejected by the PLC without a verdict", "no_verdict.judged_later": "of them judged later",
    "no_verdict.never_judged": "never judged",
    # a shift report's (its totals, reviews and stations)
    "photo_doubted": "photos the photo check doubted", "no_verdict": "rejected by the PLC without a verdict",
    "no_verdict_late": "of them judged later", "false_rejects": "NG reviewed good (false rejects)",
    "confirmed_defects": "NG reviewed as defects", "escapes": "passed parts found defective",
    "escapes_audit": "found by the audit sample",
    **{f"escapes_found_otherwise_by.{k}": f"found otherwise: {v}" for k, v in FOUND_OTHERWISE.items()},
    "review_good": "REVIEW reviewed good", "review_defect": "REVIEW reviewed as defects",
    "ok_audited": "OK parts audited", "waiting": "waiting for review", "waiting.parts": "waiting for review",
    "waiting.NG": "NG waiting", "waiting.REVIEW": "REVIEW waiting",
}


# Counts another count moves alike (one NG part reviewed good moves good_scrapped's NG
# reviewed and rejected_reviewed_good's k and n alike): listed with their words, left out
# of the text's sentence, which says each change once
SAID_ELSEWHERE = frozenset({"good_scrapped.ng_parts", "good_scrapped.ng_reviewed", "good_scrapped.ng_reviewed_good",
                            "good_scrapped.ng_not_reviewed", "good_scrapped.rejected_never_judged"})


def _said(what: str) -> str:
    """"L2: waiting_for_review.NG" as "L2: NG waiting"."""
    where, _, path = what.partition(": ")
    return f"{where}: {WORDS.get(path, path)}"


def _elsewhere(what: str) -> bool:
    return what.partition(": ")[2] in SAID_ELSEWHERE


def changes(issued: dict[str, Any], now: dict[str, Any], kind: str = "period") -> list[dict[str, Any]]:
    """The counts that differ between the report as issued and as made now (None: not in one);
    ``what`` the count's path ("L2: waiting_for_review.NG"), ``said`` it in words ("L2: NG
    waiting"): every entry has its words (three entries said None, read as counts with no
    name)."""
    if kind == "shift":
        a, b = _shift_counts(issued), _shift_counts(now)
    else:
        # a report of one line: its totals are that line's counts, each change said once
        totals = not (len(issued.get("lines") or []) == 1 and len(now.get("lines") or []) == 1)
        a, b = _counts(issued, totals), _counts(now, totals)
    return [{"what": k, "said": _said(k), "issued": a.get(k), "now": b.get(k)}
            for k in list(a) + [k for k in b if k not in a] if a.get(k) != b.get(k)]


def changes_text(changed: list[dict[str, Any]]) -> str:
    """``changed`` in a sentence: how many counts differ (every entry of the list: it said
    4 where the list held 7), each change said once, the first SAID_MAX of them."""
    if not changed:
        return "the report made from the records now has the same counts"
    said = [c for c in changed if not _elsewhere(c["what"])] or changed
    text = ", ".join(f"{c['said'] or c['what']} {c['issued'] if c['issued'] is not None else '-'} -> "
                     f"{c['now'] if c['now'] is not None else '-'}" for c in said[:SAID_MAX])
    left = len(said) - min(len(said), SAID_MAX)
    alike = len(changed) - len(said)
    more = "".join(f"; {n} more {what}" for n, what in
                   ((left, "in the list"), (alike, "moved with those said (the good-scrapped estimate's own)"))
                   if n)
    return (f"{len(changed)} count(s) differ in the report made from the records now (reviews and parts recorded "
            f"since it was issued): {text}{more}")
