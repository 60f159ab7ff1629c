"""The line's records cut into SPC subgroups (hour, shift, day or lot), for :mod:`.spc`.

The work stays in the database where it can: the p-chart and the review rates are
``GROUP BY`` counts. Hours, days and shifts are wall-clock periods in the plant's time
zone, which neither SQLite nor PostgreSQL can cut the same way (and shifts are the
plant's own), so the database groups into fixed UTC slots that no period boundary
falls inside (15 minutes, or 1 minute when a shift starts at, say, 06:10), and Python
merges the slots into periods. That is a few thousand rows for a month however many
parts the line made. Score distributions need every score: only (slot, score) pairs are
streamed, never whole records.
"""
from __future__ import annotations

import datetime as dt
import itertools
import sqlite3
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np
from sqlalchemy import BigInteger, Integer, and_, case, cast, func, not_, or_, select
from sqlalchemy.sql.elements import ColumnElement

from ..vision.result import DefectRegion
from .close_names import close_names
from .db import Database
from .errors import InvalidRequest, NotFound
from .part_names import as_stored, station_is, station_lines, station_names, stored_names
from .reviews import FOUND_BY
from .orm import Inspection, LineSignal, ModelVersion, utcnow
from . import shifts
from .shifts import parse_shift_starts, plant_zone, shift_of, wall_to_utc
from .spc import Subgroup

GROUPINGS = ("hour", "shift", "day", "lot")
# how far back a chart looks when no ``since`` is given
DEFAULT_WINDOW = {"hour": dt.timedelta(hours=48), "shift": dt.timedelta(days=7),
                  "day": dt.timedelta(days=30), "lot": dt.timedelta(days=30)}
# the usual length of a period, to refuse a window that would make too many subgroups
_PERIOD = {"hour": dt.timedelta(hours=1), "shift": dt.timedelta(hours=8), "day": dt.timedelta(days=1)}
MAX_SUBGROUPS = 2000
_EPOCH = dt.datetime(1970, 1, 1)


@dataclass
class Filters:
    line: Optional[str] = None
    station: Optional[str] = None
    product: Optional[str] = None
    since: Optional[dt.datetime] = None     # naive UTC, inclusive
    until: Optional[dt.datetime] = None     # naive UTC, exclusive


def naive_utc(t: Optional[dt.datetime]) -> Optional[dt.datetime]:
    """:func:`shifts.naive_utc`, refused as a request (422) when out of range."""
    if t is None:
        return t
    try:
        return shifts.naive_utc(t)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None


class Typed(dt.datetime):
    """A window's edge as the records are compared with it (naive UTC), knowing what was
    typed for it (``typed``): a message says the day the person typed, not the instant it
    became ("since (2026-12-07T23:00:00Z)" for since=2026-12-08 in Berlin). Compares, sorts
    and is stored as the datetime it is; arithmetic and replace() keep the class but not
    what was typed (``typed`` None: said as an instant), and so do pickling and copying."""
    typed: Optional[str] = None


# sqlite3 adapts datetimes by their exact type: a Typed bound without a column's type (a
# raw text() or literal()) was refused, "type 'Typed' is not supported" (PostgreSQL's driver
# looks along the class's bases); stored as sqlite3 stores a datetime
sqlite3.register_adapter(Typed, lambda t: dt.datetime.isoformat(t, " "))


def as_typed(t: Optional[dt.datetime], text: Optional[str]) -> Optional[dt.datetime]:
    """``t`` (naive UTC) as a :class:`Typed` remembering ``text`` as typed; None stays None."""
    if t is None:
        return t
    out = Typed(t.year, t.month, t.day, t.hour, t.minute, t.second, t.microsecond, fold=t.fold)
    out.typed = (text or "").strip() or None
    return out


def said(t: dt.datetime, zone: Optional[dt.tzinfo] = None) -> str:
    """A window's edge as a message says it: as typed when it was (:func:`as_typed`), else on
    the plant's clocks (``zone``), else in UTC."""
    typed = getattr(t, "typed", None)
    if typed:
        return typed
    if zone is not None:
        try:
            return t.replace(tzinfo=dt.timezone.utc).astimezone(zone).isoformat(timespec="minutes")
        except (OverflowError, ValueError):     # at the calendar's very edge: UTC then
            pass
    return f"{t.isoformat()}Z"


