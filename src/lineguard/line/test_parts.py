"""Test parts: proof, every shift, that the station still rejects what it must.

A plant trusts an inspection station only as far as it has seen it work, so error
proofing is verified at the start of every shift (IATF 16949 asks it of every
poka-yoke): parts known to be defective ("red rabbits"), known good, or on the limit go
through the line like any part, camera, lamp, model and reject gate alike, and each must
get its known verdict. A camera knocked out of focus, a lamp gone dim, the wrong model
activated: the test parts show it before a shift of parts has shipped.

A product's test parts are registered by the serial (or part id) they are sent with and
the verdict each must get: NG for a defect, OK for a good part, REVIEW for a limit
sample. A part that arrives with such a name is judged like any other, and its verdict
still goes to the PLC (the reject gate is part of what is tested); its image is kept, and
its record names the test part and the verdict expected. Test parts' records stay out of
the numbers the plant reports by (the line view's counters, SPC, the shift report,
threshold tuning, retraining); the gallery and the exports list them, marked.

Each station's verification in a shift, per line and product with test parts
(:func:`verification`): ``passed`` once every test part in use got its verdict in the
shift (or in the half hour before it starts), ``failed`` while one's latest check is
wrong, from this shift or left from an earlier one (which, and the station's parts in
doubt since that test part was last right), else ``due`` (none seen yet) or
``incomplete`` (some seen), with how many of the station's parts were made before. A
product whose every test part was retired in the shift before it was put through has
none to verify from then on: no entry (the PLC reads ``none``).

A check proves the station as it judged then, so a right check counts only while the
station still judges that way: the model judging its parts must be the one that judged
the check (a version activated, rolled back to, or a retrain activated after it undoes
it), and its photos of the size the check's was (another size is another camera, or one
set up anew). Such a check stays listed but counts no more (``before_change``), and the
entry's ``reason`` says what changed and when. Both are read from what the verification
reads anyway: the records of the station's parts in the shift (the model and image size
each was judged with) and, for the shift running now, the model active in the registry
(an activation shows before the next part is made). A wrong check is not undone by a
change: it stands until its test part is checked right again.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError, TimeoutError as PoolTimeout

from . import audit, part_names
from .errors import Conflict, InvalidRequest, NotFound
from .orm import Inspection, ModelActivation, ModelVersion, TestPart, iso_utc as _iso, utcnow
from .shifts import Shift

log = logging.getLogger("lineguard.station")

EXPECTS = ("OK", "NG", "REVIEW")
NAME_MAX = 200      # the longest serial a record holds (Inspection.serial)


def _alike(names: Iterable[str], typed: str) -> Optional[str]:
    """The one name in use that ``typed`` is but for case. Names in use never differ only in
    case (add refuses it); of names registered so before that rule none is picked."""
    alike = [n for n in names if part_names.folded(n) == part_names.folded(typed)]
    return alike[0] if len(alike) == 1 else None


@dataclass(frozen=True)
class Expected:
    name: str
    verdict: str


class TestPartBook:
    """A station's registered test parts, looked up for every part without a query.

    Every part asks "is this a test part?", so the registry lives in memory: reloaded
    after each change made here and every ``reload_s`` seconds (a change made by
    another process sharing the database shows within that)."""

    __test__ = False   # not a pytest class, whatever its name

    def __init__(self, db: Any, reload_s: float = 30.0):
        self.db = db
        self.reload_s = reload_s
        self._lock = threading.Lock()
        self._by_product: Optional[dict[str, dict[str, str]]] = None
        self._loaded = -float("inf")
        self._generation = 0     # bumped by each change: a reload that read before it is stale
        # called after each change made here (a PLC link reads its verification again)
        self.listeners: list[Callable[[], None]] = []

    def _load(self) -> dict[str, dict[str, str]]:
        book = self._by_product
        if book is not None and time.monotonic() - self._loaded < self.reload_s:
            return book
        # one part reloads; the others go on with the book they have (the first part
        # of all waits for it: there is nothing to go on with)
        if not self._lock.acquire(blocking=book is None):
            return book or {}
        try:
            generation = self._generation
            fresh: dict[str, dict[str, str]] = {}
            try:
                with self.db.session() as s:
                    for product, name, expect in s.execute(select(TestPart.product, TestPart.name, TestPart.expect)
                                                           .where(TestPart.retired_at.is_(None))):
                        fresh.setdefault(product, {})[name] = expect
            except PoolTimeout:
                # no connection in the pool's whole wait: the part is answered busy (503) now,
                # not after its own reads wait as long again
                raise
            except SQLAlchemyError:
                # the database is away: the part's own record cannot be written either, and
                # says so (503); the book read last stands until a reload works
                log.warning("could not reload the test parts; using those read before", exc_info=True)
                return book or {}
            self._by_product = fresh       # replaced whole: readers never see it half-built
            if generation == self._generation:
                self._loaded = time.monotonic()
            return fresh
        finally:
            self._lock.release()

    def _changed(self) -> None:
        self._generation += 1
        self._loaded = -float("inf")
        for fn in list(self.listeners):
            fn()

    def match(self, product: str, serial: Optional[str], part_id: str) -> Optional[Expected]:
        """The test part a part is, by its serial or else its part id (a scanner's
        trailing space or CR ignored, and its case: a label read as "rr-01" is RR-01,
        never a production part); None for the line's own parts."""
        names = self._load().get(product)
        if not names:
            return None
        for key in (serial, part_id):
            if key is None:
                continue
            key = key.strip()
            name = key if key in names else _alike(names, key)
            if name is not None:
                return Expected(name, names[name])
        return None

    def list(self, product: Optional[str] = None, retired: bool = False) -> list[TestPart]:
        with self.db.session() as s:
            q = select(TestPart).order_by(TestPart.product, TestPart.name)
            if product is not None:
                q = q.where(TestPart.product == product)
            if not retired:
                q = q.where(TestPart.retired_at.is_(None))
            return list(s.scalars(q))

    def add(self, product: str, name: str, expect: str, description: Optional[str] = None,
            by: Optional[str] = None, keep_description: bool = False) -> TestPart:
        """Register a test part, or change one (a retired name comes back). ``keep_description``:
        none was given (an API call changing what it must be), so the one registered stays."""
        name = name.strip()
        if not name or len(name) > NAME_MAX:
            raise InvalidRequest(f"a test part's name is the serial or part id it is sent with: 1 to {NAME_MAX} "
                                 f"characters, got {len(name)}")
        if expect not in EXPECTS:
            raise InvalidRequest(f"expect must be one of {', '.join(EXPECTS)} (NG: a defect the station must "
                                 f"reject; OK: a good part; REVIEW: a limit sample), got {expect!r}")
        for attempt in (1, 2):
            try:
                with self.db.session() as s:
                    row = s.scalar(select(TestPart).where(TestPart.product == product, TestPart.name == name))
                    # "rr-01" beside "RR-01" that must get another verdict: a scanner's label or a
                    # person's typing mixes them up, and a red rabbit passes as the other one
                    alike = s.scalar(select(TestPart).where(
                        TestPart.product == product, TestPart.name != name, TestPart.retired_at.is_(None),
                        func.lower(TestPart.name) == part_names.folded(name)))
                    if alike is not None:
                        raise Conflict(f"test part {alike.name!r} of {product!r} is registered already (it must be "
                                       f"{alike.expect}); names that differ only in case are too easily mixed up: "
                                       f"change that one, retire it first, or choose another name")
                    if keep_description and row is not None:
                        description = row.description
                    before = None if row is None or row.retired_at is not None else \
                        {"expect": row.expect, "description": row.description}
                    if before == {"expect": expect, "description": description}:
                        # sent again as it is (a form saved twice): nothing changed, so no
                        # change-log entry and who registered it stays who did
                        s.expunge(row)
                        return row
                    audit.record(s, "test_part.registered", f"{product} {name}", by, expect=expect,
                                 description=description, before=before)
                    if row is None or row.retired_at is not None:
                        # in use from now: the shifts it was retired in stay without it
                        if row is None:
                            row = TestPart(product=product, name=name)
                            s.add(row)
                        row.created_at = utcnow()
                    row.expect, row.description, row.created_by = expect, description, by
                    row.retired_at = row.retired_by = None
                    s.flush()
                    s.expunge(row)
                break
            except IntegrityError:
                if attempt == 2:   # registered twice at once (a double click): the second updates
                    raise
        self._changed()
        return row

    def retire(self, product: str, name: str, by: Optional[str] = None) -> TestPart:
        """Stop counting a test part (lost, worn, replaced); its past checks keep its name."""
        name = name.strip()
        with self.db.session() as s:
            in_use = select(TestPart).where(TestPart.product == product, TestPart.retired_at.is_(None))
            row = s.scalar(in_use.where(TestPart.name == name))
            if row is None:     # typed in another case ("rr-01" for RR-01)
                rows = {r.name: r for r in s.scalars(in_use)}
                row = rows.get(_alike(rows, name))
            if row is None:
                raise NotFound(f"product {product!r} has no test part {name!r} in use")
            row.retired_at, row.retired_by = utcnow(), by
            audit.record(s, "test_part.retired", f"{product} {row.name}", by, expect=row.expect)
            s.flush()
            s.expunge(row)
        self._changed()
        return row


