"""A part's inspections by its serial go along an index of their own (migration 0030).

The inspections list filters by serial (a PLC's PartTag, which a rework triggers again under
a new part id), and the operator app's part search asks for it on each search: with no
index every list, count and export by serial read the whole table (460-507 ms at a million
parts on SQLite). The plan, not the time, is what is checked here.
"""
from __future__ import annotations

import pytest
from sqlalchemy import inspect as sa_inspect, select, text

from lineguard.line.db import schema_revisions
from lineguard.line.orm import Inspection

INDEX = "ix_inspections_serial_id"


def test_migration_0030_adds_the_serial_index_and_takes_it_back(station):
    from alembic import command
    from alembic.config import Config
    from lineguard.line import db as db_mod

    def indexes():
        return {ix["name"] for ix in sa_inspect(station.db.engine).get_indexes("inspections",
                                                                                schema=station.db.schema)}
    assert INDEX in indexes()
    cfg = Config()
    cfg.set_main_option("script_location", str(db_mod._MIGRATIONS))
    with station.db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0029")
    assert INDEX not in indexes()
    station.db.upgrade()
    assert INDEX in indexes()
    with station.db.session() as s:
        assert s.execute(text("SELECT version_num FROM alembic_version")).scalar() == schema_revisions()[0]


def test_the_list_by_serial_reads_along_the_serial_index(station):
    if station.db.engine.dialect.name != "sqlite":
        pytest.skip("the plan is SQLite's; PostgreSQL chooses by its statistics")
    from lineguard.line.station import _matching
    q = _matching(select(Inspection.id), serial="777").order_by(Inspection.id.desc()).limit(50)
    sql = str(q.compile(station.db.engine, compile_kwargs={"literal_binds": True}))
    with station.db.engine.connect() as conn:
        plan = " ".join(str(row[-1]) for row in conn.execute(text("EXPLAIN QUERY PLAN " + sql)))
    assert INDEX in plan and "SCAN inspections" not in plan.replace(f"USING INDEX {INDEX}", ""), plan