def refuse_backwards(since: Optional[dt.datetime], until: Optional[dt.datetime], until_given: bool = True,
                     zone: Optional[dt.tzinfo] = None) -> None:
    """InvalidRequest when both are given and ``since`` is not before ``until``: such a
    window holds nothing, and a list answering "none" would look like a quiet period.
    ``until_given`` false: until is the default (now, today's start), and "swap them" made
    no sense of a since in the future. The edges are said as typed (:func:`said`; one not
    typed on the plant's clocks when ``zone`` is given)."""
    if since is not None and until is not None and since >= until:
        if not until_given:
            raise InvalidRequest(f"since ({said(since, zone)}) is not before {said(until, zone)}, where the window "
                                 "ends when no until is given (now, or today's start): no part can be in it; give "
                                 "a since in the past, or an until after it")
        if since == until:
            # since=2026-12-08&until=2026-12-07: both read 2026-12-08T00:00, "must be before" itself
            raise InvalidRequest(f"since and until are the same instant (since {said(since, zone)}, until "
                                 f"{said(until, zone)}): no part can be in that window; a day alone as until holds "
                                 "all of that day (to the next day's 00:00), so until's day must not be before "
                                 "since's: swap them or widen the window")
        raise InvalidRequest(f"since ({said(since, zone)}) must be before until ({said(until, zone)}); "
                             "swap them or widen the window")


def resolve_window(by: str, since: Optional[dt.datetime], until: Optional[dt.datetime],
                   now: Optional[dt.datetime] = None, zone: Optional[dt.tzinfo] = None
                   ) -> tuple[dt.datetime, dt.datetime]:
    """``since``/``until`` in naive UTC, defaults filled, checked (InvalidRequest says what to fix).

    With the plant's ``zone``, the 30-day default (by day or lot, and the rates' and the
    Pareto's one window) is 30 whole plant days ending with until's day (today, through
    now): 30 x 24 hours back from now began mid-day, so the first day on a chart by day
    was a part of one and a month's rates started at this hour 30 days ago."""
    if by not in GROUPINGS:
        raise InvalidRequest(f"by must be one of {', '.join(GROUPINGS)}; got {by!r}")
    until_given = until is not None
    until = naive_utc(until) or (now or utcnow())
    try:
        since = naive_utc(since) or (
            whole_plant_days(until, DEFAULT_WINDOW[by].days, zone) if zone is not None and by in ("day", "lot")
            else until - DEFAULT_WINDOW[by])
    except (OverflowError, ValueError):   # an until in the first days of year 1
        raise InvalidRequest("until is too early to look back from; give since as well") from None
    refuse_backwards(since, until, until_given, zone)
    if by in _PERIOD and (until - since) / _PERIOD[by] > MAX_SUBGROUPS:
        raise InvalidRequest(f"{said(since, zone)} to {said(until, zone)} by {by} is more than {MAX_SUBGROUPS} "
                             "subgroups; narrow since/until or group by a longer period (shift, day)")
    return since, until


def whole_plant_days(until: dt.datetime, days: int, zone: dt.tzinfo) -> dt.datetime:
    """The start (naive UTC) of ``days`` whole plant days ending with the plant day that
    holds ``until``'s last instant (an until at a day's 00:00, as a day typed as until is,
    ends the day before). A plant day starts at 00:00 on its clocks, as plant_time's days
    and the p-chart's days do."""
    last = (until - dt.timedelta(microseconds=1)).replace(tzinfo=dt.timezone.utc).astimezone(zone).date()
    return wall_to_utc(last - dt.timedelta(days=days - 1), dt.time(0), zone)


