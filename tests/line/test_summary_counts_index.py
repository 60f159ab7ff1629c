"""The line view's shift counters (GET /api/v1/lines/summary) count along indexes of their own
(migration 0031): each station's production parts of each verdict by time, its test parts by time.

Grouped along the creation time, every poll read each part of the shift and SQLite sorted them
(0.5-0.9 s at 200,000 parts); now the stations and verdicts are found a seek apiece and each
counted where its parts lie together in the index. The numbers must stay a plain count of the
rows, with ids in no time order (two processes, PostgreSQL's commits), test parts apart and rows
deleted by the record keeper; the plan, not the time, is checked here
(``python -m benchmarks.line_summary_bench`` for the time).
"""
from __future__ import annotations

import datetime as dt
import random

import pytest
from sqlalchemy import delete, event, insert, select

from lineguard.line.orm import Inspection, iso_utc, utcnow

from .conftest import index_comes_and_goes

PRODUCTION_INDEX = "ix_inspections_production_verdict"
TEST_INDEX = "ix_inspections_test_station"


def _fill(st, start: dt.datetime, now: dt.datetime) -> None:
    rnd = random.Random(31)
    rows = []

    def add(line, station, verdict, at, test=None):
        rows.append(dict(part_id=f"P{len(rows)}", line=line, station=station, product="cell", verdict=verdict,
                         score=0.3, threshold=0.5, pixel_threshold=0.5, model_id="m", model_version="v",
                         regions=[], timings_ms={"total": 40.0}, image_sha256=f"{len(rows):064d}",
                         image_width=8, image_height=8, created_at=at, test_part=test,
                         test_expected="NG" if test else None))

    def during():
        return start + dt.timedelta(seconds=rnd.uniform(0, (now - start).total_seconds()))

    def before():
        return start - dt.timedelta(seconds=rnd.uniform(1, 86400))

    for line, station, n in [("L1", "S1", 300), ("L1", "S2", 120), ("L2", "S3", 40)]:
        # S2: REVIEW only before the shift
        verdicts = ["OK", "OK", "NG"] if station == "S2" else ["OK", "OK", "OK", "NG", "REVIEW"]
        for _ in range(n):
            add(line, station, rnd.choice(verdicts), during())
            add(line, station, rnd.choice(["OK", "NG", "REVIEW"]), before())
        for _ in range(rnd.randint(2, 9)):       # the red rabbit, in the shift and before it
            add(line, station, rnd.choice(["OK", "NG"]), during(), test="red-rabbit")
            add(line, station, "NG", before(), test="red-rabbit")
    add("L1", "S1", "OK", start)                 # exactly at the start: counted
    add("L1", "S1", "NG", start - dt.timedelta(microseconds=1))
    add("L1", "S1", "ERROR", during())           # a verdict no counter names: a part all the same
    add("L2", "S4", "NG", during(), test="red-rabbit")    # S4: only a test part in the shift
    add("L3", "S9", "OK", before())              # L3: a line idle since before the shift
    rnd.shuffle(rows)                            # ids in no time order
    with st.db.engine.begin() as c:
        c.execute(insert(Inspection), rows)


def _plain(st, start: dt.datetime):
    """Each station's counters and test parts since ``start``, counted the plain way (every row read)."""
    with st.db.session() as s:
        rows = s.execute(select(Inspection.line, Inspection.station, Inspection.verdict, Inspection.test_part,
                                Inspection.created_at).where(Inspection.created_at >= start)).all()
    counters: dict = {}
    tests: dict = {}
    for line, station, verdict, test, at in rows:
        if test is not None:
            tests[(line, station)] = tests.get((line, station), 0) + 1
            continue
        c = counters.setdefault((line, station), {"parts": 0, "ok": 0, "ng": 0, "review": 0, "last": at})
        c["parts"] += 1
        key = {"OK": "ok", "NG": "ng", "REVIEW": "review"}.get(verdict)
        if key:
            c[key] += 1
        c["last"] = max(c["last"], at)
    return {k: {**v, "last": iso_utc(v["last"])} for k, v in counters.items()}, tests


def _summary(st, start, now):
    from lineguard.server.routers.live import line_summary
    body = line_summary(st, since=start, now=now)
    return {(r["line"], r["station"]): {"parts": r["parts"], "ok": r["ok"], "ng": r["ng"], "review": r["review"],
                                        "last": r["last_part_at"]} for r in body["lines"]}


def _tests_counted(st, start):
    from lineguard.server.routers.live import shift_counts
    with st.db.session() as s:
        return {(line, station): n for line, station, verdict, n, _last in shift_counts(s, start, st.db.is_sqlite)
                if verdict is None and n}


