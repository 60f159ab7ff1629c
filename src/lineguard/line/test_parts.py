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

A line's verification this shift, for a product with test parts (:func:`verification`):
``passed`` once every test part's latest check this shift got its verdict, ``failed``
while one's did not (which, and since when the line's parts are suspect: the last time
that same test part got its verdict before), else ``due`` (none seen yet) or
``incomplete`` (some seen), with how many of the line's parts were made before.
"""
from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass
from typing import Any, Optional

from sqlalchemy import func, select

from .errors import InvalidRequest, NotFound
from .orm import Inspection, TestPart, iso_utc as _iso, utcnow
from .shifts import Shift

EXPECTS = ("OK", "NG", "REVIEW")
NAME_MAX = 200      # the longest serial a record holds (Inspection.serial)


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
        self._by_product: dict[str, dict[str, str]] = {}
        self._loaded = -float("inf")

    def _load(self) -> dict[str, dict[str, str]]:
        if time.monotonic() - self._loaded < self.reload_s:
            return self._by_product
        with self._lock:
            if time.monotonic() - self._loaded >= self.reload_s:
                book: dict[str, dict[str, str]] = {}
                with self.db.session() as s:
                    for product, name, expect in s.execute(select(TestPart.product, TestPart.name, TestPart.expect)
                                                           .where(TestPart.retired_at.is_(None))):
                        book.setdefault(product, {})[name] = expect
                self._by_product = book     # replaced whole: readers never see it half-built
                self._loaded = time.monotonic()
        return self._by_product

    def _changed(self) -> None:
        self._loaded = -float("inf")

    def match(self, product: str, serial: Optional[str], part_id: str) -> Optional[Expected]:
        """The test part a part is, by its serial or else its part id; None for the line's own parts."""
        names = self._load().get(product)
        if not names:
            return None
        for key in (serial, part_id):
            if key is not None and key in names:
                return Expected(key, names[key])
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
            by: Optional[str] = None) -> TestPart:
        """Register a test part, or change one (a retired name comes back)."""
        name = name.strip()
        if not name or len(name) > NAME_MAX:
            raise InvalidRequest(f"a test part's name is the serial or part id it is sent with: 1 to {NAME_MAX} "
                                 f"characters, got {len(name)}")
        if expect not in EXPECTS:
            raise InvalidRequest(f"expect must be one of {', '.join(EXPECTS)} (NG: a defect the station must "
                                 f"reject; OK: a good part; REVIEW: a limit sample), got {expect!r}")
        with self.db.session() as s:
            row = s.scalar(select(TestPart).where(TestPart.product == product, TestPart.name == name))
            if row is None:
                row = TestPart(product=product, name=name, created_at=utcnow())
                s.add(row)
            row.expect, row.description, row.created_by = expect, description, by
            row.retired_at = row.retired_by = None
            s.flush()
            s.expunge(row)
        self._changed()
        return row

    def retire(self, product: str, name: str, by: Optional[str] = None) -> TestPart:
        """Stop counting a test part (lost, worn, replaced); its past checks keep its name."""
        with self.db.session() as s:
            row = s.scalar(select(TestPart).where(TestPart.product == product, TestPart.name == name,
                                                  TestPart.retired_at.is_(None)))
            if row is None:
                raise NotFound(f"product {product!r} has no test part {name!r} in use")
            row.retired_at, row.retired_by = utcnow(), by
            s.flush()
            s.expunge(row)
        self._changed()
        return row