def kept_filters(t0: dt.datetime, t1: dt.datetime, kept_since: Optional[dt.datetime], all_parts: bool = True, *,
                 line: Optional[str] = None, station: Optional[str] = None,
                 product: Optional[str] = None) -> Filters:
    """The filters over [t0, t1), started at ``kept_since`` (line.record_keeper's cutoff)
    when the count is of ``all_parts``: before it only the reviewed parts, the audit sample
    and test-part checks are kept, no sample of the line. Counts of reviewed parts
    (``all_parts`` false) read the whole window: every reviewed part is kept. The SPC routes
    and the period report clip their windows here, so both count from the same start."""
    if all_parts and kept_since is not None and t0 < kept_since:
        t0 = min(kept_since, t1)
    return Filters(line=line, station=station, product=product, since=t0, until=t1)


def known_names(db: Database, line: Optional[str], product: Optional[str]) -> tuple[Optional[str], Optional[str]]:
    """``line`` and ``product`` as the records spell them ("L1" for a typed "l1 ", as the
    gallery finds them); None or "" stays as it is (every line, every product).

    A name no record holds is refused (:class:`NotFound`, naming the close ones): a
    misspelt line answered 200 with 0 parts, read as a line that made nothing. Known is
    a name a part was inspected under, a model was uploaded for (a product or line before
    its first part), or a PLC trigger came with (parts rejected without a verdict only):
    such a name with no part in the window is still an answer, 0 parts."""
    out = []
    for column, typed in (("line", line), ("product", product)):
        if not typed:
            out.append(typed)
            continue
        col = getattr(ModelVersion, column)
        with db.session() as s:
            modelled = {n for (n,) in s.execute(select(col).where(col != "").distinct())}
        names = sorted(set(stored_names(db, column)) | modelled)
        named = as_stored(typed, names)
        if named in names:
            out.append(named)
            continue
        signal_col = getattr(LineSignal, column)
        with db.session() as s:
            # the miss path only (a misspelling): one lookup, along the line's index
            hit = s.scalar(select(signal_col).where(signal_col.in_({typed, typed.strip()})).limit(1))
        if hit is not None:
            out.append(hit)
            continue
        raise NotFound(_unknown_name(column, typed, names), unknown=column, known=names[:50],
                       did_you_mean=_close_names(typed, names))
    return out[0], out[1]


def known_station(db: Database, station: Optional[str], line: Optional[str] = None) -> Optional[str]:
    """``station`` as the records spell it ("S1" for a typed "s1"), among ``line``'s stations
    (as stored: known_names' first) when a line is given; None or "" stays as it is (every
    station). A station no part was inspected at (on that line) and no PLC answer names is
    refused (:class:`NotFound`, naming the stations known): "S9" answered 200 with 0 parts,
    read as a station that made nothing, and "s1" was echoed back as the report's station
    and issued as another report than "S1"'s."""
    if not station:
        return station
    names = station_names(db, line)
    named = as_stored(station, names)
    if named in names:
        return named
    close = _close_names(station, names)
    where = f" on line {line!r}" if line else ""
    msg = f"unknown station {station!r}{where}: no part was ever inspected at it" + (" there" if line else "")
    msg += ("; did you mean " + " or ".join(repr(n) for n in close) + "?") if close else "."
    elsewhere = [ln for ln in (station_lines(db, station) if line else []) if ln != line]
    if elsewhere:
        msg += f" Its parts are on line {', '.join(elsewhere)}."
    shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
    msg += (f" The stations{' of line ' + line if line else ''} the station knows: {shown or 'none yet'}; "
            "leave station empty for every station")
    raise NotFound(msg, unknown="station", known=names[:50], did_you_mean=close)


# the stored names ``typed`` is probably meant to be (several in another case: as_stored
# could not pick one); one helper with the model upload's and a part's "did you mean"
_close_names = close_names


def _unknown_name(column: str, typed: str, names: Sequence[str]) -> str:
    close = _close_names(typed, names)
    what = "no part was ever inspected on it" if column == "line" else \
        "no part of it was ever inspected and no model was uploaded for it"
    msg = f"unknown {column} {typed!r}: {what}"
    msg += ("; did you mean " + " or ".join(repr(n) for n in close) + "?") if close else "."
    plural = "lines" if column == "line" else "products"
    listed = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
    msg += (f" The {plural} the station knows: {listed or 'none yet'} (GET /api/v1/inspections/names); "
            f"leave {column} empty for every {column}")
    return msg


