"""A walk of reviews, retraining, shadow and rollback: a line model's refusal named the
product's model of every line, the Models page's question ended "...Models page),.", the
change log kept defect-type saves that changed nothing, "chip" and "Chip" were two defect
types, slips of a line or product were told no did-you-mean outside train and Compare, a
queued job read "stopped while this job ran", and the activation trial counted a photo
reviewed as a defect on another part as a good part."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from lineguard.line.station import Part

from .fake_inspector import FakeInspector, png_bytes
from .test_change_log import _keys, _log
from .test_spc_api import client

MODELS_JS = Path(__file__).resolve().parents[2] / "src/lineguard/server/web/models.js"
DEFAULTS = ["scratch", "crack", "dent", "stain", "contamination", "other"]


def _upload(c, eng, model: FakeInspector, line: str = "", activate: bool = False) -> dict:
    r = c.post("/api/v1/models", files={"file": ("m.lgm", model.to_bytes())},
               data={"product": "cell", "line": line, "activate": "true" if activate else "false"}, headers=eng)
    assert r.status_code == 201, r.text
    return r.json()


def _good_and_defects(st, line: str = "L1") -> None:
    """8 good parts judged OK, 6 judged NG and reviewed as defects, and one OK part an audit
    found to be a defect (the line passed 1 of the 7 defects)."""
    for i in range(8):
        st.inspect(png_bytes(40, seed=7000 + i), Part(f"good-{i}", line, "S1", "cell"))
    for i in range(6):
        rec = st.inspect(png_bytes(200, seed=7100 + i), Part(f"bad-{i}", line, "S1", "cell")).record
        assert rec.verdict == "NG"
        st.review(rec.id, "defect", "ann", None, defect_type="crack")
    escape = st.inspect(png_bytes(40, seed=7200), Part("escape", line, "S1", "cell")).record
    st.review(escape.id, "defect", "ann", None, defect_type="crack")


def _refusal(c, eng, version: int, line: str = "") -> dict:
    r = c.post("/api/v1/models/cell/activate", json={"line": line, "version": version}, headers=eng)
    assert r.status_code == 409, r.text
    return r.json()["error"]


@pytest.mark.one_database
def test_a_line_models_refusals_name_the_line_not_the_model_of_every_line(spc_station):
    # cell v1 (every line) active; "v1 judges ... parts of 'cell'" of cell/L1 v1 read as that v1
    st = spc_station()
    eng = {"X-API-Key": _keys(st)["engineer"]}
    with client(st) as c:
        _upload(c, eng, FakeInspector(0.5, "cell-1"), activate=True)
        _good_and_defects(st)
        assert _upload(c, eng, FakeInspector(0.9, "cell-L1-loose"), line="L1")["version"] == 1
        err = _refusal(c, eng, 1, "L1")
        assert err["code"] == "passes_reviewed_defects"
        assert err["message"].startswith("cell/L1 v1 judges 7 of the 7 latest parts of 'cell' on line 'L1' reviewed "
                                         "as defects OK"), err["message"]
        assert "line 'L1' passed 1 of them" in err["message"], err["message"]
        _upload(c, eng, FakeInspector(0.1, "washer"), line="L1")
        err = _refusal(c, eng, 2, "L1")
        assert err["code"] == "rejects_good_parts"
        assert err["message"].startswith("cell/L1 v2 judges 8 of the 8 latest good parts of 'cell' on line 'L1' NG; "
                                         "line 'L1' judged them 8 OK"), err["message"]


def _page_question(message: str) -> str:
    """What the Models page asks before a forced activation: the refusal with its "force"
    advice cut off by the page's own pattern (models.js), as it shows it."""
    js = MODELS_JS.read_text(encoding="utf-8")
    pattern = re.search(r'const why = e\.message\.replace\(/(.+?)/, ""\);', js).group(1)
    return re.sub(pattern, "", message) + "."


