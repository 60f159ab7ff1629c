"""Reviews are kept as a history (who, when, what the model had said), with defect types per product."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from lineguard.line.errors import InvalidRequest, NotFound
from lineguard.line.orm import Inspection, OutboxEvent, Review
from lineguard.line.reviews import DEFAULT_DEFECT_TYPES
from lineguard.line.station import Part, inspection_to_dict

from .conftest import png_bytes


def part(pid: str, lot=None) -> Part:
    return Part(pid, "L1", "S1", "cell", lot=lot)


def test_every_review_is_kept_and_the_part_shows_the_latest(station):
    ng = station.inspect(png_bytes(230, seed=1), part("h-ng")).record
    assert ng.verdict == "NG"
    station.review(ng.id, "good", "ann", "dust on the lens")
    station.review(ng.id, "defect", "bob", "a crack after all", defect_type="crack")
    hist = station.review_history(ng.id)
    assert [(r.label, r.defect_type, r.reviewer, r.note, r.verdict_at_review) for r in hist] == [
        ("good", None, "ann", "dust on the lens", "NG"), ("defect", "crack", "bob", "a crack after all", "NG")]
    assert hist[0].created_at <= hist[1].created_at
    rec = station.get(ng.id)
    assert (rec.reviewed, rec.review_label, rec.defect_type, rec.reviewer) == (True, "defect", "crack", "bob")
    d = inspection_to_dict(rec)
    assert d["defect_type"] == "crack" and d["review"]["defect_type"] == "crack"
    with station.db.session() as s:
        events = list(s.scalars(select(OutboxEvent).where(OutboxEvent.event == "review").order_by(OutboxEvent.id)))
    assert [(e.payload["id"], e.payload["review"]["label"], e.payload["defect_type"]) for e in events] == [
        (ng.id, "good", None), (ng.id, "defect", "crack")]
    with pytest.raises(NotFound):
        station.review_history(999999)


def test_a_missed_defect_on_an_ok_part_is_recorded_as_such(station):
    ok = station.inspect(png_bytes(30, seed=2), part("h-ok")).record
    assert ok.verdict == "OK"
    station.review(ok.id, "defect", "ann", None, defect_type="scratch")
    (r,) = station.review_history(ok.id)
    assert (r.label, r.verdict_at_review, r.defect_type) == ("defect", "OK", "scratch")


def test_defect_types_come_from_the_products_list(station):
    rec = station.inspect(png_bytes(230, seed=3), part("h-type")).record
    assert station.defect_types("cell") == list(DEFAULT_DEFECT_TYPES)
    with pytest.raises(InvalidRequest, match="scratch, crack, dent") as e:
        station.review(rec.id, "defect", "ann", None, defect_type="burr")
    assert e.value.details["defect_types"] == list(DEFAULT_DEFECT_TYPES)
    with pytest.raises(InvalidRequest, match="label 'defect' only"):
        station.review(rec.id, "good", "ann", None, defect_type="crack")
    assert station.set_defect_types("cell", [" burr ", "chip"], by="eve") == ["burr", "chip"]
    assert station.defect_types("cell") == ["burr", "chip"]
    assert station.defect_types("other-product") == list(DEFAULT_DEFECT_TYPES)
    station.review(rec.id, "defect", "ann", None, defect_type="burr")
    with pytest.raises(InvalidRequest, match="crack"):
        station.review(rec.id, "defect", "ann", None, defect_type="crack")   # no longer listed
    for bad in ([], ["a", "a"], [""], ["x" * 101]):
        with pytest.raises(InvalidRequest):
            station.set_defect_types("cell", bad)
    # a refused review leaves no trace
    assert len(station.review_history(rec.id)) == 1


def test_a_review_and_its_history_are_one_transaction(station, monkeypatch):
    rec = station.inspect(png_bytes(230, seed=4), part("h-atomic")).record
    from lineguard.line import station as station_mod

    def broken(*a, **kw):
        raise RuntimeError("outbox write failed")
    monkeypatch.setattr(station_mod, "record_event", broken)
    with pytest.raises(RuntimeError):
        station.review(rec.id, "defect", "ann", None, defect_type="dent")
    with station.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Review)) == 0
        assert s.get(Inspection, rec.id).reviewed is False


def test_inspections_filter_by_lot_and_defect_type(station):
    a = station.inspect(png_bytes(230, seed=5), part("f-a", lot="LOT-1")).record
    b = station.inspect(png_bytes(231, seed=6), part("f-b", lot="LOT-2")).record
    c = station.inspect(png_bytes(232, seed=7), part("f-c", lot="LOT-2")).record
    station.review(a.id, "defect", "ann", None, defect_type="dent")
    station.review(b.id, "defect", "ann", None, defect_type="crack")
    station.review(c.id, "defect", "ann", None, defect_type="dent")
    assert [r.part_id for r in station.query(lot="LOT-2")] == ["f-c", "f-b"]
    assert [r.part_id for r in station.query(defect_type="dent")] == ["f-c", "f-a"]
    assert [r.part_id for r in station.query(defect_type="dent", lot="LOT-2")] == ["f-c"]


def test_two_reviews_of_one_part_at_once_leave_the_part_as_its_latest_review(station, monkeypatch):
    """Two reviewers judging one part within a moment (SQLite): the second review to write
    had read the part before the first committed, and only the columns that differed from
    that stale copy were written: the part said "good by ben" while its latest review, the
    one every reviewer saw answered, was "defect by ann" (every count read the part)."""
    import threading
    import time

    from lineguard.line import reviews
    ng = station.inspect(png_bytes(230, seed=4), part("race")).record
    station.review(ng.id, "defect", "ann", None, defect_type="crack")
    both_read = threading.Barrier(2)
    check = reviews.check_review

    def after_both_read(s, product, label, defect_type):
        try:
            both_read.wait(2)        # each review has read the part (ann's: "defect by ann")
        except threading.BrokenBarrierError:
            pass                     # the write lock is taken before the read now: one at a time
        if label == "defect":
            time.sleep(0.3)          # ann's writes last, from her stale copy
        return check(s, product, label, defect_type)

    monkeypatch.setattr(reviews, "check_review", after_both_read)
    threads = [threading.Thread(target=station.review, args=(ng.id, "good", "ben", None)),
               threading.Thread(target=station.review, args=(ng.id, "defect", "ann", None),
                                kwargs={"defect_type": "crack"})]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    history = station.review_history(ng.id)
    latest, rec = history[-1], station.get(ng.id)
    assert len(history) == 3 or (len(history) == 2 and (latest.label, latest.reviewer) == ("good", "ben"))
    assert (rec.review_label, rec.defect_type, rec.reviewer) == (latest.label, latest.defect_type, latest.reviewer)


def test_a_test_part_s_review_is_not_in_the_version_s_rates(station):
    """A red rabbit reviewed "good" (what it is not) counted in the model version's false
    rejects, though SPC, the shift report and tuning leave test parts out."""
    from lineguard.line.compare import version_rates
    station.test_parts.add("cell", "RR-01", "NG", by="test")
    ng = station.inspect(png_bytes(230, seed=5), part("p-ng")).record
    station.review(ng.id, "defect", "ann", None, defect_type="crack")
    rabbit = station.inspect(png_bytes(230, seed=6), Part("RR-01", "L1", "S1", "cell")).record
    assert rabbit.test_part is not None
    station.review(rabbit.id, "good", "ann", None)
    with station.db.session() as s:
        mv = next(mv for mv in station.models.list("cell") if mv.active)
        rates = version_rates(s, [mv])[mv.id]
    assert (rates["n_good"], rates["n_defect"]) == (0, 1), rates


def test_the_same_review_sent_twice_is_one_judgement(station):
    """A double click (or a page re-sending after a network drop) added a second history row
    and a second review event for the same person's same judgement."""
    rec = station.inspect(png_bytes(230, seed=5), part("h-twice")).record
    first = station.review(rec.id, "defect", "ann", "crack at the tab", defect_type="crack")
    again = station.review(rec.id, "defect", "ann", "crack at the tab", defect_type="crack")
    assert again.reviewed_at == first.reviewed_at
    assert [(r.label, r.reviewer) for r in station.review_history(rec.id)] == [("defect", "ann")]
    with station.db.session() as s:
        assert s.scalar(select(func.count()).select_from(OutboxEvent).where(OutboxEvent.event == "review")) == 1
    # anything different is a new judgement, kept: another note, another person, a change back
    station.review(rec.id, "defect", "ann", "crack and a dent", defect_type="crack")
    station.review(rec.id, "defect", "bob", "crack and a dent", defect_type="crack")
    station.review(rec.id, "good", "bob", "crack and a dent")
    assert [(r.label, r.reviewer, r.note) for r in station.review_history(rec.id)] == [
        ("defect", "ann", "crack at the tab"), ("defect", "ann", "crack and a dent"),
        ("defect", "bob", "crack and a dent"), ("good", "bob", "crack and a dent")]


