"""Line alarms: a station that rejects part after part tells someone at once.

A defect the process now makes on every part (a worn tool, a jammed feeder), a camera
knocked askew or a lamp gone out all look the same from the station: part after part is
rejected. The SPC charts show it at the next look; a line needs to hear it now, so the
station watches each station's own parts as they are recorded (test parts apart) with
two rules:

- ``ng_run``: that many parts in a row not passed (NG or REVIEW: a defect on every part
  may land in the review band), default 5. With 1% false rejects, 5% review load and
  0.3% defects, good parts make such a run about once in a million parts.
- ``ng_rate``: at least ``ng_rate`` of the last ``window`` parts judged NG (default 10%
  of 100: 10 NG parts). REVIEW parts are not counted here: a review band of 5% of good
  parts would make the limit a coin toss.

An alarm is latched: it stays active, shown on the line view, sent to the sinks (MQTT
``lineguard/<line>/<station>/alarm``, a webhook's ``event: alarm``) and to the PLC (the
Alarm bit, see line.plc_modbus), until a person acknowledges it (the app or the API,
with a note of what was found) or the PLC does (AlarmAck). The rule that raised it then
counts afresh from the next part: the parts before the acknowledgement never raise it
again. While one is active, its rule raises no second alarm of its kind at that station.

The rules' counts live in memory; after a restart they are read back from the station's
latest records (those after each kind's last alarm and its acknowledgement), so a run
cut by a restart still raises its alarm, and one already raised is not raised twice.
"""
from __future__ import annotations

import collections
import datetime as dt
import logging
import math
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from .errors import Conflict, NotFound
from .orm import Inspection, LineAlarm, iso_utc, utcnow
from .outbox import record_event

log = logging.getLogger("lineguard.station")

KINDS = ("ng_run", "ng_rate")
NOTE_MAX = 2000


@dataclass(frozen=True)
class AlarmRules:
    """When a station's parts raise an alarm; 0 turns a rule off."""

    ng_run: int = 5            # parts in a row not passed (NG or REVIEW)
    ng_rate: float = 0.10      # share of NG parts among the last `window` parts
    window: int = 100

    def __post_init__(self) -> None:
        if not (self.ng_run == 0 or 2 <= self.ng_run <= 10_000):
            raise ValueError(f"the NG-run alarm needs 2 to 10000 parts in a row (0: off), got {self.ng_run}")
        if not 0 <= self.ng_rate <= 1:
            raise ValueError(f"the NG-rate alarm's limit is a share of parts between 0 and 1 (0.1 = 10%; 0: off), "
                             f"got {self.ng_rate}")
        if not 10 <= self.window <= 100_000:
            raise ValueError(f"the NG-rate alarm's window must be 10 to 100000 parts, got {self.window}")

    @property
    def rate_limit(self) -> int:
        """NG parts among the last ``window`` that raise the rate alarm (at least 2: one
        NG part is a defect, not a rate)."""
        return max(2, math.ceil(self.ng_rate * self.window - 1e-9))

    @property
    def active_kinds(self) -> tuple[str, ...]:
        return tuple(k for k, on in (("ng_run", self.ng_run > 0), ("ng_rate", self.ng_rate > 0)) if on)


@dataclass
class _Counts:
    """One station's rules' counts since each kind last raised or was acknowledged."""

    run: list[int] = field(default_factory=list)         # ids of the parts in the current run
    window: collections.deque = field(default_factory=collections.deque)   # (id, is_ng), newest last
    ng: int = 0
    loaded: frozenset = frozenset()   # ids read back at load: not counted a second time

    def add(self, rules: AlarmRules, part_id: int, verdict: str) -> None:
        if verdict == "OK":
            self.run.clear()
        else:
            self.run.append(part_id)
            del self.run[:-max(rules.ng_run, 1)]
        is_ng = verdict == "NG"
        self.window.append((part_id, is_ng))
        self.ng += is_ng
        while len(self.window) > rules.window:
            self.ng -= self.window.popleft()[1]

    def due(self, rules: AlarmRules) -> list[str]:
        kinds = []
        if rules.ng_run and len(self.run) >= rules.ng_run:
            kinds.append("ng_run")
        if rules.ng_rate and self.ng >= rules.rate_limit:
            kinds.append("ng_rate")
        return kinds

    def reset(self, kind: str) -> None:
        if kind == "ng_run":
            self.run.clear()
        else:
            self.window.clear()
            self.ng = 0


def alarm_to_dict(a: LineAlarm) -> dict[str, Any]:
    return {"id": a.id, "line": a.line, "station": a.station, "product": a.product, "kind": a.kind,
            "message": a.message, "raised_at": iso_utc(a.raised_at), "inspection_id": a.inspection_id,
            "first_inspection_id": a.first_inspection_id, "parts": a.parts, "rejected": a.rejected,
            "active": a.acked_at is None, "acked_at": iso_utc(a.acked_at), "acked_by": a.acked_by,
            "ack_note": a.ack_note}