@pytest.mark.one_database
def test_the_models_page_asks_about_either_refusal_without_a_stray_comma(spc_station):
    # "...(Shadow and Compare on the Models page),.\n\nActivate v3 anyway?"
    st = spc_station()
    eng = {"X-API-Key": _keys(st)["engineer"]}
    with client(st) as c:
        _upload(c, eng, FakeInspector(0.5, "cell-1"), activate=True)
        _good_and_defects(st)
        _upload(c, eng, FakeInspector(0.9, "cell-loose"))
        _upload(c, eng, FakeInspector(0.1, "washer"))
        for version, code in ((2, "passes_reviewed_defects"), (3, "rejects_good_parts")):
            err = _refusal(c, eng, version)
            assert err["code"] == code
            asked = _page_question(err["message"])
            assert asked.endswith("(Shadow and Compare on the Models page).") and '"force"' not in asked, asked


@pytest.mark.one_database
def test_the_change_log_holds_defect_type_changes_only_each_from_the_list_before(spc_station):
    st = spc_station()
    keys = _keys(st)
    eng = {"X-API-Key": keys["engineer"]}
    url = "/api/v1/products/cell/defect-types"
    with client(st) as c:
        assert c.put(url, json={"defect_types": ["crack", "dent"]}, headers=eng).status_code == 200
        # reviewers chose from the default list until now: that is what it was changed from
        assert [e["details"] for e in _log(c, keys["engineer"], action="product.defect_types")] == [
            {"before": DEFAULTS, "after": ["crack", "dent"]}]
        # saved again as it stands (a form sent twice): no change, none logged
        r = c.put(url, json={"defect_types": [" crack", "dent "]}, headers=eng)
        assert r.status_code == 200 and r.json()["defect_types"] == ["crack", "dent"], r.text
        assert len(_log(c, keys["engineer"], action="product.defect_types")) == 1
        assert c.put(url, json={"defect_types": ["crack"]}, headers=eng).status_code == 200
        assert [e["details"] for e in _log(c, keys["engineer"], action="product.defect_types")][0] == {
            "before": ["crack", "dent"], "after": ["crack"]}


@pytest.mark.one_database
def test_defect_types_differing_only_in_case_are_refused_naming_them(spc_station):
    st = spc_station()
    eng = {"X-API-Key": _keys(st)["engineer"]}
    url = "/api/v1/products/cell/defect-types"
    with client(st) as c:
        r = c.put(url, json={"defect_types": ["chip", "crack", " Chip"]}, headers=eng)
        assert r.status_code == 422, r.text
        said = r.json()["error"]["message"]
        assert "'chip' and 'Chip'" in said and "differ only in case" in said, said
        assert c.get(url, headers=eng).json()["defect_types"] == DEFAULTS       # nothing written


@pytest.mark.one_database
def test_a_slip_of_a_line_or_product_in_a_versions_slot_is_told_the_one_meant(spc_station):
    st = spc_station()
    eng = {"X-API-Key": _keys(st)["engineer"]}
    with client(st) as c:
        _upload(c, eng, FakeInspector(0.5, "cell-1"), activate=True)
        st.inspect(png_bytes(40, seed=7300), Part("p-1", "L1", "S1", "cell"))

        def refused(r, *said: str) -> None:
            assert r.status_code == 404, r.text
            msg = r.json()["error"]["message"]
            assert all(s in msg for s in said), msg
        refused(c.post("/api/v1/models/cell/activate", json={"line": "l1", "version": 1}, headers=eng),
                "line 'l1'", "did you mean 'L1'?")
        # a line never seen: not "nothing to roll back"
        refused(c.post("/api/v1/models/cell/rollback", json={"line": "L2"}, headers=eng),
                "line 'L2'", "The lines the station knows: L1")
        refused(c.post("/api/v1/models/Cell/rollback", json={}, headers=eng), "did you mean 'cell'?")
        refused(c.post("/api/v1/models/cell/shadow", json={"line": "l1", "version": 1}, headers=eng),
                "did you mean 'L1'?")
        refused(c.delete("/api/v1/models/cell/shadow", params={"line": "l1"}, headers=eng), "did you mean 'L1'?")
        refused(c.get("/api/v1/models/cell/versions/1/file", params={"line": "L2"}, headers=eng),
                "line 'L2'", "The lines the station knows: L1")
        # the slots as the station holds them still work
        assert c.get("/api/v1/models/cell/versions/1/file", headers=eng).status_code == 200
        r = c.post("/api/v1/models/cell/activate", json={"version": 1}, headers=eng)
        assert r.status_code == 200 and r.json()["active"], r.text


