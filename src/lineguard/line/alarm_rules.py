"""When a station's parts raise a line alarm: the rules, and each station's own.

Stations differ. A station whose process rejects 3% of its parts on a normal day hears
the default NG-rate alarm (10 of the last 100) at every bad hour, so the line learns to
ignore it; one that rejects 0.1% should hear of 3% at once; a camera on a dusty line may
need the photo rule at 5 doubted photos (of the last 9), a line with nobody at the screen a shorter
escalation. The process's settings (``serve --alarm-*``) are every station's default;
an engineer gives a station its own (the Alarms page, ``PUT /api/v1/alarms/rules``),
each setting left empty following the default. A station's own settings are kept in the
database, so every process on it (the server, a hot folder's watcher) counts the station
by them (the settings it has not set follow each process's own defaults, which differ
only where the processes were started with different options), and each change is in
the change log with what it was before.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from . import audit, part_names
from .close_names import listed
from .errors import Conflict, InvalidRequest, NotFound
from .orm import Inspection, LineSignal, StationAlarmRules, iso_utc, utcnow

# the settings a station may have of its own; its table calls "window" rate_window (SQL reserves the word)
SETTINGS = ("ng_run", "ng_rate", "window", "photo_run", "no_verdict_run", "escalate_min", "escalate_again_min",
            "drift_parts")
_COLUMN = {"window": "rate_window"}
# the groups of a model's first parts at a station that make the drift alarm's baseline
DRIFT_BASELINE_GROUPS = 5


@dataclass(frozen=True)
class AlarmRules:
    """When a station's parts raise an alarm; 0 turns a rule off."""

    ng_run: int = 5            # parts in a row not passed (NG or REVIEW)
    ng_rate: float = 0.10      # share of NG parts among the last `window` parts
    window: int = 100
    photo_run: int = 3         # photos the photo check doubts among the last photo_window parts (3 of 5)
    no_verdict_run: int = 3    # PLC answers in a row rejected without a verdict (window missed, no image, fault)
    escalate_min: float = 10.0  # minutes an alarm may stay unacknowledged before it is escalated
    escalate_again_min: float = 0.0   # then escalated again every so many minutes until acknowledged (0: once)
    # parts per group whose scores are compared with the model's first parts at the station
    # (score drift: a lens getting dirty, a lamp ageing, a camera out of focus; line.alarms)
    drift_parts: int = 100

    def __post_init__(self) -> None:
        for name in ("ng_run", "window", "photo_run", "no_verdict_run", "drift_parts"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):     # 2.5 from a database edited by hand
                raise ValueError(f"{name} must be a whole number, got {v!r}")
        for name in ("ng_rate", "escalate_min", "escalate_again_min"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{name} must be a finite number, got {v!r}")
        if not (self.ng_run == 0 or 2 <= self.ng_run <= 10_000):
            raise ValueError(f"the NG-run alarm needs 2 to 10000 parts in a row (0: off), got {self.ng_run}")
        if not 0 <= self.ng_rate <= 1:
            raise ValueError(f"the NG-rate alarm's limit is a share of parts between 0 and 1 (0.1 = 10%; 0: off), "
                             f"got {self.ng_rate}")
        if not 10 <= self.window <= 100_000:
            raise ValueError(f"the NG-rate alarm's window must be 10 to 100000 parts, got {self.window}")
        if not (self.photo_run == 0 or 2 <= self.photo_run <= 10_000):
            raise ValueError(f"the photo alarm needs 2 to 10000 doubted photos (of the last 2N-1 parts; 0: off), "
                             f"got {self.photo_run}")
        if not (self.no_verdict_run == 0 or 2 <= self.no_verdict_run <= 10_000):
            raise ValueError(f"the no-verdict alarm needs 2 to 10000 PLC answers in a row without a verdict (0: off), "
                             f"got {self.no_verdict_run}")
        if not (self.drift_parts == 0 or 20 <= self.drift_parts <= 10_000):
            raise ValueError(f"the score-drift alarm compares groups of 20 to 10000 parts (0: off), got "
                             f"{self.drift_parts}; fewer than 20 parts cannot tell a drift from chance")
        if not (self.escalate_min == 0 or 0.5 <= self.escalate_min <= 24 * 60):
            raise ValueError(f"alarms are escalated after 0.5 to 1440 minutes unacknowledged (0: never), "
                             f"got {self.escalate_min}")
        if not (self.escalate_again_min == 0 or 1 <= self.escalate_again_min <= 24 * 60):
            raise ValueError(f"an escalated alarm is escalated again every 1 to 1440 minutes (0: once), "
                             f"got {self.escalate_again_min}")

    @property
    def rate_limit(self) -> int:
        """NG parts among the last ``window`` that raise the rate alarm (at least 2: one
        NG part is a defect, not a rate)."""
        return max(2, math.ceil(self.ng_rate * self.window - 1e-9))

    @property
    def active_kinds(self) -> tuple[str, ...]:
        return self.part_kinds + (("no_verdict",) if self.no_verdict_run else ())

    @property
    def part_kinds(self) -> tuple[str, ...]:
        """The rules counted over the parts' records (no_verdict counts the PLC's answers)."""
        return tuple(k for k, on in (("ng_run", self.ng_run > 0), ("ng_rate", self.ng_rate > 0),
                                     ("photo", self.photo_run > 0), ("drift", self.drift_parts > 0)) if on)

    @property
    def photo_window(self) -> int:
        """The parts the photo rule looks back over: ``photo_run`` doubted photos among the
        last 2 x photo_run - 1 (3 of 5), a majority of them. In a row, a dimming lamp's first
        doubted photos came between passing ones and the alarm came 20 parts after the first;
        a majority still needs the photos to come close together (chance doubts at 1-2% a
        photo make 3 of 5 once in about 20,000 to 170,000 parts, against 3 in a row's 125,000
        to a million), and a station that wants fewer sets a larger photo_run as before.
        Derived, not a setting of its own: no column, the stored photo_run keeps working."""
        return 2 * self.photo_run - 1 if self.photo_run else 0

    @property
    def drift_baseline_parts(self) -> int:
        """The parts of a model at a station its later groups are compared with: its first
        DRIFT_BASELINE_GROUPS groups there (5, as the SPC page's default baseline)."""
        return DRIFT_BASELINE_GROUPS * self.drift_parts

    @property
    def judged_keep(self) -> int:
        """Parts the reject rules look back over."""
        return max(self.ng_run, self.window)

    def to_dict(self) -> dict[str, Any]:
        return {"ng_run": self.ng_run, "ng_rate": self.ng_rate, "window": self.window,
                "rate_limit": self.rate_limit if self.ng_rate else None, "photo_run": self.photo_run,
                "no_verdict_run": self.no_verdict_run, "escalate_min": self.escalate_min,
                "escalate_again_min": self.escalate_again_min, "drift_parts": self.drift_parts,
                "drift_baseline_parts": self.drift_baseline_parts if self.drift_parts else None}


def with_own(defaults: AlarmRules, own: dict[str, Any]) -> AlarmRules:
    """A station's rules: its own settings, the defaults for the rest (ValueError when one is out of range)."""
    return dataclasses.replace(defaults, **{k: v for k, v in own.items() if v is not None})


def _own(row: StationAlarmRules) -> dict[str, Any]:
    return {k: getattr(row, _COLUMN.get(k, k)) for k in SETTINGS if getattr(row, _COLUMN.get(k, k)) is not None}


def read_own(db: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """Every station's own settings, by (line, station); those with none are left out."""
    with db.session() as s:
        return {(r.line, r.station): own for r in s.scalars(select(StationAlarmRules)) if (own := _own(r))}


def listing(db: Any, defaults: AlarmRules) -> list[dict[str, Any]]:
    """The stations with rules of their own: their settings and the rules they make with the defaults."""
    with db.session() as s:
        rows = list(s.scalars(select(StationAlarmRules).order_by(StationAlarmRules.line, StationAlarmRules.station)))
    out = []
    for r in rows:
        own = _own(r)
        try:
            rules: Optional[dict[str, Any]] = with_own(defaults, own).to_dict()
            problem = None
        except (ValueError, TypeError) as exc:    # written by hand in the database: counted by the defaults
            rules, problem = defaults.to_dict(), str(exc)
        out.append({"line": r.line, "station": r.station, "own": own, "rules": rules, "problem": problem,
                    "updated_at": iso_utc(r.updated_at), "updated_by": r.updated_by})
    return out


def _check(line: str, station: str) -> None:
    for what, name in (("line", line), ("station", station)):
        if not name or name != name.strip() or len(name) > 100 or "\x00" in name:
            raise InvalidRequest(f"give the {what} as the parts name it (1 to 100 characters, no spaces around it)")


def set_own(db: Any, line: str, station: str, own: dict[str, Any], by: Optional[str], keep_others: bool = False,
            unset: Iterable[str] = ()) -> dict[str, Any]:
    """Give a station settings of its own (``own``: any of SETTINGS; None or left out: the
    process's default, or with ``keep_others`` the station's own setting as it is, less
    those in ``unset``). All left empty is the same as :func:`clear_own`. Refused for a
    station no part was ever inspected at: a misspelt name would never raise an alarm."""
    _check(line, station)
    line, station = _as_stored(db, line, station)
    unset = tuple(unset)
    unknown = (set(own) | set(unset)) - set(SETTINGS)
    if unknown:
        raise InvalidRequest(f"unknown alarm setting(s) {', '.join(sorted(unknown))}; a station may have its own "
                             f"{', '.join(SETTINGS)}")
    own = {k: v for k, v in own.items() if v is not None}
    try:
        with_own(AlarmRules(), own)      # each setting is checked on its own range
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    try:
        return _store(db, line, station, own, by, keep_others, unset)
    except (IntegrityError, StaleDataError):     # two changes of one station at once: the other one's stands
        raise _changed_meanwhile(line, station) from None


def _as_stored(db: Any, line: str, station: str) -> tuple[str, str]:
    """The line and station as the parts name them, when typed in another case ("l1"/"s1"
    for "L1"/"S1"): rules under a name no part carries would never count a part. Unchanged
    when stored so, or when no part names them in any case (then refused as unknown)."""
    lines = part_names.stored_names(db, "line")
    stored_line = part_names.as_stored(line, lines)
    if stored_line not in lines:     # a line of PLC answers alone (every part rejected without a verdict)
        stored_line = part_names.as_stored(line, list(part_names.stored_stations(db, "line_signals")))
    with db.session() as s:
        # the station as typed first, whatever the line's case; else the name in another
        # case its newest part carries (the line's parts only, along its index)
        if s.scalar(select(Inspection.id).where(Inspection.line == stored_line, Inspection.station == station)
                    .limit(1)):
            return stored_line, station
        hit = s.scalar(select(Inspection.station).where(Inspection.line == stored_line,
                                                        part_names.station_is(Inspection.station, station))
                       .order_by(Inspection.created_at.desc()).limit(1))
    if hit is not None:
        return stored_line, hit
    # a station the PLC answered for whose parts all got no verdict holds no part record and is
    # still a station (the shift report lists it, its no_verdict alarms are raised under it)
    names = part_names.station_names(db, stored_line)
    named = part_names.as_stored(station, names)
    return (stored_line, named) if named in names else (line, station)


def _changed_meanwhile(line: str, station: str) -> Conflict:
    return Conflict(f"the alarm rules of station {station!r} of line {line!r} were changed by someone else just "
                    "now; look at them (the Alarms page, GET /api/v1/alarms/rules or `lineguard alarm-rules list`) "
                    "and set yours again")


def _store(db: Any, line: str, station: str, own: dict[str, Any], by: Optional[str], keep_others: bool,
           unset: tuple[str, ...]) -> dict[str, Any]:
    with db.session() as s:
        seen = s.scalar(select(Inspection.id).where(Inspection.line == line, Inspection.station == station).limit(1))
        if seen is None:     # or a station of the PLC's answers alone (along ix_line_signals_station_id)
            seen = s.scalar(select(LineSignal.id).where(LineSignal.line == line, LineSignal.station == station)
                            .limit(1))
        if seen is None:
            # the line's stations named: a PLC link's parts are station "plc", which the
            # README's example (S1) and the walk that followed it could not guess
            known = part_names.station_names(db, line)[:20]
            said = f"; line {line!r} has parts of station{'s' if len(known) > 1 else ''} {listed(known)}" if known else ""
            raise NotFound(f"no part was ever inspected at station {station!r} of line {line!r}, in any case, and "
                           f"no PLC answer names it{said}: check both names, or set its rules after its first part",
                           stations=known)
        # locked (PostgreSQL): a change made at the same time waits, and its "before" is this one's "after"
        row = s.get(StationAlarmRules, (line, station), with_for_update=True)
        before = _own(row) if row is not None else {}
        if keep_others:     # merged under the row's lock: a change made meanwhile is kept, not overwritten
            own = {k: v for k, v in {**before, **own}.items() if k not in unset}
            try:
                with_own(AlarmRules(), own)
            except (ValueError, TypeError) as exc:   # a setting kept from a hand edit of the database
                raise InvalidRequest(f"{exc} (kept from the station's own settings: set it, or unset it)") from None
        own = {k: own[k] for k in SETTINGS if k in own}
        if not own:
            if row is not None:
                s.delete(row)
                audit.record(s, "alarm_rules.cleared", f"{line}/{station}", by, before=before)
            return {"line": line, "station": station, "own": {}}
        if row is None:
            row = StationAlarmRules(line=line, station=station)
            s.add(row)
        for k in SETTINGS:
            setattr(row, _COLUMN.get(k, k), own.get(k))
        row.updated_at, row.updated_by = utcnow(), by[:100] if by else by
        if own != before:
            audit.record(s, "alarm_rules.set", f"{line}/{station}", by, before=before, after=own)
    return {"line": line, "station": station, "own": own}


def clear_own(db: Any, line: str, station: str, by: Optional[str]) -> dict[str, Any]:
    """The station back on the process's defaults; NotFound when it had no settings of its own."""
    _check(line, station)
    with db.session() as s:      # as typed, else under the names set_own kept them by (its parts' names)
        if s.get(StationAlarmRules, (line, station)) is None:
            line, station = _as_stored(db, line, station)
    try:
        with db.session() as s:
            row = s.get(StationAlarmRules, (line, station), with_for_update=True)
            if row is None:
                raise NotFound(f"station {station!r} of line {line!r} has no alarm rules of its own; it follows the "
                               "defaults already")
            before = _own(row)
            s.delete(row)
            audit.record(s, "alarm_rules.cleared", f"{line}/{station}", by, before=before)
    except StaleDataError:         # cleared or changed by someone else between the read and the delete
        raise _changed_meanwhile(line, station) from None
    return {"line": line, "station": station, "own": {}}