def in_use(db: Any, since: dt.datetime, until: dt.datetime) -> dict[str, list[TestPart]]:
    """Per product, the test parts registered before ``until`` and not retired before
    ``since``: a past shift is judged by the test parts of its time, and retiring one
    does not clear the alarm of the shift it failed in."""
    out: dict[str, list[TestPart]] = {}
    with db.session() as s:
        for tp in s.scalars(select(TestPart).where(TestPart.created_at < until,
                                                   or_(TestPart.retired_at.is_(None), TestPart.retired_at > since))
                            .order_by(TestPart.product, TestPart.name)):
            out.setdefault(tp.product, []).append(tp)
    return out


def verification(db: Any, shift: Shift, now: Optional[dt.datetime] = None, line: Optional[str] = None,
                 station: Optional[str] = None, failures: bool = True) -> list[dict[str, Any]]:
    """Each station's verification in ``shift``, per line and product with test parts
    that it ran or checked in the shift, or that it left failed before; see the module's
    docstring for the states. ``failures=False`` leaves the failures (and the counting
    of their parts in doubt) out: the state alone, as a PLC reads it."""
    now = now or utcnow()
    start, end = shift.start_utc, min(shift.end_utc, now)
    registered = in_use(db, start, end)
    if not registered:
        return []
    opened = start - LEAD
    out = []
    with db.session() as s:
        mine = [Inspection.product.in_(list(registered))]
        if line:
            mine.append(Inspection.line == line)
        if station:
            mine.append(Inspection.station == station)
        # the station's parts since the shift opened, by the model and image size each was
        # judged with: the shift's count of its own parts and, in the same read, what a check
        # was followed by (another model, another camera: see the module's docstring)
        ran: dict[tuple[str, str, str], int] = {}
        judged: dict[tuple[str, str, str], list[Any]] = {}
        own = and_(Inspection.test_part.is_(None), Inspection.created_at >= start)
        for r in s.execute(
                select(Inspection.line, Inspection.station, Inspection.product, Inspection.model_id,
                       Inspection.registry_version, Inspection.image_width, Inspection.image_height,
                       func.sum(case((own, 1), else_=0)).label("n"), func.min(Inspection.created_at).label("first"),
                       func.max(Inspection.created_at).label("last"))
                .where(*mine, Inspection.created_at >= opened, Inspection.created_at < end)
                .group_by(Inspection.line, Inspection.station, Inspection.product, Inspection.model_id,
                          Inspection.registry_version, Inspection.image_width, Inspection.image_height)):
            key = (r.line, r.station, r.product)
            judged.setdefault(key, []).append(r)
            if r.n:
                ran[key] = ran.get(key, 0) + int(r.n)
        # the shift running now is judged by the model active now, parts made with it or
        # not yet; a past shift by what its parts were judged with
        active = active_models(s, list(registered)) if now < shift.end_utc else {}
        checks: dict[tuple[str, str, str], list[Any]] = {}
        # by the test parts' names: the index on (test_part, created_at) reads the few
        # checks among a year of parts (a product's index would read all its parts)
        is_check = Inspection.test_part.in_(sorted({tp.name for tps in registered.values() for tp in tps}))
        for row in s.execute(CHECK_COLUMNS.where(*mine, is_check, Inspection.created_at >= opened,
                                          Inspection.created_at < end)
                             .order_by(Inspection.created_at, Inspection.id)):
            checks.setdefault((row.line, row.station, row.product), []).append(row)
        # each test part's last check before the shift opened: a wrong one not yet put
        # right stands until that test part is checked right again, shift after shift
        carried: dict[tuple[str, str, str], list[Any]] = {}
        last = (select(Inspection.line, Inspection.station, Inspection.product, Inspection.test_part,
                       func.max(Inspection.created_at).label("at"))
                .where(*mine, is_check, Inspection.created_at < opened)
                .group_by(Inspection.line, Inspection.station, Inspection.product, Inspection.test_part).subquery())
        for row in s.execute(CHECK_COLUMNS.join(last, and_(Inspection.line == last.c.line,
                                                    Inspection.station == last.c.station,
                                                    Inspection.product == last.c.product,
                                                    Inspection.test_part == last.c.test_part,
                                                    Inspection.created_at == last.c.at))
                             .order_by(Inspection.created_at, Inspection.id)):
            carried.setdefault((row.line, row.station, row.product), []).append(row)
        names = {p: {tp.name for tp in tps} for p, tps in registered.items()}
        failed_before = {k for k, rows in carried.items()
                         if any(r.verdict != r.test_expected and r.test_part in names[k[2]] for r in rows)}
        for key in sorted(set(ran) | set(checks) | failed_before):
            state = station_entry(s, key, registered[key[2]], checks.get(key, []), carried.get(key, []),
                                   ran.get(key, 0), start, end, now, failures,
                                   Judging(judged.get(key, []), active_for(active, key[2], key[0])))
            # every test part retired in the shift before it was put through: the product has
            # none to verify from then on (as in the next shift), not a set "due" that nothing
            # can complete; nothing was verified either, so not "passed"
            if state["test_parts"]:
                out.append(state)
    return out