def test_migration_0031_adds_the_shift_counters_indexes_and_takes_them_back(station):
    index_comes_and_goes(station, PRODUCTION_INDEX, "0030")
    index_comes_and_goes(station, TEST_INDEX, "0030")


def test_the_counters_are_a_plain_count_of_the_shifts_parts(station):
    now = utcnow()
    start = now - dt.timedelta(hours=3)
    _fill(station, start, now)
    counters, tests = _plain(station, start)
    assert _summary(station, start, now) == counters
    assert set(counters) == {("L1", "S1"), ("L1", "S2"), ("L2", "S3")} and counters[("L1", "S2")]["review"] == 0
    assert _tests_counted(station, start) == tests and ("L2", "S4") in tests

    # the record keeper deletes parts (the shift's oldest among them), a second process writes
    with station.db.session() as s:
        old = s.scalars(select(Inspection.id).where(Inspection.created_at < start + dt.timedelta(minutes=30))).all()
        s.execute(delete(Inspection).where(Inspection.id.in_(old[::2])))
    with station.db.engine.begin() as c:
        c.execute(insert(Inspection), [dict(part_id="late", line="L2", station="S3", product="cell", verdict="NG",
                                            score=0.9, threshold=0.5, pixel_threshold=0.5, model_id="m",
                                            model_version="v", regions=[], timings_ms={}, image_sha256="f" * 64,
                                            image_width=8, image_height=8, created_at=start)])
    counters, tests = _plain(station, start)
    assert _summary(station, start, now) == counters
    assert _tests_counted(station, start) == tests


def _counters_statement(st, start, now):
    """The statement (and its parameters) line_summary counts the shift with."""
    from lineguard.server.routers.live import line_summary
    seen = []

    def keep(conn, cursor, statement, params, context, many):
        if "shift_verdicts" in statement:
            seen.append((statement, params))
    event.listen(st.db.engine, "before_cursor_execute", keep)
    try:
        line_summary(st, since=start, now=now)
    finally:
        event.remove(st.db.engine, "before_cursor_execute", keep)
    assert len(seen) == 1, "the shift's counters are not counted along the stations' verdicts"
    return seen[0]


def test_sqlite_counts_along_the_indexes_with_no_sort_and_no_scan(station):
    if station.db.engine.dialect.name != "sqlite":
        pytest.skip("the plan is SQLite's; PostgreSQL chooses by its statistics")
    now = utcnow()
    start = now - dt.timedelta(hours=3)
    _fill(station, start, now)
    statement, params = _counters_statement(station, start, now)
    raw = station.db.engine.raw_connection()
    try:
        plan = [r[3] for r in raw.cursor().execute("EXPLAIN QUERY PLAN " + statement, params)]
    finally:
        raw.close()
    text = "\n".join(plan)
    # each verdict's parts since the start: a range of the production index, not the table
    assert f"{PRODUCTION_INDEX} (line=? AND station=? AND verdict=? AND created_at>?)" in text, text
    assert f"{TEST_INDEX} (line=? AND station=? AND created_at>?)" in text, text
    # no sort of the shift's parts, no read of a whole table or index
    assert "TEMP B-TREE" not in text, text
    assert not [p for p in plan if p.startswith("SCAN") and p.split()[1] in ("inspections", "x")], text


def test_postgresql_groups_the_shifts_parts_without_compiling_them(station):
    """PostgreSQL keeps the index entries of deleted parts until VACUUM: the loose scan over
    each station's verdicts began at the oldest entries, those the record keeper deletes, and
    stepped over all of them at each poll (87-150 ms after 1.5 million were deleted, the
    grouped count 7 ms); and it walked every station ever recorded. It groups the shift's
    parts along their time, without JIT (a large shift's estimate passed jit_above_cost)."""
    if station.db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's way")
    from lineguard.server.routers.live import line_summary
    now = utcnow()
    start = now - dt.timedelta(hours=3)
    _fill(station, start, now)
    seen, plans = [], []

    def explain(conn, cursor, statement, params, context, many):
        if "FROM inspections" in statement and "count(" in statement and "GROUP BY" in statement.upper():
            seen.append(statement)
            plans.append("\n".join(r[0] for r in cursor.connection.execute("EXPLAIN " + statement, params)))
    event.listen(station.db.engine, "before_cursor_execute", explain)
    try:
        line_summary(station, since=start, now=now)
    finally:
        event.remove(station.db.engine, "before_cursor_execute", explain)
    counters = [x for x in seen if "verdict" in x]
    assert len(counters) == 1 and "RECURSIVE" not in counters[0].upper(), seen
    assert "JIT" not in plans[seen.index(counters[0])], plans
