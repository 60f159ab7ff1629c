"""Compare counts as "not compared" only the parts made while the candidate ran in shadow.

A shadow that judged its parts, was stopped on purpose and started again later was blamed
for every part made while it was stopped: the window ran from the first part both judged
to the last (1,000 parts judged, 8,000 made while stopped: compared_share 0.2, and the
page said it "fell behind or failed on them"). The runs come from the change log, where
start, stop, a replacement and an activation each leave their entry.
"""
from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import text

from lineguard.line.compare import compare
from lineguard.line.orm import Inspection, ShadowResult, utcnow

from .conftest import FakeInspector


def _parts(st, active, n, shadow=None, verdict="OK"):
    """``n`` parts judged by ``active`` now; ``shadow`` (a version) judged them too."""
    with st.db.session() as s:
        for _ in range(n):
            rec = Inspection(part_id=f"p{uuid.uuid4().hex[:12]}", line="L1", station="S1", product="cell",
                             verdict=verdict, score=0.3, threshold=0.5, pixel_threshold=0.5,
                             model_id=active.model_id, model_version="v-a", registry_version=active.version,
                             image_sha256=uuid.uuid4().hex, image_width=8, image_height=8, created_at=utcnow())
            s.add(rec)
            s.flush()
            if shadow is not None:
                s.add(ShadowResult(inspection_id=rec.id, model_version_id=shadow.id, verdict=verdict, score=0.3))


def _compare(st, active, cand):
    with st.db.session() as s:
        return compare(s, active, cand, "L1")


def test_the_time_a_shadow_was_stopped_is_not_held_against_it(station):
    st = station
    v1 = st.models.active_for("cell", "L1")
    v2 = st.add_model(FakeInspector(0.4, "v-b").to_bytes(), "cell")
    st.shadow.start("cell", "", v2.version, by="anna")
    _parts(st, v1, 10, shadow=v2)
    st.shadow.stop("cell", "", by="anna")
    _parts(st, v1, 80)                  # stopped on purpose: v2 was never asked to judge these
    st.shadow.start("cell", "", v2.version, by="anna")
    _parts(st, v1, 5, shadow=v2)
    _parts(st, v1, 3)                   # dropped while it ran: these count
    _parts(st, v1, 5, shadow=v2)
    out = _compare(st, v1, v2)
    assert out["parts"] == 20
    assert out["not_compared"] == 3                       # was 83: the 80 of the stop blamed on it
    assert out["compared_share"] == 20 / 23
    runs = out["shadow_runs"]
    assert len(runs) == 2 and runs[0]["stopped_at"] is not None and runs[1]["stopped_at"] is None


def test_a_shadow_replaced_or_made_active_ran_until_then(station):
    st = station
    v1 = st.models.active_for("cell", "L1")
    v2 = st.add_model(FakeInspector(0.4, "v-b").to_bytes(), "cell")
    v3 = st.add_model(FakeInspector(0.45, "v-c").to_bytes(), "cell")
    st.shadow.start("cell", "", v2.version)
    _parts(st, v1, 6, shadow=v2)
    _parts(st, v1, 2)                                     # dropped by v2
    st.shadow.start("cell", "", v3.version)               # v3 shadows instead: v2's run ends
    _parts(st, v1, 7, shadow=v3)
    st.activate_model("cell", "", v3.version, force=True)   # made active: its shadow run ends
    # the 2 it dropped at the end of its run count (they were after the last part it judged),
    # not the 7 v3 judged after it
    out = _compare(st, v1, v2)
    assert (out["parts"], out["not_compared"]) == (6, 2)
    out3 = _compare(st, v1, v3)
    assert (out3["parts"], out3["not_compared"]) == (7, 0)
    assert [r["stopped_at"] is not None for r in out["shadow_runs"]] == [True]
    assert [r["stopped_at"] is not None for r in out3["shadow_runs"]] == [True]


def test_parts_stored_without_microseconds_never_make_a_negative_count(station):
    """Records written by another tool (a restore, a bulk import) may hold whole seconds:
    the count of the stretch less the parts both judged came out -1, compared_share 1.5."""
    st = station
    v1 = st.models.active_for("cell", "L1")
    v2 = st.add_model(FakeInspector(0.4, "v-b").to_bytes(), "cell")
    _parts(st, v1, 3, shadow=v2)        # no change-log run: the stretch of the parts both judged
    t0 = dt.datetime(2026, 11, 30, 6, 0)
    with st.db.session() as s:
        ids = [i for (i,) in s.execute(text("SELECT id FROM inspections ORDER BY id"))]
        for k, i in enumerate(ids):
            at = (t0 + dt.timedelta(seconds=k)).strftime("%Y-%m-%d %H:%M:%S")
            if st.db.is_sqlite:
                s.execute(text("UPDATE inspections SET created_at = :at WHERE id = :i"), {"at": at, "i": i})
            else:
                s.execute(text("UPDATE inspections SET created_at = CAST(:at AS timestamp) WHERE id = :i"),
                          {"at": at, "i": i})
    out = _compare(st, v1, v2)
    assert (out["parts"], out["not_compared"], out["compared_share"]) == (3, 0, 1.0)


# -- the rates' reading: along indexes, not the whole table ----------------------------------
def test_migration_0026_adds_the_audit_sample_index_and_takes_it_back(station):
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import inspect as sa_inspect
    from lineguard.line import db as db_mod

    def indexes():
        return {ix["name"] for ix in sa_inspect(station.db.engine).get_indexes("inspections",
                                                                                schema=station.db.schema)}
    assert "ix_inspections_audit_sample" in indexes()
    cfg = Config()
    cfg.set_main_option("script_location", str(db_mod._MIGRATIONS))
    with station.db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0025")
    assert "ix_inspections_audit_sample" not in indexes()
    station.db.upgrade()
    assert "ix_inspections_audit_sample" in indexes()


def test_the_rates_of_each_version_read_the_reviewed_and_sampled_parts_along_indexes(station):
    """``reviewed OR audit_sample`` read every record (SQLite: SCAN inspections; 2.25 s for
    the Models page's rates on 2 million parts where the reviewed parts alone took 1.0 s):
    each branch now goes along its own index (the plan, not a time, is what is checked)."""
    import pytest
    from sqlalchemy import event

    from lineguard.line.compare import version_counts
    if not station.db.is_sqlite:
        pytest.skip("the plan is SQLite's; PostgreSQL chooses by its statistics")
    v1 = station.models.active_for("cell", "L1")
    _parts(station, v1, 3)
    seen = []

    def keep(conn, cursor, statement, params, context, many):
        if "audit_sample" in statement and "FROM inspections" in statement and "shadow_results" not in statement:
            seen.append((statement, params))
    event.listen(station.db.engine, "before_cursor_execute", keep)
    try:
        with station.db.session() as s:
            version_counts(s, [v1])
    finally:
        event.remove(station.db.engine, "before_cursor_execute", keep)
    assert seen
    with station.db.engine.connect() as conn:
        for statement, params in seen:
            plan = [row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params)]
            assert not [p for p in plan if p.startswith("SCAN inspections")], plan
            assert any("ix_inspections_audit_sample" in p for p in plan), plan
            assert any("ix_inspections_reviewed" in p for p in plan), plan
