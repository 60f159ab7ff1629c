"""The activation trial and the shadow-less warning, what the last change left out, on
SQLite and PostgreSQL.

1. A photo the version tried doubts was counted against it even where the line's own
   model doubted the same photo (the part went to REVIEW on the line too, a person said
   good): then it is the photo, not the version. Only the photos the line did not doubt
   count now; the answer says both.
2. An older version made live again by number, never compared with the live one, was
   activated with ``warning: null`` ("it judged the line before"): its record is of parts
   judged beside other models. Told now, as a new version is; the version Roll back would
   go back to (the undo of the activation just made) is not, as Roll back itself is not.
3. A retrain with activate=true dropped the warning: the job's result and message said
   nothing, and no activation's change-log entry kept it.
"""
from __future__ import annotations

import time

import pytest

from lineguard.line.station import Part

from .fake_inspector import FakeInspector, png_bytes
from .test_change_log import _keys, _log
from .test_spc_api import client

NO_SHADOW = "activated without a shadow comparison"


def _upload(c, eng, model: FakeInspector, activate: bool = False):
    return c.post("/api/v1/models", files={"file": ("m.lgm", model.to_bytes())},
                  data={"product": "cell", "activate": "true" if activate else "false"}, headers=eng)


def _activate(c, eng, version: int) -> str:
    """Activate ``version`` by number; its answer's warning ("" for none)."""
    r = c.post("/api/v1/models/cell/activate", json={"version": version}, headers=eng)
    assert r.status_code == 200 and r.json()["active"], r.text
    return r.json()["warning"] or ""


def _parts(st, n: int, value: int = 40, seed: int = 0) -> list:
    """``n`` parts the fake models score ~value/255 (40: 0.157), judged by the live version."""
    return [st.inspect(png_bytes(value, seed=seed + i), Part(f"p-{seed + i}", "L1", "S1", "cell")).record
            for i in range(n)]


def _finished(st, job_id: int):
    """The job once done or failed (a training job runs on the station's own thread)."""
    for _ in range(600):
        job = st.jobs.get(job_id)
        if job.status in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"training job {job_id} did not finish: {st.jobs.get(job_id).status}")


def _doubted_and_reviewed_good(st, n: int, seed: int) -> None:
    """``n`` dim parts the live version doubts (REVIEW, "too dark"), reviewed good by a person."""
    for rec in _parts(st, n, value=40, seed=seed):
        assert rec.verdict == "REVIEW" and rec.photo_issues, rec
        st.review(rec.id, "good", "ann", None)


@pytest.mark.one_database
def test_photos_the_line_doubted_too_do_not_count_against_the_version(spc_station):
    st = spc_station()
    keys = _keys(st)
    eng = {"X-API-Key": keys["engineer"]}
    with client(st) as c:
        # the live version doubts the dim photos (below 0.3), a person reviews each good
        assert _upload(c, eng, FakeInspector(0.5, "cell-1", photo_floor=0.3), activate=True).status_code == 201
        _doubted_and_reviewed_good(st, 11, seed=0)
        # a retrain with the same photo check doubts the very same 11 photos: no worse than the line
        r = _upload(c, eng, FakeInspector(0.45, "cell-2", photo_floor=0.3), activate=True)
        assert r.status_code == 201 and r.json()["active"], r.text


@pytest.mark.one_database
def test_the_refusal_counts_only_photos_the_line_passed_and_names_the_others(spc_station):
    st = spc_station()
    keys = _keys(st)
    eng = {"X-API-Key": keys["engineer"]}
    with client(st) as c:
        assert _upload(c, eng, FakeInspector(0.5, "cell-1", photo_floor=0.3), activate=True).status_code == 201
        _doubted_and_reviewed_good(st, 4, seed=0)
        assert all(rec.verdict == "OK" and not rec.photo_issues for rec in _parts(st, 7, value=90, seed=100))
        # doubts every photo under 0.4: the 4 the line doubted too, and 7 the line passed (0.353)
        r = _upload(c, eng, FakeInspector(0.5, "cell-2", photo_floor=0.4), activate=True)
        assert r.status_code == 409, r.text
        err = r.json()["error"]
        assert err["code"] == "rejects_good_parts", err
        assert (err["parts_tried"], err["not_passed"], err["photo_doubted"], err["photo_doubted_by_line"]) == \
            (11, 7, 7, 4), err
        assert err["photo_issues"] == {"too dark": 7}
        assert ("v2 doubts the photo of 7 of the 11 latest good parts of 'cell' (too dark 7), and doubts the photo "
                "of 4 more of them that the line doubted too (not counted: the photo, not the version); "
                in err["message"]), err["message"]
        # forced, the change log says both too
        r = c.post("/api/v1/models/cell/activate", json={"version": 2, "force": True}, headers=eng)
        assert r.status_code == 200 and r.json()["active"], r.text
        entry = _log(c, keys["engineer"], action="model.activated")[0]
        assert entry["details"]["forced"] == (
            "doubted the photo of 7 of the 11 latest good parts (too dark 7), and doubted the photo of 4 more of "
            "them that the line doubted too (not counted: the photo, not the version)")