@pytest.mark.one_database
def test_a_job_queued_when_the_station_stops_says_it_never_started(spc_station):
    import threading
    import time

    from lineguard.line.jobs import JobRunner
    from lineguard.line.orm import Job
    st = spc_station(audit_sample_rate=1.0)
    st.add_model(FakeInspector(0.5, "v-a").to_bytes(), "cell", activate=True)
    for i in range(6):
        st.inspect(png_bytes(40 + i, seed=7400 + i), Part(f"stop-{i}", "L1", "S1", "cell"))
    fitting = threading.Event()

    def trainer(images, progress):           # a long fit, reporting as Inspector.fit does
        fitting.set()
        for i in range(3000):
            progress("features", i, 3000)
            time.sleep(0.01)
        return FakeInspector.fit(images)
    st.jobs.trainer = trainer
    running = st.jobs.submit_training("cell", "", min_images=5, source="sample")
    queued = st.jobs.submit_training("cell", "", min_images=5, source="sample")
    assert fitting.wait(20)
    st.jobs.close()
    ran, waited = st.jobs.get(running.id), st.jobs.get(queued.id)
    assert ran.status == waited.status == "interrupted"
    assert ran.message == "the station stopped while this job ran; start it again"
    assert "before this job started" in waited.message and "nothing was trained" in waited.message, waited.message
    assert waited.progress == 0.0
    # a station that died with a job queued says the same at its next start
    with st.db.session() as s:
        job = Job(kind="train", status="queued", progress=0.0, params={})
        s.add(job)
        s.flush()
        left = job.id
    JobRunner(st).close()
    assert "before this job started" in st.jobs.get(left).message


@pytest.mark.one_database
def test_the_activation_trial_leaves_out_photos_reviewed_as_defects_on_another_part(spc_station):
    # a photo reviewed as a defect, sent again under another part id and passed: retraining
    # never learns it, but the trial counted it good, and a version rejecting it was refused
    st = spc_station()
    eng = {"X-API-Key": _keys(st)["engineer"]}
    with client(st) as c:
        _upload(c, eng, FakeInspector(0.5, "cell-1"), activate=True)
        for i in range(6):
            st.inspect(png_bytes(40, seed=7500 + i), Part(f"good-{i}", "L1", "S1", "cell"))
        for i in range(7):
            photo = png_bytes(120, seed=7600 + i)        # judged OK by v1: escapes
            first = st.inspect(photo, Part(f"escape-{i}", "L1", "S1", "cell")).record
            st.review(first.id, "defect", "ann", None, defect_type="crack")
            assert st.inspect(photo, Part(f"again-{i}", "L1", "S1", "cell")).record.verdict == "OK"
        _upload(c, eng, FakeInspector(0.3, "cell-strict"))     # rejects those photos, passes the good
        r = c.post("/api/v1/models/cell/activate", json={"version": 2}, headers=eng)
        assert r.status_code == 200, r.text
        assert r.json()["active"]


def test_the_good_parts_leave_out_defect_photos_by_a_lookup_on_the_photos_index(tmp_path):
    """NOT IN over every photo ever reviewed as a defect: past PostgreSQL's work_mem a scan
    of that list for each part; now each part's photo is looked up on its index."""
    from sqlalchemy import event

    from lineguard.line.compare import recent_good_parts
    from lineguard.line.db import Database
    db = Database(f"sqlite:///{tmp_path / 'st.db'}")
    db.upgrade()
    statements = []

    def seen(conn, cursor, statement, params, context, many):
        statements.append((statement, params))
    try:
        with db.session() as s:
            event.listen(db.engine, "before_cursor_execute", seen)
            recent_good_parts(s, "cell", "", 20)
            event.remove(db.engine, "before_cursor_execute", seen)
            statement, params = statements[-1]
            plan = " | ".join(str(r[-1]) for r in s.connection().exec_driver_sql(
                f"EXPLAIN QUERY PLAN {statement}", params).all())
    finally:
        db.dispose()
    assert "CORRELATED" in plan and "ix_inspections_image_sha256" in plan, plan
    assert "LIST SUBQUERY" not in plan, plan