def _message(kind: str, rules: AlarmRules, line: str, station: str, product: str, parts: int, rejected: int) -> str:
    where = f"station {station} (line {line}, {product})"
    if kind == "ng_run":
        return (f"{parts} parts in a row not passed (NG or REVIEW) at {where}: a defect the process now makes on every part, or "
                "the camera, lighting or model gone wrong; stop the line and look before more parts are made")
    return (f"{rejected} of the last {parts} parts NG at {where}, over the alarm limit of "
            f"{rules.rate_limit} in {rules.window}: find what changed upstream or at the camera")


class AlarmWatch:
    """The alarm rules of every station of this process, fed each part as it is recorded.

    ``listeners`` are called with each alarm raised or acknowledged here (as its
    dict, with ``change``: raised or acknowledged), outside the watch's lock."""

    def __init__(self, db: Any, rules: AlarmRules, metrics: Any = None):
        self.db = db
        self.rules = rules
        self.metrics = metrics
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], _Counts] = {}
        if metrics is not None:
            try:
                per_station = collections.Counter((a["line"], a["station"]) for a in self.active())
                for (line, station), n in per_station.items():
                    metrics.alarms_active.labels(line, station).set(n)
            except SQLAlchemyError:
                log.warning("could not read the active alarms at start", exc_info=True)

    # -- the rules -------------------------------------------------------------------------
    def after_part(self, rec: Inspection) -> list[dict[str, Any]]:
        """Count a recorded part; the alarms it raised (an empty list, nearly always).

        Never raises: the part is recorded and answered whatever happens here (an
        alarm not written for a database away is raised at a later part)."""
        if not self.rules.active_kinds or rec.test_part is not None:
            return []
        raised: list[dict[str, Any]] = []
        try:
            with self._lock:
                key = (rec.line, rec.station)
                counts = self._counts.get(key)
                if counts is None:
                    counts = self._counts[key] = self._load(rec.line, rec.station)
                if rec.id not in counts.loaded:
                    counts.add(self.rules, rec.id, rec.verdict)
                for kind in counts.due(self.rules):
                    alarm = self._raise(kind, rec, counts)
                    counts.reset(kind)       # written, or one is active already: count afresh
                    if alarm is not None:
                        raised.append(alarm)
        except SQLAlchemyError:
            log.warning("line %s station %s: an alarm could not be read or written; tried again at the next part",
                        rec.line, rec.station, exc_info=True)
            with self._lock:
                self._counts.pop((rec.line, rec.station), None)   # read back from the records next time
        for alarm in raised:
            log.warning("ALARM line %s station %s: %s", alarm["line"], alarm["station"], alarm["message"])
            self._tell(alarm)
        return raised

    def _load(self, line: str, station: str) -> _Counts:
        """The counts as the station's latest records leave them (after a restart)."""
        need = max(self.rules.ng_run, self.rules.window)
        with self.db.session() as s:
            last: dict[str, LineAlarm] = {}
            for kind in self.rules.active_kinds:
                a = s.scalars(select(LineAlarm).where(LineAlarm.line == line, LineAlarm.station == station,
                                                      LineAlarm.kind == kind)
                              .order_by(LineAlarm.id.desc()).limit(1)).first()
                if a is not None:
                    last[kind] = a
            rows = s.execute(select(Inspection.id, Inspection.verdict, Inspection.created_at)
                             .where(Inspection.line == line, Inspection.station == station,
                                    Inspection.test_part.is_(None))
                             .order_by(Inspection.created_at.desc(), Inspection.id.desc()).limit(need)).all()
        rows.reverse()

        def after(kind: str) -> list:
            a = last.get(kind)
            if a is None:
                return rows
            return [r for r in rows if r.id > a.inspection_id and (a.acked_at is None or r.created_at > a.acked_at)]

        counts = _Counts(loaded=frozenset(r.id for r in rows))
        run_counts, rate_counts = _Counts(), _Counts()
        for r in after("ng_run"):
            run_counts.add(self.rules, r.id, r.verdict)
        for r in after("ng_rate"):
            rate_counts.add(self.rules, r.id, r.verdict)
        counts.run, counts.window, counts.ng = run_counts.run, rate_counts.window, rate_counts.ng
        return counts

    def _raise(self, kind: str, rec: Inspection, counts: _Counts) -> Optional[dict[str, Any]]:
        if kind == "ng_run":
            ids = counts.run
            parts, rejected = len(ids), len(ids)
        else:
            ids = [i for i, _ in counts.window]
            parts, rejected = len(ids), counts.ng
        with self.db.session() as s:
            active = s.scalar(select(LineAlarm.id).where(LineAlarm.line == rec.line, LineAlarm.station == rec.station,
                                                         LineAlarm.kind == kind, LineAlarm.acked_at.is_(None))
                              .limit(1))
            if active is not None:
                return None      # latched already: the line knows
            a = LineAlarm(line=rec.line, station=rec.station, product=rec.product, kind=kind,
                          message=_message(kind, self.rules, rec.line, rec.station, rec.product, parts, rejected),
                          raised_at=utcnow(), inspection_id=rec.id, first_inspection_id=min(ids, default=rec.id),
                          parts=parts, rejected=rejected)
            s.add(a)
            s.flush()
            out = {**alarm_to_dict(a), "change": "raised"}
            # the message leaves exactly when the alarm is stored (see line.outbox)
            record_event(s, "alarm", rec.line, out)
        if self.metrics is not None:
            self.metrics.alarms_raised.labels(rec.line, rec.station, kind).inc()
            self._count_active(rec.line, rec.station)
        return out

    def _count_active(self, line: str, station: str) -> None:
        """The active-alarms gauge, from the database (another process may raise or
        acknowledge them too)."""
        try:
            self.metrics.alarms_active.labels(line, station).set(len(self.active(line=line, station=station)))
        except SQLAlchemyError:
            log.warning("could not count the active alarms of line %s station %s", line, station, exc_info=True)

    # -- acknowledgement -------------------------------------------------------------------
    def acknowledge(self, alarm_id: int, by: Optional[str], note: Optional[str] = None) -> dict[str, Any]:
        """Mark an active alarm seen to; Conflict when someone already did (who, when)."""
        note = (note or "").strip() or None
        with self.db.session() as s:
            now = utcnow()
            done = s.execute(update(LineAlarm).where(LineAlarm.id == alarm_id, LineAlarm.acked_at.is_(None))
                             .values(acked_at=now, acked_by=by, ack_note=note)).rowcount
            a = s.get(LineAlarm, alarm_id)
            if a is None:
                raise NotFound(f"no alarm {alarm_id}")
            if not done:
                raise Conflict(f"alarm {alarm_id} was acknowledged already, by {a.acked_by or 'someone'} at "
                               f"{iso_utc(a.acked_at)}")
            s.refresh(a)
            out = {**alarm_to_dict(a), "change": "acknowledged"}
            record_event(s, "alarm", a.line, out)
        self._after_ack(out)
        return out

    def acknowledge_station(self, line: str, station: str, by: str) -> list[dict[str, Any]]:
        """Acknowledge every active alarm of one station (the PLC's AlarmAck)."""
        done = []
        for a in self.active(line=line, station=station):
            try:
                done.append(self.acknowledge(a["id"], by))
            except Conflict:        # acknowledged meanwhile by a person: theirs stands
                pass
        return done

    def _after_ack(self, alarm: dict[str, Any]) -> None:
        with self._lock:
            counts = self._counts.get((alarm["line"], alarm["station"]))
            if counts is not None:
                counts.reset(alarm["kind"])   # the parts before it never raise it again
        if self.metrics is not None:
            self._count_active(alarm["line"], alarm["station"])
        log.info("alarm %s at line %s station %s acknowledged by %s", alarm["id"], alarm["line"], alarm["station"],
                 alarm["acked_by"])
        self._tell(alarm)

    def _tell(self, alarm: dict[str, Any]) -> None:
        for fn in list(self.listeners):
            try:
                fn(alarm)
            except Exception:  # noqa: BLE001 - a listener's failure is not the alarm's
                log.warning("an alarm listener failed", exc_info=True)

    # -- reading -----------------------------------------------------------------------------
    def active(self, line: Optional[str] = None, station: Optional[str] = None) -> list[dict[str, Any]]:
        """Alarms not yet acknowledged, oldest first (read from the database: another
        process on it, a hot folder's watcher, may have raised them)."""
        q = select(LineAlarm).where(LineAlarm.acked_at.is_(None)).order_by(LineAlarm.id)
        if line is not None:
            q = q.where(LineAlarm.line == line)
        if station is not None:
            q = q.where(LineAlarm.station == station)
        with self.db.session() as s:
            return [alarm_to_dict(a) for a in s.scalars(q.limit(1000))]

    def history(self, **filters: Any) -> list[dict[str, Any]]:
        """Alarms newest first (see :func:`history`)."""
        return history(self.db, **filters)


