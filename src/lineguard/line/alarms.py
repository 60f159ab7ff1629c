"""Line alarms: a station that rejects part after part tells someone at once.

A defect the process now makes on every part (a worn tool, a jammed feeder), a camera
knocked askew or a lamp gone out all look the same from the station: part after part is
rejected. The SPC charts show it at the next look; a line needs to hear it now, so the
station watches each station's own parts as they are recorded (test parts apart) with
three rules:

- ``ng_run``: that many parts in a row not passed (NG or REVIEW: a defect on every part
  may land in the review band), default 5. With 1% false rejects, 5% review load and
  0.3% defects, good parts make such a run about once in a million parts.
- ``ng_rate``: at least ``ng_rate`` of the last ``window`` parts judged NG (default 10%
  of 100: 10 NG parts). REVIEW parts are not counted here: a review band of 5% of good
  parts would make the limit a coin toss.
- ``photo_run``: that many photos unlike the model's good photos (the photo check,
  vision.photo_check: too dark, too bright, flat or blurred) among the last 2N-1 parts
  (``AlarmRules.photo_window``; default 3 of 5: a dimming lamp's first doubted photos
  come between passing ones), naming what to check for what was off. A lamp
  gone out or a lens out of focus is the camera's fault, not the parts': the alarm says
  so, and while this rule is on, parts with such photos are counted by it alone (they
  neither lengthen nor break a run of rejects, nor count toward the NG rate), so the
  line hears "check the camera", not "the parts are bad". About 1-2% of good photos are
  doubted by chance (the photo check's bench); one by one, three of five would come once
  in about 20,000 to 170,000 parts (three in a row: 100,000 to a million).
- ``no_verdict_run``: that many PLC answers in a row NG without a verdict of the model
  (the inspection window missed, no image, a model or storage fault), default 3. Such a
  part has no inspection record (a late verdict, if any, is stored with the verdict the
  model gave, often OK), so no other rule and no page sees it, while the line scraps
  every part: a station too slow for the line, a camera that delivers nothing. Counted by
  the PLC link (line.plc_handshake) over its answers, in the order given, any answer
  with a verdict breaks the run; read back from ``line_signals`` after a restart; the
  alarm names the answer (``signal_id``) that raised it and has no part (inspection 0).
  A storage fault is such an answer, so the database may refuse the very alarm: the run
  is counted in memory meanwhile, and its alarm written (as of when it came due, with the
  run's count) as soon as the database takes writes, at the next answer or the next look
  for escalations, though a verdict ended the run meanwhile; the refusal is logged once
  when it begins and once when it ends.
- ``test_part``: a test part (line.test_parts) judged otherwise than it must be, at once
  and always (a wrong test part is never chance); the alarm names the check's record. A
  further wrong check while it is active is news, not a repeat (another test part failing
  names another fault): the active alarm names it and counts it (``parts``), and goes out
  again (``change: updated``); after the acknowledgement the next wrong check raises anew.
- ``drift``: the part scores moved away from those the model gave first at this station,
  before parts are rejected for it. A lens slowly getting dirty or a lamp ageing moves
  every part's score up for hours before good parts start being rejected (false rejects);
  a camera knocked out of focus can move them down (defects passed: escapes). Each
  product's parts are counted in groups of ``drift_parts`` (default 100, with the photo
  rule on not those with doubted photos); the model's first 5 groups at the station are
  the baseline, and each later group is compared with it as it fills by the SPC page's
  rule (line.spc: a Mann-Whitney rank shift, |z| > 3 and at least 10 % more (or fewer)
  parts above a typical baseline part), two groups in a row moved the same way. The
  baseline is begun afresh when another model judges the product (its version changed:
  scores of two models are not comparable), and is read back after a restart as the
  first parts after the last one another model judged, so all processes agree on it. Not
  the SPC page's reference window: that is given per request, not kept, and its parts may
  be another model's. On 40 simulated stable lines of 100,000 parts each it raised no
  alarm; of 1,000,000 parts each (one model for 11 days at a part a second) 5 alarms on 3
  of the 40 lines, about one in 8 million parts (a baseline that sat low by chance).

These are the process's defaults; a station may have rules of its own (line.alarm_rules),
read from the database by every process on it. From a station's first part under new
rules its latest records are counted afresh, as after a restart.

An alarm is latched: it stays active, shown on the line view, sent to the sinks (MQTT
``lineguard/<line>/<station>/alarm``, a webhook's ``event: alarm``) and to the PLC (the
Alarm bit, see line.plc_modbus), until a person acknowledges it (the app or the API,
with what it turned out to be and a note) or the PLC does (AlarmAck). One left
unacknowledged for ``escalate_min`` minutes (its station's setting when raised, stored
on the alarm) is escalated (``change: escalated``, for a supervisor's pager or a louder
andon), and again every ``escalate_again_min`` if set, each with its ``level``: of the
processes on the database, the one whose update marks that due time sends it. The rule that raised it then
counts afresh from the next part: the parts before the acknowledgement never raise it
again. While one is active, its rule raises no second alarm of its kind at that station.

Parts are counted in id order (threads commit out of order). What an alarm has done
with is marked by part ids, not times (two processes' clocks may differ): the part that
raised it, and on acknowledgement the station's newest part. The rules' counts live in
memory and are read back from the station's latest records after a restart, so a run
cut by a restart still raises its alarm. Each process counts every part of the station,
not only those it recorded: when the ids since its last part went partly elsewhere (a
hot folder's watcher beside the server, two servers on one database), the station's
parts among them are read (one query by id) before its next part is counted, and the
parts an alarm names are read again under the line's lock before it is written. In
that transaction the station's last alarm of that kind is read too: an active one, or
an acknowledgement made meanwhile (also by another process on the database, say a hot
folder's watcher), stops it; a unique index allows one active alarm of a kind per
station whichever process raises it.
"""
from __future__ import annotations

import bisect
import collections
import datetime as dt
import logging
import math
import re
import statistics
import threading
import time
from typing import Any, Callable, Iterable, Optional

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

import numpy as np

from ..vision.result import DefectRegion
from . import alarm_causes, alarm_rules, handover, spc
from .alarm_rules import AlarmRules
from .db import fault_line, is_refusal
from .errors import Conflict, InvalidRequest, NotFound
from .orm import Inspection, LineAlarm, LineSignal, iso_utc, utcnow
from .outbox import lock_line, record_event
from .sources.outage import LastingFaults
from .test_parts import SEVERITY

log = logging.getLogger("lineguard.station")

# the order is the PLC's AlarmCode bits: append a new kind, never reorder
KINDS = ("ng_run", "ng_rate", "photo", "no_verdict", "test_part", "drift")
NOTE_MAX = 2000
NOTE_CAP = 10 * NOTE_MAX      # a note with every later addition (set_cause)


def _one_line(note: Optional[str]) -> Optional[str]:
    """A note as one line: the history kept in it is one line per addition, which a note
    with line breaks could fake."""
    return " ".join((note or "").split()) or None
# A line set_cause adds when only the cause changed: "[2026-12-06 06:40 UTC, who] cause A -> B"
# (a note given with it follows after "; "). The station's history, not anything a person wrote.
_CAUSE_ONLY = re.compile(r"^\[[^\]]* UTC, [^\]]*\] cause .* -> [^;]*$")


def has_own_note(note: Optional[str]) -> bool:
    """Whether an alarm's note holds something a person wrote, not only the history lines of
    causes changed without a note: a cause changed to "other" needs one, and an alarm whose
    cause was changed twice without a word passed for one that had it."""
    return any(line.strip() and not _CAUSE_ONLY.match(line.strip()) for line in (note or "").split("\n"))


# What an alarm turned out to be: the built-in causes and their PLC numbers (the plant's
# own are in the database: line.alarm_causes)
CAUSES, CAUSE_CODES = alarm_causes.BUILT_IN, alarm_causes.BUILT_IN_CODES


class _Counts:
    """One station's latest parts, in id order, and per rule the id at or below which
    parts no longer count (the part that last raised it, or the newest part when it was
    acknowledged). Ids, not times: parts of several threads commit out of order, and
    two processes' clocks may disagree."""

    def __init__(self, rules: AlarmRules, read_to: int = 0):
        self.rules = rules
        # (inspection id, verdict), ascending: the parts the reject rules count. With the
        # photo rule on, not those whose photo the model could not judge: that rule speaks
        # for them, and however many there are they neither lengthen nor break a run.
        self.judged: list[tuple[int, str]] = []
        # (inspection id, verdict, photo doubted), ascending: the newest photo_window parts, for the photo rule
        self.photos: list[tuple[int, str, bool]] = []
        self.floor: dict[str, int] = {kind: 0 for kind in KINDS}
        # per product, its scores for the drift rule; a product not here is read from the
        # database at its next part (AlarmWatch._load_drift), once
        self.drift: dict[str, _Drift] = {}
        # the drift rule's floor per product (its floor["drift"] is not used): a drift alarm
        # is about the product whose scores moved, and begins that product's baseline afresh
        # only (a product-switching station's other products keep theirs)
        self.drift_floor: dict[str, int] = {}
        # the station's parts up to this id are counted: read from the database or
        # recorded here. Another process on the database (a hot folder's watcher beside
        # the server, a second server) records parts of the same station; those above it
        # are read before the next part is counted (AlarmWatch._catch_up)
        self.read_to = read_to
        # a product's drift counts completed a group, or were begun afresh: its /metrics
        # series are set again after the part (AlarmWatch._show_drift), not at every part
        self.drift_changed = True

    def add(self, part_id: int, verdict: str, doubted: bool = False, score: Optional[float] = None,
            product: Optional[str] = None, model_id: Optional[str] = None, at: Optional[dt.datetime] = None) -> None:
        """Count a part; one counted already (read back from the database, then handed
        over by the thread that recorded it) is not counted again. The drift rule counts
        it when ``score`` and ``product`` are given and the product's scores are read."""
        photo_run = self.rules.photo_run
        if self.rules.drift_parts and score is not None and product is not None and not (photo_run and doubted):
            drift = self.drift.get(product)
            if drift is not None and drift.model_id != model_id:
                # another model judges the product now: its scores are not comparable with the
                # baseline, begun afresh. An older part of the model before is not counted.
                if part_id > drift.newest:
                    # after the model before's newest part, as _load_drift reads it back: this
                    # model's parts from before it (a rollback) are no part of the new baseline
                    # when an alarm's re-read (AlarmWatch._raise) hands them over again
                    drift = self.drift[product] = _Drift(product, model_id, self.rules, after=drift.newest)
                else:
                    drift = None    # a late part of the model before (threads commit out of order): not counted
                self.drift_changed = True
            if drift is not None:
                steps = drift.steps
                drift.add(part_id, float(score), verdict, at)
                self.drift_changed |= drift.steps != steps
        if photo_run:
            _insort_once(self.photos, (part_id, verdict, bool(doubted)))
            del self.photos[:-self.rules.photo_window]
        if not (photo_run and doubted):
            _insort_once(self.judged, (part_id, verdict))
            del self.judged[:-self.rules.judged_keep]

    def run(self) -> list[int]:
        """Ids of the newest parts not passed, in a row, after the run rule's floor."""
        ids = []
        for part_id, verdict in reversed(self.judged):
            if part_id <= self.floor["ng_run"] or verdict == "OK":
                break
            ids.append(part_id)
        return ids[::-1]

    def window(self) -> list[tuple[int, bool]]:
        """(id, is NG) of the last ``window`` parts after the rate rule's floor."""
        floor = self.floor["ng_rate"]
        return [(i, v == "NG") for i, v in self.judged[-self.rules.window:] if i > floor]

    def photo_run(self) -> list[int]:
        """Ids of the parts whose photos were doubted among the last ``photo_window`` parts,
        after the photo rule's floor. Not only in a row: a dimming lamp's doubted photos came
        between passing ones, and the alarm came 20 parts after the first of them."""
        floor = self.floor["photo"]
        return [part_id for part_id, _, doubted in self.photos[-self.rules.photo_window:]
                if doubted and part_id > floor]

    def due(self) -> list[str]:
        rules, kinds = self.rules, []
        if rules.ng_run and len(self.run()) >= rules.ng_run:
            kinds.append("ng_run")
        if rules.ng_rate and sum(ng for _, ng in self.window()) >= rules.rate_limit:
            kinds.append("ng_rate")
        if rules.photo_run and len(self.photo_run()) >= rules.photo_run:
            kinds.append("photo")
        if rules.drift_parts and self.drift_due() is not None:
            kinds.append("drift")
        return kinds

    def drift_due(self) -> Optional[tuple["_Drift", list[dict[str, Any]]]]:
        """A product whose scores moved in enough groups in a row after the drift rule's
        floor, and those groups; None when none."""
        for product, drift in self.drift.items():
            run = drift.due(self.drift_floor.get(product, 0))
            if run:
                return drift, run
        return None

    def raise_floor(self, kind: str, part_id: Optional[int], product: Optional[str] = None) -> None:
        """``product``: for the drift rule, the product the alarm is about (None: every one)."""
        if part_id and kind == "drift":
            # after a drift alarm (raised, then acknowledged) the scores as they are then
            # are the product's baseline: told once, not every two groups while the line
            # runs on at the moved level (a new material lot accepted, a lens cleaned
            # later); a further move is told again. The station's other products keep
            # theirs (a frame's alarm restarted a cell's complete baseline: unguarded for
            # its next 500 parts). AlarmWatch._load_drift reads the same back after a restart.
            for p in ([product] if product is not None else list(self.drift)):
                if int(part_id) > self.drift_floor.get(p, 0):
                    self.drift_floor[p] = int(part_id)
                    d = self.drift.get(p)
                    if d is not None:
                        self.drift[p] = _Drift(p, d.model_id, self.rules, after=int(part_id))
                        self.drift_changed = True
        elif part_id:
            self.floor[kind] = max(self.floor[kind], int(part_id))

    def newest(self) -> int:
        return max(self.judged[-1][0] if self.judged else 0, self.photos[-1][0] if self.photos else 0)

    def oldest(self) -> int:
        """The id of the oldest part any rule still looks at (0: none)."""
        return min((rows[0][0] for rows in (self.judged, self.photos) if rows), default=0)


