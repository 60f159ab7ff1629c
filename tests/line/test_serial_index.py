"""A part's inspections by its serial go along an index of their own (migration 0030).

The inspections list filters by serial (a PLC's PartTag, which a rework triggers again under
a new part id), and the operator app's part search asks for it on each search: with no
index every list, count and export by serial read the whole table (460-507 ms at a million
parts on SQLite). The plan, not the time, is what is checked here.
"""
from __future__ import annotations

import pytest
from sqlalchemy import select, text

from lineguard.line.orm import Inspection

from .conftest import index_comes_and_goes

INDEX = "ix_inspections_serial_id"


def test_migration_0030_adds_the_serial_index_and_takes_it_back(station):
    index_comes_and_goes(station, INDEX, "0029")


def test_the_list_by_serial_reads_along_the_serial_index(station):
    if station.db.engine.dialect.name != "sqlite":
        pytest.skip("the plan is SQLite's; PostgreSQL chooses by its statistics")
    from lineguard.line.station import _matching
    q = _matching(select(Inspection.id), serial="777").order_by(Inspection.id.desc()).limit(50)
    sql = str(q.compile(station.db.engine, compile_kwargs={"literal_binds": True}))
    with station.db.engine.connect() as conn:
        plan = " ".join(str(row[-1]) for row in conn.execute(text("EXPLAIN QUERY PLAN " + sql)))
    assert INDEX in plan and "SCAN inspections" not in plan.replace(f"USING INDEX {INDEX}", ""), plan
