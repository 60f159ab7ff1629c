"""Reference photos (line.reference) whose files are gone or damaged: a retrain fails below
its min_images instead of learning from fewer, names the photos it could not learn, and its
counts add up; a line name a part could never carry is refused."""
from __future__ import annotations

import io
import json

from PIL import Image
import pytest

from lineguard.line.orm import Job

from line.test_model_lifecycle import _wait_job

from .fake_inspector import FakeInspector, png_bytes
from .test_reference_photos import Recorder, _client, _parts, _upload, make_station  # noqa: F401 - fixture


class SkipsUnreadable(Recorder):
    """FakeInspector.fit on the photos that decode, the others named in info['skipped'] as
    Inspector.fit names them ("<path>: <problem> (<hint>)"), n_train the ones it learnt."""

    def __call__(self, images, progress=None, calibrate_on=None, **params):
        self.images = [str(p) for p in images]
        good, bad = [], []
        for p in images:
            try:
                Image.open(io.BytesIO(open(p, "rb").read())).load()
                good.append(p)
            except Exception:  # noqa: BLE001 - a damaged photo: skipped as the real fit does
                bad.append(f"{p}: the PNG image is cut short (copy the photo again)")
        insp = FakeInspector.fit(good, progress=progress)
        insp.info = {**insp.info, "n_train": len(good), "skipped": bad}
        return insp


def _ref_ids(c) -> list[tuple[int, str]]:
    return [(e["id"], e["image_key"]) for e in c.get("/api/v1/reference-photos").json()["items"]]


@pytest.mark.one_database
def test_a_retrain_asked_for_with_reference_files_gone_counts_only_those_there(make_station):
    st = make_station(audit_sample_rate=1.0)
    _parts(st, 4)
    with _client(st) as c:
        for i in range(6):
            assert _upload(c, png_bytes(45, seed=4000 + i), f"g{i}.png").status_code == 201
        refs = _ref_ids(c)
        for _pid, key in refs[:3]:
            (st.config.data_dir / "reference" / key).unlink()
        r = c.post("/api/v1/models/cell/train", json={"min_images": 10})
    assert r.status_code == 400, r.text
    msg = r.json()["error"]["message"]
    assert "only 7 stored parts and reference photos" in msg
    assert "3 reference photo(s) are missing" in msg and "lineguard reference remove" in msg
    assert all(str(pid) in msg for pid, _key in refs[:3])


@pytest.mark.one_database
def test_a_retrain_whose_reference_files_went_after_it_was_asked_for_fails_below_min_images(make_station):
    st = make_station(audit_sample_rate=1.0)
    _parts(st, 4)
    with _client(st) as c:
        for i in range(6):
            assert _upload(c, png_bytes(45, seed=5000 + i), f"g{i}.png").status_code == 201
        refs = _ref_ids(c)
    # the job as asked for (10 counted), its files gone before the worker runs it
    params = {"product": "cell", "line": "", "limit": 200, "activate": False, "by": None, "source": "both",
              "reference": True, "min_images": 10, "fit": {}}
    with st.db.session() as s:
        job = Job(kind="train", status="queued", progress=0.0, params=params)
        s.add(job)
        s.flush()
        job_id = job.id
    for _pid, key in refs[:3]:
        (st.config.data_dir / "reference" / key).unlink()
    st.jobs._train(job_id)
    job = st.jobs.get(job_id)
    assert job.status == "failed", job.message
    assert "only 7 stored parts and reference photos" in job.message and "at least 10" in job.message
    assert "lineguard reference remove" in job.message
    assert all(str(pid) in job.message for pid, _key in refs[:3])
    assert st.jobs.trainer.images == []       # nothing was trained


@pytest.mark.one_database
def test_a_damaged_reference_photo_is_named_and_the_counts_add_up(make_station):
    st = make_station(audit_sample_rate=1.0, trainer=SkipsUnreadable())
    _parts(st, 4)
    with _client(st) as c:
        for i in range(3):
            assert _upload(c, png_bytes(45, seed=6000 + i), f"g{i}.png").status_code == 201
        pid, key = _ref_ids(c)[1]
        path = st.config.data_dir / "reference" / key
        path.write_bytes(path.read_bytes()[:300])    # cut short on the station's disk
        job = _wait_job(st, c.post("/api/v1/models/cell/train", json={"min_images": 5}).json()["id"])
    assert job.status == "done", job.message
    src = job.result["sources"]
    assert src == {"reviewed_good": 0, "audit_sample": 4, "reference_photos": 2}
    assert sum(src.values()) == job.result["images"] == 6
    assert f"reference photo {pid}" in job.message and "cut short" in job.message
    assert "lineguard reference remove" in job.message


@pytest.mark.one_database
def test_a_line_longer_than_a_parts_line_is_refused(make_station):
    import pytest

    from lineguard.line.errors import InvalidRequest
    from lineguard.line.reference import of_station
    st = make_station()
    ref = of_station(st)
    # a raw StringDataRightTruncation on PostgreSQL; on SQLite a line no part can match
    with pytest.raises(InvalidRequest, match="at most 100 characters"):
        ref.add("cell", png_bytes(45, seed=7000), line="L" * 101)
    with pytest.raises(InvalidRequest, match="control character"):
        ref.add("cell", png_bytes(45, seed=7001), line="L1\x00")
    assert ref.add("cell", png_bytes(45, seed=7002), line="L" * 100)[1]
    assert ref.count("cell") == 1