def verification(db: Any, shift: Shift, now: Optional[dt.datetime] = None,
                 line: Optional[str] = None) -> list[dict[str, Any]]:
    """Each line's verification in ``shift``, per product with test parts that the line
    ran (or checked) in it; see the module's docstring for the states."""
    now = now or utcnow()
    registered: dict[str, list[TestPart]] = {}
    for tp in TestPartBook(db).list():
        registered.setdefault(tp.product, []).append(tp)
    if not registered:
        return []
    start, end = shift.start_utc, min(shift.end_utc, now)
    out = []
    with db.session() as s:
        in_shift = (Inspection.created_at >= start, Inspection.created_at < end,
                    Inspection.product.in_(list(registered)))
        if line is not None:
            in_shift += (Inspection.line == line,)
        ran = {(ln, product): n for ln, product, n in s.execute(
            select(Inspection.line, Inspection.product, func.count())
            .where(*in_shift, Inspection.test_part.is_(None)).group_by(Inspection.line, Inspection.product))}
        checks: dict[tuple[str, str], list[Any]] = {}
        for row in s.execute(select(Inspection.id, Inspection.line, Inspection.product, Inspection.test_part,
                                    Inspection.test_expected, Inspection.verdict, Inspection.created_at)
                             .where(*in_shift, Inspection.test_part.is_not(None)).order_by(Inspection.id)):
            checks.setdefault((row.line, row.product), []).append(row)
        for key in sorted(set(ran) | set(checks)):
            ln, product = key
            out.append(_line_state(s, ln, product, registered[product], checks.get(key, []), ran.get(key, 0),
                                   start, end))
    return out


def _line_state(s: Any, line: str, product: str, parts: list[TestPart], checks: list[Any], made: int,
                start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    latest = {}
    for c in checks:
        latest[c.test_part] = c      # in id order: the last one stands
    rows, complete_at = [], None
    for tp in parts:
        c = latest.get(tp.name)
        rows.append({"name": tp.name, "expect": tp.expect, "description": tp.description,
                     "verdict": c.verdict if c else None, "right": (c.verdict == c.test_expected) if c else None,
                     "checked_at": _iso(c.created_at) if c else None, "inspection_id": c.id if c else None})
        if c is not None:
            complete_at = c.created_at if complete_at is None else max(complete_at, c.created_at)
    seen = [r for r in rows if r["right"] is not None]
    if any(r["right"] is False for r in rows):
        state = "failed"
    elif len(seen) == len(rows):
        state = "passed"
    else:
        state = "incomplete" if seen else "due"
        complete_at = None
    # the line's own parts made before the set passed (all of the shift's until it does)
    before = Inspection.created_at < complete_at if state == "passed" else Inspection.created_at < end
    unverified = s.scalar(select(func.count()).where(
        Inspection.line == line, Inspection.product == product, Inspection.test_part.is_(None),
        Inspection.created_at >= start, before)) if made else 0
    return {"line": line, "product": product, "state": state, "passed_at": _iso(complete_at) if state == "passed"
            else None, "parts_made": made, "parts_before_verification": unverified, "test_parts": rows,
            "failures": _failures(s, line, product, checks, end)}


def _failures(s: Any, line: str, product: str, checks: list[Any], end: dt.datetime) -> list[dict[str, Any]]:
    """Every wrong check of the shift, with the window of the line's parts it puts in doubt:
    from the last time that test part got its verdict (the station last proved it caught
    such a part) to the next time it did (or now), and how many parts passed as OK in it."""
    out = []
    for c in checks:
        if c.verdict == c.test_expected:
            continue
        same = (Inspection.line == line, Inspection.product == product, Inspection.test_part == c.test_part,
                Inspection.verdict == Inspection.test_expected)
        last_right = s.scalar(select(func.max(Inspection.created_at)).where(*same, Inspection.id < c.id))
        cleared = s.scalar(select(func.min(Inspection.created_at)).where(*same, Inspection.id > c.id))
        window = [Inspection.line == line, Inspection.product == product, Inspection.test_part.is_(None),
                  Inspection.verdict == "OK", Inspection.created_at < (cleared or end)]
        if last_right is not None:
            window.append(Inspection.created_at >= last_right)
        ok_parts = s.scalar(select(func.count()).where(*window))
        out.append({"name": c.test_part, "expected": c.test_expected, "verdict": c.verdict,
                    "at": _iso(c.created_at), "inspection_id": c.id, "last_right_at": _iso(last_right),
                    "cleared_at": _iso(cleared), "ok_parts_in_doubt": ok_parts})
    return out