def _insort_once(rows: list, row: tuple) -> None:
    """Put ``row`` into ``rows`` (ascending by id) unless a row of its id is there."""
    i = bisect.bisect_left(rows, (row[0],))
    if i == len(rows) or rows[i][0] != row[0]:
        rows.insert(i, row)


class _Drift:
    """One product's part scores at a station, for the drift rule: the first
    ``drift_baseline_parts`` its model judged there (the baseline), then groups of
    ``drift_parts``, each compared with the baseline as it fills (line.spc's rank_shift and
    is_drift), and the latest groups that moved, in a row and the same way. Kept in memory:
    a part costs no query; a group's test sorts nothing (the baseline is sorted once)."""

    def __init__(self, product: str, model_id: Optional[str], rules: AlarmRules, after: int = 0):
        """``after``: parts at or below this id are not counted (a drift alarm's floor)."""
        self.product, self.model_id, self.floor = product, model_id, after
        self.parts, self.baseline_parts = rules.drift_parts, rules.drift_baseline_parts
        self._filling: list[float] = []
        self.base: Optional[np.ndarray] = None          # the baseline's scores, sorted, once complete
        self.base_median: Optional[float] = None
        self.base_from: Optional[dt.datetime] = None    # when the baseline's first part was judged
        self.group: list[tuple[int, float, str, Optional[dt.datetime]]] = []
        self.run: list[dict[str, Any]] = []             # the latest groups that moved, in a row
        self.newest = after
        # for /metrics (lineguard_score_drift_*): the latest group's rank shift (None until a
        # group after the baseline completed) and a count of the groups completed, baseline's
        # included, by which AlarmWatch sees a change without looking at every part
        self.shift: Optional[float] = None
        self.steps = 0
        # the ids counted lately: a part read back from the database and then handed over
        # by the thread that recorded it is counted once
        self._seen: collections.deque = collections.deque()
        self._seen_ids: set[int] = set()
        self._forgotten = after

    def add(self, part_id: int, score: float, verdict: str, at: Optional[dt.datetime]) -> None:
        if part_id in self._seen_ids or part_id <= self._forgotten or not math.isfinite(score):
            return
        self._seen.append(part_id)
        self._seen_ids.add(part_id)
        while len(self._seen) > 2 * self.parts + 100:
            gone = self._seen.popleft()
            self._seen_ids.discard(gone)
            self._forgotten = max(self._forgotten, gone)
        self.newest = max(self.newest, part_id)
        if self.base is None:
            if self.base_from is None:
                self.base_from = at
            self._filling.append(score)
            if len(self._filling) % self.parts == 0:
                self.steps += 1         # a group's worth of the baseline: its count on /metrics
            if len(self._filling) >= self.baseline_parts:
                self.base = np.sort(np.asarray(self._filling, dtype=np.float64))
                self.base_median = float(np.median(self.base))
                self._filling = []
            return
        self.group.append((part_id, score, verdict, at))
        if len(self.group) >= self.parts:
            self._test()

    def _test(self) -> None:
        group, self.group = sorted(self.group), []
        scores = np.asarray([g[1] for g in group], dtype=np.float64)
        assert self.base is not None
        shift, z = spc.rank_shift(self.base, scores)
        self.shift, self.steps = shift, self.steps + 1
        if not spc.is_drift(shift, z):
            self.run = []
            return
        if self.run and (self.run[-1]["shift"] > 0) != (shift > 0):
            self.run = []            # up then down is two events, not one
        self.run.append({"first_id": group[0][0], "last_id": group[-1][0], "first_at": group[0][3],
                         "shift": shift, "z": z, "median": float(np.median(scores)), "parts": len(group),
                         "not_passed": sum(1 for g in group if g[2] != "OK")})
        del self.run[:-spc.DRIFT_PERSIST]

    @property
    def baseline_count(self) -> int:
        """The parts in the baseline so far."""
        return len(self.base) if self.base is not None else len(self._filling)

    def due(self, floor: int) -> list[dict[str, Any]]:
        """The groups that raise the alarm (all after ``floor``), or an empty list."""
        run = [g for g in self.run if g["first_id"] > floor]
        return run if len(run) >= spc.DRIFT_PERSIST else []


def alarm_to_dict(a: LineAlarm, s: Any = None) -> dict[str, Any]:
    """An alarm as the API shows it; with a session ``s`` (an alarm event for the outbox),
    also ``part_id`` and ``first_part_id``: the part ids of ``inspection_id`` and
    ``first_inspection_id`` (what an MES knows a part by), read by their primary keys in
    one query; None where there is no part (a no_verdict alarm) or it was deleted."""
    parts: dict[int, str] = {}
    if s is not None:
        ids = {i for i in (a.inspection_id, a.first_inspection_id) if i}
        if ids:
            parts = dict(s.execute(select(Inspection.id, Inspection.part_id).where(Inspection.id.in_(ids))).all())
    return {"id": a.id, "line": a.line, "station": a.station, "product": a.product, "kind": a.kind,
            "message": a.message, "raised_at": iso_utc(a.raised_at), "inspection_id": a.inspection_id,
            "first_inspection_id": a.first_inspection_id,
            **({"part_id": parts.get(a.inspection_id), "first_part_id": parts.get(a.first_inspection_id)}
               if s is not None else {}),
            "parts": a.parts, "rejected": a.rejected,
            "active": a.acked_at is None, "acked_at": iso_utc(a.acked_at), "acked_by": a.acked_by,
            "ack_note": a.ack_note, "ack_cause": a.ack_cause, "acked_after_id": a.acked_after_id,
            "escalate_at": iso_utc(a.escalate_at), "escalated_at": iso_utc(a.escalated_at),
            "escalations": a.escalations or 0, "escalate_again_min": a.escalate_again_min, "signal_id": a.signal_id}


def no_verdict_plain(parts: int, reason: Optional[str] | Iterable[Optional[str]]) -> str:
    """One sentence an operator acts on for ``parts`` the PLC rejected without a verdict,
    from their reasons (line.plc_handshake words them): what went wrong and whom to call.
    ``reason`` is one reason for them all (an alarm's run: the last one's) or each listed
    part's; then the most common cause speaks for them, and a mix says how many had which
    (one odd part last in a shift of timeouts told the shift it was the recipe table).
    The engineer's words (the inspection window, /health) follow it."""
    # each cause: the sentence ({n} parts, {them}), and the cause in a few words for a mix
    said = {
        "late": ("The station did not judge {n} in time: the PLC rejected {them}; call maintenance if it goes on.",
                 "not judged in time"),
        "recipe": ("The PLC asked for a product the station does not know for {n}: the PLC rejected {them}; "
                   "call the engineer (recipe table).", "a product the station does not know"),
        "model": ("The station had no working model for {n}: the PLC rejected {them}; call the engineer.",
                  "no working model"),
        "photo": ("The camera sent no usable photo for {n}: the PLC rejected {them}; call maintenance.",
                  "no usable photo"),
        "store": ("The station could not store {n}: the PLC rejected {them}; call maintenance.",
                  "could not store them"),
        "other": ("The station could not judge {n}: the PLC rejected {them}; call maintenance.", "other faults"),
    }

    def cause(r: Optional[str]) -> str:
        why = (r or "").lower()
        if "inspection window" in why or "held up" in why:
            return "late"
        if "recipe" in why:
            return "recipe"
        if "model" in why:
            return "model"
        if "image" in why or "photo" in why or "camera" in why or "frame" in why:
            return "photo"
        if "stor" in why or "database" in why or "disk" in why:
            return "store"
        return "other"
    reasons = [reason] if reason is None or isinstance(reason, str) else list(reason) or [None]
    kinds = [cause(r) for r in reasons]
    counts = collections.Counter(kinds)
    # the most common; a tie goes to the cause met last (the newest)
    kind = max(counts, key=lambda k: (counts[k], len(kinds) - kinds[::-1].index(k)))
    n = f"{parts} part" + ("" if parts == 1 else "s")
    sentence = said[kind][0]
    if len(counts) == 1:
        return sentence.format(n=n, them="it" if parts == 1 else "them")
    mix = "; ".join(f"{c} of them: {said[k][1]}" for k, c in counts.most_common())
    of = "" if len(kinds) >= parts else f", among the last {len(kinds)} listed"
    return f"The PLC rejected {n} without a verdict ({mix}{of}); " + sentence.split("; ", 1)[1]