def _where(f: Filters) -> list[ColumnElement]:
    # the line's own parts: test parts' checks (line.test_parts) are not production
    conds: list[ColumnElement] = [Inspection.test_part.is_(None)]
    if f.line:     # "" means every line
        conds.append(Inspection.line == f.line)
    if f.station:       # in any case, as the gallery's filter
        conds.append(station_is(Inspection.station, f.station))
    if f.product:
        conds.append(Inspection.product == f.product)
    if f.since is not None:
        conds.append(Inspection.created_at >= f.since)
    if f.until is not None:
        conds.append(Inspection.created_at < f.until)
    return conds


def no_verdict_counts(s: Any, f: Filters) -> dict[tuple[str, str], tuple[int, int]]:
    """Per (line, station): the parts a PLC link rejected without a verdict in time
    (window missed, no image, a fault), from what the PLC was told (``line_signals``, by
    the trigger's time; ``product``: the recipe's), and how many of them were judged after
    their window (those have a record, among the parts by the verdict given late; the
    others have none and are in no other count). In the caller's session ``s``."""
    late = func.sum(case((LineSignal.late_inspection_id.is_not(None), 1), else_=0))
    q = select(LineSignal.line, LineSignal.station, func.count(), late).where(
        LineSignal.inspection_id.is_(None), LineSignal.signal == "NG")
    for col, v in ((LineSignal.line, f.line), (LineSignal.station, f.station), (LineSignal.product, f.product)):
        if v:
            q = q.where(col == v)
    if f.since is not None:
        q = q.where(LineSignal.triggered_at >= f.since)
    if f.until is not None:
        q = q.where(LineSignal.triggered_at < f.until)
    return {(ln, st): (int(n), int(n_late or 0))
            for ln, st, n, n_late in s.execute(q.group_by(LineSignal.line, LineSignal.station))}


def slot_seconds(starts: Sequence[dt.time]) -> int:
    # Every real time zone's offset is a multiple of 15 minutes (none since 1972 is not),
    # so are the hour and day boundaries; shift starts may be any minute.
    return 900 if all(s.minute % 15 == 0 and s.second == 0 for s in starts) else 60


def slot_expr(db: Database, seconds: int) -> ColumnElement:
    if db.is_sqlite:
        # stored as 'YYYY-MM-DD HH:MM:SS.ffffff' (SQLAlchemy's DateTime on SQLite); %s reads
        # it as UTC. Only its first 19 characters, the whole seconds: SQLite rounds the
        # microseconds to milliseconds, so a part at 21:59:59.9995 fell in the 22:00 slot (the
        # next hour or shift) while the range filters (text comparisons) put it before 22:00.
        # Slots are whole minutes: flooring to the second is exact for them, as on PostgreSQL.
        # // : integer division (SQLAlchemy's / is true division, one slot per row)
        return cast(func.strftime("%s", func.substr(Inspection.created_at, 1, 19)), Integer) // seconds
    # date_part: float8 (EXTRACT is numeric since PostgreSQL 14, and numeric division on
    # every row took a month's scores 252 ms where float8 takes 129 ms); exact enough:
    # epoch seconds with microseconds stay within float8's 15-16 digits
    return cast(func.floor(func.date_part("epoch", Inspection.created_at) / seconds), BigInteger)


class Periods:
    """Maps a record's naive-UTC time to its hour, day or shift in the plant's zone."""

    def __init__(self, by: str, shift_starts: Sequence[str] | str = (), timezone: Optional[str] = None):
        self.by = by
        self.starts = parse_shift_starts(shift_starts) if shift_starts else parse_shift_starts(
            ("06:00", "14:00", "22:00"))
        self.zone = plant_zone(timezone)
        self.slot_s = slot_seconds(self.starts)

    def of(self, t: dt.datetime) -> tuple[dt.datetime, str]:
        """(start in naive UTC, label in plant time) of the period holding ``t``."""
        if self.by == "shift":
            sh = shift_of(t, self.starts, self.zone)
            return sh.start_utc, sh.label
        local = t.replace(tzinfo=dt.timezone.utc).astimezone(self.zone)
        if self.by == "day":
            # midnight placed as the shifts place a wall time: in a zone whose clocks skip
            # midnight the day starts when they jump, still at or before every part of it
            return wall_to_utc(local.date(), dt.time(0), self.zone), local.date().isoformat()
        start_local = local.replace(minute=0, second=0, microsecond=0)
        label = start_local.strftime("%Y-%m-%d %H:00")
        if start_local.fold:   # the hour a DST change repeats
            label += " (2nd)"
        return start_local.astimezone(dt.timezone.utc).replace(tzinfo=None), label

    def of_slot(self, slot: int) -> tuple[dt.datetime, str]:
        return self.of(_EPOCH + dt.timedelta(seconds=int(slot) * self.slot_s))