LEAD = dt.timedelta(minutes=30)   # test parts put through just before a shift starts count for it
CAMERA_CHANGE_PARTS = 3           # production parts of one new photo size after a check: another camera
CHECK_COLUMNS = select(Inspection.id, Inspection.line, Inspection.station, Inspection.product, Inspection.test_part,
                Inspection.test_expected, Inspection.verdict, Inspection.created_at, Inspection.model_id,
                Inspection.registry_version, Inspection.image_width, Inspection.image_height)
# how hard a verdict is on a part: a check judged milder than it must be (a red rabbit
# passed) puts the OK parts in doubt, one judged harsher the rejected ones
SEVERITY = {"OK": 0, "REVIEW": 1, "NG": 2}


@dataclass(frozen=True)
class _Active:
    """The model version judging a product's parts on a line now, and since when."""
    version: int
    model_id: str
    since: Optional[dt.datetime]


def active_models(s: Any, products: list[str]) -> dict[tuple[str, str], _Active]:
    """The active versions of ``products`` by (product, line), line "" the model of every
    line; that one judges a line only from when the line's own versions were given back
    (key (product, line), its own none active)."""
    out: dict[tuple[str, str], _Active] = {}
    for mv in s.scalars(select(ModelVersion).where(ModelVersion.product.in_(products),
                                                   ModelVersion.active.is_(True))):
        out[(mv.product, mv.line)] = _Active(mv.version, mv.model_id, mv.activated_at)
    every = {p for (p, ln) in out if ln == ""}
    if every:
        for product, line, at in s.execute(
                select(ModelActivation.product, ModelActivation.line, func.max(ModelActivation.rolled_back_at))
                .where(ModelActivation.product.in_(sorted(every)), ModelActivation.line != "",
                       ModelActivation.rolled_back_at.is_not(None))
                .group_by(ModelActivation.product, ModelActivation.line)):
            if (product, line) not in out and at is not None:
                m = out[(product, "")]
                out[(product, line)] = _Active(m.version, m.model_id, at if m.since is None else max(m.since, at))
    return out