def _message(kind: str, rules: AlarmRules, rec: Inspection, parts: int, rejected: int,
             cause: Optional[str] = None, photo_issues: Optional[list[list[str]]] = None,
             products: Optional[str] = None) -> str:
    """The alarm's text; ``cause``: for ng_run, what the run's parts point at (ng_run_cause), if anything;
    ``products``: the products of the parts it counts, where they are several ("3 cell and 2 frame")."""
    where = f"station {rec.station} (line {rec.line}, {products or rec.product})"
    if kind == "photo":
        # ``photo_issues``: each doubted photo's issues, oldest first (else the last part's);
        # what to check follows the kinds they had, most frequent first (photo_check.advice):
        # one sentence for every issue sent a defocused lens's technician to the lamp
        from ..vision.photo_check import advice
        seen = [i for i in (photo_issues or [list(rec.photo_issues or [])]) if i]
        last = "; ".join(seen[-1]) if seen else "unlike the good photos"
        todo = advice([i for issues in seen for i in issues]) or ["check the lamp, the lens and the camera's settings"]
        return (f"{parts} of the last {rules.photo_window} photos unlike the model's good photos at {where} (the "
                f"last: {last}): most likely the camera or its light, not the parts. What to check: "
                + " / ".join(todo) + ". Parts with such photos go to REVIEW whatever their score (the PLC rejects "
                "them; a person looks), never OK")
    if kind == "ng_run":
        return (f"{parts} parts in a row not passed (NG or REVIEW) at {where}: a defect the process now makes on "
                "every part, or the camera, lighting or model gone wrong; stop the line and look before more parts "
                "are made"
                + (f"; {cause}" if cause else ""))
    # raised on reaching the limit (_Counts.due: at or over it): "over the limit of 10" for 10 was wrong
    reached = "over the alarm limit" if rejected > rules.rate_limit else "at the alarm limit"
    return (f"{rejected} of the last {parts} parts NG at {where}, {reached} of "
            f"{rules.rate_limit} in {rules.window}: find what changed upstream or at the camera")


def _drift_message(rec: Inspection, drift: _Drift, run: list[dict[str, Any]]) -> str:
    """The drift alarm's text: which way the scores moved, since when, against what, and
    what to check before parts are rejected (scores up) or defects shipped (scores down)."""
    first, last = run[0], run[-1]
    up = last["shift"] > 0
    own = rec.product == drift.product      # the part that raised it is one of the product's (nearly always)
    model = "its model"
    if own and getattr(rec, "registry_version", None):
        model = f"model version {rec.registry_version}"
    elif own and (rec.model_version or rec.model_id):
        model = f"model {rec.model_version or rec.model_id}"

    def when(t: Optional[dt.datetime]) -> Optional[str]:
        return (iso_utc(t) or "")[:16].replace("T", " ") + " UTC" if t else None
    where = f"station {rec.station} (line {rec.line}, {drift.product})"
    # what moved and since when first: the demo and a PLC panel's line show the words before " at station "
    said = (f"Part scores have moved {'up' if up else 'down'} since about "
            f"{when(first['first_at']) or 'part record ' + str(first['first_id'])} at {where}: in the last "
            f"{last['parts']} parts "
            f"{last['shift'] + 0.5:.0%} score above a typical one of the first {drift.baseline_parts} parts {model} "
            f"judged here (from {when(drift.base_from) or 'its start'}; median score now {last['median']:.4g}, then "
            f"{drift.base_median:.4g}"
            + (f"; NG above {rec.threshold:.4g}" if own and rec.threshold is not None else "") + "). ")
    if up:
        return said + ("The parts are not likely all worse: something at the camera changes slowly. Check the lens "
                       "and the camera's window for dirt, the lamp (ageing, dimming), the camera's position and "
                       "focus, and the material (a new lot) before good parts start being rejected (false rejects)")
    return said + ("The model sees less of each part than it did: check the camera's focus and position (knocked?), "
                   "the lens, the lamp (brighter, another one) and the material before defects pass as OK "
                   "(escapes); send a part with a known defect (a test part) to see that it is still rejected")


# What an ng_run alarm's parts point at, from their defect regions (read only when the alarm
# is raised: one query by id, never on a part's way). Chosen on a walk's runs (the camera
# knocked, a 4:3 camera, another product, a dirty lens spot) and on runs of the synthetic
# generator's defects (80 parts, all NG: 3,157-15,917 px of a 256x256 photo, at most 24%):
# - whole photo: a part whose regions cover more than 30% of its photo. Real defects: at
#   most 24%; the walk's camera and product faults: 36-84% (a mirrored product variant
#   36-43%, so 35% was too close);
# - same spot: each part's largest box (in shares of its photo); the run's median box; a
#   part is at the spot when a box of it overlaps it by IoU >= 0.7 or its centre is within
#   3% of the photo of the spot's. The lens spot: IoU 0.84-0.92, centres within 1.6% (its
#   alarm and 140 of the episode's 146 runs of 5). Runs of 5 real defects called one spot:
#   IoU 0.5 or 5%: 1.1% of random runs; 0.6 and 3%: 0.06%, but 1.5% of runs of the 30
#   largest (big boxes about the middle overlap); 0.7 and 3%: 0.02% and 0.25%. At least
#   4 parts at the spot: of 3, two were near their own median in 30% of runs.
# Both need most (2/3) of the run's parts, and a run of at least 3 parts.
RUN_CAUSE_PARTS = 50          # the run's newest parts read (a run read back after a restart may be long)
RUN_CAUSE_MOST = 2 / 3
WHOLE_PHOTO_SHARE = 0.30
SAME_SPOT_IOU = 0.7
SAME_SPOT_CENTRE = 0.03
SAME_SPOT_PARTS = 4


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two (x, y, width, height) boxes."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(0.0, w) * max(0.0, h)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def ng_run_cause(parts: Iterable[tuple[Any, Any, Any]]) -> Optional[str]:
    """The sentence an ng_run alarm adds when its parts' regions point at the camera, the
    lens or the product rather than a defect of the process, else None. ``parts``: each
    part's (stored regions, photo width, photo height). Parts without usable regions or
    size (a record edited by hand) count as parts without the evidence."""
    n, whole, boxes = 0, 0, []
    for regions, width, height in parts:
        n += 1
        try:
            w, h = float(width), float(height)
        except (TypeError, ValueError):
            continue
        if not (w > 0 and h > 0 and math.isfinite(w * h)) or not isinstance(regions, list):
            continue
        area, own = 0.0, []
        for r in regions:
            box = DefectRegion.box_of(r)
            if box is None or box[2] <= 0 or box[3] <= 0:
                continue
            try:
                a = float(r.get("area_px"))
            except (TypeError, ValueError, AttributeError):
                a = math.nan
            # the region's pixels, never more than its box (the box, where the count is odd)
            area += min(a, box[2] * box[3]) if math.isfinite(a) and a >= 0 else box[2] * box[3]
            own.append((box[0] / w, box[1] / h, box[2] / w, box[3] / h))
        whole += area / (w * h) > WHOLE_PHOTO_SHARE
        if own:
            boxes.append(own)
    if n < 3:
        return None
    need = RUN_CAUSE_MOST * n
    if whole >= need:
        return ("the whole photo is unlike the good ones on most of these parts: the camera moved or turned, another "
                "camera, or another product than the model's: compare a photo with a reference photo (the Models page "
                "/ `lineguard reference list`) before looking for a defect")
    if len(boxes) < max(need, SAME_SPOT_PARTS):
        return None
    largest = [max(own, key=lambda b: b[2] * b[3]) for own in boxes]
    spot = tuple(statistics.median(b[k] for b in largest) for k in range(4))
    cx, cy = spot[0] + spot[2] / 2, spot[1] + spot[3] / 2
    at = sum(any(_iou(b, spot) >= SAME_SPOT_IOU
                 or max(abs(b[0] + b[2] / 2 - cx), abs(b[1] + b[3] / 2 - cy)) <= SAME_SPOT_CENTRE for b in own)
             for own in boxes)
    if at < max(need, SAME_SPOT_PARTS):
        return None
    pct = lambda v: round(100 * min(1.0, max(0.0, v)))    # noqa: E731
    return (f"the same spot on most of these parts (x {pct(spot[0])}-{pct(spot[0] + spot[2])}%, "
            f"y {pct(spot[1])}-{pct(spot[1] + spot[3])}% of the photo): dirt on the lens or the camera's window, "
            "or a mark of the fixture, before a defect of the process; wipe the lens and look at one part by hand")


def _read_run_cause(s: Any, ids: list[int]) -> Optional[str]:
    """ng_run_cause of a run's parts (their newest RUN_CAUSE_PARTS), read by id in one query."""
    newest = sorted(ids)[-RUN_CAUSE_PARTS:]
    if not newest:
        return None
    rows = s.execute(select(Inspection.regions, Inspection.image_width, Inspection.image_height)
                     .where(Inspection.id.in_(newest))).all()
    return ng_run_cause(rows)


def _say_fault(level: int, exc: BaseException, what: str, then: str) -> None:
    """``what`` failed and ``then`` is what happens next, in one line with the reason
    (fault_line); anything but the database refusing (a bug) with its traceback too."""
    log.log(level, "%s (%s); %s", what, fault_line(exc), then, exc_info=None if is_refusal(exc) else exc)


# the escalation look's lasting fault (see LastingFaults)
_ESCALATION = "escalation"


