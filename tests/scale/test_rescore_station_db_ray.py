"""rescore --station-db on local Ray: what the actors score lands in the station database
row for row as in the Parquet (the driver copies each part; actors never touch the database)."""
from __future__ import annotations

import pytest

from .conftest import make_archive, ray_or_skip

ray_or_skip()
pq = pytest.importorskip("pyarrow.parquet")

pytestmark = pytest.mark.ray


def test_ray_results_land_in_the_station_database_as_in_the_parquet(ray_session, exported_model, synth_category,
                                                                    tmp_path):
    from sqlalchemy import select
    from lineguard.line.orm import RescoreResult, RescoreRun
    from lineguard.line.scale.rescore import rescore
    from lineguard.line.scale.rescore_db import StationRecorder
    archive = make_archive(tmp_path / "archive", synth_category)
    rec = StationRecorder.open(f"sqlite:///{tmp_path / 'station' / 'lineguard.db'}")
    summary = rescore(exported_model, archive, tmp_path / "r.parquet", ray_address=ray_session, concurrency=2,
                      batch_size=4, chunk_rows=10, recorder=rec)
    parquet = {r["path"]: r for r in pq.read_table(tmp_path / "r.parquet").to_pylist()}
    with rec.db.session() as s:
        rows = {r.path: r for r in s.scalars(select(RescoreResult))}
        run = s.scalars(select(RescoreRun)).one()
    rec.close()
    assert summary.scored == len(parquet) == len(rows) and summary.parts_written > 1
    for path, want in parquet.items():
        got = rows[path]
        assert (got.verdict, got.sha256, got.error is None) == (want["verdict"], want["sha256"], want["error"] is None)
        assert got.score == pytest.approx(want["score"]) if want["score"] is not None else got.score is None
    assert run.finished_at is not None and run.mode.startswith("ray")
    assert run.counts == {**summary.verdicts, "error": summary.errors}