def active_for(active: dict[tuple[str, str], _Active], product: str, line: str) -> Optional[_Active]:
    # as the registry picks it (ModelRegistry.active_for): the line's own version first
    return active.get((product, line)) or active.get((product, ""))


def _model_name(version: Optional[int], model_id: str) -> str:
    return f"model version {version}" if version is not None else f"model {model_id[:12]}"


@dataclass(frozen=True)
class Judging:
    """How a station judged a product since the shift opened (its records grouped by the
    model and image size of each) and the model that judges it now (None: a past shift,
    or none active)."""
    groups: list[Any]
    active: Optional[_Active]

    def changes(self, c: Any) -> list[tuple[dt.datetime, str]]:
        """What changed in the station's judging after check ``c`` (when, and in words);
        empty while it judges as it did then."""
        out: list[tuple[dt.datetime, str]] = []
        after = [g for g in self.groups if g.last > c.created_at]
        act = self.active
        if act is not None and act.model_id != c.model_id:
            at = f" at {_iso(act.since)}" if act.since is not None else ""
            out.append((act.since or c.created_at,
                        f"{_model_name(act.version, act.model_id)} made active{at} after the test parts' checks"))
        else:
            # judged by another model since (a version activated, then rolled back: the
            # station is the one its checks proved, but judged otherwise in between)
            other = [g for g in after if g.model_id != c.model_id]
            if other:
                # its parts before the check are no change; the latest one is surely after it
                g = max(other, key=lambda g: g.last)
                out.append((g.last, f"{_model_name(g.registry_version, g.model_id)} judged the station's parts "
                                    f"after the test parts' checks (the latest at {_iso(g.last)})"))
        # another camera: after the check, photos of one other size only, and none of the
        # check's size once they began. A station whose photos vary in size (a camera that
        # crops each part's region, photos of two sizes by turns) is no camera change: its
        # verification went back to due at every part of another size than the check's (sizes
        # by turns, the check the shift's first record), nor is a single part of another size:
        # CAMERA_CHANGE_PARTS of them first (a cropping camera's next part of another size
        # flipped a PLC's VerificationState to due and back)
        spans: dict[tuple[Any, Any], tuple[dt.datetime, dt.datetime]] = {}
        parts: dict[tuple[Any, Any], int] = {}
        for g in self.groups:
            k = (g.image_width, g.image_height)
            f, l = spans.get(k, (g.first, g.last))
            spans[k] = (min(f, g.first), max(l, g.last))
            parts[k] = parts.get(k, 0) + int(g.n or 0)
        mine = (c.image_width, c.image_height)
        new = [k for k, (_, last) in spans.items() if k != mine and last > c.created_at]
        if len(new) == 1 and parts[new[0]] >= CAMERA_CHANGE_PARTS and spans[new[0]][0] > c.created_at \
                and spans.get(mine, (None, c.created_at))[1] < spans[new[0]][0]:
            since = spans[new[0]][0]
            out.append((since, f"photos of {new[0][0]}x{new[0][1]} since {_iso(since)}, "
                               f"{c.image_width}x{c.image_height} before"))
        return out