class AlarmWatch:
    """The alarm rules of every station of this process, fed each part as it is recorded.

    ``rules`` are the process's defaults; a station may have its own (line.alarm_rules),
    read from the database again every ``RULES_READ_S``: another process on it may change
    them. ``listeners`` are called with each alarm raised or acknowledged here (as its
    dict, with ``change``: raised or acknowledged), outside the watch's locks."""

    RULES_READ_S = 10.0

    def __init__(self, db: Any, rules: AlarmRules, metrics: Any = None):
        self.db = db
        self.rules = rules
        self.metrics = metrics
        self._own: dict[tuple[str, str], dict[str, Any]] = {}     # stations' own settings, as last read
        self._station_rules: dict[tuple[str, str], AlarmRules] = {}   # the rules they make with the defaults
        self._own_read_at: Optional[float] = None                  # time.monotonic() of that read
        self._own_failing = False
        self._count_failing = False       # count_active failed the last time (said once a spell)
        self._rules_lock = threading.Lock()       # one read of them at a time (see read_rules)
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self._guard = threading.Lock()
        # one lock per station: a station's parts are counted in turn, other stations'
        # parts never wait for its database reads and writes
        self._locks: dict[tuple[str, ...], threading.Lock] = {}
        self._counts: dict[tuple[str, str], _Counts] = {}
        # The highest part id counted here (any station), and the highest that did not
        # follow the one before it: the ids between went to parts this process did not
        # count (another process on the database, or a thread of this one still on its
        # way). A station read up to below that id may lack parts of its own; one read up
        # to above it lacks none, and its next part costs no query.
        self._newest_part = 0
        self._gap_at = 0
        # per station, the ids of its latest PLC answers without a verdict, in a row (None: not recorded)
        self._answers: dict[tuple[str, str, str], list[Optional[int]]] = {}
        self._began: dict[tuple[str, str, str], dt.datetime] = {}     # when each run's first answer was counted here
        # per station, a run whose no_verdict alarm the database did not take (away, locked,
        # full): its run (the list above while it goes on), product, last reason, and when it
        # began and came due; written as soon as the database takes writes, with the run's
        # count and due time, though a verdict ended the run meanwhile: the parts were scrapped
        self._owed: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._refused: dict[tuple[str, str, str], dt.datetime] = {}   # since when, per station: said once
        self._parts_refused: dict[tuple[str, str], dt.datetime] = {}  # the part rules' reads refused, since when
        self._gauged: set[tuple[str, str]] = set()     # stations the gauge has a value for
        self._gauged_kinds: set[tuple[str, str, str]] = set()     # (line, station, kind) the age gauge has
        self._drift_shown: dict[tuple[str, str], set[str]] = {}   # per station, products with drift series
        self._stop = threading.Event()
        self._escalator: Optional[threading.Thread] = None
        # the escalation look's failures, said from its thread alone (LastingFaults is not thread-safe)
        self._look_faults = LastingFaults(log)
        self.run_id: Optional[int] = None      # this process's station_runs row (line.handover)
        self.count_active()

    # -- escalation ------------------------------------------------------------------------
    def start(self, every_s: float = 15.0) -> "AlarmWatch":
        """Look for alarms due for escalation every ``every_s`` on a thread of its own.
        Every process looks, whatever its own setting: when an alarm is due was set by
        the station's rules when it was raised (``escalate_at``, ``escalate_again_min``),
        so all processes on a database escalate it alike, each due time once."""
        if self._escalator is None:
            # this process's run (the shift report's stops and starts) is written by name_run,
            # once its start is accepted: one refused after this (watch's unknown --product)
            # was a run named by its PC alone, read as a station that went down
            self._escalator = threading.Thread(target=self._escalate_loop, args=(every_s,), name="lg-alarm-escalate",
                                               daemon=True)
            self._escalator.start()
        return self

    def name_run(self, process: str) -> None:
        """Write this process's run (line.handover) once its start is accepted, named as the
        change log names its start, so two station processes on one PC each follow their own
        runs (named again where it was written already). A station that cannot write it still
        inspects, the report just lacks the start. Never raises."""
        if self._stop.is_set():
            return                # closed: a run begun now would never end
        try:
            if self.run_id is None:
                self.run_id = handover.begin_run(self.db, process)
            else:
                handover.name_run(self.db, self.run_id, process)
        except Exception as exc:  # noqa: BLE001 - never keeps a station from starting
            _say_fault(logging.WARNING, exc, f"the station's start ({process!r}) could not be recorded for the shift "
                       "report", "the station inspects; the report lacks this start")

    def close(self) -> None:
        self._stop.set()
        if self._escalator is not None:
            self._escalator.join(timeout=10)
            if self._escalator.is_alive():
                log.warning("the alarm escalation thread did not stop within 10 s (a database call hangs)")
        if self.run_id is not None:
            # a clean stop: the report says stopped, not went silent
            try:
                handover.end_run(self.db, self.run_id)
            except Exception as exc:  # noqa: BLE001 - the stop goes on; the run ends at its last sign of life
                _say_fault(logging.WARNING, exc, "the station's stop could not be recorded for the shift report",
                           "the report ends the run at its last sign of life, as a station gone silent")
            self.run_id = None

    def _escalate_loop(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            # a no_verdict alarm the database refused is written once it takes writes, though
            # no answer comes (a line stopped after scrapping every part)
            self.raise_owed()
            if self.run_id is not None:
                try:
                    handover.beat(self.db, self.run_id)     # the run's last sign of life
                except Exception:  # noqa: BLE001 - a database away: the escalation says so below
                    pass
            try:
                self.escalate_due()
            except Exception as exc:  # noqa: BLE001 - the look goes on
                self._escalation_failed(exc, every_s)
            else:
                self._look_faults.ends(_ESCALATION, logging.WARNING, "line alarms are checked for escalation again "
                                                                     "(they could not be for %(lasted).0f s)")

    def _escalation_failed(self, exc: Exception, every_s: float) -> None:
        """Said when the failures begin, at most once a minute while they last (a look
        every ``every_s``), never a line a look; a bug's traceback once a spell."""
        began = _ESCALATION not in self._look_faults
        self._look_faults.happens(
            _ESCALATION, logging.WARNING,
            "line alarms could not be checked for escalation (%(why)s); tried again every %(every).0f s",
            still="line alarms still cannot be checked for escalation after %(lasted).0f s (%(why)s); tried again "
                  "every %(every).0f s, %(times)d tries in the last %(quiet_s).0f s",
            why=fault_line(exc), every=every_s)
        if began and not is_refusal(exc):
            # not the database refusing but the station's own mistake: its traceback, for whoever fixes it
            log.warning("the escalation look failed", exc_info=exc)

    def escalate_due(self, now: Optional[dt.datetime] = None) -> list[dict[str, Any]]:
        """Escalate every active alarm whose ``escalate_at`` has come: the first time, or
        again where its station escalates every ``escalate_again_min``; each due time
        once, whichever process looks first (its update is the one that marks it).
        Returns those escalated here. ``now``: for tests, any time zone."""
        if now is None:
            now = utcnow()
        elif now.tzinfo is not None:      # stored times are naive UTC
            now = now.astimezone(dt.timezone.utc).replace(tzinfo=None)
        with self.db.session() as s:
            due = s.execute(select(LineAlarm.id, LineAlarm.line, LineAlarm.escalations)
                            .where(LineAlarm.acked_at.is_(None), LineAlarm.escalate_at.is_not(None),
                                   LineAlarm.escalate_at <= now,
                                   # one marked by a process of the version before (escalated_at
                                   # alone, while upgrading) was escalated: not again as level 1
                                   or_(LineAlarm.escalations > 0, LineAlarm.escalated_at.is_(None)))
                            .order_by(LineAlarm.id)).all()
        done = []
        for alarm_id, line, seen in due:
            try:
                out = self._escalate(alarm_id, line, seen, now)
            except SQLAlchemyError:
                raise                     # the database: the whole look is tried again
            except Exception:  # noqa: BLE001 - one alarm's odd row keeps no other from its escalation
                log.exception("alarm %s could not be escalated", alarm_id)
                continue
            if out is not None:
                done.append(out)
        return done

    def _escalate(self, alarm_id: int, line: str, seen: int,
                  now: Optional[dt.datetime] = None) -> Optional[dict[str, Any]]:
        """Escalate one alarm seen escalated ``seen`` times and send it; None when it was
        acknowledged or escalated meanwhile (here or by another process): the counter, not
        the due time, marks the race's winner (a time's stored text may not round-trip).
        ``now`` (naive UTC; tests): the time the next due time counts from."""
        with self.db.session() as s:
            lock_line(s, line)        # before the write and the state read (see _raise)
            at = utcnow()             # after the lock: no state sent before this one is newer
            a = s.get(LineAlarm, alarm_id)
            if a is None:
                return None
            again = a.escalate_again_min or 0
            # the next time counts from this escalation: one sent late (processes down) is
            # not followed by the next level at once, nor by one per missed time; at least
            # a minute apart whatever a row edited by hand says
            following = max(at, now or at) + escalation_step(again) if again > 0 else None
            marked = s.execute(update(LineAlarm).where(LineAlarm.id == alarm_id, LineAlarm.acked_at.is_(None),
                                                       LineAlarm.escalations == seen)
                               .values(escalated_at=func.coalesce(LineAlarm.escalated_at, at),
                                       escalations=LineAlarm.escalations + 1, escalate_at=following)).rowcount
            if not marked:
                return None
            s.refresh(a)
            out = {**alarm_to_dict(a, s), "change": "escalated", "level": a.escalations,
                   **_station_state(s, a.line, a.station, at),
                   "unacknowledged_min": round(max(0.0, (at - a.raised_at).total_seconds()) / 60, 1)}
            record_event(s, "alarm", a.line, out)
        log.warning("ALARM ESCALATED (%s) line %s station %s: alarm %s unacknowledged for %s: %s",
                    "first time" if out["level"] == 1 else f"{out['level']} times", out["line"], out["station"],
                    out["id"], unacknowledged_for(out["unacknowledged_min"]), out["message"])
        if self.metrics is not None:
            self.metrics.alarms_escalated.labels(out["line"], out["station"], out["kind"]).inc()
        self._tell(out)
        return out

    def count_active(self) -> None:
        """The active-alarms gauges of every station, from the database (at start, after each
        alarm raised or acknowledged here, and before each /metrics scrape: another process
        may raise or acknowledge them): how many, the oldest's age per kind, and how many
        are past their escalation time. One query at the scrape, none per part."""
        if self.metrics is None:
            return
        now = utcnow()
        try:
            with self.db.session() as s:
                rows = s.execute(select(LineAlarm.line, LineAlarm.station, LineAlarm.kind, LineAlarm.raised_at,
                                        LineAlarm.escalate_at, LineAlarm.escalated_at)
                                 .where(LineAlarm.acked_at.is_(None))).all()
        except SQLAlchemyError as exc:
            # at every /metrics scrape: said once a spell of failures, not a line a scrape
            if not self._count_failing:
                _say_fault(logging.WARNING, exc, "could not count the active alarms",
                           "the alarm gauges keep their last values until the next count works")
            self._count_failing = True
            return
        if self._count_failing:
            log.warning("the active alarms are counted again")
        self._count_failing = False
        per_station: collections.Counter = collections.Counter((r.line, r.station) for r in rows)
        # past escalation: escalated, or due and not yet (the escalation thread looks every
        # 15 s, or no process runs it); one without an escalation time never is
        past: collections.Counter = collections.Counter(
            (r.line, r.station) for r in rows
            if r.escalated_at is not None or (r.escalate_at is not None and r.escalate_at <= now))
        oldest: dict[tuple[str, str, str], dt.datetime] = {}
        for r in rows:
            key = (r.line, r.station, r.kind)
            if key not in oldest or r.raised_at < oldest[key]:
                oldest[key] = r.raised_at
        gauge = self.metrics.alarms_active
        for line, station in self._gauged - set(per_station):    # all acknowledged since: back to 0
            gauge.labels(line, station).set(0)
        for (line, station), n in per_station.items():
            gauge.labels(line, station).set(n)
        self._gauged |= set(per_station)
        for line, station in self._gauged:       # 0 kept, as the count's: an alert on it resolves
            self.metrics.alarms_past_escalation.labels(line, station).set(past.get((line, station), 0))
        ages = self.metrics.alarms_unacknowledged
        for line, station, kind in self._gauged_kinds - set(oldest):
            ages.labels(line, station, kind).set(0)
        for (line, station, kind), raised_at in oldest.items():
            # another process's clock may be a little ahead: an age is never negative
            ages.labels(line, station, kind).set(max(0.0, (now - raised_at).total_seconds()))
        self._gauged_kinds |= set(oldest)

    def _show_drift(self, key: tuple[str, str], counts: Optional[_Counts]) -> None:
        """A station's drift series as its counts leave them (``counts`` None: none), after a
        part that completed a group or began a baseline afresh: each product's latest
        group's rank shift (none while its baseline fills) and its baseline's parts so far."""
        shown: set[str] = set()
        if counts is not None:
            counts.drift_changed = False
        if self.metrics is None:
            return
        line, station = key
        shifts, bases = self.metrics.drift_shift, self.metrics.drift_baseline_parts
        for product, drift in (counts.drift.items() if counts is not None else ()):
            if drift is None:
                continue
            if drift.shift is None:
                try:
                    shifts.remove(line, station, product)
                except KeyError:
                    pass
            else:
                shifts.labels(line, station, product).set(drift.shift)
            bases.labels(line, station, product).set(drift.baseline_count)
            shown.add(product)
        before = self._drift_shown.get(key, set())
        if counts is not None and counts.rules.drift_parts:
            # counts read afresh (new rules, a restart's catch-up) hold a product from its next
            # part: until then its series tell the last known, not none
            self._drift_shown[key] = before | shown
            return
        for product in before:           # the drift rule is off at the station: its series go
            for gauge in (shifts, bases):
                try:
                    gauge.remove(line, station, product)
                except KeyError:
                    pass
        self._drift_shown.pop(key, None)

    # -- each station's rules ------------------------------------------------------------
    def rules_for(self, line: str, station: str) -> AlarmRules:
        """The rules a station's parts are counted by: its own settings, the defaults for the rest."""
        now = time.monotonic()
        if self._own_read_at is None or now - self._own_read_at >= self.RULES_READ_S:
            self.read_rules(wait=self._own_read_at is None)
        return self._station_rules.get((line, station), self.rules)

    def read_rules(self, wait: bool = True) -> None:
        """Read every station's own settings again (at the latest every RULES_READ_S, at
        once after a change made here). One read at a time, each installing what it read
        before the next begins, so an older read never replaces a newer one; without
        ``wait`` a read already under way is left to do it (the parts go on with the
        rules read last). A database away leaves the last ones read."""
        if not self._rules_lock.acquire(blocking=wait):
            return
        try:
            self._read_rules()
        finally:
            self._rules_lock.release()

    def _read_rules(self) -> None:
        try:
            own = alarm_rules.read_own(self.db)
        except SQLAlchemyError as exc:
            if not self._own_failing:
                _say_fault(logging.WARNING, exc, "the stations' own alarm rules could not be read",
                           "the last ones read stand")
            self._own_failing = True
        else:
            self._own_failing = False
            made = {}
            for (line, station), settings in own.items():
                try:
                    made[(line, station)] = alarm_rules.with_own(self.rules, settings)
                except (ValueError, TypeError) as exc:    # written by hand in the database (the API checks each)
                    if settings != self._own.get((line, station)):     # said once, not at every read
                        log.warning("station %s of line %s: its own alarm rules are out of range (%s); it is counted "
                                    "by the defaults until they are set again", station, line, exc)
            self._own, self._station_rules = own, made
        self._own_read_at = time.monotonic()

    def set_station_rules(self, line: str, station: str, own: dict[str, Any], by: Optional[str]) -> dict[str, Any]:
        """Give a station settings of its own (see line.alarm_rules.set_own); counted by them from its next part."""
        out = alarm_rules.set_own(self.db, line, station, own, by)
        self.read_rules()
        # by the names as stored (out's): typed "lf"/"s1" for LF/S1, the answer showed the
        # defaults while the station's own rules were stored and counted by
        return {**out, "rules": self.rules_for(out["line"], out["station"]).to_dict()}

    def clear_station_rules(self, line: str, station: str, by: Optional[str]) -> dict[str, Any]:
        out = alarm_rules.clear_own(self.db, line, station, by)
        self.read_rules()
        return {**out, "rules": self.rules_for(out["line"], out["station"]).to_dict()}

    def _lock(self, key: tuple[str, ...]) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    # -- the rules -------------------------------------------------------------------------
    def after_part(self, rec: Inspection) -> list[dict[str, Any]]:
        """Count a recorded part; the alarms it raised (an empty list, nearly always).

        Never raises: the part is recorded and answered whatever happens here (an
        alarm not written for a database away is raised at a later part)."""
        with self._guard:
            if rec.id != self._newest_part + 1:
                self._gap_at = max(self._gap_at, rec.id)
            self._newest_part = max(self._newest_part, rec.id)
        if rec.test_part is not None:
            return self._after_test_part(rec)
        key = (rec.line, rec.station)
        rules = self.rules_for(rec.line, rec.station)
        raised: list[dict[str, Any]] = []
        try:
            with self._lock(key):
                if not rules.part_kinds:
                    self._counts.pop(key, None)      # read back afresh should a rule be switched on
                    if key in self._drift_shown:
                        self._show_drift(key, None)  # the rule is off: its series go
                    return []
                counts = self._counts.get(key)
                if counts is not None and counts.rules != rules and _part_rules(counts.rules) == _part_rules(rules):
                    counts.rules = rules             # only the escalation or the PLC rule changed: same counts
                if counts is None or counts.rules != rules:
                    # new rules (set here or in another process) count the station's
                    # latest records afresh; what earlier alarms have done with stays done
                    counts = self._counts[key] = self._load(rec.line, rec.station, rules)
                elif self._gap_at > counts.read_to:
                    # parts of this station another process recorded since: counted in
                    # their place, or NG, OK, NG, OK sent through two processes made two
                    # runs of NG parts, each raising the alarm over parts that passed
                    counts = self._counts[key] = self._catch_up(rec.line, rec.station, counts, rec.id)
                if rules.drift_parts and rec.product not in counts.drift:
                    # the product's first part counted here: its scores since its model began, once
                    drift = counts.drift[rec.product] = self._load_drift(
                        rec.line, rec.station, rec.product, rec.model_id, rules, rec.id,
                        counts.drift_floor.get(rec.product, 0))
                    counts.drift_floor[rec.product] = drift.floor
                    counts.drift_changed = True
                counts.add(rec.id, rec.verdict, bool(rec.photo_issues), rec.score, rec.product, rec.model_id,
                           rec.created_at)
                counts.read_to = max(counts.read_to, rec.id)
                for kind in counts.due():
                    alarm = self._raise(kind, rec, counts)
                    if alarm is not None:
                        raised.append(alarm)
                if counts.drift_changed:        # a group completed, or a baseline begun afresh
                    self._show_drift(key, counts)
            since = self._parts_refused.pop(key, None)
            if since is not None:
                log.warning("line %s station %s: the alarms are read and written again (refused since %s)",
                            rec.line, rec.station, iso_utc(since))
        except SQLAlchemyError as exc:
            # said once a spell, not once a part (the alarms table locked while the parts
            # are recorded made a traceback a part)
            if key not in self._parts_refused:
                self._parts_refused[key] = utcnow()
                _say_fault(logging.WARNING, exc,
                           f"line {rec.line} station {rec.station}: an alarm could not be read or written",
                           "tried again at each part (said again when it works)")
            self._counts.pop(key, None)     # read back from the records next time
        self._announce(raised)
        return raised

    def _after_test_part(self, rec: Inspection) -> list[dict[str, Any]]:
        """A test part judged otherwise than it must be raises a ``test_part`` alarm at its
        station, latched like the others (one active at a time). A red rabbit passed as OK
        showed on the line view and turned the PLC's Verified off, but reached no pager, no
        andon and no escalation: of all a station's events, the one that says its OK parts
        since cannot be trusted. Always on: a wrong test part is never chance."""
        if rec.verdict == rec.test_expected:
            return []
        rules = self.rules_for(rec.line, rec.station)
        raised: list[dict[str, Any]] = []
        milder = SEVERITY.get(rec.verdict, 0) < SEVERITY.get(rec.test_expected, 0)
        what = ("the station now passes defects it must reject: parts it passed since its last right check are "
                "in doubt (escapes); stop the line") if milder else \
            "the station now rejects good parts it must pass: parts it rejected since its last right check are in doubt"
        message = (f"test part {rec.test_part} judged {rec.verdict} where it must be {rec.test_expected} at station "
                   f"{rec.station} (line {rec.line}, {rec.product}): {what}; check the camera, the lighting and the "
                   "model (the line view lists the parts in doubt)")
        try:
            with self._lock((rec.line, rec.station)), self.db.session() as s:
                lock_line(s, rec.line)
                last = _last_alarm(s, rec.line, rec.station, "test_part")
                if last is None or last.acked_at is not None:
                    alarm = _store_alarm(s, rules, line=rec.line, station=rec.station, product=rec.product,
                                         kind="test_part", message=message, inspection_id=rec.id,
                                         first_inspection_id=rec.id, parts=1, rejected=int(rec.verdict != "OK"))
                else:
                    # one active (latched): this wrong check goes on it, not silently past it. A
                    # second test part failing (RR-01 after RR-02) was told nowhere, and once the
                    # first alarm was acknowledged the station stood failed with no alarm at all
                    alarm = _add_wrong_check(s, last, rec, message)
                if alarm is not None:
                    raised.append(alarm)
        except SQLAlchemyError as exc:
            _say_fault(logging.WARNING, exc, f"line {rec.line} station {rec.station}: the alarm for test part "
                                             f"{rec.test_part} judged wrong could not be written",
                       "it is not tried again: this check raises no alarm")
        self._announce(raised)
        return raised

    def _announce(self, raised: list[dict[str, Any]]) -> None:
        for alarm in raised:
            log.warning("ALARM line %s station %s: %s", alarm["line"], alarm["station"], alarm["message"])
            if self.metrics is not None and alarm.get("change", "raised") == "raised":   # an update raised none
                self.metrics.alarms_raised.labels(alarm["line"], alarm["station"], alarm["kind"]).inc()
            self.count_active()
            self._tell(alarm)

    # -- the PLC's answers -----------------------------------------------------------------
    def after_answer(self, line: str, station: str, product: str, signal_id: Optional[int], verdict: bool,
                     reason: Optional[str] = None) -> list[dict[str, Any]]:
        """Count an answer the PLC link gave (``verdict``: the model's; else a reject without
        one, ``signal_id`` its line_signals row, None when it could not be recorded); the
        alarm it raised, if any. Called in the order the answers were given; never raises.

        An answer with a verdict touches no database: it ends the run, whatever came before
        (only an alarm the database refused before is written then: see ``_owed``)."""
        key = ("answers", line, station)      # a lock of its own: never waits on a part's alarm writes
        if verdict:
            with self._lock(key):
                self._answers[key] = []
                self._began.pop(key, None)
                owed = key in self._owed
                if not owed and key in self._refused:
                    # this part's record was just written: the database is back (nothing owed)
                    self._written(key, line, station)
            return self.raise_owed(key) if owed else []
        rules = self.rules_for(line, station)
        if not rules.no_verdict_run:
            return []
        raised: list[dict[str, Any]] = []
        with self._lock(key):
            run = self._answers.get(key)
            if run is None:
                try:
                    run = self._load_answers(line, station, rules)
                    self._written(key, line, station)
                except SQLAlchemyError as exc:
                    # not read back: counted from this answer, in memory, till the database is back
                    self._refusal(key, line, station, exc)
                    run = []
                self._answers[key] = run
            if not run:
                self._began[key] = utcnow()
            if signal_id is None or signal_id not in run:
                run.append(signal_id)
            owed = self._owed.get(key)
            if owed is not None and owed["run"] is run:      # the refused run goes on
                owed["reason"] = reason
            if owed is not None and owed["run"] is not run:  # one a verdict ended: its alarm first
                raised += self._write_owed(key, line, station, rules)
            if len(run) >= rules.no_verdict_run:
                owed = self._owed.setdefault(key, {"run": run, "product": product, "reason": reason,
                                                   "began": self._began.get(key), "due": utcnow()})
                if owed["run"] is run:
                    raised += self._write_owed(key, line, station, rules)
        self._announce(raised)
        return raised

    def raise_owed(self, key: Optional[tuple[str, str, str]] = None) -> list[dict[str, Any]]:
        """Write the no_verdict alarms the database refused (one station's, ``key``, or all)
        now that it may take them; those raised. Never raises."""
        raised: list[dict[str, Any]] = []
        for k in ([key] if key is not None else list(self._owed)):
            _, line, station = k
            try:
                rules = self.rules_for(line, station)
                with self._lock(k):
                    if k in self._owed:
                        raised += self._write_owed(k, line, station, rules)
            except Exception:  # noqa: BLE001 - the answers and the escalations go on
                log.exception("line %s station %s: a no-verdict alarm could not be written", line, station)
        self._announce(raised)
        return raised

    def _write_owed(self, key: tuple[str, str, str], line: str, station: str,
                    rules: AlarmRules) -> list[dict[str, Any]]:
        """Write the station's owed no_verdict alarm (under the station's answers lock); a
        database away keeps it owed, and says so once a spell, not once an answer."""
        owed = self._owed[key]
        if not rules.no_verdict_run:
            del self._owed[key]                  # the rule switched off meanwhile
            return []
        try:
            alarm = self._raise_no_verdict(line, station, owed["product"], owed["reason"], owed["run"], rules,
                                           owed=owed)
        except SQLAlchemyError as exc:
            owed["refused"] = True               # raised as of its due time once written
            self._refusal(key, line, station, exc)
            return []
        del self._owed[key]       # written, latched already, or done with by an acknowledgement
        self._written(key, line, station)
        return [alarm] if alarm is not None else []

    def _refusal(self, key: tuple[str, str, str], line: str, station: str, exc: SQLAlchemyError) -> None:
        """Said once when the database starts refusing the no-verdict count, with why: a
        traceback per answer made 301 of them in a 30 s outage (2.6 MB of log)."""
        if key in self._refused:
            return
        self._refused[key] = utcnow()
        _say_fault(logging.WARNING, exc, f"line {line} station {station}: the no-verdict alarm could not be written",
                   "the answers without a verdict are counted here and the alarm written as soon as the database "
                   "takes writes")

    def _written(self, key: tuple[str, str, str], line: str, station: str) -> None:
        since = self._refused.pop(key, None)
        if since is not None:
            log.warning("line %s station %s: the database takes writes again (it refused the no-verdict count "
                        "since %s)", line, station, iso_utc(since))

    def _load_answers(self, line: str, station: str, rules: AlarmRules) -> list[Optional[int]]:
        """The station's newest answers without a verdict, in a row, after what the last
        no-verdict alarm did with (after a restart)."""
        with self.db.session() as s:
            rows = s.execute(select(LineSignal.id, LineSignal.inspection_id)
                             .where(LineSignal.line == line, LineSignal.station == station)
                             .order_by(LineSignal.id.desc()).limit(rules.no_verdict_run)).all()
            last = _last_alarm(s, line, station, "no_verdict")
        floor = _floor_of(last) if last is not None else 0
        run: list[Optional[int]] = []
        for signal_id, inspection_id in rows:
            if inspection_id is not None or signal_id <= floor:
                break
            run.append(signal_id)
        return run[::-1]

    def _raise_no_verdict(self, line: str, station: str, product: str, reason: Optional[str],
                          run: list[Optional[int]], rules: AlarmRules,
                          owed: Optional[dict[str, Any]] = None) -> Optional[dict[str, Any]]:
        """Write the alarm a run of answers without a verdict raises (see _raise); one the
        database refused when it came due (``owed``) is raised as of that time."""
        with self.db.session() as s:
            lock_line(s, line)
            last = _last_alarm(s, line, station, "no_verdict")
            if last is not None:
                if last.acked_at is None:
                    run.clear()              # latched: the line knows
                    return None
                floor = _floor_of(last)      # acknowledged meanwhile, maybe in another process
                run[:] = [i for i in run if i is None or i > floor]
                if len(run) < rules.no_verdict_run:
                    return None
            parts = len(run)
            # the operator's sentence first (what happened, what to do), the engineer's detail after
            message = (no_verdict_plain(parts, reason) + " Details: "
                       + f"{parts} parts in a row answered NG to the PLC without a verdict at station {station} (line "
                       f"{line}, {product}) (the last: {reason or 'no verdict'}): good parts are being scrapped; see "
                       "whether the station keeps up with the line (the inspection window), whether the camera "
                       "delivers images, and the station's faults (/health)")
            late = owed is not None and owed.get("refused", False)
            if late:
                message += (f"; raised late: the database took no writes when it came due at {iso_utc(owed['due'])}"
                            + (f" (the run began at {iso_utc(owed['began'])})" if owed.get("began") else ""))
            out = _store_alarm(s, rules, raised_at=owed["due"] if late else None, line=line, station=station,
                               product=product, kind="no_verdict",
                               message=message, inspection_id=0, first_inspection_id=0,
                               signal_id=max((i for i in run if i is not None), default=None), parts=parts,
                               rejected=parts)
        run.clear()                  # counted afresh from the next answer (latched by another process: too)
        return out

    def _load(self, line: str, station: str, rules: AlarmRules) -> _Counts:
        """The counts as the station's latest records and alarms leave them (after a restart)."""
        doubted = Inspection.photo_issues.is_not(None)
        # the newest rows by id, along the station's index (migration 0029): by the time,
        # SQLite went along the line's index through every part of the line's other
        # stations recorded since (83 ms at 300,000)
        q = (select(Inspection.id, Inspection.verdict, doubted)
             .where(Inspection.line == line, Inspection.station == station, Inspection.test_part.is_(None))
             .order_by(Inspection.id.desc()))
        with self.db.session() as s:
            # the parts the reject rules count (with the photo rule on, doubted photos apart)
            rows = s.execute((q.where(~doubted) if rules.photo_run else q).limit(rules.judged_keep)).all()
            if rules.photo_run:
                rows += s.execute(q.limit(rules.photo_window)).all()
            # the drift rule's floor is per product: read with each product's scores (_load_drift)
            last = {kind: _last_alarm(s, line, station, kind) for kind in rules.part_kinds if kind != "drift"}
        counts = _Counts(rules, read_to=max((r[0] for r in rows), default=0))
        for part_id, verdict, photo_doubted in sorted(rows, key=lambda r: r[0]):     # ascending: insort appends
            counts.add(part_id, verdict, photo_doubted)     # a part in both reads is counted once
        for kind, a in last.items():
            if a is not None:
                counts.raise_floor(kind, _floor_of(a))
        return counts

    def _load_drift(self, line: str, station: str, product: str, model_id: Optional[str], rules: AlarmRules,
                    upto: int, floor: int = 0) -> _Drift:
        """A product's drift counts as its records leave them (after a restart, new rules,
        or its first part here), after ``floor`` and the product's own last drift alarm: the
        baseline is the first parts after the last one another model judged (the in-memory
        rule's "begun afresh" read back), then its newest
        parts, up to the groups that can still make a run: all of them where that is all
        there is since (grouped as they were), else the newest whole groups. Three reads
        along the station's index (migration 0029), once per product and process: the first
        walks back over the parts of the model since it began (100,000 of them behind 300,000
        of the model before: 45-65 ms on SQLite, 75-185 ms on PostgreSQL)."""
        station_parts = (Inspection.line == line, Inspection.station == station, Inspection.product == product,
                         Inspection.test_part.is_(None), Inspection.id <= upto)
        judged = (Inspection.model_id == model_id,) + ((Inspection.photo_issues.is_(None),) if rules.photo_run else ())
        keep = spc.DRIFT_PERSIST * rules.drift_parts
        later: list[Any] = []
        with self.db.session() as s:
            mine = _last_alarm(s, line, station, "drift", product)
            if mine is not None:
                floor = max(floor, _floor_of(mine))
            before = s.scalar(select(Inspection.id).where(*station_parts, Inspection.model_id != model_id)
                              .order_by(Inspection.id.desc()).limit(1)) or 0
            before = max(before, floor)     # a drift alarm's parts, and those before its acknowledgement
            q = select(Inspection.id, Inspection.score, Inspection.verdict, Inspection.created_at) \
                .where(*station_parts, *judged, Inspection.id > before)
            rows = s.execute(q.order_by(Inspection.id).limit(rules.drift_baseline_parts)).all()
            if len(rows) == rules.drift_baseline_parts:
                later = s.execute(q.where(Inspection.id > rows[-1][0]).order_by(Inspection.id.desc())
                                  .limit(keep + 1)).all()[::-1]
                rows += later[-keep:] if len(later) > keep else later
        drift = _Drift(product, model_id, rules, after=floor)
        for part_id, score, verdict, at in rows:
            drift.add(part_id, score, verdict, at)
        if len(later) > keep:
            # the parts between the baseline and the newest groups were left out: never
            # counted later (an alarm's re-read of the station's latest parts hands them over)
            drift._forgotten = max(drift._forgotten, later[0][0])
        return drift

    def _catch_up(self, line: str, station: str, counts: _Counts, upto: int) -> _Counts:
        """The counts with the station's parts after ``counts.read_to`` up to ``upto`` (the
        part being counted) that were not counted here: recorded by another process on
        the database. One query over the ids since, made only when ids were taken
        elsewhere (see ``_gap_at``); more parts missed than the rules look back at (this
        process idle while another ran the line) are counted afresh from the latest
        records, as after a restart, what alarms here have done with staying done."""
        with self.db.session() as s:
            complete = _read_parts(s, counts, line, station, counts.read_to, upto, limit=_lookback(counts.rules))
        if complete:
            counts.read_to = max(counts.read_to, upto)
            return counts
        fresh = self._load(line, station, counts.rules)
        for kind, floor in counts.floor.items():
            if kind != "drift":
                fresh.raise_floor(kind, floor)
        for product, floor in counts.drift_floor.items():
            fresh.raise_floor("drift", floor, product)
        return fresh

    def _raise(self, kind: str, rec: Inspection, counts: _Counts) -> Optional[dict[str, Any]]:
        """Write the alarm a due rule raises; None when one is latched already, or when
        the parts counted came before an acknowledgement made meanwhile (here or in
        another process on the database)."""
        with self.db.session() as s:
            # first of all: alarms of this line written meanwhile are committed and seen
            # below, so the state sent with this one is the station's (line.outbox)
            lock_line(s, rec.line)
            # The parts the rules look back at, read again under the line's lock: another
            # process's part with a lower id may have committed after the part counted
            # here (PostgreSQL numbers a record before its transaction takes that lock),
            # and an OK part among them ends the run this alarm would name
            _read_parts(s, counts, rec.line, rec.station, counts.oldest() - 1, rec.id)
            last = _last_alarm(s, rec.line, rec.station, kind)
            if kind == "drift":
                due = counts.drift_due()
                if due is None:
                    return None
                product = due[0].product
                # the product's own last drift alarm (here or in another process) is its floor;
                # the station's newest one, of any product, latches the rule
                mine = last if last is None or last.product == product else \
                    _last_alarm(s, rec.line, rec.station, kind, product)
                if mine is not None:
                    counts.raise_floor(kind, _floor_of(mine), product)
                if last is not None and last.acked_at is None:
                    if last.product == product:
                        counts.raise_floor(kind, counts.newest(), product)   # latched: the line knows
                    else:
                        # another product's alarm is active: this product's move is not told
                        # now, nor its baseline begun afresh; told once that one is acknowledged
                        # if its scores stay moved (two more groups)
                        due[0].run = []
                    return None
                due = counts.drift_due()
                if due is None or due[0].product != product:
                    return None
            else:
                if last is not None:
                    counts.raise_floor(kind, _floor_of(last))
                    if last.acked_at is None:
                        counts.raise_floor(kind, counts.newest())   # latched: the line knows
                        return None
                if kind not in counts.due():
                    return None
            if kind == "ng_run":
                ids = counts.run()
                parts = rejected = len(ids)
            elif kind == "photo":
                ids = counts.photo_run()
                doubted = set(ids)
                parts, rejected = len(ids), sum(1 for i, v, _ in counts.photos if i in doubted and v != "OK")
                # what was off about each of them, oldest first: the advice follows what the
                # photos had (one sentence for all sent a defocused lens's technician to the lamp)
                seen = [list(i or []) for i in s.scalars(select(Inspection.photo_issues)
                                                         .where(Inspection.id.in_(ids)).order_by(Inspection.id))]
            elif kind == "drift":
                drift, run = due
                ids = [run[0]["first_id"]]
                parts, rejected = sum(g["parts"] for g in run), sum(g["not_passed"] for g in run)
            else:
                window = counts.window()
                ids = [i for i, _ in window]
                parts, rejected = len(window), sum(ng for _, ng in window)
            rules = counts.rules
            if kind == "drift":
                message = _drift_message(rec, drift, run)
            elif kind == "photo":
                message = _message(kind, rules, rec, parts, rejected, photo_issues=seen)
            else:
                # a product-switching station: the rejected parts counted may be of several
                # products (3 NG cell, then 2 NG frame), and each is named, not the last one's
                mix = _products_of(s, ids if kind == "ng_run" else [i for i, ng in window if ng])
                message = _message(kind, rules, rec, parts, rejected,
                                   cause=_read_run_cause(s, ids) if kind == "ng_run" else None,
                                   products=_products_said(mix) if len(mix) > 1 else None)
            if kind != "photo" and rec.photo_issues:    # the camera or the lamp, more likely than the parts
                message += f"; the last part's photo is unlike the good photos: {'; '.join(rec.photo_issues)}"
            product = drift.product if kind == "drift" else rec.product
            if kind in ("ng_run", "ng_rate") and len(mix) > 1:
                product = _products_field(mix)
            out = _store_alarm(s, rules, line=rec.line, station=rec.station, product=product, kind=kind,
                               message=message, inspection_id=rec.id, first_inspection_id=min(ids, default=rec.id),
                               parts=parts, rejected=rejected)
        # counted afresh from the next part (latched elsewhere: too); a drift alarm, its product's
        counts.raise_floor(kind, counts.newest(), drift.product if kind == "drift" else None)
        return out

    # -- acknowledgement -------------------------------------------------------------------
    def acknowledge(self, alarm_id: int, by: Optional[str], note: Optional[str] = None,
                    cause: Optional[str] = None, cause_checked: bool = False) -> dict[str, Any]:
        """Mark an active alarm seen to, with what it turned out to be (``cause``, one of
        the causes offered, optional: line.alarm_causes; ``cause_checked``: looked up already,
        from the PLC's number); Conflict when someone already did (who, when)."""
        note = _one_line(note)
        if note is not None and len(note) > NOTE_MAX:
            raise InvalidRequest(f"the note is {len(note)} characters; keep it to {NOTE_MAX}")
        if not cause_checked:
            alarm_causes.check(self.db, cause)
        with self.db.session() as s:
            a = s.get(LineAlarm, alarm_id)
            if a is None:
                raise NotFound(f"no alarm {alarm_id}")
            lock_line(s, a.line)      # before the write and the state read (see _raise)
            # the station's newest part (its newest PLC answer for no_verdict) now: those up
            # to it never raise this rule again
            if a.kind == "no_verdict":
                newest = s.scalar(select(func.max(LineSignal.id)).where(LineSignal.line == a.line,
                                                                       LineSignal.station == a.station)) or 0
            else:
                # along the station's index (migration 0029), not the line's
                newest = s.scalar(select(func.max(Inspection.id)).where(Inspection.line == a.line,
                                                                       Inspection.station == a.station)) or 0
            done = s.execute(update(LineAlarm).where(LineAlarm.id == alarm_id, LineAlarm.acked_at.is_(None))
                             .values(acked_at=utcnow(), acked_by=by, ack_note=note, ack_cause=cause,
                                     acked_after_id=max(newest, _raised_by(a)))).rowcount
            s.refresh(a)
            if not done:
                raise Conflict(f"alarm {alarm_id} was acknowledged already, by {a.acked_by or 'someone'} at "
                               f"{iso_utc(a.acked_at)}")
            out = {**alarm_to_dict(a, s), "change": "acknowledged",
                   **_station_state(s, a.line, a.station, a.acked_at)}
            record_event(s, "alarm", a.line, out)
        if out["kind"] == "no_verdict":
            key = ("answers", out["line"], out["station"])
            with self._lock(key):
                # the answers up to the acknowledgement never raise it again; one given
                # since (a higher id) still counts, one not recorded cannot be placed: dropped
                after = out["acked_after_id"] or 0
                if key in self._answers:
                    # in place: an owed alarm's run (below) may be this very list
                    self._answers[key][:] = [i for i in self._answers[key] if i is not None and i > after]
                owed = self._owed.get(key)
                if owed is not None:
                    # an alarm the database refused, over answers the acknowledgement covers, is
                    # not raised after it (it came back at the next look, beside the one acknowledged)
                    owed["run"][:] = [i for i in owed["run"] if i is not None and i > after]
                    if len(owed["run"]) < max(1, self.rules_for(out["line"], out["station"]).no_verdict_run):
                        del self._owed[key]
        else:
            key = (out["line"], out["station"])
            with self._lock(key):
                counts = self._counts.get(key)
                if counts is not None:
                    counts.raise_floor(out["kind"], out["acked_after_id"], out["product"])
        log.info("alarm %s at line %s station %s acknowledged by %s", out["id"], out["line"], out["station"], by)
        self.count_active()
        self._tell(out)
        return out

    def set_cause(self, alarm_id: int, by: Optional[str], cause: Optional[str] = None,
                  note: Optional[str] = None) -> dict[str, Any]:
        """Say later what an acknowledged alarm turned out to be, or add to its note: the
        cause is often found after the line runs again (maintenance, the supplier's
        answer), when nobody would acknowledge anything. Each addition goes to the end of
        the note with when and by whom, a changed cause with what it was before, so the
        note keeps the history. Conflict for an alarm still active (acknowledge it)."""
        note = _one_line(note)
        if cause is None and note is None:
            raise InvalidRequest("send a cause, a note, or both")
        if note is not None and len(note) > NOTE_MAX:
            raise InvalidRequest(f"the note is {len(note)} characters; keep it to {NOTE_MAX}")
        alarm_causes.check(self.db, cause)
        for _ in range(20):
            with self.db.session() as s:
                a = s.get(LineAlarm, alarm_id)
                if a is None:
                    raise NotFound(f"no alarm {alarm_id}")
                if a.acked_at is None:
                    raise Conflict(f"alarm {alarm_id} is still active: acknowledge it, with its cause (line view, "
                                   f"or POST /api/v1/alarms/{alarm_id}/acknowledge)")
                seen_cause, seen_len = a.ack_cause, len(a.ack_note or "")
                said = []
                if cause is not None and cause != seen_cause:
                    named = alarm_causes.labels(self.db)
                    said.append(f"cause {named.get(seen_cause or '', seen_cause or 'not given')} -> "
                                f"{named.get(cause, cause)}")
                if note is not None:
                    said.append(note)
                if not said:        # the same cause again: nothing to add
                    return alarm_to_dict(a)
                addition = f"[{iso_utc(utcnow())[:16].replace('T', ' ')} UTC, {by or 'someone'}] {'; '.join(said)}"
                if seen_len + len(addition) + 1 > NOTE_CAP:
                    raise InvalidRequest(f"alarm {alarm_id}'s note is full ({NOTE_CAP} characters); say it in the "
                                         "shift report instead")
                lock_line(s, a.line)      # the station's state below is read in the line's order
                # Written only if the cause and the note are still those read: the history
                # line says what the cause was before, and the read was outside the writer's
                # transaction (SQLite). Appended in the UPDATE itself, so no addition is lost.
                done = s.execute(
                    update(LineAlarm)
                    .where(LineAlarm.id == alarm_id, LineAlarm.ack_cause.is_not_distinct_from(seen_cause),
                           func.length(func.coalesce(LineAlarm.ack_note, "")) == seen_len)
                    .values(ack_note=func.coalesce(LineAlarm.ack_note + "\n", "") + addition,
                            **({"ack_cause": cause} if cause is not None else {}))).rowcount
                if not done:          # someone changed it meanwhile: read it again
                    continue
                s.refresh(a)
                out = {**alarm_to_dict(a, s), "change": "cause_set", **_station_state(s, a.line, a.station, utcnow())}
                record_event(s, "alarm", a.line, out)
            log.info("alarm %s at line %s station %s: %s (by %s)", out["id"], out["line"], out["station"], addition, by)
            self._tell(out)
            return out
        raise Conflict(f"alarm {alarm_id} is being changed by others right now; try again")

    def acknowledge_station(self, line: str, station: str, by: str, cause: Optional[str] = None,
                            kinds: Optional[Iterable[str]] = None) -> list[dict[str, Any]]:
        """Acknowledge the active alarms of one station (the PLC's AlarmAck): every one, or
        those of ``kinds`` (the PLC's screen showed the NG run, not the camera's alarm),
        with what they turned out to be when the PLC says (a key of line.alarm_causes)."""
        wanted = None if kinds is None else set(kinds)
        done = []
        for a in self.active(line=line, station=station):
            if wanted is not None and a["kind"] not in wanted:
                continue
            try:
                # the cause the PLC's number named when it was read: every alarm of the
                # acknowledgement gets it, a cause retired meanwhile or not
                done.append(self.acknowledge(a["id"], by, cause=cause, cause_checked=True))
            except Conflict:        # acknowledged meanwhile by a person: theirs stands
                pass
        return done

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
        return history(self.db, line=line, station=station, active=True, limit=1000)[::-1]

    def history(self, **filters: Any) -> list[dict[str, Any]]:
        """Alarms newest first (see :func:`history`)."""
        return history(self.db, **filters)

    def record_states(self) -> int:
        """Write every station's alarm state to the outbox again (event ``alarm_state``,
        ``change: restored``; every station that ever had an alarm, an empty list where
        none is active): what an MQTT broker keeps retained, after a (re)connection (see
        line.outbox.Outbox.on_connected). Each row is written first and its state read
        after (SQLite: the writer lock; PostgreSQL: the line's lock), so a change made at
        the same time, here or in another process, comes after it. Returns how many."""
        with self.db.session() as s:
            stations = s.execute(select(LineAlarm.line, LineAlarm.station).distinct()
                                 .order_by(LineAlarm.line, LineAlarm.station)).all()
        for line, station in stations:
            with self.db.session() as s:
                row = record_event(s, "alarm_state", line, {"line": line, "station": station})
                s.flush()
                state = _station_state(s, line, station, utcnow())
                row.payload = {**row.payload, **state, "change": "restored"}
        return len(stations)


def _store_alarm(s: Any, rules: AlarmRules, raised_at: Optional[dt.datetime] = None,
                 **fields: Any) -> Optional[dict[str, Any]]:
    """Add a raised alarm (``fields``: its LineAlarm columns) in the caller's transaction,
    due for escalation by its station's ``rules``, and its outbox message, which leaves
    exactly when the alarm is stored (see line.outbox); the message, or None when another
    process on the database latched one of its kind at that station just now (the unique
    index: the transaction is rolled back). ``raised_at``: when it came due, for one the
    database refused then; its escalation and the station state sent with it still count
    from now (the line hears of it now; a board keeps the newest state by its time)."""
    raised = utcnow()
    a = LineAlarm(raised_at=raised_at or raised, escalate_again_min=rules.escalate_again_min or None,
                  escalate_at=raised + dt.timedelta(minutes=rules.escalate_min) if rules.escalate_min else None,
                  **fields)
    s.add(a)
    try:
        s.flush()
    except IntegrityError:
        s.rollback()
        return None
    out = {**alarm_to_dict(a, s), "change": "raised", **_station_state(s, a.line, a.station, raised)}
    record_event(s, "alarm", a.line, out)
    return out


WRONG_CHECKS_SAID = 10     # the wrong checks an updated test-part alarm lists by name


def _add_wrong_check(s: Any, a: LineAlarm, rec: Inspection, message: str) -> dict[str, Any]:
    """Put wrong check ``rec`` on the station's active ``test_part`` alarm ``a`` (in the
    caller's transaction, under the line's lock): it names this check first, then every wrong
    check since it was raised (``parts``: how many, ``rejected``: those not passed), and its
    ``change: updated`` message goes through the outbox. Counted from the records, not added
    to, so two processes putting checks on it at once agree. Its escalation stays as set."""
    rows = s.execute(select(Inspection.id, Inspection.test_part, Inspection.verdict, Inspection.test_expected,
                            Inspection.product, Inspection.created_at)
                     .where(Inspection.line == a.line, Inspection.station == a.station,
                            Inspection.id >= a.first_inspection_id, Inspection.id <= rec.id,
                            Inspection.test_part.is_not(None), Inspection.verdict != Inspection.test_expected)
                     .order_by(Inspection.id)).all()
    wrong = {r.id: (r.test_part, r.verdict, r.test_expected, r.product, r.created_at) for r in rows}
    wrong.setdefault(rec.id, (rec.test_part, rec.verdict, rec.test_expected, rec.product, rec.created_at))
    said = [f"{name} judged {verdict} (must be {expected}) at {iso_utc(at)}"
            for name, verdict, expected, _, at in wrong.values()]
    if len(said) > WRONG_CHECKS_SAID:     # a station failing all shift: the first and the latest ones
        said = said[:2] + [f"{len(said) - WRONG_CHECKS_SAID} more"] + said[2 - WRONG_CHECKS_SAID:]
    a.message = (f"{message}. {len(wrong)} wrong test-part checks at this station since this alarm was raised "
                 f"at {iso_utc(a.raised_at)}: " + "; ".join(said))
    a.inspection_id = max(a.inspection_id, rec.id)
    a.parts = len(wrong)
    a.rejected = sum(1 for _, verdict, _, _, _ in wrong.values() if verdict != "OK")
    products = sorted({product for _, _, _, product, _ in wrong.values()})
    a.product = products[0] if len(products) == 1 else _products_field([(p, 1) for p in products])
    s.flush()
    out = {**alarm_to_dict(a, s), "change": "updated", **_station_state(s, a.line, a.station, utcnow())}
    record_event(s, "alarm", a.line, out)
    return out


def _station_state(s: Any, line: str, station: str, as_of: dt.datetime) -> dict[str, Any]:
    """The station's active alarms as this change leaves them, read in its transaction
    (after the line's outbox lock): sent with each alarm message, so a board that
    connects later (MQTT's retained ``.../alarm_state``) shows what is active without
    reading the history. ``as_of``, the change's time: a state sent again late (a
    redelivery) is told from a newer one by it."""
    active = list(s.scalars(select(LineAlarm).where(LineAlarm.line == line, LineAlarm.station == station,
                                                    LineAlarm.acked_at.is_(None)).order_by(LineAlarm.id)))
    return {"station_active": [{"id": a.id, "kind": a.kind, "raised_at": iso_utc(a.raised_at),
                                "inspection_id": a.inspection_id, "message": a.message,
                                "escalated_at": iso_utc(a.escalated_at), "escalations": a.escalations or 0}
                               for a in active],
            "station_alarm_code": alarm_code([{"kind": a.kind} for a in active]), "station_state_as_of": iso_utc(as_of)}


def _products_of(s: Any, ids: list[int]) -> list[tuple[str, int]]:
    """The products of these parts, with how many of each, most first (then by name)."""
    if not ids:
        return []
    rows = s.execute(select(Inspection.product, func.count()).where(Inspection.id.in_(ids))
                     .group_by(Inspection.product)).all()
    return sorted(((p, int(n)) for p, n in rows), key=lambda r: (-r[1], r[0]))


def _products_said(mix: list[tuple[str, int]]) -> str:
    said = [f"{n} {p}" for p, n in mix]
    return said[0] if len(said) == 1 else ", ".join(said[:-1]) + " and " + said[-1]


PRODUCTS_SEP = ", "      # an alarm over parts of several products: its product field lists them


def unacknowledged_for(minutes: float) -> str:
    """How long an escalated alarm waited, as the log says it: "42 s", "2.5 min", "35 min"
    (with --alarm-escalate-min 0.5 it said "unacknowledged for 0 min")."""
    if minutes < 1:
        return f"{round(minutes * 60)} s"
    return f"{minutes:.1f} min" if minutes < 10 else f"{minutes:.0f} min"


def escalation_step(again_min: float) -> dt.timedelta:
    """The time between an alarm's escalations for its ``escalate_again_min``: at least a
    minute, at most a day, whatever a row edited by hand says (the shift report counts the
    escalations by a shift's end with the same step)."""
    return dt.timedelta(minutes=max(1.0, min(float(again_min), 24 * 60)))


def _products_field(mix: list[tuple[str, int]]) -> str:
    """An alarm's product where its parts were of several products: each, by name (the
    column holds 100 characters; a list cut short says so)."""
    names = sorted(p for p, _ in mix)
    field = PRODUCTS_SEP.join(names)
    if len(field) <= 100:
        return field
    # cut between whole names: a name cut in the middle matched no product's filter (history)
    kept: list[str] = []
    for name in names:
        if len(PRODUCTS_SEP.join(kept + [name])) + len(PRODUCTS_SEP + "...") > 100:
            break
        kept.append(name)
    return PRODUCTS_SEP.join(kept + ["..."])


def _last_alarm(s: Any, line: str, station: str, kind: str, product: Optional[str] = None) -> Optional[LineAlarm]:
    """The station's newest alarm of ``kind`` (of ``product``'s parts where given)."""
    q = select(LineAlarm).where(LineAlarm.line == line, LineAlarm.station == station, LineAlarm.kind == kind)
    if product is not None:
        q = q.where(LineAlarm.product == product)
    return s.scalars(q.order_by(LineAlarm.id.desc()).limit(1)).first()


def _lookback(rules: AlarmRules) -> int:
    """The most parts of a station the rules look back at."""
    return rules.judged_keep + rules.photo_window


def _read_parts(s: Any, counts: _Counts, line: str, station: str, after: int, upto: int,
                limit: Optional[int] = None) -> bool:
    """Count the station's parts with ids in (``after``, ``upto``] (test parts apart), the
    newest ``limit`` of them at most; False when there were more (some left out). A
    part counted already is not counted again. The primary key bounds the read to the
    ids since, whatever the station's history."""
    q = (select(Inspection.id, Inspection.verdict, Inspection.photo_issues.is_not(None), Inspection.score,
                Inspection.product, Inspection.model_id, Inspection.created_at)
         .where(Inspection.id > after, Inspection.id <= upto, Inspection.line == line,
                Inspection.station == station, Inspection.test_part.is_(None))
         .order_by(Inspection.id.desc()))
    rows = s.execute(q if limit is None else q.limit(limit + 1)).all()
    if limit is not None and len(rows) > limit:
        return False
    for part_id, verdict, doubted, score, product, model_id, at in reversed(rows):
        counts.add(part_id, verdict, doubted, score, product, model_id, at)
    return True


def _part_rules(rules: AlarmRules) -> tuple[Any, ...]:
    """The settings the parts' counts depend on."""
    return rules.ng_run, rules.ng_rate, rules.window, rules.photo_run, rules.drift_parts


def _raised_by(a: LineAlarm) -> int:
    """The id of the part (the PLC answer for no_verdict) that raised alarm ``a``."""
    return (a.signal_id or 0) if a.kind == "no_verdict" else a.inspection_id


def _floor_of(a: LineAlarm) -> int:
    """Parts (answers) at or below this id are done with by alarm ``a``: those that raised
    it and, once acknowledged, those made before."""
    return max(_raised_by(a), a.acked_after_id or 0)


def history(db: Any, *, line: Optional[str] = None, station: Optional[str] = None, product: Optional[str] = None,
            kind: Optional[str] = None, cause: Optional[str] = None,
            active: Optional[bool] = None, since: Optional[dt.datetime] = None, until: Optional[dt.datetime] = None,
            open_at: Optional[dt.datetime] = None, before_id: Optional[int] = None,
            limit: int = 50) -> list[dict[str, Any]]:
    """Alarms newest first, filtered (``since``/``until`` on the time raised; ``open_at``:
    raised before that time and not acknowledged by then; ``cause`` "none": acknowledged
    without one); page with ``before_id``."""
    q = select(LineAlarm).order_by(LineAlarm.id.desc())
    for col, v in ((LineAlarm.line, line), (LineAlarm.station, station), (LineAlarm.kind, kind)):
        if v is not None:
            q = q.where(col == v)
    if product is not None:
        # also a run or rate alarm over parts of several products ("cell, frame"): a product's
        # shift report lists it
        col, sep = LineAlarm.product, PRODUCTS_SEP
        q = q.where(or_(col == product, col.startswith(product + sep, autoescape=True),
                        col.endswith(sep + product, autoescape=True),
                        col.contains(sep + product + sep, autoescape=True)))
    if cause == "none":
        q = q.where(LineAlarm.acked_at.is_not(None), LineAlarm.ack_cause.is_(None))
    elif cause is not None:
        q = q.where(LineAlarm.ack_cause == cause)
    if active is not None:
        q = q.where(LineAlarm.acked_at.is_(None) if active else LineAlarm.acked_at.is_not(None))
    if since is not None:
        q = q.where(LineAlarm.raised_at >= since)
    if until is not None:
        q = q.where(LineAlarm.raised_at < until)
    if open_at is not None:
        q = q.where(LineAlarm.raised_at < open_at,
                    or_(LineAlarm.acked_at.is_(None), LineAlarm.acked_at >= open_at))
    if before_id is not None:
        q = q.where(LineAlarm.id < before_id)
    with db.session() as s:
        return [alarm_to_dict(a) for a in s.scalars(q.limit(limit))]


def summary(db: Any, *, line: Optional[str] = None, station: Optional[str] = None,
            since: Optional[dt.datetime] = None, until: Optional[dt.datetime] = None) -> dict[str, Any]:
    """The alarms raised in a period, counted: by kind, by station, by what they turned
    out to be (most first), how many were escalated and are still active, and how long
    they waited for someone (minutes from raised to acknowledged: the line's response)."""
    q = select(LineAlarm.kind, LineAlarm.line, LineAlarm.station, LineAlarm.ack_cause, LineAlarm.raised_at,
               LineAlarm.acked_at, LineAlarm.escalated_at)
    for col, v in ((LineAlarm.line, line), (LineAlarm.station, station)):
        if v is not None:
            q = q.where(col == v)
    if since is not None:
        q = q.where(LineAlarm.raised_at >= since)
    if until is not None:
        q = q.where(LineAlarm.raised_at < until)
    with db.session() as s:
        rows = s.execute(q).all()
    kinds: collections.Counter = collections.Counter(r.kind for r in rows)
    named = alarm_causes.labels(db)
    stations: collections.Counter = collections.Counter((r.line, r.station) for r in rows)
    causes: collections.Counter = collections.Counter(r.ack_cause or "none" for r in rows if r.acked_at is not None)
    # clocks of two processes may differ by a little: a wait is never negative
    waits = sorted(max(0.0, (r.acked_at - r.raised_at).total_seconds() / 60) for r in rows if r.acked_at is not None)
    oldest_active = min((r.raised_at for r in rows if r.acked_at is None), default=None)
    return {
        "alarms": len(rows), "active": sum(r.acked_at is None for r in rows),
        "escalated": sum(r.escalated_at is not None for r in rows),
        "by_kind": [{"kind": k, "alarms": n} for k, n in kinds.most_common()],
        "by_station": [{"line": ln, "station": st, "alarms": n} for (ln, st), n in stations.most_common()],
        "by_cause": [{"cause": c, "label": named.get(c, "not given" if c == "none" else c), "alarms": n}
                     for c, n in sorted(causes.items(), key=lambda kv: (-kv[1], kv[0]))],
        "minutes_to_acknowledge": {"median": round(statistics.median(waits), 1) if waits else None,
                                   "mean": round(sum(waits) / len(waits), 1) if waits else None,
                                   "longest": round(waits[-1], 1) if waits else None},
        # the acknowledged ones' waits leave out those still waiting: the longest of them
        "oldest_active_waiting_min": None if oldest_active is None else
        round(max(0.0, (utcnow() - oldest_active).total_seconds()) / 60, 1),
    }


def kinds_of_code(code: int) -> list[str]:
    """The alarm kinds an AlarmCode-style bit mask names (bits past the known kinds are none)."""
    return [kind for i, kind in enumerate(KINDS) if code >> i & 1]


def alarm_code(alarms: list[dict[str, Any]]) -> int:
    """The PLC's AlarmCode: bit 0 an NG run, bit 1 an NG rate, bit 2 photos the model
    cannot judge, bit 3 PLC rejects without a verdict, bit 4 a test part judged wrong,
    bit 5 part scores drifting (0: none active)."""
    return sum(1 << KINDS.index(kind) for kind in {a["kind"] for a in alarms} if kind in KINDS)