def test_the_same_review_sent_twice_at_once_is_one_judgement(station):
    """A request re-sent while the first still runs (an MES after a timeout): on SQLite both
    read the part before either wrote, both found it unreviewed, and each added a history
    row and a review event (25 of 30 parts in a review)."""
    import threading
    from lineguard.line import reviews
    rec = station.inspect(png_bytes(230, seed=7), part("h-twice-at-once")).record
    both_read = threading.Barrier(2)
    check = reviews.check_review

    def after_both_read(s, product, label, defect_type):
        try:
            both_read.wait(2)       # on HEAD both get here; with the write lock first only one at a time
        except threading.BrokenBarrierError:
            pass
        return check(s, product, label, defect_type)

    reviews.check_review = after_both_read
    try:
        threads = [threading.Thread(target=station.review, args=(rec.id, "defect", "ann", "crack"),
                                    kwargs={"defect_type": "crack"}) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        reviews.check_review = check
    assert [(r.label, r.reviewer) for r in station.review_history(rec.id)] == [("defect", "ann")]
    with station.db.session() as s:
        assert s.scalar(select(func.count()).select_from(OutboxEvent).where(
            OutboxEvent.event == "review", OutboxEvent.payload["id"].as_integer() == rec.id)) == 1


def test_a_review_sent_against_one_that_came_meanwhile_is_refused(station):
    """Two reviewers on one part: ann confirms a crack, ben (his page still showing the part
    unreviewed) presses good; both read "saved" and the crack became good, learnt as such by
    the next retrain. With what the page showed (seen_review) the later one is refused."""
    from lineguard.line.errors import ReviewChanged
    from lineguard.line.station import _iso
    rec = station.inspect(png_bytes(230, seed=8), part("h-seen")).record
    first = station.review(rec.id, "defect", "ann", None, defect_type="crack", seen_review="none")
    with pytest.raises(ReviewChanged, match="confirmed defect \\(crack\\), by ann") as e:
        station.review(rec.id, "good", "ben", None, seen_review="none")
    assert e.value.details["review"]["reviewer"] == "ann"
    assert [r.reviewer for r in station.review_history(rec.id)] == ["ann"]
    # having looked, ben replaces it by naming the review he saw
    station.review(rec.id, "good", "ben", "dust", seen_review=_iso(first.reviewed_at))
    assert station.get(rec.id).review_label == "good"
    # a page that showed a review that is not the latest any more: refused too
    with pytest.raises(ReviewChanged):
        station.review(rec.id, "defect", "cem", None, defect_type="dent", seen_review=_iso(first.reviewed_at))
    # left out: no check (scripts), as before
    station.review(rec.id, "defect", "cem", None, defect_type="dent")
    assert [r.reviewer for r in station.review_history(rec.id)] == ["ann", "ben", "cem"]