def station_entry(s: Any, key: tuple[str, str, str], parts: list[TestPart], checks: list[Any], carried: list[Any],
                   made: int, start: dt.datetime, end: dt.datetime, now: dt.datetime,
                   with_failures: bool = True, judging: Optional[Judging] = None) -> dict[str, Any]:
    line, station, product = key
    latest = {c.test_part: c for c in carried}
    seen_now = {c.test_part: c for c in checks}      # in time order: the last one stands
    latest.update(seen_now)
    rows, complete_at, asked = [], None, []
    changed: dict[str, dt.datetime] = {}          # what undid a right check, in words: since when
    # the shift running now is judged by what each test part must be now; a past shift by
    # what its checks had to get then (each check keeps the verdict it was judged against)
    running = now <= end
    for tp in parts:
        c = latest.get(tp.name)
        this_shift = tp.name in seen_now
        right = None if c is None else c.verdict == c.test_expected
        # a right check of this shift made before the station's judging changed proves
        # nothing of it now: listed, not counted (a wrong one stands whatever changed)
        undone = judging.changes(c) if judging is not None and this_shift and right else []
        if running and this_shift and right and c.test_expected != tp.expect:
            # what it must be was changed since (NG to OK): the check proved the station
            # against the old requirement, not the one the PLC's Verified bit now stands for
            undone = undone + [(c.created_at, f"test part {tp.name} must be {tp.expect} now, its check "
                                              f"({_iso(c.created_at)}) had to be {c.test_expected}")]
        if tp.retired_at is not None and tp.retired_at <= end and (not this_shift or undone):
            # retired in this shift before it was put through: no longer asked for (it could
            # never be: a part sent with its name is a production part now), and a failure
            # it carried from an earlier shift stays that shift's (the next shift drops it
            # too); the set is complete no earlier than the retirement. One checked in the
            # shift still counts, right or wrong, while its check does; one whose right check
            # a change undid (a rollback) is as one never put through: still asked for, it
            # held the station incomplete for the rest of the shift
            complete_at = tp.retired_at if complete_at is None else max(complete_at, tp.retired_at)
            continue
        for at, said in undone:
            changed[said] = min(at, changed.get(said, at))
        asked.append(tp)
        rows.append({"name": tp.name, "expect": tp.expect, "description": tp.description,
                     "verdict": c.verdict if c else None, "expected": c.test_expected if c else None,
                     "right": right if this_shift or right is False else None,
                     "checked_at": _iso(c.created_at) if c else None, "inspection_id": c.id if c else None,
                     "this_shift": this_shift, "before_change": bool(undone)})
        if undone:
            rows[-1]["right"] = None      # not known of the station as it judges now
        elif this_shift:
            complete_at = c.created_at if complete_at is None else max(complete_at, c.created_at)
    seen = [r for r in rows if r["this_shift"] and not r["before_change"]]
    if any(r["right"] is False for r in rows):
        state = "failed"
    elif rows and len(seen) == len(rows):
        state = "passed"
    else:
        state = "incomplete" if seen else "due"
    passed_at = max(complete_at, start) if state == "passed" and complete_at is not None else None
    # failed after the set had passed in the shift: the parts made under that pass were
    # counted "without a passed verification" (the wrong check puts them in doubt: its
    # failure counts them, from the last right check on)
    passed_before = _passed_before_failure(asked, checks, start) if state == "failed" and not changed else None
    # the station's own parts made before the set passed (all of the shift's until it does)
    own = (Inspection.line == line, Inspection.station == station, Inspection.product == product,
           Inspection.test_part.is_(None), Inspection.created_at >= start)
    unverified = s.scalar(select(func.count()).where(
        *own, Inspection.created_at < (passed_at or passed_before or end))) if made else 0
    names = {tp.name: tp for tp in asked}
    # this shift's wrong checks, and one left from before (listed while it still casts
    # doubt into this shift, with when it was put right if it was)
    wrong = [c for c in carried + checks if c.verdict != c.test_expected and c.test_part in names]
    reason = "; ".join(sorted(changed, key=lambda said: changed[said])) + ": put the test parts through again" \
        if changed else None
    return {"line": line, "station": station, "product": product, "state": state, "passed_at": _iso(passed_at),
            "passed_before_failure_at": _iso(passed_before), "reason": reason, "parts_made": made, "parts_before_verification": unverified, "test_parts": rows,
            "failures": [_failure(s, key, c, names.get(c.test_part), now) for c in wrong] if with_failures else []}


