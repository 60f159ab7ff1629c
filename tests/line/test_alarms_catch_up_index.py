"""The line alarms read a station's parts along an index of its own (migration 0029).

Each process counts every part of a station, also those another process on the database
recorded (a hot folder's watcher beside the server, two servers): before its next part it
reads the station's parts after the last one it counted, and again under the line's lock
before an alarm is written; a restarted process reads the station's latest parts back,
and an acknowledgement reads its newest. Along the primary key (PostgreSQL) or the line's
index (SQLite) such a read went through every part of the line's other stations recorded
meanwhile: 72-107 ms for a station's next part after 300,000 of them, and on SQLite 25-67 ms
for each part two processes sent by turns. The plan, not the time, is what is checked here.
"""
from __future__ import annotations

import itertools

import pytest
from sqlalchemy import event

from lineguard.line.station import Part

from .conftest import FakeInspector, index_comes_and_goes, png_bytes

OK, NG = 60, 200          # the fake model's score is brightness: 0.24 and 0.78 against 0.5
INDEX = "ix_inspections_line_station_id"
_seq = itertools.count()


def _send(processes, *values, station="S3"):
    """Parts of line L1 at ``station``, sent through the processes in turn."""
    for proc, v in zip(itertools.cycle(processes), values):
        n = next(_seq)
        proc.inspect(png_bytes(v, seed=9000 + n), Part(f"IDX-{n}", "L1", station, "cell"))


def test_migration_0029_adds_the_station_index_and_takes_it_back(station):
    index_comes_and_goes(station, INDEX, "0028")


def test_the_alarms_read_a_stations_parts_along_its_index_not_the_lines(station_factory):
    if station_factory.backend != "sqlite":
        pytest.skip("the plan is SQLite's; PostgreSQL chooses by its statistics")
    a = station_factory(alarm_ng_rate=0)
    a.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    b = station_factory(alarm_ng_rate=0)          # the other process on the same database
    seen = []

    def keep(conn, cursor, statement, params, context, many):
        # the station's parts, as the alarms read them (a part's own history goes by its id)
        if "FROM inspections" in statement and "inspections.station = " in statement and "part_id" not in statement:
            seen.append((statement, params))
    engines = [a.db.engine, b.db.engine]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", keep)
    try:
        _send((a, b), OK, OK, OK, OK)              # each part caught up with the other process's
        _send((a, b), NG, NG, NG, NG, NG)          # the run's alarm: its parts read again under the lock
        (alarm,) = a.alarms.active()
        b.alarms.acknowledge(alarm["id"], "maria (user)")     # the station's newest part
        c = station_factory(alarm_ng_rate=0)       # a process started now reads the station back
        event.listen(c.db.engine, "before_cursor_execute", keep)
        engines.append(c.db.engine)
        _send((c,), OK)
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", keep)
    assert seen
    with a.db.engine.connect() as conn:
        for statement, params in seen:
            plan = " / ".join(row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params))
            assert f"{INDEX} (line=? AND station=?" in plan, (statement, plan)
            assert "TEMP B-TREE" not in plan, (statement, plan)      # newest first along it, no sort
    # each of the reads was among them
    reads = {"catch-up": [s for s, _ in seen if "inspections.id >" in s],
             "read back": [s for s, _ in seen if "LIMIT" in s and "inspections.id >" not in s],
             "acknowledgement": [s for s, _ in seen if "max(inspections.id)" in s]}
    assert all(reads.values()), {k: len(v) for k, v in reads.items()}