def _merge(rows: Iterable[tuple[Any, ...]], key_of: Callable[[Any], tuple[Any, str]]
           ) -> dict[Any, list[Any]]:
    """Rows (slot, n, defects) -> {period start: [label, n, defects]}."""
    out: dict[Any, list[Any]] = {}
    for slot, n, d in rows:
        start, label = key_of(slot)
        acc = out.setdefault(start, [label, 0, 0])
        acc[1] += int(n)
        acc[2] += int(d or 0)
    return out


def defect_subgroups(db: Database, f: Filters, by: str, periods: Optional[Periods] = None) -> list[Subgroup]:
    """Parts judged and parts judged NG per subgroup, oldest first."""
    ng = func.sum(case((Inspection.verdict == "NG", 1), else_=0))
    conds = _where(f)
    with db.session() as s:
        if by == "lot":
            q = (select(Inspection.lot, func.min(Inspection.created_at), func.count(), ng)
                 .where(and_(*conds, Inspection.lot.is_not(None))).group_by(Inspection.lot)
                 .order_by(func.min(Inspection.created_at)))
            rows = s.execute(q).all()
            if len(rows) > MAX_SUBGROUPS:
                raise InvalidRequest(f"{len(rows)} lots in this window, more than {MAX_SUBGROUPS}; "
                                     "narrow since/until")
            return [Subgroup(str(lot), first, int(n), int(d or 0)) for lot, first, n, d in rows]
        assert periods is not None
        slot = slot_expr(db, periods.slot_s).label("slot")
        rows = s.execute(select(slot, func.count(), ng).where(*conds).group_by(slot)).all()
    merged = _merge(rows, periods.of_slot)
    return [Subgroup(label, start, n, d) for start, (label, n, d) in sorted(merged.items())]


def parts_without_lot(db: Database, f: Filters) -> int:
    """Parts in the window sent with no lot: a chart by lot leaves them out, and without
    the count 79 of 118 parts were missing from it with nothing said."""
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Inspection)
                            .where(and_(*_where(f), Inspection.lot.is_(None)))) or 0)


ScoreSources = Callable[[list[str]], dict[str, str]]


def score_subgroups(db: Database, f: Filters, by: str, periods: Optional[Periods] = None,
                    score_sources: Optional[ScoreSources] = None
                    ) -> tuple[list[tuple[str, Optional[dt.datetime], np.ndarray]], list[str]]:
    """Scores per subgroup, oldest first, and the models that judged them (scores of two
    models are not comparable: the caller says so).

    ``score_sources`` (model ids -> the model whose scores each gives; line.tuning's
    score_sources): a version whose thresholds were tuned is a new model id with the
    very scores of its source, so it is counted as its source, not as another model."""
    conds = _where(f)
    with db.session() as s:
        models = [m for (m,) in s.execute(select(Inspection.model_id).where(*conds).distinct().limit(20))]
    if score_sources is not None and len(models) > 1:
        source = score_sources(models)
        models = sorted({source.get(m, m) for m in models})
    with db.session() as s:
        if by == "lot":
            has_lot = and_(*conds, Inspection.lot.is_not(None))
            firsts = s.execute(select(Inspection.lot, func.min(Inspection.created_at)).where(has_lot)
                               .group_by(Inspection.lot).order_by(func.min(Inspection.created_at))).all()
            if len(firsts) > MAX_SUBGROUPS:
                raise InvalidRequest(f"{len(firsts)} lots in this window, more than {MAX_SUBGROUPS}; "
                                     "narrow since/until")
            lots: dict[str, list[float]] = {lot: [] for lot, _ in firsts}
            for lot, score in s.connection().execute(select(Inspection.lot, Inspection.score).where(has_lot)):
                lots[lot].append(score)
            return [(str(lot), first, np.asarray(lots[lot], dtype=np.float64)) for lot, first in firsts], models
        assert periods is not None
        slot = slot_expr(db, periods.slot_s).label("slot")
        slots, scores = _slots_and_scores(db, s, slot, conds)
    if not len(scores):
        return [], models
    uniq, inverse = np.unique(slots, return_inverse=True)
    period_of = [periods.of_slot(int(u)) for u in uniq]
    starts = sorted({p[0] for p in period_of})
    index_of_start = {st: i for i, st in enumerate(starts)}
    labels = {p[0]: p[1] for p in period_of}
    group_of_slot = np.asarray([index_of_start[p[0]] for p in period_of])
    group = group_of_slot[inverse]
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(len(starts) + 1))
    return [(labels[st], st, scores[order[bounds[i]:bounds[i + 1]]]) for i, st in enumerate(starts)], models