def test_an_older_version_made_live_again_without_a_comparison_is_told(spc_station):
    st = spc_station()
    keys = _keys(st)
    eng = {"X-API-Key": keys["engineer"]}
    with client(st) as c:
        assert _upload(c, eng, FakeInspector(0.5, "cell-1"), activate=True).status_code == 201
        _parts(st, 6)
        # v2 runs in shadow beside v1 first, then goes live: compared, not told
        assert _upload(c, eng, FakeInspector(0.6, "cell-2")).status_code == 201
        assert c.post("/api/v1/models/cell/shadow", json={"version": 2}, headers=eng).status_code == 200
        _parts(st, 3, seed=50)
        assert st.shadow.wait_idle(60)
        assert NO_SHADOW not in _activate(c, eng, 2)
        r = _upload(c, eng, FakeInspector(0.7, "cell-3"), activate=True)
        assert r.status_code == 201 and NO_SHADOW in (r.json()["warning"] or ""), r.text
        # v1 judged the line before, but never beside v3: told, and the change log keeps it
        said = _activate(c, eng, 1)
        assert said.startswith(f"{NO_SHADOW}: cell/* v1 never judged the line's parts in shadow beside cell/* v3, "
                               "which judged them until now"), said
        entry = _log(c, keys["engineer"], action="model.activated")[0]
        assert entry["subject"] == "cell/* v1" and entry["details"]["unshadowed"] == said, entry
        # v2 over v1: v2 ran in shadow beside v1, not told
        assert NO_SHADOW not in _activate(c, eng, 2)
        # v3 over v2 (Roll back would go to v1): never compared, told
        assert "cell/* v3 never judged the line's parts in shadow beside cell/* v2" in _activate(c, eng, 3)
        # v2 again over v3: what Roll back would do now (the undo of the activation just made), not told
        listed = c.get("/api/v1/models", params={"product": "cell"}, headers=eng).json()["items"]
        assert [m["rollback_to"] for m in listed if m["active"]] == [2]
        assert NO_SHADOW not in _activate(c, eng, 2)
        assert "unshadowed" not in _log(c, keys["engineer"], action="model.activated")[0]["details"]
        # v1 over v2, Roll back going to v3: v2 ran in shadow while v1 judged the line, the two were
        # compared (the other way round): not told
        listed = c.get("/api/v1/models", params={"product": "cell"}, headers=eng).json()["items"]
        assert [m["rollback_to"] for m in listed if m["active"]] == [3]
        assert NO_SHADOW not in _activate(c, eng, 1)


@pytest.mark.one_database
def test_a_retrain_activated_by_its_job_says_it_ran_in_no_shadow(spc_station):
    st = spc_station(audit_sample_rate=1.0)
    keys = _keys(st)
    with client(st) as c:
        st.add_model(FakeInspector(0.5, "cell-1").to_bytes(), "cell", activate=True)
        assert all(rec.verdict == "OK" for rec in _parts(st, 12))
        st.jobs.trainer = lambda paths, **fit: FakeInspector(0.5, "cell-retrained")
        r = c.post("/api/v1/models/cell/train", json={"line": "", "activate": True, "min_images": 5},
                   headers={"X-API-Key": keys["engineer"]})
        assert r.status_code == 202, r.text
        job = _finished(st, r.json()["id"])
        assert job.status == "done" and job.result["activated"] is True, job.message
        said = job.result["warning"]
        assert said and said.startswith(f"{NO_SHADOW}: cell/* v2 never judged the line's parts in shadow beside "
                                        "cell/* v1"), said
        assert f"registered and activated; {said}" in job.message, job.message
        entry = _log(c, keys["engineer"], action="model.activated")[0]
        assert entry["subject"] == "cell/* v2" and entry["details"]["unshadowed"] == said, entry
        # the jobs list the Models page reads shows it
        listed = c.get(f"/api/v1/jobs/{job.id}", headers={"X-API-Key": keys["engineer"]}).json()
        assert listed["result"]["warning"] == said