def _passed_before_failure(asked: list[TestPart], checks: list[Any], start: dt.datetime) -> Optional[dt.datetime]:
    """When the set last came to pass in the shift before the failure standing now (every
    test part asked for with its latest check right), or None (it never passed first, or
    the failure came from an earlier shift). The failure standing is the earliest wrong
    check not put right since; an earlier one put right is over: the set passing after it
    is the pass the standing one follows (the shift's first wrong check counted the parts
    made under that pass as made before it). ``checks``: the shift's, in time order."""
    names = {tp.name for tp in asked}
    if not names:
        return None
    wrong_since: dict[str, dt.datetime] = {}      # each test part's wrong checks since its last right one
    for c in checks:
        if c.test_part not in names:
            continue
        if c.verdict == c.test_expected:
            wrong_since.pop(c.test_part, None)
        else:
            wrong_since.setdefault(c.test_part, c.created_at)
    if not wrong_since:
        return None
    wrong_at = min(wrong_since.values())
    right: dict[str, bool] = {}
    passed_since: Optional[dt.datetime] = None
    for c in checks:
        if c.created_at >= wrong_at:
            break
        if c.test_part not in names:
            continue
        was = len(right) == len(names) and all(right.values())
        right[c.test_part] = c.verdict == c.test_expected
        if not was and len(right) == len(names) and all(right.values()):
            # the last time it came to pass, kept though a failure followed: a failure put right
            # while another began is still the set failed since that pass (cleared, the pass was
            # forgotten and every part of the shift counted as made before it)
            passed_since = c.created_at
    return max(start, passed_since) if passed_since is not None else None