def _slots_and_scores(db: Database, s: Any, slot: ColumnElement, conds: list[ColumnElement]
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(slot, score) of every part ``conds`` match, as two numpy arrays."""
    if not db.is_sqlite:
        # two arrays in one row: no Row object a part (200 000 of them were most of the
        # time past the scan); both aggregates read the rows in the same order
        slot_list, score_list = s.connection().execute(
            select(func.array_agg(slot), func.array_agg(Inspection.score)).where(*conds)).one()
        return (np.asarray(slot_list or [], dtype=np.int64).reshape(-1),
                np.asarray(score_list or [], dtype=np.float64).reshape(-1))
    # Core, not ORM rows, flattened straight into numpy: handing numpy 200 000 Row
    # objects costs seconds (it probes each for the array protocol)
    data = s.connection().execute(select(slot, Inspection.score).where(*conds)).all()
    arr = np.fromiter(itertools.chain.from_iterable(data), dtype=np.float64, count=2 * len(data)).reshape(-1, 2)
    return arr[:, 0].astype(np.int64), arr[:, 1]


def baseline_scores(db: Database, f: Filters, limit: int = 200_000) -> np.ndarray:
    """Every score in a reference window (the newest ``limit``: plenty for a rank test)."""
    with db.session() as s:
        q = select(Inspection.score).where(*_where(f)).order_by(Inspection.id.desc()).limit(limit)
        return np.fromiter((v for (v,) in s.connection().execute(q)), dtype=np.float64)


def review_counts(db: Database, f: Filters) -> dict[tuple[str, str], int]:
    """{(verdict, latest review label): parts} over reviewed parts."""
    with db.session() as s:
        rows = s.execute(select(Inspection.verdict, Inspection.review_label, func.count())
                         .where(*_where(f), Inspection.reviewed.is_(True), Inspection.review_label.is_not(None))
                         .group_by(Inspection.verdict, Inspection.review_label)).all()
    return {(v, lab): int(n) for v, lab, n in rows}


# escapes outside the audit sample by where they were found (reviews.FOUND_BY but the audit,
# then the reviews that did not say), each as the reports say it
FOUND_OTHERWISE = {"station review": "at the station's review", "next process": "at the next process",
                   "customer": "by the customer", "other": "elsewhere", "not said": "where not said"}
assert set(FOUND_OTHERWISE) == set(FOUND_BY) - {"audit"} | {"not said"}


def escapes_found_otherwise_by(db: Database, f: Filters) -> dict[str, int]:
    """The passed parts (OK) reviewed as defects that the audit sample did not find, by
    where they were found (the part's latest review's ``found_by``): "how many of these did
    we find before the customer did?" An audit-sample part counts here too when its review
    names another place (the customer's complaint about a part that was also drawn for the
    sample was reported "by the audit sample"); one whose review names none is the audit's.
    A value the review route refuses ("audit" on a part not drawn for the sample, a name
    stored by hand) is counted as "other", never dropped."""
    found_by_audit = and_(Inspection.audit_sample.is_(True),
                          or_(Inspection.found_by.is_(None), Inspection.found_by == "audit"))
    with db.session() as s:
        rows = s.execute(select(Inspection.found_by, func.count())
                         .where(*_where(f), Inspection.reviewed.is_(True), Inspection.review_label == "defect",
                                Inspection.verdict == "OK", not_(found_by_audit))
                         .group_by(Inspection.found_by)).all()
    out = dict.fromkeys(FOUND_OTHERWISE, 0)
    for found_by, n in rows:
        key = "not said" if found_by is None else found_by if found_by in out else "other"
        out[key] += int(n)
    return out


def escape_places_text(found_by: dict[str, int]) -> str:
    """"1 by the customer, 2 at the next process": the places that found any, in
    :data:`FOUND_OTHERWISE`'s order ("" when none did)."""
    return ", ".join(f"{n} {FOUND_OTHERWISE[k]}" for k, n in found_by.items() if n)


def audit_ok_counts(db: Database, f: Filters) -> dict[str, int]:
    """Over the random audit sample's parts judged OK (``audit_sample``, drawn before the
    verdict was known): how many there are and how many a person reviewed as good or
    as a defect. Those reviews, unlike OK parts picked by hand because they looked odd,
    estimate the share of passed parts that were defective without bias."""
    with db.session() as s:
        rows = s.execute(select(Inspection.reviewed, Inspection.review_label, func.count())
                         .where(*_where(f), Inspection.audit_sample.is_(True), Inspection.verdict == "OK")
                         .group_by(Inspection.reviewed, Inspection.review_label)).all()
    out = {"parts": 0, "good": 0, "defect": 0}
    for reviewed, label, n in rows:
        out["parts"] += int(n)
        if reviewed and label in ("good", "defect"):
            out[label] += int(n)
    return out


def _plc_rejected_without_verdict() -> list[ColumnElement]:
    # a PLC answer NG sent without a verdict of the model (window missed, no image, a fault)
    return [LineSignal.inspection_id.is_(None), LineSignal.signal == "NG"]


# how long after its trigger a part's verdict may come and still be linked to it: its
# window is milliseconds, so a day bounds the triggers read (the line's index) loosely
_LATE_SLACK = dt.timedelta(days=1)


def verdict_counts(db: Database, f: Filters) -> dict[str, dict[str, int]]:
    """{verdict: {"parts": n, "good": reviewed good, "defect": reviewed defect,
    "rejected_late": of the parts, those the PLC had already rejected, "rejected_late_defect":
    of those, reviewed defect}} over every part of the window, reviewed or not: the totals
    the share of good parts scrapped needs beside the reviews (``spc.review_rates``'
    ``parts``). ``rejected_late``: a verdict that came after the part's inspection window
    is stored, never sent; the PLC was told NG without it, so a part judged OK late was
    scrapped though its verdict says good. Give it a window whose records are all kept
    (the record keeper deletes unreviewed parts, not reviewed ones: an older window's
    totals are short and the share overstated)."""
    group = (Inspection.verdict, Inspection.reviewed, Inspection.review_label)
    late = (select(*group, func.count(func.distinct(Inspection.id)))
            .select_from(LineSignal).join(Inspection, Inspection.id == LineSignal.late_inspection_id)
            .where(*_plc_rejected_without_verdict(), *_where(f)))
    if f.since is not None:
        late = late.where(LineSignal.triggered_at >= f.since - _LATE_SLACK)
    if f.until is not None:
        late = late.where(LineSignal.triggered_at < f.until + _LATE_SLACK)
    with db.session() as s:
        rows = s.execute(select(*group, func.count()).where(*_where(f)).group_by(*group)).all()
        late_rows = s.execute(late.group_by(*group)).all()
    out: dict[str, dict[str, int]] = {}

    def acc(verdict: str) -> dict[str, int]:
        return out.setdefault(verdict, {"parts": 0, "good": 0, "defect": 0, "rejected_late": 0,
                                        "rejected_late_defect": 0})
    for verdict, reviewed, label, n in rows:
        acc(verdict)["parts"] += int(n)
        if reviewed and label in ("good", "defect"):
            acc(verdict)[label] += int(n)
    for verdict, reviewed, label, n in late_rows:
        acc(verdict)["rejected_late"] += int(n)
        if reviewed and label == "defect":
            acc(verdict)["rejected_late_defect"] += int(n)
    return out


def rejected_never_judged(db: Database, f: Filters) -> int:
    """Parts the PLC rejected without a verdict that were never judged (the station held
    up, no image, a fault): no record, so in no count of :func:`verdict_counts` and of
    unknown goodness. By the trigger's time; ``product``: the recipe's."""
    q = select(func.count()).select_from(LineSignal).where(*_plc_rejected_without_verdict(),
                                                           LineSignal.late_inspection_id.is_(None))
    if f.line:
        q = q.where(LineSignal.line == f.line)
    if f.station:      # in any case, as the parts' filter
        q = q.where(station_is(LineSignal.station, f.station))
    if f.product:
        q = q.where(LineSignal.product == f.product)
    if f.since is not None:
        q = q.where(LineSignal.triggered_at >= f.since)
    if f.until is not None:
        q = q.where(LineSignal.triggered_at < f.until)
    with db.session() as s:
        return int(s.scalar(q) or 0)


def defect_type_counts(db: Database, f: Filters) -> tuple[dict[tuple[Optional[str], str], int], int]:
    """({(defect type, verdict): parts} over parts whose latest review says defect, and
    the NG and REVIEW parts not reviewed yet (the Pareto cannot show their types)."""
    with db.session() as s:
        rows = s.execute(select(Inspection.defect_type, Inspection.verdict, func.count())
                         .where(*_where(f), Inspection.reviewed.is_(True), Inspection.review_label == "defect")
                         .group_by(Inspection.defect_type, Inspection.verdict)).all()
        waiting = s.scalar(select(func.count()).select_from(Inspection)
                           .where(*_where(f), Inspection.reviewed.is_(False), Inspection.verdict != "OK"))
    return {(t, v): int(n) for t, v, n in rows}, int(waiting or 0)


@dataclass
class RegionCentres:
    centres: np.ndarray            # (n, 2): each region's centre as a fraction of its photo's width, height
    parts: int                     # parts read (the newest ``limit`` matching)
    parts_with_regions: int
    aspect: Optional[float]        # the photos' median width / height
    backdrop: Optional[int]        # a recent part of this selection whose photo is kept (to draw the map on)


def region_centres(db: Database, f: Filters, which: str = "ng", limit: int = 20_000) -> RegionCentres:
    """The defect regions of the newest ``limit`` parts judged NG (``which="ng"``) or
    reviewed as defects (``"defects"``, escapes included), as centres relative to each
    photo: parts of one product framed alike share one map."""
    conds = _where(f)
    if which == "ng":
        conds.append(Inspection.verdict == "NG")
    else:
        conds += [Inspection.reviewed.is_(True), Inspection.review_label == "defect"]
    with db.session() as s:
        rows = s.connection().execute(
            select(Inspection.regions, Inspection.image_width, Inspection.image_height)
            .where(*conds).order_by(Inspection.id.desc()).limit(limit)).all()
        # a clean picture of the part to draw the map on: the newest kept OK photo, else any
        kept = select(Inspection.id).where(*_where(f), Inspection.image_key.is_not(None))
        backdrop = (s.scalar(kept.where(Inspection.verdict == "OK").order_by(Inspection.id.desc()).limit(1))
                    or s.scalar(kept.order_by(Inspection.id.desc()).limit(1)))
    centres, with_regions, aspects = [], 0, []
    for regions, w, h in rows:
        if not w or not h or w <= 0 or h <= 0:
            continue
        aspects.append(w / h)
        found = False
        for r in regions if isinstance(regions, list) else []:
            box = DefectRegion.box_of(r)
            if box is None:
                continue              # not a region with a box (a record edited by hand)
            x, y, bw, bh = box
            centres.append(((x + bw / 2) / w, (y + bh / 2) / h))
            found = True
        with_regions += found
    return RegionCentres(np.asarray(centres, dtype=np.float64).reshape(-1, 2), len(rows), with_regions,
                         float(np.median(aspects)) if aspects else None, backdrop)