def history(db: Any, *, line: Optional[str] = None, station: Optional[str] = None, product: Optional[str] = None,
            active: Optional[bool] = None, since: Optional[dt.datetime] = None, until: Optional[dt.datetime] = None,
            before_id: Optional[int] = None, limit: int = 50) -> list[dict[str, Any]]:
    """Alarms newest first, filtered (``since``/``until`` on the time raised); page with ``before_id``."""
    q = select(LineAlarm).order_by(LineAlarm.id.desc())
    for col, v in ((LineAlarm.line, line), (LineAlarm.station, station), (LineAlarm.product, product)):
        if v is not None:
            q = q.where(col == v)
    if active is not None:
        q = q.where(LineAlarm.acked_at.is_(None) if active else LineAlarm.acked_at.is_not(None))
    if since is not None:
        q = q.where(LineAlarm.raised_at >= since)
    if until is not None:
        q = q.where(LineAlarm.raised_at < until)
    if before_id is not None:
        q = q.where(LineAlarm.id < before_id)
    with db.session() as s:
        return [alarm_to_dict(a) for a in s.scalars(q.limit(limit))]


def alarm_code(alarms: list[dict[str, Any]]) -> int:
    """The PLC's AlarmCode: bit 0 an NG run, bit 1 an NG rate (0: none active)."""
    return sum(1 << KINDS.index(kind) for kind in {a["kind"] for a in alarms} if kind in KINDS)