def _failure(s: Any, key: tuple[str, str, str], c: Any, tp: Optional[TestPart], now: dt.datetime) -> dict[str, Any]:
    """A wrong check and the station's parts it puts in doubt: from the last time that
    test part got its verdict there (the station last proved it judged such a part
    right; at most back to the test part's registration) to the next time it did (or
    now). A check judged milder than it must be (a red rabbit passed as OK) puts the
    parts passed as OK in doubt (escapes); one judged harsher (a good part rejected)
    the parts rejected as NG (false rejects)."""
    line, station, product = key
    same = (Inspection.line == line, Inspection.station == station, Inspection.product == product,
            Inspection.test_part == c.test_part, Inspection.verdict == Inspection.test_expected)
    last_right = s.scalar(select(func.max(Inspection.created_at)).where(*same, Inspection.created_at < c.created_at))
    cleared = s.scalar(select(func.min(Inspection.created_at)).where(*same, Inspection.created_at > c.created_at))
    # never right before: since it was registered (or since this check, for one registered again later)
    since = last_right if last_right is not None else min(tp.created_at if tp is not None else c.created_at,
                                                          c.created_at)
    until = cleared or now
    milder = SEVERITY.get(c.verdict, 0) < SEVERITY.get(c.test_expected, 0)
    doubt = "OK" if milder else "NG"
    n = s.scalar(select(func.count()).where(
        Inspection.line == line, Inspection.station == station, Inspection.product == product,
        Inspection.test_part.is_(None), Inspection.verdict == doubt, Inspection.created_at >= since,
        Inspection.created_at < until))
    return {"name": c.test_part, "expected": c.test_expected, "verdict": c.verdict, "at": _iso(c.created_at),
            "inspection_id": c.id, "last_right_at": _iso(last_right), "cleared_at": _iso(cleared),
            "doubt": {"verdict": doubt, "since": _iso(since), "until": _iso(cleared), "parts": n,
                      "what": "escapes: defects passed as OK" if milder else "false rejects: good parts rejected"}}


def station_state(db: Any, shift: Shift, line: str, station: str, product: str,
                  now: Optional[dt.datetime] = None) -> str:
    """One station's verification now, as a PLC interlock reads it: its state in
    :func:`verification`; ``due`` for a station that has not run this shift but whose
    product has test parts, ``none`` for a product without them."""
    now = now or utcnow()
    for v in verification(db, shift, now, line, station, failures=False):
        if v["product"] == product:
            return v["state"]
    end = min(shift.end_utc, now)
    asked = [tp for tp in in_use(db, shift.start_utc, end).get(product, [])
             if tp.retired_at is None or tp.retired_at > end]
    return "due" if asked else "none"
